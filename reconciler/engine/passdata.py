"""The value types a pass hands around: its options, its divergence records, an inspection.

Kept apart from the pass itself so that the planners of each entry kind (server entries in
``engine``, file entries in ``engine.mirrors``) share them without importing one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from reconciler.core import divergence
from reconciler.core.essence import Essence, Sealer
from reconciler.core.report import TargetReport
from reconciler.store.desired import DesiredState
from reconciler.targets import Observation


@dataclass(frozen=True)
class PassOptions:
    """What one pass covers, and whether it may write."""

    dry_run: bool = False
    targets: tuple[str, ...] = ()  # empty: every target
    servers: tuple[str, ...] = ()  # empty: every server


@dataclass
class Divergences:
    """A pass's divergence records, rejections to sync, and the records it must write."""

    records: tuple[divergence.Record, ...] = ()
    rejected: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    today: date = field(default_factory=date.today)
    drafts: dict[str, tuple[divergence.Draft, ...]] = field(default_factory=dict)
    shown: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inspection:
    """One target as ``Engine.inspect`` found it."""

    state: DesiredState
    report: TargetReport
    observation: Observation
    sealed: Mapping[str, Essence]  # live entries, sealed, header names as desired spells them
    fingerprint: Sealer
    matched: divergence.Match
    found: Divergences
