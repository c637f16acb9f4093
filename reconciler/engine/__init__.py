"""The one orchestrator of a pass: load, observe, compare, plan, apply, verify, report.

Everything with an effect is reached from here and nowhere else: targets are observed
concurrently, each target is planned by the pure core and then applied on its own, so a
failing target degrades the report without stopping the others (Argo's per-resource model,
not Flux's all-or-nothing). The state directory is touched only by a non-dry run.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from reconciler import targets
from reconciler.core import divergence
from reconciler.core.compare import align_header_names
from reconciler.core.errors import (
    ConcurrentChange,
    PartialApply,
    Problem,
    ReconcilerError,
    TargetError,
    UsageError,
)
from reconciler.core.essence import (
    CAPABILITIES,
    Essence,
    Sealer,
    bridge_mcp_remote,
    fingerprint_with,
    from_server,
    mask,
    seal,
)
from reconciler.core.model import Kind, OnDrift, TargetSpec
from reconciler.core.plan import Action, Slot, TargetPlan, plan_target
from reconciler.core.report import Phase, RunReport, TargetReport
from reconciler.engine import mirrors
from reconciler.engine.passdata import Divergences, Inspection, PassOptions
from reconciler.secrets import (
    REDACTOR,
    SecretResolver,
    check_desired,
    redact,
    redact_data,
    reference_mode,
    register_document_literals,
    register_literals,
    render_essence,
    seal_paths,
)
from reconciler.store import desired, gitlog, recordfiles
from reconciler.store.desired import DesiredState, Locator
from reconciler.store.state import Inventory, StateStore
from reconciler.targets import Context, Observation, Target, Write
from reconciler.targets.mirror import MirrorTarget

__all__ = ["Divergences", "Engine", "Inspection", "PassOptions", "Recorder"]

log = logging.getLogger("reconciler")

CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class Rendered:
    """One placement as a target must hold it: the writable essence and its sealed twin."""

    slot: Slot
    essence: Essence | None
    sensitive: bool = False  # holds resolved secret values: written with mode 0600
    secret_paths: frozenset[str] = frozenset()  # outside env/headers, sealed like them
    notes: tuple[str, ...] = ()

    def sealed(self, essence: Essence, fingerprint: Sealer) -> Essence:
        """``essence`` (desired or live) with every secret-bearing value fingerprinted."""
        return seal_paths(seal(essence, fingerprint), self.secret_paths, fingerprint)


# Commits the divergence records a pass drafted (on_drift: record); the application layer
# provides it (``app.review.record_drafts``), so the engine never calls a command module.
Recorder = Callable[["Engine", Divergences, Sequence[TargetReport]], list[TargetReport]]


class Engine:
    """Runs passes over one desired directory and one state directory."""

    def __init__(
        self,
        desired_dir: Path,
        state_dir: Path,
        *,
        home: Path | None = None,
        environ: Mapping[str, str] | None = None,
        platform: str = sys.platform,
        recorder: Recorder | None = None,
    ) -> None:
        self.desired_dir = desired_dir
        self.recorder = recorder
        self.store = StateStore(state_dir)
        self.home = home or Path.home()
        self.environ = dict(os.environ if environ is None else environ)
        self.platform = platform
        self._secrets: tuple[DesiredState, SecretResolver] | None = None
        self._secrets_lock = threading.Lock()

    def secret_resolver(self, state: DesiredState) -> SecretResolver:
        """The resolver of ``state``'s references: one per loaded state, so once per pass."""
        with self._secrets_lock:
            if self._secrets is None or self._secrets[0] is not state:
                resolver = SecretResolver(
                    state.secrets,
                    self.environ,
                    root=self.desired_dir.resolve().parent,
                    home=self.home,
                )
                self._secrets = (state, resolver)
            return self._secrets[1]

    def load(self) -> DesiredState:
        return load_desired(self.desired_dir)

    def run(self, options: PassOptions, state: DesiredState | None = None) -> RunReport:
        """One pass; ``state`` spares the load when the caller (the daemon) just loaded it."""
        started = time.monotonic()
        state = self.load() if state is None else state
        names = _select(options.targets, state.targets, "target")
        _select(options.servers, state.servers, "server")
        fingerprint = fingerprint_with(self.store.fingerprint_key(create=not options.dry_run))
        REDACTOR.use_fingerprint(fingerprint)  # secrets in any text shown as in the diffs
        context = self.context(state, writable=not options.dry_run)
        found = self.divergences(state, names, options)
        built = {name: targets.build(name, state.targets[name], context) for name in names}

        def reconcile(name: str) -> TargetReport:
            return self._reconcile(name, built[name], state, fingerprint, options, found)

        try:
            # Targets behind a network wait on I/O: they run in threads. File targets are
            # CPU-bound under the GIL, so they run here meanwhile, without thread overhead.
            remote = [n for n in names if built[n].kind in targets.REMOTE_KINDS]
            done: dict[str, TargetReport] = {}
            if remote:
                with ThreadPoolExecutor(max_workers=min(8, len(remote))) as pool:
                    futures = {n: pool.submit(reconcile, n) for n in remote}
                    done.update((n, reconcile(n)) for n in names if n not in futures)
                    done.update((n, f.result()) for n, f in futures.items())
            else:
                done.update((n, reconcile(n)) for n in names)
            results = [done[n] for n in names]
        finally:
            for target in built.values():
                target.close()
        if not options.dry_run:
            if self.recorder is not None and any(found.drafts.values()):
                results = self.recorder(self, found, results)
            self._forget_synced(found, results)
        report = RunReport(options.dry_run, tuple(results))
        if not options.dry_run:
            self.store.write_status(
                redact_data(
                    {
                        **report.to_json(),
                        "finished": time.time(),
                        "duration_s": round(time.monotonic() - started, 4),
                    }
                )
            )
        return report

    # -- one target ------------------------------------------------------------------------

    def _reconcile(
        self,
        name: str,
        target: Target,
        state: DesiredState,
        fingerprint: Sealer,
        options: PassOptions,
        found: Divergences | None = None,
    ) -> TargetReport:
        found = found or Divergences()
        spec = state.targets[name]
        if isinstance(target, MirrorTarget):  # entries are files: the file planner
            return mirrors.reconcile(name, target, fingerprint, options, found)
        base = TargetReport(name, target.kind.value, target.describe(), spec.optional)
        phase = Phase.OBSERVE
        try:
            inventory = self.store.inventory(name)
            for attempt in range(CAS_ATTEMPTS):
                phase = Phase.OBSERVE
                observation = target.observe()
                missing = getattr(observation.snapshot, "exists", True) is False
                if missing and not spec.create:
                    note = f"{target.describe()} does not exist; skipped (create: false)"
                    return replace(base, absent=True, notes=(note,))
                phase = Phase.PLAN
                rendered = self._render(state, name, target, observation, options)
                plan = self._plan(
                    state, name, rendered, observation, inventory, fingerprint, options
                )
                plan = replace(
                    plan,
                    notes=observation.notes + plan.notes,
                    blind=observation.blind_fields,
                    live=self._parity_live(state, target, observation, plan.live, fingerprint),
                )
                matched = self._match(
                    state, name, rendered, observation, inventory, fingerprint, options, plan, found
                )
                plan = replace(plan, changes=matched.changes, notes=plan.notes + matched.notes)
                base = replace(base, allowed=matched.allowed)
                if missing and options.dry_run and plan.to_apply:
                    plan = replace(plan, notes=(f"would create {target.describe()}", *plan.notes))
                if options.dry_run or not plan.to_apply:
                    self._remember_in_sync(name, rendered, plan, inventory, fingerprint, options)
                    return self._report(base, plan, frozenset())
                phase = Phase.APPLY
                writes = self._writes(plan, rendered)
                policies = {r.slot.entry: r.slot.tools for r in rendered}
                writes = [replace(w, tools=policies.get(w.entry)) for w in writes]
                writes = [self._keep(w, matched.keep, observation) for w in writes]
                if writes:
                    try:
                        target.apply(observation, writes)
                    except ConcurrentChange:
                        log.info("%s: changed during the pass, retrying (%d)", name, attempt + 1)
                        continue
                    except PartialApply as e:  # keep ownership of what was done
                        done = [w for w in writes if w.entry in e.done]
                        self._remember(
                            name, rendered, plan, done, observation, inventory, fingerprint
                        )
                        raise
                    phase = Phase.VERIFY
                    self._verify(target, writes, fingerprint)
                self._remember(name, rendered, plan, writes, observation, inventory, fingerprint)
                found.drafts[name] = matched.drafts
                if missing and writes:
                    plan = replace(plan, notes=(f"created {target.describe()}", *plan.notes))
                return self._report(base, plan, frozenset(w.entry for w in writes))
            raise ConcurrentChange(f"kept changing during {CAS_ATTEMPTS} attempts; try again")
        except ReconcilerError as e:
            recoverable = e.recoverable if isinstance(e, TargetError) else False
            log.warning("%s: %s failed: %s", name, phase.value, e)
            return replace(base, error=redact(str(e)), phase=phase, recoverable=recoverable)

    def _render(
        self,
        state: DesiredState,
        name: str,
        target: Target,
        observation: Observation,
        options: PassOptions,
    ) -> list[Rendered]:
        spec = state.targets[name]
        capability = target.capability
        keep_env = reference_mode(target.kind, spec.secrets)
        resolver = self.secret_resolver(state)
        rendered = []
        for server_name, placement in state.placements(name).items():
            if options.servers and server_name not in options.servers:
                continue
            server = state.servers[server_name]
            entry = next(
                (n for n in (server_name, *server.aliases) if n in observation.entries),
                server_name,
            )
            full = from_server(server)
            if not capability.expresses(full["transport"]) and spec.bridge == "mcp-remote":
                full = bridge_mcp_remote(full) | {"enabled": server.enabled}
            essence: Essence | None = mask(full, capability)
            if not server.enabled and not capability.enabled_switch:
                essence = None  # no switch in this client: disabled means absent
            slot = Slot(server_name, entry, None, placement.required, server.tools)
            if essence is None:
                rendered.append(Rendered(slot, essence))
                continue
            # References: kept as ${env:NAME} where the client resolves them, else resolved.
            done = render_essence(
                essence, resolver, kind=target.kind, keep_env=keep_env, server=server_name
            )
            rendered.append(
                Rendered(slot, done.essence, done.sensitive, done.secret_paths, done.notes)
            )
        return rendered

    def _plan(
        self,
        state: DesiredState,
        name: str,
        rendered: list[Rendered],
        observation: Observation,
        inventory: Inventory,
        fingerprint: Sealer,
        options: PassOptions,
        on_drift: OnDrift | None = None,
    ) -> TargetPlan:
        spec = state.targets[name]
        slots = []
        sealed_desired: dict[str, Essence | None] = {}
        by_entry = {item.slot.entry: item for item in rendered}
        for item in rendered:
            sealed = item.sealed(item.essence, fingerprint) if item.essence is not None else None
            sealed_desired[item.slot.entry] = sealed
            slots.append(replace(item.slot, desired=sealed))
        live = {
            entry: align_header_names(
                by_entry[entry].sealed(essence, fingerprint)
                if entry in by_entry
                else seal(essence, fingerprint),
                sealed_desired.get(entry),
            )
            for entry, essence in observation.entries.items()
        }
        blind = observation.blind_fields  # fields the target cannot show: compared on no side
        if blind:
            slots = [replace(s, desired=_unseen(s.desired, blind)) for s in slots]
            live = {entry: _unseen(essence, blind) or {} for entry, essence in live.items()}
        capability = CAPABILITIES[spec.kind]
        scope = None
        if options.servers:
            scope = frozenset(options.servers) | frozenset(s.entry for s in slots)
        plan = plan_target(
            slots,
            live,
            {entry: _unseen(e, blind) or {} for entry, e in inventory.entries.items()},
            frozenset(inventory.created),
            on_drift=on_drift or spec.on_drift,
            prune=spec.prune,
            exclusive=spec.exclusive,
            may_delete=bool(state.servers),
            scope=scope,
            replace_only=capability.replace_only,
            live_tools=observation.tools if capability.tool_switch else None,
        )
        for change in plan.changes:  # a literal token in a drifted live entry is never shown
            if change.fields and change.entry in observation.entries:
                register_literals(observation.entries[change.entry])
        notes = tuple(n for item in rendered for n in item.notes)
        return replace(plan, notes=plan.notes + notes) if notes else plan

    # -- divergence records ----------------------------------------------------------------

    def divergences(
        self, state: DesiredState, names: list[str], options: PassOptions
    ) -> Divergences:
        """Load the records; before a pass that may commit one, make sure git is there."""
        records = recordfiles.load(self.desired_dir)
        recording = any(state.targets[n].on_drift is OnDrift.RECORD for n in names)
        if recording and not options.dry_run:
            gitlog.require_repository(self.desired_dir)
        return Divergences(
            records,
            self.store.rejections(),
            self.today(),
            shown=recordfiles.shown_paths(self.desired_dir, records),
        )

    def _forget_synced(self, found: Divergences, reports: Sequence[TargetReport]) -> None:
        """Rejections whose entry a pass has synced back are done with."""
        if not found.rejected:
            return
        rejected = {t: dict(s) for t, s in found.rejected.items()}
        for report in reports:
            if report.error is not None or report.name not in rejected:
                continue
            for server in list(rejected[report.name]):
                if not any(
                    c.server == server and not report.was_applied(c) for c in report.changes
                ):
                    del rejected[report.name][server]
        if rejected != found.rejected:
            self.store.save_rejections(rejected)

    def today(self) -> date:
        return date.today()

    def _match(
        self,
        state: DesiredState,
        name: str,
        rendered: list[Rendered],
        observation: Observation,
        inventory: Inventory,
        fingerprint: Sealer,
        options: PassOptions,
        plan: TargetPlan,
        found: Divergences,
    ) -> divergence.Match:
        """Covered drift out of the plan; rejected records synced; live edits to record."""
        rejected = found.rejected.get(name, {})
        sync_plan = None
        if rejected and any(c.action is Action.RECORD for c in plan.changes):
            sync_plan = self._plan(
                state,
                name,
                rendered,
                observation,
                inventory,
                fingerprint,
                options,
                on_drift=OnDrift.SYNC,
            )
        return divergence.resolve(
            name,
            state.targets[name].on_drift,
            plan.changes,
            sync_plan.changes if sync_plan is not None else None,
            self._sealed_live(rendered, observation, fingerprint),
            fingerprint,
            found.records,
            rejected,
            found.today,
            servers=options.servers,
            placed=[r.slot.server for r in rendered],
            shown=found.shown,
        )

    @staticmethod
    def _sealed_live(
        rendered: list[Rendered], observation: Observation, fingerprint: Sealer
    ) -> dict[str, Essence]:
        """The live entries sealed as ``_plan`` compares them (records fingerprint these)."""
        by_entry = {item.slot.entry: item for item in rendered}
        out = {}
        for entry, essence in observation.entries.items():
            item = by_entry.get(entry)
            want = (
                item.sealed(item.essence, fingerprint)
                if item is not None and item.essence is not None
                else None
            )
            live = (
                item.sealed(essence, fingerprint)
                if item is not None
                else seal(essence, fingerprint)
            )
            out[entry] = align_header_names(live, want)
        return out

    def _parity_live(
        self,
        state: DesiredState,
        target: Target,
        observation: Observation,
        live: Mapping[str, Essence],
        fingerprint: Sealer,
    ) -> Mapping[str, Essence]:
        """The live entries for the parity view (a client against MCPJungle): a client's
        ``${env:X}`` compared as the value MCPJungle would hold, so references are resolved
        before sealing. Only computed when some target is an MCPJungle."""
        if not target.capability.env_references or all(
            t.kind is not Kind.MCPJUNGLE for t in state.targets.values()
        ):
            return live
        out = dict(live)
        resolver = self.secret_resolver(state)
        for entry, essence in observation.entries.items():
            try:
                done = render_essence(essence, resolver, kind=target.kind, keep_env=False)
            except TargetError:
                continue  # unresolvable: compared as written
            if done.essence != essence:
                sealed = seal_paths(seal(done.essence, fingerprint), done.secret_paths, fingerprint)
                out[entry] = align_header_names(sealed, live.get(entry))
        return out

    @staticmethod
    def _keep(write: Write, keep: Mapping[str, tuple[str, ...]], observation: Observation) -> Write:
        """A sync of an entry keeps the values that a record allows to differ."""
        pointers = keep.get(write.entry)
        if not pointers or write.essence is None:
            return write
        live = observation.entries.get(write.entry)
        return replace(write, essence=divergence.keep_live(write.essence, live, pointers))

    @staticmethod
    def _writes(plan: TargetPlan, rendered: list[Rendered]) -> list[Write]:
        by_entry = {r.slot.entry: r for r in rendered}
        return [
            Write(
                c.entry,
                item.essence if item is not None and c.action is not Action.DELETE else None,
                c.action,
                sensitive=item is not None and item.sensitive and c.action is not Action.DELETE,
            )
            for c in plan.to_apply
            if c.action is not Action.RECORD
            for item in (by_entry.get(c.entry),)
        ]

    def _verify(self, target: Target, writes: list[Write], fingerprint: Sealer) -> None:
        after = target.observe()
        for write in writes:
            live = after.entries.get(write.entry)
            want = write.essence
            if after.blind_fields:
                live, want = _unseen(live, after.blind_fields), _unseen(want, after.blind_fields)
            same = (
                (live is None)
                if want is None
                else (live is not None and seal(live, fingerprint) == seal(want, fingerprint))
            )
            if not same:
                raise TargetError(f"entry '{write.entry}' does not read back as written")

    def _remember(
        self,
        name: str,
        rendered: list[Rendered],
        plan: TargetPlan,
        writes: list[Write],
        before: Observation,
        inventory: Inventory,
        fingerprint: Sealer,
    ) -> None:
        by_entry = {r.slot.entry: r for r in rendered}
        for write in writes:
            if write.essence is None:
                inventory.entries.pop(write.entry, None)
                inventory.created.discard(write.entry)
                continue
            item = by_entry.get(write.entry)
            inventory.entries[write.entry] = (
                item.sealed(write.essence, fingerprint)
                if item is not None
                else seal(write.essence, fingerprint)
            )
            if write.entry not in before.entries:
                inventory.created.add(write.entry)
        self._remember_in_sync(
            name, rendered, plan, inventory, fingerprint, PassOptions(dry_run=False)
        )

    def _remember_in_sync(
        self,
        name: str,
        rendered: list[Rendered],
        plan: TargetPlan,
        inventory: Inventory,
        fingerprint: Sealer,
        options: PassOptions,
    ) -> None:
        """Entries found already as desired join the inventory (not as created by us)."""
        if options.dry_run:
            return
        in_sync = set(plan.in_sync)
        for item in rendered:
            if item.slot.server in in_sync and item.essence is not None:
                inventory.entries[item.slot.entry] = item.sealed(item.essence, fingerprint)
        self.store.save_inventory(name, inventory)

    @staticmethod
    def _report(base: TargetReport, plan: TargetPlan, applied: frozenset[str]) -> TargetReport:
        return replace(
            base,
            changes=plan.changes,
            applied=applied,
            in_sync=plan.in_sync,
            unmanaged=plan.unmanaged,
            orphaned=plan.orphaned,
            notes=plan.notes,
            live=plan.live,
            blind=plan.blind,
        )

    def context(self, state: DesiredState | None = None, *, writable: bool = False) -> Context:
        """Where targets live for this engine; only a writable context may create locks."""
        return Context(
            home=self.home,
            platform=self.platform,
            root=self.desired_dir.resolve().parent,
            lock_dir=self.store.lock_dir if writable else None,
            environ=self.environ,
            resolve=None if state is None else self.secret_resolver(state).resolve_text,
            state_dir=self.store.root,
        )

    # -- one target, read only (allow, adopt, import, divergences) -------------------------

    def observe(self, name: str, spec: TargetSpec, state: DesiredState) -> Observation:
        """What one target holds now (``spec`` need not be declared: ``reconcile import``)."""
        target = targets.build(name, spec, self.context(state))
        try:
            return target.observe()
        finally:
            target.close()

    def inspect(
        self,
        name: str,
        servers: tuple[str, ...] = (),
        *,
        state: DesiredState | None = None,
        create_key: bool = True,
    ) -> Inspection:
        """A dry-run plan of one target, with the sealed live entries records are made from.

        Uses the state directory's fingerprint key, created if absent when ``create_key``
        (``allow``): a record's ``observed`` must be comparable with every later pass.
        """
        state = state or self.load()
        _select((name,), state.targets, "target")
        fingerprint = fingerprint_with(self.store.fingerprint_key(create=create_key))
        options = PassOptions(dry_run=True, targets=(name,), servers=servers)
        found = self.divergences(state, [name], options)
        spec = state.targets[name]
        target = targets.build(name, spec, self.context(state))
        if isinstance(target, MirrorTarget):  # entries are files: the file planner
            return mirrors.inspect(name, target, state, fingerprint, found)
        try:
            observation = target.observe()
            rendered = self._render(state, name, target, observation, options)
            inventory = self.store.inventory(name)
            plan = self._plan(state, name, rendered, observation, inventory, fingerprint, options)
            matched = self._match(
                state, name, rendered, observation, inventory, fingerprint, options, plan, found
            )
            base = TargetReport(name, target.kind.value, target.describe(), spec.optional)
        finally:
            target.close()
        plan = replace(plan, changes=matched.changes, notes=plan.notes + matched.notes)
        report = replace(self._report(base, plan, frozenset()), allowed=matched.allowed)
        sealed = self._sealed_live(rendered, observation, fingerprint)
        return Inspection(state, report, observation, sealed, fingerprint, matched, found)


def load_desired(root: Path) -> DesiredState:
    """``desired/`` validated by every layer's rules, every problem listed in one run: the
    schema, names and placements (store), each target kind's fields (targets), and secret
    references and literals (secrets)."""
    return desired.load(
        root,
        checks=(targets.check, _secret_rules),
        on_invalid=register_document_literals,
    )


def _secret_rules(state: DesiredState, at: Locator) -> list[Problem]:
    return check_desired(state.servers, state.targets, state.secrets, at)


def _unseen(essence: Essence | None, blind: frozenset[str]) -> Essence | None:
    """The essence without the fields a target could not show (compared on neither side)."""
    if essence is None or not blind:
        return essence
    return {k: v for k, v in essence.items() if k not in blind}


def _select(wanted: tuple[str, ...], known: Mapping[str, object], what: str) -> list[str]:
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise UsageError(
            f"unknown {what}{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
            f"(declared: {', '.join(known) or 'none'})"
        )
    return list(wanted) if wanted else list(known)
