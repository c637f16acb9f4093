"""The pass for targets whose entries are files (mirror copies): plan, match, sync, verify.

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
from reconciler.core.errors import ConcurrentChange, ReconcilerError, TargetError
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
from reconciler.core.report import Phase, TargetReport
from reconciler.engine.passdata import Divergences, Inspection, PassOptions
from reconciler.secrets import detect
from reconciler.store.desired import DesiredState
from reconciler.targets import Write
from reconciler.targets.mirror import KIND, MirrorTarget, TreeSnapshot

CAS_ATTEMPTS = 5
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


# -- one pass ------------------------------------------------------------------------------


def reconcile(
    name: str,
    target: MirrorTarget,
    seal: Sealer,
    options: PassOptions,
    found: Divergences,
) -> TargetReport:
    """Observe, compare, match records, sync (per ``on_drift``), verify, and report."""
    spec = target.spec
    base = TargetReport(name, KIND.value, target.describe(), spec.optional)
    if options.servers and spec.mirror not in options.servers:
        return base  # `--server` names servers only: a mirror copy has nothing in scope
    phase = Phase.OBSERVE
    try:
        for _attempt in range(CAS_ATTEMPTS):
            phase = Phase.OBSERVE
            observation = target.observe()
            snapshot: TreeSnapshot = observation.snapshot
            phase = Phase.PLAN
            synced = target.copy_cache.synced if target.copy_cache is not None else {}
            rejected = spec.mirror in found.rejected.get(name, {})
            planned = plan(name, spec, snapshot, synced, seal, found, rejected=rejected)
            report = _report(base, target, snapshot, planned, observation.notes)
            change = planned.change
            if options.dry_run or change is None or not change.apply:
                if not options.dry_run:
                    target.remember_in_parity(snapshot, planned.diffs)
                return report
            if change.action is Action.RECORD:
                found.drafts[name] = (_draft(name, spec, planned, seal, found),)
                target.remember_in_parity(snapshot, planned.diffs)
                return report
            phase = Phase.APPLY
            copying = [d for d in planned.open if d.drift is not Drift.EXTRA]
            extras = [d for d in planned.open if d.drift is Drift.EXTRA]
            writes = [
                Write(d.pointer, d.source.essence(), Action.COPY) for d in copying if d.source
            ]
            if spec.prune:
                writes += [Write(d.pointer, None, Action.DELETE) for d in extras]
            try:
                target.apply(observation, writes)
            except ConcurrentChange:
                target.forget_source()  # the source may be what moved: read it again
                continue
            phase = Phase.VERIFY
            after = target.observe().snapshot
            wrong = [
                w.entry for w in writes if not _holds(after, path_of(w.entry), w.essence is None)
            ]
            if wrong:
                raise TargetError(f"{', '.join(wrong[:5])}: does not read back as copied")
            target.remember_in_parity(after, after.diffs())
            return _applied(report, change, spec, extras, planned)
        raise ConcurrentChange(f"kept changing during {CAS_ATTEMPTS} attempts; try again")
    except ReconcilerError as e:
        recoverable = e.recoverable if isinstance(e, TargetError) else False
        return replace(base, error=str(e), phase=phase, recoverable=recoverable)


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


def inspect(
    name: str,
    target: MirrorTarget,
    state: DesiredState,
    seal: Sealer,
    found: Divergences,
) -> Inspection:
    """``Engine.inspect`` for a mirror target: the dry-run plan ``allow`` records from."""

    spec = target.spec
    observation = target.observe()
    snapshot: TreeSnapshot = observation.snapshot
    synced = target.copy_cache.synced if target.copy_cache is not None else {}
    planned = plan(name, spec, snapshot, synced, seal, found)
    base = TargetReport(name, KIND.value, target.describe(), spec.optional)
    report = _report(base, target, snapshot, planned, observation.notes)
    live = dict(planned.live) or {spec.mirror: nested(snapshot.copy.tree)}
    return Inspection(state, report, observation, live, seal, planned.matched, found)
