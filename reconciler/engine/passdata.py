"""The value types a pass hands around: its options, its divergence records, an inspection,
and the ``Planner`` protocol that each kind of entry (servers, files) implements.

Kept apart from the pass itself so that the planners (``engine.servers``,
``engine.mirrors``) share them without importing the engine or one another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, TypeVar

from reconciler.core import divergence
from reconciler.core.essence import Essence, Sealer
from reconciler.core.report import TargetReport
from reconciler.store.desired import DesiredState
from reconciler.targets import Observation, Write


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
    desired: Mapping[str, Any] = field(default_factory=dict)  # entry -> sealed desired


class Planned(Protocol):
    """One attempt's plan for one target, as the reconcile step carries it out."""

    @property
    def report(self) -> TargetReport: ...  # the plan as reports show it, nothing applied

    @property
    def writes(self) -> tuple[Write, ...]: ...

    @property
    def drafts(self) -> tuple[divergence.Draft, ...]: ...  # records for on_drift: record

    @property
    def pending(self) -> bool: ...  # anything to apply or record


P = TypeVar("P", bound=Planned)


class Planner(Protocol[P]):
    """What the one reconcile step needs to know about a kind of entry (servers, files).

    The step itself (``Engine._reconcile``) is the same for every target: observe, ``plan``,
    ``intend`` (note what the writes will leave, in case the process dies mid-way), apply
    the writes (retrying after ``retry`` when the target moved), ``verify`` against a
    fresh observation, ``remember`` what was applied, and report ``applied``.
    """

    def skip(self) -> TargetReport | None: ...

    def plan(self, observation: Observation) -> P: ...

    def verify(self, planned: P, after: Observation) -> None: ...

    def intend(self, planned: P, writes: Sequence[Write]) -> None: ...  # noted before apply

    def remember(self, planned: P, done: Sequence[Write], after: Observation | None) -> None: ...

    def retry(self) -> None: ...

    def applied(self, planned: P, done: Sequence[Write]) -> TargetReport: ...

    def inspection(self, planned: P) -> Inspection: ...
