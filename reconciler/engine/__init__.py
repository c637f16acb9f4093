"""The one orchestrator of a pass: load, observe, compare, plan, apply, verify, report.

Everything with an effect is reached from here and nowhere else: targets are observed
concurrently, each target is planned by the pure core and then applied on its own, so a
failing target degrades the report without stopping the others (Argo's per-resource model,
not Flux's all-or-nothing). The state directory is touched only by a non-dry run.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from reconciler import targets
from reconciler.core.errors import (
    ConcurrentChange,
    DesiredStateError,
    PartialApply,
    Problem,
    ReconcilerError,
    RepositoryError,
    TargetError,
    UsageError,
)
from reconciler.core.essence import Sealer, fingerprint_with
from reconciler.core.model import OnDrift, TargetSpec
from reconciler.core.report import Phase, RunReport, TargetReport
from reconciler.engine.mirrors import FileEntries
from reconciler.engine.passdata import Divergences, Inspection, PassOptions, Planner
from reconciler.engine.servers import ServerEntries
from reconciler.secrets import (
    REDACTOR,
    Reference,
    SecretResolver,
    check_desired,
    essence_texts,
    find_references,
    redact,
    redact_data,
    register_document_literals,
)
from reconciler.store import desired, fsutil, gitlog, paths, recordfiles
from reconciler.store.desired import DesiredState, Locator
from reconciler.store.state import StateStore
from reconciler.targets import Context, Entries, Observation, Target
from reconciler.targets.mirror import MirrorTarget

__all__ = ["Divergences", "Engine", "Inspection", "PassOptions", "Recorder", "load_desired"]

log = logging.getLogger("reconciler")

CAS_ATTEMPTS = 5
PASS_LOCK_WAIT = 60.0  # seconds a pass waits for another one on the same state directory
PASS_LOCK_ENV = "RECONCILER_PASS_LOCK_WAIT"


def _seconds(text: str | None, default: float) -> float:
    try:
        return max(0.0, float(text)) if text else default
    except ValueError:
        return default


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the span of one pass, as Mercurial's
    ``util.nogc`` does while it builds large structures. A pass allocates hundreds of
    thousands of small dicts and lists that live until it ends, and every few hundred
    allocations the collector walked all of them again: a fifth of a 2,000 x 8 pass, for
    nothing, since reference counting frees them. The few cycles a pass leaves (an
    exception's traceback) are collected once the collector is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# Commits the divergence records a pass drafted (on_drift: record); the application layer
# provides it (``app.review.record_drafts``), so the engine never calls a command module.
Recorder = Callable[["Engine", Divergences, Sequence[TargetReport]], list[TargetReport]]
# Told (done, total) while slow resolver commands run (a progress line on a terminal).
ResolveProgress = Callable[[int, int], None]


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
        resolving: ResolveProgress | None = None,
    ) -> None:
        self.desired_dir = desired_dir
        self.resolving = resolving  # hears (done, total) when resolving secrets is slow
        self.root = paths.repository_root(desired_dir)  # relative paths start here
        self.recorder = recorder
        self.store = StateStore(state_dir)
        self.home = home or Path.home()
        self.environ = dict(os.environ if environ is None else environ)
        self.platform = platform
        self._secrets: tuple[DesiredState, SecretResolver] | None = None
        self._secrets_lock = threading.Lock()

    def secret_resolver(self, state: DesiredState, *, fresh: bool = False) -> SecretResolver:
        """The resolver of ``state``'s references for the current pass.

        A resolver caches each outcome (failures too), so it lives for one pass only:
        each pass starts a ``fresh`` one, and a daemon that keeps its loaded state between
        passes still picks up a secret rotated at its resolver, and retries one that
        failed. Within the pass every target shares it (one resolution per reference).
        """
        with self._secrets_lock:
            if fresh or self._secrets is None or self._secrets[0] is not state:
                resolver = SecretResolver(
                    state.secrets,
                    self.environ,
                    root=self.root,
                    home=self.home,
                )
                self._secrets = (state, resolver)
            return self._secrets[1]

    def load(self) -> DesiredState:
        """Desired state, from the state directory's validated-state cache when desired/ and
        the code are what they were when an applying pass kept it (``store.desired.Cache``)."""
        return load_desired(self.desired_dir, self.store.desired_cache())

    def run(self, options: PassOptions, state: DesiredState | None = None) -> RunReport:
        """One pass; ``state`` spares the load when the caller (the daemon) just loaded it."""
        with _collector_paused():
            return self._run(options, state)

    def _run(self, options: PassOptions, state: DesiredState | None) -> RunReport:
        started = time.monotonic()
        state = self.load() if state is None else state
        with self._secrets_lock:
            self._secrets = None  # every pass resolves its secrets afresh
        names = _select(options.targets, state.targets, "target")
        _select(options.servers, state.servers, "server")
        report: RunReport | None = None
        invalid = False  # an invalid invocation changes nothing, not even the status
        try:
            with self._exclusive(options):
                report = self._pass(state, names, options)
            return report
        except (UsageError, RepositoryError, DesiredStateError):
            invalid = True
            raise
        finally:
            # Like Flux's finalizeStatus: the status is written on every exit path of an
            # applying pass, with what is known, so `status` and the daemon never show a
            # pass that ended badly as the last good one.
            if not options.dry_run and not invalid:
                if report is not None and report.exit_code == 0:  # a failing pass adds nothing
                    self.store.keep_desired(state)  # the next runs skip validating it again
                status: dict[str, Any] = (
                    report.to_json() if report is not None else {"schema": 1, "exit_code": 3}
                )
                if report is None:
                    status["error"] = "the pass ended before its report was complete"
                status["finished"] = time.time()
                status["duration_s"] = round(time.monotonic() - started, 4)
                self.store.write_status(redact_data(status))

    def _exclusive(self, options: PassOptions) -> AbstractContextManager[None]:
        """One applying pass at a time per state directory: a second ``reconcile`` (or the
        daemon's next pass) waits for the first, or fails with exit 3 once the wait is
        over, so the state never mixes two passes. A dry run writes nothing: no lock."""
        if options.dry_run:
            return contextlib.nullcontext()
        wait = _seconds(self.environ.get(PASS_LOCK_ENV), PASS_LOCK_WAIT)
        busy = (
            f"another reconcile pass is applying with the state directory {self.store.root};"
            f" waited {wait:g}s for it (set {PASS_LOCK_ENV} to wait longer)"
        )
        return fsutil.locked(self.store.lock_dir, self.store.root, wait, busy=busy)

    def _pass(self, state: DesiredState, names: list[str], options: PassOptions) -> RunReport:
        fingerprint = fingerprint_with(self.store.fingerprint_key(create=not options.dry_run))
        REDACTOR.use_fingerprint(fingerprint)  # secrets in any text shown as in the diffs
        resolver = self.secret_resolver(state, fresh=True)  # this pass's: nothing from the last
        context = self.context(state, writable=not options.dry_run)
        # Every resolver command the pass needs, concurrently, before any target asks.
        resolver.prefetch(_references(state, names, options), self.resolving)
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
        return RunReport(options.dry_run, tuple(results))

    # -- one target: the one reconcile step for every kind of entry -------------------------

    def planner(
        self,
        name: str,
        target: Target,
        state: DesiredState,
        fingerprint: Sealer,
        options: PassOptions,
        found: Divergences,
    ) -> Planner[Any]:
        """The planner for the target's entries: servers, or files (a mirror copy)."""
        if target.entry_kind is Entries.FILES:
            assert isinstance(target, MirrorTarget)
            return FileEntries(
                name, target, state, fingerprint=fingerprint, options=options, found=found
            )
        return ServerEntries(
            name,
            target,
            state,
            fingerprint=fingerprint,
            options=options,
            found=found,
            resolver=self.secret_resolver(state),
            store=self.store,
        )

    def _reconcile(
        self,
        name: str,
        target: Target,
        state: DesiredState,
        fingerprint: Sealer,
        options: PassOptions,
        found: Divergences | None = None,
    ) -> TargetReport:
        """Observe, plan (matching divergence records), apply, verify, remember, report.

        Compare-and-swap: a target that moved while we wrote is observed and planned again,
        up to CAS_ATTEMPTS times. Every exit path returns the target's report; an error is
        the report's error, with the phase it happened in.
        """
        found = found or Divergences()
        spec = state.targets[name]
        base = TargetReport(name, target.kind, target.describe(), spec.optional)
        phase = Phase.OBSERVE
        try:
            planner = self.planner(name, target, state, fingerprint, options, found)
            skipped = planner.skip()
            if skipped is not None:
                return skipped
            for attempt in range(CAS_ATTEMPTS):
                phase = Phase.OBSERVE
                observation = target.observe()
                if not observation.exists and not spec.create:
                    note = f"{target.describe()} does not exist; skipped (create: false)"
                    return replace(base, absent=True, notes=(note,))
                phase = Phase.PLAN
                planned = planner.plan(observation)
                if options.dry_run or not planned.pending:
                    planner.remember(planned, (), None)
                    shown: TargetReport = planned.report
                    return shown
                phase = Phase.APPLY
                writes = planned.writes
                after = None
                if writes:
                    planner.intend(planned, writes)  # ownership noted before the rename
                    try:
                        target.apply(observation, writes)
                    except ConcurrentChange:
                        log.info("%s: changed during the pass, retrying (%d)", name, attempt + 1)
                        planner.retry()
                        continue
                    except PartialApply as e:  # keep ownership of what was done
                        done = [w for w in writes if w.entry in e.done]
                        planner.remember(planned, done, None)
                        if not e.failed:
                            raise
                        # Server by server: the report weighs each by its requiredness.
                        return replace(
                            planner.applied(planned, done),
                            error=redact(str(e)),
                            phase=Phase.APPLY,
                            recoverable=e.recoverable,
                            failed={k: redact(v) for k, v in e.failed.items()},
                            flags_left=e.flags_left,
                        )
                    phase = Phase.VERIFY
                    after = target.observe()
                    planner.verify(planned, after)
                planner.remember(planned, writes, after)
                if planned.drafts:
                    found.drafts[name] = planned.drafts
                report: TargetReport = planner.applied(planned, writes)
                return report
            raise ConcurrentChange(f"kept changing during {CAS_ATTEMPTS} attempts; try again")
        except ReconcilerError as e:
            recoverable = e.recoverable if isinstance(e, TargetError) else False
            log.warning("%s: %s failed: %s", name, phase.value, e)
            return replace(base, error=redact(str(e)), phase=phase, recoverable=recoverable)

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

    def context(self, state: DesiredState | None = None, *, writable: bool = False) -> Context:
        """Where targets live for this engine; only a writable context may create locks."""
        return Context(
            home=self.home,
            platform=self.platform,
            root=self.root,
            lock_dir=self.store.lock_dir if writable else None,
            environ=self.environ,
            resolve=None if state is None else self.secret_resolver(state).resolve_text,
            state_dir=self.store.root,
            redactor=REDACTOR,  # the one its secret resolver registers values with
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
        target = targets.build(name, state.targets[name], self.context(state))
        try:
            planner = self.planner(name, target, state, fingerprint, options, found)
            return planner.inspection(planner.plan(target.observe()))
        finally:
            target.close()


def load_desired(root: Path, cache: desired.Cache | None = None) -> DesiredState:
    """``desired/`` validated by every layer's rules, every problem listed in one run: the
    schema, names and placements (store), each target kind's fields (targets), and secret
    references and literals (secrets); or, unchanged since, from ``cache``."""
    return desired.load(
        root,
        checks=(targets.check, _secret_rules),
        on_invalid=register_document_literals,
        cache=cache,
    )


def _secret_rules(state: DesiredState, at: Locator) -> list[Problem]:
    return check_desired(
        state.servers, state.targets, state.secrets, at, capability_of=targets.capability
    )


def _references(
    state: DesiredState, names: Sequence[str], options: PassOptions
) -> Iterator[Reference]:
    """The references a pass over ``names`` may resolve: in each placed server (as
    ``--server`` narrows them) and in the targets' own options (an MCPJungle ``token``)."""
    seen: set[str] = set()
    for name in names:
        spec = state.targets[name]
        for text in (spec.token, spec.url):
            if isinstance(text, str):
                yield from find_references(text)
        for server in state.placements(name):
            if server in seen or (options.servers and server not in options.servers):
                continue
            seen.add(server)
            for text in essence_texts(state.essences[server]):
                yield from find_references(text)


def _select(wanted: tuple[str, ...], known: Mapping[str, object], what: str) -> list[str]:
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise UsageError(
            f"unknown {what}{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
            f"(declared: {', '.join(known) or 'none'})"
        )
    return list(wanted) if wanted else list(known)
