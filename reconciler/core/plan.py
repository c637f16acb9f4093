"""Planning: from desired, live and last-applied essences to the changes a target needs.

Pure: plain data in, a ``TargetPlan`` out; the engine carries it out. Every input essence
is already sealed (secrets replaced by fingerprints), so a plan can be printed, logged and
serialized as it is.

Ownership follows Flux's inventory: only entries this tool created (recorded in the
last-applied store) are ever deleted, and only with ``prune: true``. Entries no placement
names are unmanaged: reported, and touched only on an ``exclusive`` target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from reconciler.core.compare import (
    FieldChange,
    Origin,
    diff,
    origin,
    pointer_escape,
    pointer_unescape,
    resolve_pointer,
)
from reconciler.core.enforce import Governed, NativeTools
from reconciler.core.enforce import has_effect as has_effect  # re-exported (app.toolgov)
from reconciler.core.essence import Essence
from reconciler.core.model import Block, OnChange, OnDrift
from reconciler.core.tools import ToolClass


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


# The actions on single tools of an entry (not on the entry itself).
TOOL_ACTIONS = frozenset({Action.TOOL_DISABLE, Action.TOOL_ENABLE})


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
    tools: Governed | None = None  # the server's tool policy, with the probe's inventory


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
    live: Mapping[str, Essence] = field(default_factory=dict)  # sealed, as compared
    blind: frozenset[str] = frozenset()  # fields the target could not show: not compared

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
    replace_only: bool = False,
    live_tools: Mapping[str, Mapping[str, bool]] | None = None,
    live_classes: Mapping[str, Mapping[str, ToolClass]] | None = None,
    native_tools: Mapping[str, NativeTools] | None = None,
    owned_tools: Mapping[str, frozenset[str]] | None = None,
) -> TargetPlan:
    """Plan one target.

    ``scope`` limits unmanaged/prune handling to these entry names (``--server``);
    ``may_delete`` is False when desired state looks empty, so nothing is ever pruned
    after a failed or empty read. ``replace_only``: the kind cannot update an entry in
    place, so an update is planned as a replace. ``live_tools`` (kinds with a tool switch):
    each entry's tool flags, against which governed tools are planned; ``live_classes``:
    each listed tool's class, as the target reports it (from its annotations).
    ``native_tools`` (kinds whose control is a list of denied tools in a client file): per
    entry, what that control must hold and holds. ``owned_tools``: per entry, the tools
    this tool disabled before.
    """
    changes: list[Change] = []
    in_sync: list[str] = []
    placed = {s.entry for s in slots}

    for slot in slots:
        have = live.get(slot.entry)
        want = slot.desired
        change = None
        if have != want:  # only a drifted entry is compared with what was last written
            last = last_applied.get(slot.entry)
            how = origin(want, have, last)
            fields = diff(have, want)
            if how is Origin.CONFLICT:  # keep the third value: what this tool last wrote
                fields = tuple(replace(f, last=resolve_pointer(last, f.path)) for f in fields)
            if want is None:
                action = Action.DISABLE
            elif have is None:
                action = Action.CREATE
            elif {f.path for f in fields} == {"/enabled"}:
                action = Action.ENABLE if want.get("enabled") else Action.DISABLE
            else:
                action = Action.REPLACE if replace_only else Action.UPDATE
            change = _follow_policy(slot, action, how, fields, on_drift)
            changes.append(change)
        tool_changes = []
        if live_tools is not None:
            owned = (owned_tools or {}).get(slot.entry, frozenset())
            classes = (live_classes or {}).get(slot.entry)
            tool_changes = plan_tools(
                slot, change, live_tools.get(slot.entry), on_drift, owned, classes
            )
            changes.extend(tool_changes)
        elif native_tools is not None and slot.entry in native_tools:
            tool_changes = plan_native_tools(slot, change, native_tools[slot.entry], on_drift)
            changes.extend(tool_changes)
        if change is None and not tool_changes and want is not None:
            in_sync.append(slot.server)

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
    return TargetPlan(tuple(changes), tuple(in_sync), unmanaged, orphaned, live=live)


def plan_tools(
    slot: Slot,
    change: Change | None,
    live: Mapping[str, bool] | None,
    on_drift: OnDrift = OnDrift.SYNC,
    owned: frozenset[str] = frozenset(),
    classes: Mapping[str, ToolClass] | None = None,
) -> list[Change]:
    """Governed tools of one placed server: ``tool-disable``/``tool-enable`` changes.

    Only a server with a ``tools`` policy is governed, and only while it is meant to be
    enabled. A create, replace or enable turns every tool on, so the policy is planned again
    after it (for a create the tool names are not known yet: the policy itself is shown).
    Disabling a tool the policy disables is governance and always applies, unless this tool
    had disabled it before (``owned``): then it was re-enabled by hand, a live edit. Live
    edits (that one, and an allowed tool switched off by hand) follow ``on_drift``
    (``record`` reports them: a tool flag is not part of the essence a record could cover).
    A server whose policy is gone gets back the tools this tool had disabled (``owned``);
    the ones disabled by someone else stay as they are.
    """
    governed = slot.tools
    if slot.desired is None or not slot.desired.get("enabled", True):
        return []
    if change is not None and change.action in (Action.DELETE, Action.DISABLE, Action.RECORD):
        return []
    if governed is None:
        released = sorted(t for t in owned if live is not None and live.get(t) is False)
        if not released:
            return []
        return [_tool_change(slot, Action.TOOL_ENABLE, released, Origin.DESIRED, True)]
    policy = governed.policy
    reset = (
        change is not None
        and change.apply
        and change.action in (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.ENABLE)
    )
    if live is None or (change is not None and change.action is Action.CREATE):
        if not governed.restrictive or not reset:
            return []
        shown: dict[str, object] = {
            k: list(v) for k, v in (("allow", policy.allow), ("deny", policy.deny)) if v
        }
        if policy.block is not Block.NONE:
            shown["block"] = policy.block.value
        if policy.on_change is OnChange.BLOCK:
            shown["on_change"] = policy.on_change.value
        assert change is not None
        return [
            Change(
                slot.server,
                slot.entry,
                Action.TOOL_DISABLE,
                change.origin,
                (FieldChange("/tools", None, shown),),
                True,
                slot.required,
            )
        ]
    current = {tool: True for tool in live} if reset else dict(live)
    off = governed.disabled(current, classes) & frozenset(current)
    out = []
    for action in (Action.TOOL_DISABLE, Action.TOOL_ENABLE):
        wanted = action is Action.TOOL_ENABLE
        tools = [t for t in sorted(current) if current[t] != wanted and (t in off) != wanted]
        if reset:
            assert change is not None
            groups = [(tools, change.origin, True)]
        elif action is Action.TOOL_DISABLE:
            rearmed = [t for t in tools if t in owned]  # ours before: re-enabled by hand
            groups = [
                ([t for t in tools if t not in owned], Origin.DESIRED, True),
                (rearmed, Origin.LIVE, on_drift is OnDrift.SYNC),
            ]
        else:  # ours and no longer disabled by the policy: released; else a hand edit
            groups = [
                ([t for t in tools if t in owned], Origin.DESIRED, True),
                ([t for t in tools if t not in owned], Origin.LIVE, on_drift is OnDrift.SYNC),
            ]
        for names, how, apply in groups:
            if names:
                out.append(_tool_change(slot, action, names, how, apply))
    return out


def plan_native_tools(
    slot: Slot, change: Change | None, native: NativeTools, on_drift: OnDrift = OnDrift.SYNC
) -> list[Change]:
    """Governed tools of one placed server on a client whose control is a deny list.

    The control holds rules of its own users too: only the tools the policy disables now
    (``desired``) and those this tool disabled before (``owned``) are looked at. A desired
    tool missing from the control is added (origin live when it was ours before: someone
    removed it by hand, and ``on_drift`` applies); an owned tool the policy no longer
    disables is released. A rule the user wrote stays, whatever it says.
    """
    if change is not None and change.action is Action.DELETE:
        return []
    desired = native.desired
    missing = sorted(desired - native.off)
    out = []
    fresh = [t for t in missing if t not in native.owned]
    rearmed = [t for t in missing if t in native.owned]
    if fresh:
        how = change.origin if change is not None and change.action is Action.CREATE else None
        out.append(_tool_change(slot, Action.TOOL_DISABLE, fresh, how or Origin.DESIRED, True))
    if rearmed:
        apply = on_drift is OnDrift.SYNC
        out.append(_tool_change(slot, Action.TOOL_DISABLE, rearmed, Origin.LIVE, apply))
    released = sorted((native.owned & native.off) - desired)
    if released:
        out.append(_tool_change(slot, Action.TOOL_ENABLE, released, Origin.DESIRED, True))
    return out


def _tool_change(
    slot: Slot, action: Action, tools: Iterable[str], how: Origin, apply: bool
) -> Change:
    wanted = action is Action.TOOL_ENABLE
    fields = tuple(FieldChange(f"/tools/{pointer_escape(t)}", not wanted, wanted) for t in tools)
    return Change(slot.server, slot.entry, action, how, fields, apply, slot.required)


def changed_tools(change: Change) -> tuple[str, ...]:
    """The tool names a ``tool-disable``/``tool-enable`` change is about."""
    return tuple(
        pointer_unescape(f.path.removeprefix("/tools/"))
        for f in change.fields
        if f.path.startswith("/tools/")
    )


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
