"""The planner for targets whose entries are files (mirror copies): plan, match, verify.

A mirror copy is observed like any target (``targets.mirror``: both trees, file by file);
what differs is the planning. Its drift is per file (``core.mirrordiff``: missing, extra,
changed, mode), its "last applied" is the source state last synced into the copy, and the
whole copy is one entry of the report (the mirror's name) with one field per file, so that
divergence records, ``allow`` and exit codes work exactly as for server entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from reconciler.core import divergence
from reconciler.core.compare import Origin
from reconciler.core.errors import TargetError
from reconciler.core.essence import Sealer
from reconciler.core.mirrordiff import (
    DIFF_MAX_BYTES,
    Drift,
    FileDiff,
    binary_summary,
    field_change,
    file_origin,
    nested,
    overall_origin,
    path_of,
    unified_diff,
)
from reconciler.core.model import MirrorCopySpec, OnDrift
from reconciler.core.plan import Action, Change
from reconciler.core.report import TargetReport
from reconciler.engine.passdata import Divergences, Inspection, PassOptions
from reconciler.secrets import detect
from reconciler.store.desired import DesiredState
from reconciler.targets import Observation, Write
from reconciler.targets.mirror import KIND, MirrorTarget, TreeSnapshot

DIFF_FILES = 100  # unified diffs shown per target and pass; further files by size and hash
HELD_ENTRY = "extra files"  # the entry of extra files a sync keeps (prune: false)


@dataclass(frozen=True)
class Planned:
    """One mirror target's drift, matched against divergence records."""

    diffs: tuple[FileDiff, ...]  # every difference
    open: tuple[FileDiff, ...]  # not covered by a record
    change: Change | None  # the open drift as one change (what `allow` and reports use)
    matched: Any  # divergence.Match
    origins: Mapping[str, Origin]
    live: Mapping[str, Any]  # entry -> nested live tree (what records fingerprint)


def plan(
    name: str,
    spec: MirrorCopySpec,
    snapshot: TreeSnapshot,
    synced: Mapping[str, str],
    seal: Sealer,
    found: Divergences,
    *,
    rejected: bool = False,
) -> Planned:
    diffs = tuple(snapshot.diffs())
    origins = {d.pointer: file_origin(d, synced) for d in diffs}
    on_drift = spec.on_drift
    if rejected and on_drift is OnDrift.RECORD:
        on_drift = OnDrift.SYNC  # a rejected record: sync once instead of recording again
    change = None
    if diffs:
        action = Action.RECORD if on_drift is OnDrift.RECORD else Action.COPY
        change = Change(
            spec.mirror,
            spec.mirror,
            action,
            overall_origin(origins.values()),
            tuple(field_change(d) for d in diffs),
            apply=on_drift is not OnDrift.REPORT,
            required=not spec.optional,
        )
    mine = [r for r in found.records if r.target == name]
    live: dict[str, Any] = {}
    if mine or on_drift is OnDrift.RECORD:
        live[spec.mirror] = nested(snapshot.copy.tree)
    matched = divergence.match(
        name,
        [change] if change is not None else [],
        live,
        mine,
        seal,
        found.today,
        on_drift=on_drift,
        in_scope=(spec.mirror,),
        shown=found.shown,
    )
    remaining = next(iter(matched.changes), None)
    open_paths = set(remaining.paths) if remaining is not None else set()
    still = tuple(d for d in diffs if d.pointer in open_paths)
    return Planned(diffs, still, remaining, matched, origins, live)


def _draft(
    name: str, spec: MirrorCopySpec, planned: Planned, seal: Sealer, found: Divergences
) -> Any:
    change = planned.change
    assert change is not None
    paths = tuple(change.paths)
    previous = next(
        (
            r.id
            for r in found.records
            if r.target == name
            and planned.matched.states.get(r.id) is divergence.State.CHANGED
            and set(r.paths) == set(paths)
        ),
        None,
    )
    return divergence.Draft(
        name,
        spec.mirror,
        spec.mirror,
        paths,
        divergence.fingerprint(planned.live.get(spec.mirror), paths, seal),
        change.origin.value,
        previous,
    )


# -- details for people --------------------------------------------------------------------


def details(
    target: MirrorTarget,
    snapshot: TreeSnapshot,
    diffs: Sequence[FileDiff],
    origins: Mapping[str, Origin],
) -> dict[str, tuple[str, ...]]:
    """Per pointer: what differs, and a unified diff for text (size and hash for binary)."""
    out: dict[str, tuple[str, ...]] = {}
    shown = 0
    for diff in diffs:
        origin = origins.get(diff.pointer, Origin.NEW).value
        lines = [f"{diff.summary()} (origin {origin})"]
        if (
            diff.drift is Drift.CHANGED
            and diff.source is not None
            and diff.copy is not None
            and not diff.source.is_link
            and not diff.copy.is_link
        ):
            text = None
            if (
                shown < DIFF_FILES
                and diff.source.size <= DIFF_MAX_BYTES
                and diff.copy.size <= DIFF_MAX_BYTES
            ):
                live, desired = target.contents(diff.path)
                if live is not None and desired is not None:
                    text = unified_diff(diff.path, live, desired, detect=detect)
                    shown += text is not None
            if text is None:
                lines.append(binary_summary(diff))
            else:
                lines += text
        out[diff.pointer] = tuple(lines)
    return out


def _holds(after: TreeSnapshot, rel: str, deleted: bool) -> bool:
    have = after.copy.tree.get(rel)
    if deleted:
        return have is None
    want = after.source.tree.get(rel)
    return (
        want is not None
        and have is not None
        and want.same_content(have)
        and (want.is_link or want.mode == have.mode)
    )


def _report(
    base: TargetReport,
    target: MirrorTarget,
    snapshot: TreeSnapshot,
    planned: Planned,
    notes: tuple[str, ...],
) -> TargetReport:
    change = planned.change
    shown = details(target, snapshot, planned.open, planned.origins)
    extra_notes = tuple(planned.matched.notes) + notes
    return replace(
        base,
        changes=(change,) if change is not None else (),
        in_sync=() if planned.diffs else (target.spec.mirror,),
        allowed=tuple(planned.matched.allowed),
        notes=base.notes + extra_notes,
        details=shown,
    )


def _applied(
    report: TargetReport,
    change: Change,
    spec: MirrorCopySpec,
    extras: Sequence[FileDiff],
    planned: Planned,
) -> TargetReport:
    """The report after a sync: what was copied, and the extra files kept without prune."""
    if spec.prune or not extras:
        return replace(report, applied=frozenset({change.entry}))
    kept = {d.pointer for d in extras}
    done = tuple(f for f in change.fields if f.path not in kept)
    held = Change(
        spec.mirror,
        HELD_ENTRY,
        Action.DELETE,
        overall_origin(planned.origins[p] for p in kept),
        tuple(f for f in change.fields if f.path in kept),
        apply=False,
        required=change.required,
    )
    changes: tuple[Change, ...] = (held,)
    if done:
        changes = (replace(change, fields=done), held)
    return replace(
        report,
        changes=changes,
        applied=frozenset({change.entry}) if done else frozenset(),
        held={HELD_ENTRY: "prune is off; set prune: true to delete extra files"},
    )


# -- the planner ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePlan:
    """What one attempt found for a mirror copy, and the per-file writes that sync it."""

    planned: Planned
    snapshot: TreeSnapshot
    observation: Observation
    report: TargetReport  # nothing applied
    writes: tuple[Write, ...]
    drafts: tuple[divergence.Draft, ...]
    extras: tuple[FileDiff, ...]  # extra files in the copy, deleted only with prune: true

    @property
    def pending(self) -> bool:
        change = self.planned.change
        return change is not None and change.apply


class FileEntries:
    """Plans, checks and remembers one mirror copy within one pass (entries are files)."""

    def __init__(
        self,
        name: str,
        target: MirrorTarget,
        state: DesiredState,
        *,
        fingerprint: Sealer,
        options: PassOptions,
        found: Divergences,
    ) -> None:
        self.name = name
        self.target = target
        self.state = state
        self.spec = target.spec
        self.fingerprint = fingerprint
        self.options = options
        self.found = found
        self.base = TargetReport(name, KIND, target.describe(), self.spec.optional)

    def skip(self) -> TargetReport | None:
        """``--server`` names servers only: a mirror copy then has nothing in scope."""
        if self.options.servers and self.spec.mirror not in self.options.servers:
            return self.base
        return None

    def plan(self, observation: Observation) -> FilePlan:
        target, spec, found = self.target, self.spec, self.found
        snapshot: TreeSnapshot = observation.snapshot
        synced = target.copy_cache.synced if target.copy_cache is not None else {}
        rejected = spec.mirror in found.rejected.get(self.name, {})
        planned = plan(
            self.name, spec, snapshot, synced, self.fingerprint, found, rejected=rejected
        )
        report = _report(self.base, target, snapshot, planned, observation.notes)
        change = planned.change
        writes: list[Write] = []
        drafts: tuple[divergence.Draft, ...] = ()
        extras = tuple(d for d in planned.open if d.drift is Drift.EXTRA)
        if change is not None and change.action is Action.RECORD:
            drafts = (_draft(self.name, spec, planned, self.fingerprint, found),)
        elif change is not None:
            copying = [d for d in planned.open if d.drift is not Drift.EXTRA]
            writes = [
                Write(d.pointer, d.source.essence(), Action.COPY) for d in copying if d.source
            ]
            if spec.prune:
                writes += [Write(d.pointer, None, Action.DELETE) for d in extras]
        return FilePlan(planned, snapshot, observation, report, tuple(writes), drafts, extras)

    def verify(self, planned: FilePlan, after: Observation) -> None:
        snapshot: TreeSnapshot = after.snapshot
        wrong = [
            w.entry
            for w in planned.writes
            if not _holds(snapshot, path_of(w.entry), w.essence is None)
        ]
        if wrong:
            raise TargetError(f"{', '.join(wrong[:5])}: does not read back as copied")

    def remember(self, planned: FilePlan, done: Sequence[Write], after: Observation | None) -> None:
        """The source state now in the copy becomes its last-synced state (non-dry runs)."""
        if self.options.dry_run:
            return
        if after is None:
            self.target.remember_in_parity(planned.snapshot, planned.planned.diffs)
        else:
            snapshot: TreeSnapshot = after.snapshot
            self.target.remember_in_parity(snapshot, snapshot.diffs())

    def retry(self) -> None:
        self.target.forget_source()  # the source may be what moved: read it again

    def applied(self, planned: FilePlan, done: Sequence[Write]) -> TargetReport:
        change = planned.planned.change
        if change is None or change.action is Action.RECORD:
            return planned.report
        return _applied(planned.report, change, self.spec, planned.extras, planned.planned)

    def inspection(self, planned: FilePlan) -> Inspection:
        live = dict(planned.planned.live) or {self.spec.mirror: nested(planned.snapshot.copy.tree)}
        return Inspection(
            self.state,
            planned.report,
            planned.observation,
            live,
            self.fingerprint,
            planned.planned.matched,
            self.found,
            {self.spec.mirror: nested(planned.snapshot.source.tree)},
        )
