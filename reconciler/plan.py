"""Planning: from desired, live and last-applied essences to the changes a target needs.

Pure: plain data in, a ``TargetPlan`` out; the engine carries it out. Every input essence
is already sealed (secrets replaced by fingerprints), so a plan can be printed, logged and
serialized as it is.

Ownership follows Flux's inventory: only entries this tool created (recorded in the
last-applied store) are ever deleted, and only with ``prune: true``. Entries no placement
names are unmanaged: reported, and touched only on an ``exclusive`` target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.compare import FieldChange, Origin, diff, origin
from reconciler.essence import Essence
from reconciler.model import OnDrift


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"  # MCPJungle has no update: deregister and register
    DELETE = "delete"
    ENABLE = "enable"
    DISABLE = "disable"
    TOOL_ENABLE = "tool-enable"
    TOOL_DISABLE = "tool-disable"
    RECORD = "record"  # write an allowed-divergence record instead of reverting
    COPY = "copy"  # mirrors


@dataclass(frozen=True)
class Slot:
    """One server placed on one target, as planning sees it.

    ``entry`` is the key on the target (the server's name, or the alias found there);
    ``desired`` is None when the entry must be absent (a disabled server on a kind
    without an enabled switch).
    """

    server: str
    entry: str
    desired: Essence | None
    required: bool = False


@dataclass(frozen=True)
class Change:
    """One planned change of one entry; ``apply`` says whether a non-dry run performs it."""

    server: str
    entry: str
    action: Action
    origin: Origin
    fields: tuple[FieldChange, ...] = ()
    apply: bool = True
    required: bool = False

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.fields]


@dataclass(frozen=True)
class TargetPlan:
    changes: tuple[Change, ...] = ()
    in_sync: tuple[str, ...] = ()
    unmanaged: tuple[str, ...] = ()
    orphaned: tuple[str, ...] = ()  # created by us, no longer desired, kept without prune
    notes: tuple[str, ...] = field(default=())

    @property
    def to_apply(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.apply)


def plan_target(
    slots: list[Slot],
    live: Mapping[str, Essence],
    last_applied: Mapping[str, Essence],
    created: frozenset[str],
    *,
    on_drift: OnDrift = OnDrift.SYNC,
    prune: bool = False,
    exclusive: bool = False,
    may_delete: bool = True,
    scope: frozenset[str] | None = None,
) -> TargetPlan:
    """Plan one target.

    ``scope`` limits unmanaged/prune handling to these entry names (``--server``);
    ``may_delete`` is False when desired state looks empty, so nothing is ever pruned
    after a failed or empty read.
    """
    changes: list[Change] = []
    in_sync: list[str] = []
    placed = {s.entry for s in slots}

    for slot in slots:
        have = live.get(slot.entry)
        want = slot.desired
        last = last_applied.get(slot.entry)
        if have == want:
            if want is not None:
                in_sync.append(slot.server)
            continue
        how = origin(want, have, last)
        fields = diff(have, want)
        if want is None:
            action = Action.DISABLE
        elif have is None:
            action = Action.CREATE
        elif {f.path for f in fields} == {"/enabled"}:
            action = Action.ENABLE if want.get("enabled") else Action.DISABLE
        else:
            action = Action.UPDATE
        changes.append(_follow_policy(slot, action, how, fields, on_drift))

    for entry in live:
        if entry in placed or (scope is not None and entry not in scope):
            continue
        if entry in created and entry in last_applied:
            # Ours and no longer desired: pruned, or else kept and reported as orphaned.
            if prune and may_delete:
                fields = diff(live[entry], None)
                changes.append(Change(entry, entry, Action.DELETE, Origin.DESIRED, fields))
        elif exclusive and may_delete:
            fields = diff(live[entry], None)
            slot = Slot(entry, entry, None)
            changes.append(_follow_policy(slot, Action.DELETE, Origin.LIVE, fields, on_drift))

    unmanaged = tuple(
        e
        for e in live
        if e not in placed and e not in created and (scope is None or e in scope) and not exclusive
    )
    orphaned = tuple(
        e
        for e in live
        if e not in placed
        and e in created
        and e in last_applied
        and (scope is None or e in scope)
        and not (prune and may_delete)
    )
    return TargetPlan(tuple(changes), tuple(in_sync), unmanaged, orphaned)


def _follow_policy(
    slot: Slot, action: Action, how: Origin, fields: tuple[FieldChange, ...], on_drift: OnDrift
) -> Change:
    """Live edits follow ``on_drift``; desired-origin and first-time changes always apply."""
    if how in (Origin.LIVE, Origin.CONFLICT):
        if on_drift is OnDrift.REPORT:
            return Change(slot.server, slot.entry, action, how, fields, False, slot.required)
        if on_drift is OnDrift.RECORD:
            return Change(slot.server, slot.entry, Action.RECORD, how, fields, True, slot.required)
    return Change(slot.server, slot.entry, action, how, fields, True, slot.required)
