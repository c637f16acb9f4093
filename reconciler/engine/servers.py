"""The planner for targets whose entries are servers: client files and MCPJungle registries.

One attempt of the pass step (``engine.passes``) asks the planner for a plan of what it just
observed, and the planner works from one frozen ``View`` of that attempt, computed once by
``prepare``: the desired entries rendered for this target, their sealed twins (secrets as
keyed fingerprints), the sealed live entries, and the fields the target could not show.
The plan, the matching against divergence records, the parity view, the read-back check
and ``allow``/``divergences show`` (through ``Inspection``) all read that view instead of
sealing again in their own way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from reconciler.core import divergence
from reconciler.core.compare import FieldChange, Origin, align_header_names
from reconciler.core.enforce import (
    INVENTORY_MAX_AGE_DAYS,
    Governed,
    NativeTools,
    inventory_note,
    not_enforceable,
)
from reconciler.core.errors import TargetError
from reconciler.core.essence import (
    SECRET_FIELDS,
    Essence,
    Sealer,
    bridge_mcp_remote,
    bridged_headers,
    is_sealed_value,
    mask,
    seal,
)
from reconciler.core.model import OnChange, OnDrift
from reconciler.core.plan import (
    TOOL_ACTIONS,
    Action,
    Change,
    Slot,
    TargetPlan,
    changed_tools,
    plan_native_tools,
    plan_target,
)
from reconciler.core.report import ResolvedValue, TargetReport
from reconciler.core.tools import ToolRecord, unreviewed
from reconciler.engine.passdata import Divergences, Inspection, PassOptions
from reconciler.secrets import (
    SecretResolver,
    header_through_env,
    is_secret_value,
    reference_mode,
    register_literals,
    render_essence,
    seal_paths,
)
from reconciler.store import toollock
from reconciler.store.desired import DesiredState
from reconciler.store.state import Inventory, StateStore
from reconciler.targets import MCPJUNGLE, Observation, Target, ToolRules, Write

_NO_POINTERS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rendered:
    """One placement as a target must hold it: the writable essence and its sealed twin."""

    slot: Slot
    essence: Essence | None
    sensitive: bool = False  # holds resolved secret values: written with mode 0600
    secret_paths: frozenset[str] = frozenset()  # outside env/headers, sealed like them
    resolved: tuple[ResolvedValue, ...] = ()  # secrets resolved into the target, named
    notes: tuple[str, ...] = ()  # what the target cannot carry of the server

    def sealed(self, essence: Essence, fingerprint: Sealer) -> Essence:
        """``essence`` (desired or live) with every secret-bearing value fingerprinted."""
        return seal_paths(
            seal(essence, fingerprint, is_secret_value), self.secret_paths, fingerprint
        )


@dataclass(frozen=True)
class View:
    """One attempt's derived data, computed once (``prepare``) and read by every step."""

    rendered: tuple[Rendered, ...]
    desired: Mapping[str, Essence | None]  # entry -> sealed desired essence (None: absent)
    live: Mapping[str, Essence]  # entry -> sealed live essence, header names as desired
    blind: frozenset[str]  # fields the target could not show: compared on no side

    def by_entry(self) -> dict[str, Rendered]:
        return {item.slot.entry: item for item in self.rendered}

    def resolved(self) -> tuple[ResolvedValue, ...]:
        return tuple(value for item in self.rendered for value in item.resolved)


def prepare(rendered: Sequence[Rendered], observation: Observation, fingerprint: Sealer) -> View:
    """Seal desired and live once; pure."""
    by_entry = {item.slot.entry: item for item in rendered}
    desired = {
        item.slot.entry: (
            item.sealed(item.essence, fingerprint) if item.essence is not None else None
        )
        for item in rendered
    }
    live = {}
    for entry, essence in observation.entries.items():
        item = by_entry.get(entry)
        twin = desired.get(entry)
        if twin is not None and item is not None and essence == item.essence:
            live[entry] = twin  # plainly equal to the desired entry: sealed alike
            continue
        sealed = (
            item.sealed(essence, fingerprint)
            if item is not None
            else seal(essence, fingerprint, is_secret_value)
        )
        live[entry] = align_header_names(sealed, desired.get(entry))
    return View(tuple(rendered), desired, live, observation.blind_fields)


@dataclass(frozen=True)
class ServerPlan:
    """What one attempt found for a target of server entries, and what it would write."""

    view: View
    observation: Observation
    plan: TargetPlan
    matched: divergence.Match
    report: TargetReport  # the plan as reports show it, nothing applied
    writes: tuple[Write, ...]
    # Per entry, the client's own tool control as planned (kinds with tool rules).
    native: Mapping[str, NativeTools] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return bool(self.plan.to_apply)

    @property
    def drafts(self) -> tuple[divergence.Draft, ...]:
        return self.matched.drafts


class ServerEntries:
    """Plans, checks and remembers one target of server entries within one pass."""

    def __init__(
        self,
        name: str,
        target: Target,
        state: DesiredState,
        *,
        fingerprint: Sealer,
        options: PassOptions,
        found: Divergences,
        resolver: SecretResolver,
        store: StateStore,
    ) -> None:
        self.name = name
        self.target = target
        self.state = state
        self.spec = state.targets[name]
        self.fingerprint = fingerprint
        self.options = options
        self.found = found
        self.resolver = resolver
        self.store = store
        self.inventory = store.inventory(name)
        self.saved = self.inventory.copy()  # as on disk: a pass that changes none, saves none
        # A write a killed pass noted but did not finish recording: replayed on the first
        # plan, against what the target holds then, and cleared by ``remember``.
        self.intent = store.pending_intent(name)
        self.replayed = False
        self.probed = store.tool_inventory()
        # The client's own per-tool control, for kinds that have one (else None).
        self.rules = cast(ToolRules, target) if target.capability.tool_rules else None
        self._lock: Mapping[str, Mapping[str, ToolRecord]] | None = None
        self.base = TargetReport(name, target.kind, target.describe(), self.spec.optional)
        # Values resolved into a file are named in the plan; an API target has no file.
        self.holds_file = isinstance(getattr(target, "path", None), Path)

    # -- plan ------------------------------------------------------------------------------

    def plan(self, observation: Observation) -> ServerPlan:
        view = prepare(self.render(observation), observation, self.fingerprint)
        if self.intent is not None:
            self._replay(view, *self.intent)
            self.intent, self.replayed = None, True
        native = self.native_tools(view, observation)
        plan = self._plan(view, observation, native)
        plan = replace(
            plan,
            notes=observation.notes + plan.notes,
            blind=observation.blind_fields,
            live=self._parity_live(observation, plan.live),
        )
        matched = self._match(view, observation, plan, native)
        plan = replace(plan, changes=matched.changes, notes=plan.notes + matched.notes)
        plan = _private(view, observation, plan)
        if not observation.exists and self.options.dry_run and plan.to_apply:
            plan = replace(plan, notes=(f"would create {self.target.describe()}", *plan.notes))
        report = replace(
            self._report(plan, frozenset()), allowed=matched.allowed, resolved=view.resolved()
        )
        writes = tuple(self._writes(view, plan, matched, observation))
        return ServerPlan(view, observation, plan, matched, report, writes, native)

    def render(self, observation: Observation) -> list[Rendered]:
        """Each placement as this target must hold it (capability mask, references kept
        where the client resolves them, else resolved)."""
        spec, target, state = self.spec, self.target, self.state
        capability = target.capability
        keep_env = reference_mode(capability, spec.secrets)
        selected, live = self.options.servers, observation.entries
        rendered = []
        # A hot loop (every placement of every target): lookups hoisted, nothing built twice.
        for server_name, placement in state.placements(self.name).items():
            if selected and server_name not in selected:
                continue
            server = state.servers[server_name]
            entry = server_name  # or the first alias the target holds, if it lacks the name
            if server.aliases and server_name not in live:
                entry = next((n for n in server.aliases if n in live), server_name)
            full = state.essences[server_name]
            literal = _NO_POINTERS
            if not capability.expresses(full["transport"]) and spec.bridge == "mcp-remote":
                full = bridge_mcp_remote(full, header_through_env) | {"enabled": server.enabled}
                literal = bridged_headers(full)
            essence: Essence | None = mask(full, capability)
            dropped = capability.unexpressed(full)
            if not server.enabled and not capability.enabled_switch:
                essence = None  # no switch in this client: disabled means absent
            slot = Slot(server_name, entry, None, placement.required, self.governed(server_name))
            if essence is None:
                rendered.append(Rendered(slot, essence))
                continue
            done = render_essence(
                essence,
                self.resolver,
                keep_env=keep_env,
                capability=capability,
                kind=target.kind,
                server=server_name,
                literal=literal,
            )
            if not self.holds_file:  # a registry holds values by design (DESIGN section 5)
                done = replace(done, resolved=())
            rendered.append(
                Rendered(
                    slot,
                    done.essence,
                    done.sensitive,
                    done.secret_paths,
                    done.resolved,
                    (unexpressed_note(server_name, target.kind, dropped),) if dropped else (),
                )
            )
        return rendered

    def governed(self, server: str) -> Governed | None:
        """The server's tool policy with the last probe's inventory of its tools."""
        policy = self.state.servers[server].tools
        if policy is None:
            return None
        inventory = self.probed.get(server)
        if inventory is None:
            return Governed(policy)
        changed: frozenset[str] = frozenset()
        if policy.on_change is OnChange.BLOCK:
            if self._lock is None:
                self._lock = toollock.load(self.state.root) or {}
            changed = unreviewed(self._lock.get(server), inventory)
        old = stale(inventory.probed_at, datetime.now(UTC))
        return Governed(policy, inventory.classes(), old, changed)

    def native_tools(self, view: View, observation: Observation) -> dict[str, NativeTools]:
        """Per entry, what the client's own tool control must hold and holds (kinds with
        tool rules): only the tools the policy disables and those this tool disabled before
        are looked at."""
        if self.rules is None:
            return {}
        owned_by_entry = self.inventory.tools
        out = {}
        placed = set()
        for item in view.rendered:
            entry = item.slot.entry
            placed.add(entry)
            governed = item.slot.tools
            owned = owned_by_entry.get(entry, frozenset())
            if governed is None and not owned:
                continue
            desired: frozenset[str] = frozenset()
            enabled = item.essence is not None and item.essence.get("enabled", True)
            if governed is not None and enabled:  # a server switched off offers no tools
                desired = governed.disabled()
            out[entry] = NativeTools(desired, owned, self._off(entry, desired | owned, observation))
        selected = self.options.servers
        for entry, owned in owned_by_entry.items():  # no longer placed: ours to release
            if entry not in placed and owned and (not selected or entry in selected):
                out[entry] = NativeTools(frozenset(), owned, self._off(entry, owned, observation))
        return out

    def _off(self, entry: str, tools: frozenset[str], observation: Observation) -> frozenset[str]:
        assert self.rules is not None
        rule, rules = self.rules.tool_rule, observation.tool_rules
        return frozenset(t for t in tools if rule(entry, t) in rules)

    def _tool_notes(self, view: View) -> tuple[str, ...]:
        """Never silent: a policy a kind cannot hold, an inventory missing or stale."""
        capability = self.target.capability
        notes = []
        for item in view.rendered:
            governed = item.slot.tools
            if governed is None or not governed.restrictive or item.essence is None:
                continue
            if not capability.enforces_tools:
                if not governed.known or governed.disabled():
                    notes.append(not_enforceable(self.target.kind, item.slot.server))
                continue
            note = inventory_note(item.slot.server, governed)
            if note is not None:
                notes.append(note)
        return tuple(notes)

    def _plan(
        self,
        view: View,
        observation: Observation,
        native: Mapping[str, NativeTools],
        on_drift: OnDrift | None = None,
    ) -> TargetPlan:
        spec, blind = self.spec, view.blind
        slots = [  # built directly: dataclasses.replace costs ~5x as much, per entry
            Slot(s.server, s.entry, _unseen(view.desired[s.entry], blind), s.required, s.tools)
            for s in (item.slot for item in view.rendered)
        ]
        live = {entry: _unseen(e, blind) or {} for entry, e in view.live.items()}
        capability = self.target.capability
        scope = None
        if self.options.servers:
            scope = frozenset(self.options.servers) | frozenset(s.entry for s in slots)
        inventory = self.inventory
        last = _LastApplied(inventory.entries, blind, (live, view.desired), self.fingerprint)
        plan = plan_target(
            slots,
            live,
            last,
            frozenset(inventory.created),
            on_drift=on_drift or spec.on_drift,
            prune=spec.prune,
            exclusive=spec.exclusive,
            may_delete=bool(self.state.servers),
            scope=scope,
            replace_only=capability.replace_only,
            live_tools=observation.tools if capability.tool_switch else None,
            live_classes=observation.tool_classes if capability.tool_switch else None,
            native_tools=native if capability.tool_rules else None,
            owned_tools=inventory.tools,
        )
        placed = {s.entry for s in slots}
        released: list[Change] = []
        for entry, tools in native.items():  # owned rules of entries no longer placed
            if entry not in placed and (scope is None or entry in scope):
                released += plan_native_tools(Slot(entry, entry, None), None, tools)
        if released:
            plan = replace(plan, changes=plan.changes + tuple(released))
        for change in plan.changes:  # a literal token in a drifted live entry is never shown
            if change.fields and change.entry in observation.entries:
                register_literals(observation.entries[change.entry])
        notes = tuple(n for item in view.rendered for n in item.notes) + self._tool_notes(view)
        side = self.rules.tools_path() if self.rules is not None else None
        if side is not None and any(c.action in TOOL_ACTIONS for c in plan.to_apply):
            notes += (f"governed tools are written to {side}",)
        return replace(plan, notes=plan.notes + notes) if notes else plan

    def _match(
        self,
        view: View,
        observation: Observation,
        plan: TargetPlan,
        native: Mapping[str, NativeTools],
    ) -> divergence.Match:
        """Covered drift out of the plan; rejected records synced; live edits to record."""
        found = self.found
        rejected = found.rejected.get(self.name, {})
        sync_plan = None
        if rejected and any(c.action is Action.RECORD for c in plan.changes):
            sync_plan = self._plan(view, observation, native, on_drift=OnDrift.SYNC)
        return divergence.resolve(
            self.name,
            self.spec.on_drift,
            plan.changes,
            sync_plan.changes if sync_plan is not None else None,
            view.live,
            self.fingerprint,
            found.records,
            rejected,
            found.today,
            servers=self.options.servers,
            placed=[r.slot.server for r in view.rendered],
            shown=found.shown,
        )

    def _parity_live(
        self, observation: Observation, live: Mapping[str, Essence]
    ) -> Mapping[str, Essence]:
        """The live entries for the parity view (a client against MCPJungle): a client's
        ``${env:X}`` compared as the value MCPJungle would hold, so references are resolved
        before sealing. Only computed when some target is an MCPJungle."""
        target = self.target
        if not target.capability.env_references or all(
            t.kind != MCPJUNGLE for t in self.state.targets.values()
        ):
            return live
        out = dict(live)
        fingerprint = self.fingerprint
        for entry, essence in observation.entries.items():
            try:
                done = render_essence(essence, self.resolver, keep_env=False)
            except TargetError:
                continue  # unresolvable: compared as written
            if done.essence != essence:
                sealed = seal_paths(
                    seal(done.essence, fingerprint, is_secret_value), done.secret_paths, fingerprint
                )
                out[entry] = align_header_names(sealed, live.get(entry))
        return out

    def _writes(
        self,
        view: View,
        plan: TargetPlan,
        matched: divergence.Match,
        observation: Observation,
    ) -> list[Write]:
        by_entry = view.by_entry()
        writes = []
        for change in plan.to_apply:
            if change.action is Action.RECORD:
                continue
            item = by_entry.get(change.entry)
            deleting = change.action is Action.DELETE
            write = Write(
                change.entry,
                item.essence if item is not None and not deleting else None,
                change.action,
                sensitive=item is not None and item.sensitive and not deleting,
                tools=item.slot.tools if item is not None else None,
                tool_names=changed_tools(change) if change.action in TOOL_ACTIONS else (),
            )
            # A sync of an entry keeps the values that a record allows to differ.
            pointers = matched.keep.get(write.entry)
            if pointers and write.essence is not None:
                live = observation.entries.get(write.entry)
                write = replace(write, essence=divergence.keep_live(write.essence, live, pointers))
            writes.append(write)
        return writes

    # -- after apply -----------------------------------------------------------------------

    def verify(self, planned: ServerPlan, after: Observation) -> None:
        """Every write reads back as written (compared sealed, blind fields left out)."""
        fingerprint = self.fingerprint
        for write in planned.writes:
            if self.rules is not None and write.action in TOOL_ACTIONS:
                denied = write.action is Action.TOOL_DISABLE
                for tool in write.tool_names:
                    if (self.rules.tool_rule(write.entry, tool) in after.tool_rules) != denied:
                        raise TargetError(
                            f"tool '{tool}' of entry '{write.entry}' does not read back as "
                            + ("denied" if denied else "released")
                        )
                continue
            live = after.entries.get(write.entry)
            want = write.essence
            if after.blind_fields:
                live, want = _unseen(live, after.blind_fields), _unseen(want, after.blind_fields)
            same = (
                (live is None)
                if want is None
                else (
                    live is not None
                    and seal(live, fingerprint, is_secret_value)
                    == seal(want, fingerprint, is_secret_value)
                )
            )
            if not same:
                raise TargetError(f"entry '{write.entry}' does not read back as written")

    def _replay(self, view: View, before: Inventory, after: Inventory) -> None:
        """Take from a noted write what the target shows was done: an entry that reads as
        the write left it (or is gone, for a removal) is recorded as written; the others
        keep their record from before. So a kill between the rename and the save of
        last-applied loses no ownership, and a kill before the rename claims none."""
        inventory, blind = self.inventory, view.blind
        for entry in sorted(set(before.entries) | set(after.entries)):
            want, live = after.entries.get(entry), view.live.get(entry)
            if want is None:
                if live is None:
                    inventory.entries.pop(entry, None)
                    inventory.created.discard(entry)
            elif live is not None and _unseen(live, blind) == _unseen(want, blind):
                inventory.entries[entry] = want
                if entry in after.created:
                    inventory.created.add(entry)

    def intend(self, planned: ServerPlan, writes: Sequence[Write]) -> None:
        """Note the inventory this write will leave, before the target is written."""
        if not self.options.dry_run:
            after = self._after(planned, writes, self.inventory.copy())
            self.store.write_intent(self.name, self.inventory, after)

    def remember(
        self, planned: ServerPlan, done: Sequence[Write], after: Observation | None
    ) -> None:
        """Last-applied: what was written (and created), and the entries found in sync."""
        if self.options.dry_run:
            return
        self.inventory = self._after(planned, done, self.inventory, after)
        if self.inventory != self.saved:  # unchanged, it is not even encoded again
            self.store.save_inventory(self.name, self.inventory)
            self.saved = self.inventory.copy()
        if done or self.replayed:
            self.store.clear_intent(self.name)
            self.replayed = False

    def _after(
        self,
        planned: ServerPlan,
        done: Sequence[Write],
        inventory: Inventory,
        after: Observation | None = None,
    ) -> Inventory:
        """``inventory`` updated with what ``done`` writes (entries and the tools this tool
        holds disabled), and the entries found in sync."""
        by_entry = planned.view.by_entry()
        inventory.tools = self._owned_tools(planned, done, after)
        for write in done:
            if self.target.capability.tool_rules and write.action in TOOL_ACTIONS:
                continue  # the entry itself was not written
            if write.essence is None:
                inventory.entries.pop(write.entry, None)
                inventory.created.discard(write.entry)
                continue
            item = by_entry.get(write.entry)
            inventory.entries[write.entry] = (
                item.sealed(write.essence, self.fingerprint)
                if item is not None
                else seal(write.essence, self.fingerprint, is_secret_value)
            )
            if write.entry not in planned.observation.entries:
                inventory.created.add(write.entry)
        in_sync = set(planned.plan.in_sync)
        for item in planned.view.rendered:
            if item.slot.server in in_sync and item.essence is not None:
                inventory.entries[item.slot.entry] = planned.view.desired[item.slot.entry] or {}
        return inventory

    def _owned_tools(
        self, planned: ServerPlan, done: Sequence[Write], after: Observation | None
    ) -> dict[str, frozenset[str]]:
        """The tools this tool holds disabled after the pass, per entry: those it held and
        the policy still disables, and those it disabled now. A tool someone re-enabled by
        hand stays owned until reverted (so it stays drift with origin live)."""
        capability = self.target.capability
        before = self.inventory.tools
        out = dict(before)  # entries this pass did not look at (``--server``) keep theirs
        if capability.tool_rules:
            for entry, tools in planned.native.items():
                owned = tools.owned & tools.desired
                for write in done:
                    if write.entry == entry and write.action is Action.TOOL_DISABLE:
                        owned |= frozenset(write.tool_names)
                out[entry] = owned
        elif capability.tool_switch:
            flags = (after or planned.observation).tools
            for item in planned.view.rendered:
                entry, governed = item.slot.entry, item.slot.tools
                if governed is None or entry not in flags:
                    # Without a policy, what it held and is still off stays owned until
                    # released (a release that failed is tried again by the next pass).
                    live = flags.get(entry, {})
                    held = before.get(entry, frozenset())
                    out[entry] = frozenset(t for t in held if not live.get(t, True))
                    continue
                off = governed.disabled(flags[entry])
                out[entry] = (before.get(entry, frozenset()) & off) | frozenset(
                    t for t, on in flags[entry].items() if not on and t in off
                )
            for write in done:  # a deregistered server takes its tool flags along
                if write.action is Action.DELETE:
                    out.pop(write.entry, None)
        return {entry: tools for entry, tools in out.items() if tools}

    def skip(self) -> TargetReport | None:
        return None

    def retry(self) -> None:
        """Nothing is cached between attempts: the next observation is read afresh."""

    def applied(self, planned: ServerPlan, done: Sequence[Write]) -> TargetReport:
        plan = planned.plan
        if not planned.observation.exists and done:
            plan = replace(plan, notes=(f"created {self.target.describe()}", *plan.notes))
        report = self._report(plan, frozenset(w.entry for w in done))
        return replace(report, allowed=planned.matched.allowed, resolved=planned.view.resolved())

    def inspection(self, planned: ServerPlan) -> Inspection:
        return Inspection(
            self.state,
            planned.report,
            planned.observation,
            planned.view.live,
            self.fingerprint,
            planned.matched,
            self.found,
            {entry: e for entry, e in planned.view.desired.items() if e is not None},
        )

    def _report(self, plan: TargetPlan, applied: frozenset[str]) -> TargetReport:
        return replace(
            self.base,
            changes=plan.changes,
            applied=applied,
            in_sync=plan.in_sync,
            unmanaged=plan.unmanaged,
            orphaned=plan.orphaned,
            notes=plan.notes,
            live=plan.live,
            blind=plan.blind,
        )


PRIVATE_MODE = 0o600


def _private(view: View, observation: Observation, plan: TargetPlan) -> TargetPlan:
    """A file holding resolved secret values that others can read is drift: the pass
    rewrites one such entry, which makes the file 0600 (a sensitive write's mode)."""
    mode = observation.mode
    if mode is None or not mode & 0o077:
        return plan
    held = [
        item
        for item in view.rendered
        if item.sensitive and item.essence is not None and item.slot.entry in observation.entries
    ]
    writing = {c.entry for c in plan.to_apply}
    if not held or any(item.slot.entry in writing for item in held):
        return plan  # nothing secret in the file, or a sensitive write makes it 0600 anyway
    item = held[0]
    change = Change(
        item.slot.server,
        item.slot.entry,
        Action.UPDATE,
        Origin.LIVE,
        (FieldChange("/file-mode", f"{mode:04o}", f"{PRIVATE_MODE:04o}"),),
        required=item.slot.required,
    )
    note = (
        f"file mode {mode:04o} lets others read the secret values resolved into it; "
        f"it is made {PRIVATE_MODE:04o}"
    )
    return replace(
        plan,
        changes=(*plan.changes, change),
        in_sync=tuple(s for s in plan.in_sync if s != item.slot.server),
        notes=(*plan.notes, note),
    )


def unexpressed_note(server: str, kind: str, fields: Sequence[str]) -> str:
    """The plan's word for fields a kind cannot carry: never dropped in silence."""
    return (
        f"{server}: {kind} cannot express {', '.join(fields)}; "
        f"{'it is' if len(fields) == 1 else 'they are'} not written to this target"
    )


def _readable(last: Essence, others: Sequence[Essence | None], fingerprint: Sealer) -> Essence:
    """A last-applied entry with the values shown plainly on the other sides (desired,
    live) unsealed where their fingerprint matches: last-applied records written before
    only secrets were masked sealed every env and header value, and must still compare."""
    out = last
    for name in SECRET_FIELDS:
        mapping = last.get(name)
        if not isinstance(mapping, dict):
            continue
        for key, value in mapping.items():
            if not is_sealed_value(value):
                continue
            for other in others:
                plain = (other or {}).get(name, {}).get(key)
                if (
                    isinstance(plain, str)
                    and not is_sealed_value(plain)
                    and fingerprint(plain) == value
                ):
                    if out is last:
                        out = dict(last)
                    out[name] = {**out.get(name, mapping), key: plain}
                    break
    return out


class _LastApplied(Mapping[str, Essence]):
    """The last-applied entries as the plan compares them (``_readable``, without blind
    fields), each made so when first read: a plan reads only the entries that drifted, and
    asks of the others only whether they are there."""

    def __init__(
        self,
        entries: Mapping[str, Essence],
        blind: frozenset[str],
        sides: tuple[Mapping[str, Essence], Mapping[str, Essence | None]],
        fingerprint: Sealer,
    ) -> None:
        self._entries = entries
        self._blind = blind
        self._sides = sides
        self._fingerprint = fingerprint
        self._made: dict[str, Essence] = {}

    def __getitem__(self, entry: str) -> Essence:
        made = self._made.get(entry)
        if made is None:
            others = tuple(side.get(entry) for side in self._sides)
            raw = _unseen(self._entries[entry], self._blind) or {}
            made = self._made[entry] = _readable(raw, others, self._fingerprint)
        return made

    def __contains__(self, entry: object) -> bool:
        return entry in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _unseen(essence: Essence | None, blind: frozenset[str]) -> Essence | None:
    """The essence without the fields a target could not show (compared on neither side)."""
    if essence is None or not blind:
        return essence
    return {k: v for k, v in essence.items() if k not in blind}


def stale(probed_at: str | None, now: datetime) -> bool:
    """An inventory older than ``INVENTORY_MAX_AGE_DAYS`` (or of unknown age) is stale."""
    try:
        when = datetime.fromisoformat(probed_at or "")
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return now - when > timedelta(days=INVENTORY_MAX_AGE_DAYS)
