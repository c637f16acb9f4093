"""The watcher daemon: keep every target converged, reacting to file saves in milliseconds.

Three layers, so the decisions can be tested without a file watcher or a clock:

- ``WatchSet`` turns the desired state into the directories to watch (the desired tree and
  the nearest existing parent of every target file: editors and clients save by rename,
  so a watch on the file itself goes silent after the first save) and classifies a batch of
  changed paths: desired state changed, which targets changed, whether to re-watch.
- ``Daemon.iteration(paths)`` runs one step of the loop for one debounced batch: it skips
  events whose file still holds what the last pass left there (the daemon's own writes),
  reloads desired state when its content changed (an invalid one is logged and nothing is
  touched until it is fixed), honours per-target backoff and the periodic resync, runs the
  pass through the engine, and records the outcome (status file, log line, metrics).
- ``serve`` is the effectful shell: the daemon lock, signals, the watchfiles thread, the
  debounce timing, the metrics endpoint and the status page (``--ui``: the daemon publishes
  a snapshot to ``app.ui`` each time it writes its status file).

Passes are level-triggered: an event only says *which* targets to look at; what to do is
always computed from the whole desired state and the target as it is now, so a lost, merged
or reordered event can never leave a target wrong for longer than the next resync.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from reconciler import targets
from reconciler.app import probe as probes
from reconciler.app import pull, review, ui
from reconciler.app.metrics import Metrics, MetricsServer, parse_address
from reconciler.app.probe import ProbeReport
from reconciler.core.errors import DesiredStateError, ReconcilerError, UsageError
from reconciler.core.report import ExitCode, Phase, RunReport, TargetReport, plural
from reconciler.engine import Engine, PassOptions
from reconciler.probe import DEFAULT_TIMEOUT
from reconciler.secrets import (
    REDACTOR,
    SecretResolver,
    find_references,
    install_logging,
    quiet_libraries,
)
from reconciler.store import fsutil, inotify
from reconciler.store.desired import DesiredState
from reconciler.store.state import StateStore

if TYPE_CHECKING:
    from filelock import BaseFileLock

log = logging.getLogger("reconciler.app.watch")

DESIRED_SUFFIXES = (".yaml", ".yml")
HEARTBEAT = 5.0  # the loop wakes at least this often, so /healthz can tell it is alive
HISTORY = 30  # passes kept for the status page's timeline
ABSENT = "absent"


class AlreadyRunning(UsageError):
    """Another daemon holds this state directory (exit 2)."""


@dataclass(frozen=True)
class WatchOptions:
    interval: float = 300.0  # periodic resync, seconds
    debounce: float = 0.2  # quiet time that ends a burst of changes, seconds
    jitter: float = 0.1  # resync interval spread, as a fraction
    pull: bool = False  # fetch and fast-forward the desired repository at each resync
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    burst_cap: float | None = None  # longest a continuous burst may defer a pass
    flap_limit: int = 6  # this many syncs of one target within flap_window is a fight
    flap_window: float = 60.0
    force_polling: bool | None = None  # None: watchfiles decides (WSL, env variable)
    probe_interval: float | None = None  # probe every declared server this often; None: never
    probe_timeout: float = DEFAULT_TIMEOUT

    @property
    def max_delay(self) -> float:
        return self.burst_cap if self.burst_cap is not None else max(2.0, 10 * self.debounce)


# -- what to watch, and what a change means ------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """What one batch of changed paths asks for."""

    desired: bool = False
    targets: frozenset[str] = frozenset()  # targets named by a change of something else
    files: frozenset[Path] = frozenset()  # changed target files (checked against our writes)
    rewatch: bool = False  # the set of directories to watch may have changed

    def __bool__(self) -> bool:
        return self.desired or bool(self.targets) or bool(self.files) or self.rewatch


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.endswith("~")


def _is_desired_file(path: Path) -> bool:
    return path.suffix in DESIRED_SUFFIXES and not _hidden(path.name)


# Folders never worth watching inside a tree (a mirror copy, say): tools' caches and vendored code.
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv", "target", "dist", "build"})
MAX_TREE_DIRS = 5000  # beyond this, a tree is left to the periodic resync


def _walk_dirs(root: Path, limit: int = MAX_TREE_DIRS) -> set[Path]:
    found = {root}
    if not root.is_dir():
        return found
    for top, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _hidden(d) and d not in SKIPPED_DIRS)
        found.update(Path(top) / d for d in dirs)
        if len(found) >= limit:
            log.warning("%s: more than %d folders; only some are watched", root, limit)
            break
    return found


def _desired_dirs(root: Path) -> set[Path]:
    return _walk_dirs(root)


def _spellings(path: Path) -> set[Path]:
    """The names under which events about a target file arrive (its link and its file)."""
    path = path if path.is_absolute() else path.absolute()
    names = {path.parent.resolve() / path.name}
    if path.is_symlink():
        names.add(fsutil.real_path(path))
    return names


@dataclass(frozen=True)
class WatchSet:
    desired: Path
    desired_dirs: frozenset[Path]
    files: Mapping[Path, frozenset[str]]  # target file -> targets stored in it
    ancestors: Mapping[Path, frozenset[str]]  # missing folders on the way to a target file
    watched_for: Mapping[Path, frozenset[str]]  # watched folder -> targets whose file is in it
    dirs: tuple[Path, ...]  # what to watch (non-recursively), all existing
    trees: Mapping[Path, frozenset[str]] = field(default_factory=dict)  # folder targets (mirrors)
    tree_dirs: frozenset[Path] = frozenset()

    @classmethod
    def build(cls, desired: Path, target_paths: Mapping[str, Iterable[Path]]) -> WatchSet:
        root = desired.resolve()
        desired_dirs = _desired_dirs(root)
        files: dict[Path, set[str]] = {}
        ancestors: dict[Path, set[str]] = {}
        watched_for: dict[Path, set[str]] = {}
        trees: dict[Path, set[str]] = {}
        tree_dirs: set[Path] = set()
        for name, paths in target_paths.items():
            for path in paths:
                folder = path if path.is_absolute() else path.absolute()
                if folder.is_dir():  # a whole tree (a mirror's source or copy)
                    folder = folder.resolve()
                    trees.setdefault(folder, set()).add(name)
                    tree_dirs |= _walk_dirs(folder)
                    continue
                for spelling in _spellings(path):
                    files.setdefault(spelling, set()).add(name)
                    parent = spelling.parent
                    while not parent.is_dir() and parent.parent != parent:
                        ancestors.setdefault(parent, set()).add(name)
                        parent = parent.parent
                    watched_for.setdefault(parent, set()).add(name)
        dirs = {d for d in desired_dirs | tree_dirs if d.is_dir()} | set(watched_for)
        return cls(
            root,
            frozenset(desired_dirs),
            {k: frozenset(v) for k, v in files.items()},
            {k: frozenset(v) for k, v in ancestors.items()},
            {k: frozenset(v) for k, v in watched_for.items()},
            tuple(sorted(dirs)),
            {k: frozenset(v) for k, v in trees.items()},
            frozenset(tree_dirs),
        )

    def tree_of(self, path: Path) -> Path | None:
        for root in self.trees:
            if path == root or root in path.parents:
                return root
        return None

    def owners(self, path: Path) -> frozenset[str]:
        """The targets a changed file belongs to."""
        if path in self.files:
            return self.files[path]
        root = self.tree_of(path)
        return self.trees[root] if root is not None else frozenset()

    def in_desired(self, path: Path) -> bool:
        return path == self.desired or self.desired in path.parents

    def classify(self, paths: Iterable[Path]) -> Trigger:
        desired = rewatch = False
        names: set[str] = set()
        files: set[Path] = set()
        for path in paths:
            if self.in_desired(path):
                if path in self.desired_dirs:  # a watched folder went away
                    desired = rewatch = True
                elif _is_desired_file(path):
                    desired = True
                elif not _hidden(path.name) and path.is_dir():  # a new folder of files
                    desired = rewatch = True
                continue
            tree = self.tree_of(path) if self.trees else None
            if tree is not None:
                if _hidden(path.name):
                    continue  # our own temp files, editors' swap files
                if path in self.tree_dirs or path.is_dir():  # a folder came or went
                    names |= self.trees[tree]
                    rewatch = True
                else:
                    files.add(path)
                continue
            if path in self.files:
                files.add(path)
                if path.is_dir():  # a missing folder target appeared: watch it as a tree
                    rewatch = True
            elif path in self.ancestors:  # a missing parent appeared: watch closer
                names |= self.ancestors[path]
                rewatch = True
            elif path in self.watched_for:  # the watched folder itself changed
                names |= self.watched_for[path]
                rewatch = True
        return Trigger(desired, frozenset(names), frozenset(files), rewatch)

    def relevant(self, path: Path) -> bool:
        """The watchfiles filter: drop editor temp files and unrelated neighbours early."""
        return bool(self.classify((path,)))


def file_digest(path: Path) -> str:
    try:  # the bounded read: a FIFO or an endless file at a watched path never blocks
        content = fsutil.read_bounded(path)
    except ReconcilerError:
        return "unreadable"
    return ABSENT if content is None else hashlib.sha256(content).hexdigest()


def desired_digest(root: Path) -> str:
    """One hash over every desired file's name and bytes: did desired state change at all?"""
    digest = hashlib.sha256()
    for folder in sorted(_desired_dirs(root)):
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.is_file())
        except OSError:
            continue
        for name in names:
            path = folder / name
            if not _is_desired_file(path):
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(file_digest(path).encode() + b"\0")
    return digest.hexdigest()


def target_paths(engine: Engine, state: DesiredState) -> dict[str, tuple[Path, ...]]:
    """The files each target lives in (API targets have none), without touching anything."""
    context = engine.context()
    found: dict[str, tuple[Path, ...]] = {}
    for name, spec in state.targets.items():
        try:
            target = targets.build(name, spec, context)
        except (ReconcilerError, KeyError) as e:
            log.warning("%s: cannot tell which files to watch: %s", name, e)
            continue
        try:
            found[name] = tuple(target.watch_paths())
        finally:
            target.close()
    return found


# -- backoff ---------------------------------------------------------------------------------


@dataclass
class Backoff:
    """Per-target exponential backoff: base, doubling on every failure, capped; reset on success."""

    base: float = 1.0
    cap: float = 300.0
    failures: dict[str, int] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)

    def failed(self, name: str, now: float) -> float:
        count = self.failures.get(name, 0) + 1
        self.failures[name] = count
        delay = min(self.cap, self.base * 2.0 ** min(count - 1, 62))
        self.until[name] = now + delay
        return delay

    def succeeded(self, name: str) -> None:
        self.failures.pop(name, None)
        self.until.pop(name, None)

    def blocked(self, name: str, now: float) -> bool:
        return self.until.get(name, now) > now

    def due(self, now: float) -> set[str]:
        """Targets whose wait is over: retry them now."""
        return {name for name, when in self.until.items() if when <= now}

    def next_due(self) -> float | None:
        return min(self.until.values()) if self.until else None

    def forget(self, keep: set[str]) -> None:
        for name in [n for n in self.until if n not in keep]:
            self.succeeded(name)


# -- one iteration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PassRecord:
    """One pass as the daemon reports it (log line, status file, metrics)."""

    number: int
    trigger: str  # start, desired, target, retry, resync
    targets: tuple[str, ...]
    actions: Mapping[str, int]  # applied changes by action
    pending: int  # actionable changes left (on_drift: report, failures)
    errors: Mapping[str, str]
    exit_code: int
    result: str  # converged, drift, failed, error
    duration: float
    finished: float  # Unix time
    changes: tuple[tuple[str, str, str], ...] = ()  # (target, server, action) applied

    def to_json(self) -> dict[str, Any]:
        return {
            "pass": self.number,
            "trigger": self.trigger,
            "targets": list(self.targets),
            "actions": dict(self.actions),
            "pending": self.pending,
            "errors": dict(self.errors),
            "exit_code": self.exit_code,
            "result": self.result,
            "duration_s": round(self.duration, 4),
            "finished": self.finished,
        }


_RESULTS = {
    ExitCode.CONVERGED: "converged",
    ExitCode.DRIFT: "drift",
    ExitCode.FAILED: "failed",
    ExitCode.INVALID: "invalid",
}


class Daemon:
    """The watch loop's decisions and bookkeeping, one ``iteration`` at a time."""

    def __init__(
        self,
        engine: Engine,
        options: WatchOptions | None = None,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        pull: Callable[[Path], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.options = options or WatchOptions()
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.rng = rng or random.Random()
        self._pull = pull
        self.state: DesiredState | None = None
        self.valid = False
        self.desired_seen: str | None = None  # digest of the desired content last loaded
        self.desired_errors: list[str] = []
        self.watchset = WatchSet.build(engine.desired_dir, {})
        self.left: dict[Path, str] = {}  # what each target file held after our last pass
        self.backoff = Backoff(self.options.backoff_base, self.options.backoff_cap)
        self.syncs: dict[str, deque[float]] = {}
        self.rerun: set[str] = set()  # look again at once (changed under our read-back)
        self.next_resync = self.clock() + self._resync_delay()
        self.passes = 0
        self.last: PassRecord | None = None
        self.last_pull: str | None = None
        self.in_pass = False
        self.started = time.time()
        self.metrics_url: str | None = None
        interval = self.options.probe_interval
        self.next_probe: float | None = None if interval is None else self.clock()
        self.probes = 0
        self.last_probe: dict[str, Any] | None = None
        # For the status page (``--ui``): each target as its last pass left it, the last
        # passes, the last probe's servers; published to ``site`` after each of them.
        self.site: ui.Site | None = None
        self.ui_url: str | None = None
        self.reports: dict[str, TargetReport] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.probed: dict[str, Any] | None = None
        self._listed: tuple[tuple[int, str | None], list[dict[str, Any]] | None] | None = None

    def prepare(self) -> None:
        """Load desired state and compute what to watch, before the watcher and first pass."""
        if self.options.pull:
            self._do_pull()  # start from the fleet's latest, not from a stale clone
        self.desired_seen = desired_digest(self.watchset.desired)
        self._reload()

    # the loop asks these

    def deadline(self) -> float:
        """When the next iteration is due without any file event (resync or a retry)."""
        if self.state is None or not self.valid:
            return self.next_resync  # nothing is retried while desired state is invalid
        if self.rerun:
            return self.clock()
        due = self.backoff.next_due()
        deadline = self.next_resync if due is None else min(self.next_resync, due)
        return deadline if self.next_probe is None else min(deadline, self.next_probe)

    def iteration(
        self, changed: Iterable[Path] = (), *, start: bool = False, recheck: bool = False
    ) -> PassRecord | None:
        """One debounced batch (see ``_iterate``), then the servers' probe when it is due."""
        record = self._iterate(changed, start=start, recheck=recheck)
        if self.next_probe is not None and self.clock() >= self.next_probe and self.valid:
            self.probe()
        return record

    def probe(self) -> ProbeReport | None:
        """Probe every declared server (``--probe-interval``) and export the results as
        metrics; a failure to probe and a tool surface changed against the lock are logged,
        and the next probe is still scheduled. The tool inventory is kept fresh by it."""
        interval = self.options.probe_interval or 0.0
        self.next_probe = self.clock() + interval
        try:
            report = probes.probe(self.engine, timeout=self.options.probe_timeout)
        except ReconcilerError as e:
            log.warning("probe failed: %s", e, extra={"event": "probe"})
            return None
        self.probes += 1
        self.metrics.observe_probe(report.results)
        down = report.degraded
        for r in down:
            log.warning(
                "probe: %s %s: %s failed: %s",
                "required server" if r.required else "optional server",
                r.server,
                r.phase.value if r.phase is not None else "probe",
                r.error,
                extra={"event": "probe", "server": r.server},
            )
        for drift in report.surface.drift if report.surface is not None else ():
            log.warning(
                "probe: %s", drift.describe(), extra={"event": "probe", "server": drift.server}
            )
        log.info(
            "probed %d server(s): %d up",
            len(report.results),
            len(report.results) - len(down),
            extra={"event": "probe"},
        )
        self.last_probe = {
            "finished": time.time(),
            "servers": len(report.results),
            "up": len(report.results) - len(down),
            "degraded": report.to_json()["degraded"],
        }
        self.probed = ui.probe_json(report.to_json()["servers"], self.last_probe["finished"])
        self.metrics.beat()
        self.write_status()
        return report

    def _iterate(
        self, changed: Iterable[Path] = (), *, start: bool = False, recheck: bool = False
    ) -> PassRecord | None:
        """Handle one debounced batch of changed paths (possibly empty: a timer fired).

        ``recheck`` treats every watched file as possibly changed (after a re-watch, when
        events may have been lost): only what differs from what we left gets a pass.
        """
        now = self.clock()
        changed = list(changed)
        trigger = self.watchset.classify(changed)
        if changed:
            log.debug("changed: %s -> %s", ", ".join(map(str, changed)), trigger)
        if recheck:
            trees = frozenset().union(*self.watchset.trees.values())
            trigger = replace(
                trigger,
                desired=True,
                files=frozenset(self.watchset.files),
                targets=trigger.targets | trees,
            )
        resync = now >= self.next_resync
        if resync:
            self.next_resync = now + self._resync_delay()
            if self.options.pull:
                self._do_pull()
        # Always compare desired state's content (cheap): a pass must never run on a stale
        # copy, whatever the order in which events arrived.
        desired_changed = False
        digest = desired_digest(self.watchset.desired)
        if digest != self.desired_seen:
            self.desired_seen = digest
            desired_changed = self._reload()
        if trigger.rewatch and not desired_changed:
            self.rebuild_watchset()
        if self.state is None or not self.valid:
            return None  # invalid desired state: touch nothing until it is fixed
        declared = set(self.state.targets)
        if start or desired_changed:
            names, why = declared, "start" if start else "desired"
        elif resync:
            names = {n for n in declared if not self.backoff.blocked(n, now)}
            why = "resync"
        else:
            changed_files = {f for f in trigger.files if file_digest(f) != self.left.get(f)}
            named = set(trigger.targets)
            for path in changed_files:
                named |= self.watchset.owners(path)
            names = {n for n in named if not self.backoff.blocked(n, now)}
            retries = self.backoff.due(now) | self.rerun
            self.rerun = set()
            why = "target" if names else "retry"
            names |= retries
        names &= declared
        if not names:
            return None
        return self._pass(names, why)

    # internals

    def _resync_delay(self) -> float:
        spread = self.options.interval * self.options.jitter
        return max(0.0, self.options.interval + self.rng.uniform(-spread, spread))

    def _do_pull(self) -> None:
        puller = self._pull or pull.pull
        try:
            result = puller(self.engine.desired_dir)
        except Exception as e:  # a pull problem must never stop reconciling
            log.warning("pull failed: %s", e, extra={"event": "pull", "outcome": "failed"})
            self.last_pull = f"failed: {e}"
            return
        outcome = str(getattr(result, "outcome", "?"))
        level = logging.WARNING if outcome in ("diverged", "failed") else logging.INFO
        if outcome == "skipped" and self.last_pull == result.message:
            level = logging.DEBUG  # say "no remote" once, not every resync
        log.log(level, "pull: %s", result.message, extra={"event": "pull", "outcome": outcome})
        self.last_pull = result.message

    def _reload(self) -> bool:
        try:
            state = self.engine.load()
        except DesiredStateError as e:
            self._invalid(e)
            return False
        self.state, self.valid, self.desired_errors = state, True, []
        self.metrics.set_desired_valid(True)
        declared = set(state.targets)
        self.backoff.forget(declared)
        self.metrics.forget_targets(declared)
        self.rebuild_watchset()
        return True

    def _invalid(self, error: DesiredStateError) -> None:
        self.valid = False
        self.desired_errors = [str(p) for p in error.problems]
        self.metrics.set_desired_valid(False)
        self.metrics.observe_pass("invalid", 0.0)
        kept = "keeping the last good state" if self.state is not None else "no good state yet"
        log.error(
            "desired state is invalid (%s); %s, touching nothing until it is fixed",
            plural(len(error.problems), "problem"),
            kept,
            extra={"event": "invalid", "errors": self.desired_errors},
        )
        for problem in self.desired_errors:
            log.error("  %s", problem)
        self.write_status()

    def rebuild_watchset(self) -> None:
        paths = target_paths(self.engine, self.state) if self.state is not None else {}
        self.watchset = WatchSet.build(self.engine.desired_dir, paths)

    def _pass(self, names: set[str], why: str) -> PassRecord | None:
        started = self.clock()
        self.in_pass = True
        self.rerun -= names
        report: RunReport | None = None
        failure: str | None = None
        # What each target file holds when we leave it: what we wrote, else what it held
        # before the pass. Reading it after the pass instead would take a hand edit made
        # during the pass for our own write, and skip it.
        before = {p: file_digest(p) for p, owners in self.watchset.files.items() if owners & names}
        written: dict[Path, str] = {}

        def wrote(path: Path, data: bytes) -> None:
            written[path.parent.resolve() / path.name] = hashlib.sha256(data).hexdigest()

        try:
            with fsutil.observe_writes(wrote):
                report = self.engine.run(PassOptions(targets=tuple(sorted(names))), self.state)
        except DesiredStateError as e:  # desired changed again between our load and the pass
            self.desired_seen = None
            self._invalid(e)
            return None
        except ReconcilerError as e:
            failure = str(e)
        except Exception as e:  # a bug must not kill the daemon: log it, back off, go on
            log.exception("pass failed unexpectedly")
            failure = f"internal error: {type(e).__name__}: {e}"
        finally:
            self.in_pass = False
            duration = self.clock() - started
        now = self.clock()
        # A target whose file changed after our write failed its read-back for a reason of
        # someone else's: not a failure to back off from, but a reason to look again now.
        moved = {
            name
            for path, owners in self.watchset.files.items()
            if owners & names
            and (mine := written.get(fsutil.real_path(path))) is not None
            and file_digest(path) != mine
            for name in owners & names
        }
        if any(folder.is_dir() for folder in self.watchset.ancestors):
            self.rebuild_watchset()  # the pass created a target's folder: watch it closely
        for path, digest in written.items():  # files we wrote in folder targets (mirrors)
            if path not in self.watchset.files and self.watchset.owners(path) & names:
                self.left[path] = digest
        for path, owners in self.watchset.files.items():
            if owners & names:
                mine = written.get(fsutil.real_path(path)) or written.get(path)
                left = mine or before.get(path)
                self.left[path] = left if left is not None else file_digest(path)
        self.passes += 1
        record = self._record(report, failure, names, why, duration, now, moved)
        self.last = record
        if report is not None:
            self.reports.update((t.name, t) for t in report.targets)
        self.history.append(
            record.to_json() | {"changes": [list(change) for change in record.changes]}
        )
        self.metrics.observe_pass(record.result, duration)
        self.metrics.set_backoff({n: max(0.0, u - now) for n, u in self.backoff.until.items()})
        self.metrics.beat()
        self._log(record)
        self.write_status()
        return record

    def _record(
        self,
        report: RunReport | None,
        failure: str | None,
        names: set[str],
        why: str,
        duration: float,
        now: float,
        moved: set[str],
    ) -> PassRecord:
        actions: dict[str, int] = {}
        applied: list[tuple[str, str, str]] = []
        pending = 0
        errors: dict[str, str] = {}
        if report is None:
            for name in names:
                self.backoff.failed(name, now)
                errors[name] = failure or "failed"
            code, result = int(ExitCode.FAILED), "error"
        else:
            for t in report.targets:
                for change in t.changes:
                    if t.was_applied(change):
                        actions[change.action.value] = actions.get(change.action.value, 0) + 1
                        applied.append((t.name, change.server, change.action.value))
                pending += len(t.pending)
                self.metrics.observe_target(t.name, drift=len(t.pending), up=t.error is None)
                fought = any(
                    t.was_applied(c) and c.origin.value in ("live", "conflict") for c in t.changes
                )
                if t.error is not None and t.phase is Phase.VERIFY and t.name in moved:
                    errors[t.name] = t.error
                    self.rerun.add(t.name)
                    log.info("%s: changed by someone else right after our write; again", t.name)
                elif t.error is not None:
                    errors[t.name] = t.error
                    delay = self.backoff.failed(t.name, now)
                    log.warning("%s: failed, next try in %gs", t.name, delay)
                elif fought and self.options.flap_limit and self._flapping(t.name, now):
                    delay = self.backoff.failed(t.name, now)
                    errors[t.name] = "flapping"
                    log.warning(
                        "%s: changed back by something else after each of the last %d syncs; "
                        "backing off %gs (on_drift: report or record ends the fight)",
                        t.name,
                        self.options.flap_limit,
                        delay,
                    )
                elif fought and self.options.flap_limit:
                    self.backoff.until.pop(t.name, None)  # retried; the failure count stays
                else:
                    self.backoff.succeeded(t.name)
            code = int(report.exit_code)
            result = _RESULTS[report.exit_code]
        return PassRecord(
            self.passes,
            why,
            tuple(sorted(names)),
            actions,
            pending,
            errors,
            code,
            result,
            duration,
            time.time(),
            tuple(applied),
        )

    def _flapping(self, name: str, now: float) -> bool:
        """True when a target's live edits were reverted too often lately: a fight with a writer."""
        times = self.syncs.setdefault(name, deque(maxlen=self.options.flap_limit))
        times.append(now)
        if len(times) == times.maxlen and now - times[0] <= self.options.flap_window:
            times.clear()
            return True
        return False

    def _log(self, record: PassRecord) -> None:
        actions = ", ".join(f"{a} {n}" for a, n in sorted(record.actions.items())) or "no changes"
        if record.pending:
            actions += f", {record.pending} pending"
        level = logging.WARNING if record.errors else logging.INFO
        log.log(
            level,
            "pass %d (%s): %d target(s) [%s]: %s in %.3fs, %s",
            record.number,
            record.trigger,
            len(record.targets),
            ", ".join(record.targets),
            actions,
            record.duration,
            record.result,
            extra={"event": "pass", **record.to_json()},
        )
        for target, server, action in record.changes:  # each change: target server action
            log.info(
                "%s %s %s",
                target,
                server,
                action,
                extra={"event": "change", "target": target, "server": server, "action": action},
            )

    def status_data(self, *, running: bool = True) -> dict[str, Any]:
        """The daemon's side of ``reconcile status``: alive, desired valid, last pass, backoff."""
        now = self.clock()
        return {
            "schema": 1,
            "pid": os.getpid(),
            "running": running,
            "started": self.started,
            "updated": time.time(),
            "desired": str(self.engine.desired_dir.absolute()),
            "desired_valid": self.valid,
            "desired_errors": self.desired_errors[:50],
            "passes": self.passes,
            "last_pass": self.last.to_json() if self.last else None,
            "backoff": {
                name: {
                    "failures": self.backoff.failures.get(name, 0),
                    "retry_in_s": round(max(0.0, until - now), 3),
                }
                for name, until in sorted(self.backoff.until.items())
            },
            "next_resync_in_s": round(max(0.0, self.next_resync - now), 3),
            "last_pull": self.last_pull,
            "metrics": self.metrics_url,
            "ui": self.ui_url,
            "last_probe": self.last_probe,
            "next_probe_in_s": (
                None if self.next_probe is None else round(max(0.0, self.next_probe - now), 3)
            ),
        }

    def write_status(self, *, running: bool = True) -> None:
        """Write the daemon status file, and publish the status page's snapshot."""
        data = self.status_data(running=running)
        try:
            self.engine.store.write_daemon_status(data)
        except ReconcilerError as e:
            log.warning("cannot write the daemon status: %s", e)
        if self.site is not None:
            self.publish(data)

    def view(self, daemon: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The status page's snapshot (``/api/status``), or None before desired state loads."""
        if self.state is None:
            return None
        declared = [self.reports[n] for n in self.state.targets if n in self.reports]
        return ui.snapshot(
            self.state,
            declared,
            self.engine.store.read_status(),
            daemon=daemon if daemon is not None else self.status_data(),
            passes=list(self.history),
            divergences=self._records(),
            probe=self.probed,
        )

    def _records(self) -> list[dict[str, Any]] | None:
        """The divergence records with their commits and states, listed again only after a
        pass or a change of desired state (listing observes the targets they are about)."""
        key = (self.passes, self.desired_seen)
        if self._listed is not None and self._listed[0] == key:
            return self._listed[1]
        try:
            records: list[dict[str, Any]] | None = [
                item.to_json() for item in review.list_records(self.engine)
            ]
        except ReconcilerError as e:
            log.warning("status page: cannot list the divergence records: %s", e)
            records = None
        self._listed = (key, records)
        return records

    def publish(self, daemon: Mapping[str, Any] | None = None) -> None:
        if self.site is None:
            return
        try:
            data = self.view(daemon)
        except Exception:  # the page must never stop the daemon
            log.exception("status page: cannot build the snapshot")
            return
        if data is not None:
            self.site.publish(data)


def read_daemon_status(state_dir: Path) -> dict[str, Any] | None:
    """The daemon status file, with ``running`` corrected when its process is gone."""
    data = StateStore(state_dir).read_daemon_status()
    if data is None:
        return None
    pid = data.get("pid")
    if data.get("running") and isinstance(pid, int) and not _alive(pid):
        data["running"] = False
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def render_daemon_status(data: dict[str, Any]) -> str:
    state = f"running (pid {data.get('pid')})" if data.get("running") else "not running"
    text = f"daemon: {state}"
    if not data.get("desired_valid", True):
        count = len(data.get("desired_errors") or [])
        text += f", desired state invalid ({plural(count, 'problem')})"
    last = data.get("last_pass")
    if isinstance(last, dict):
        import datetime

        finished = last.get("finished")
        when = (
            datetime.datetime.fromtimestamp(finished, datetime.UTC).isoformat(timespec="seconds")
            if isinstance(finished, (int, float))
            else "?"
        )
        text += (
            f"; last pass #{last.get('pass')} ({last.get('trigger')}) at {when}: "
            f"{last.get('result')}, exit code {last.get('exit_code')}"
        )
    backoff = data.get("backoff") or {}
    if backoff:
        text += f"; backing off: {', '.join(sorted(backoff))}"
    probed = data.get("last_probe")
    if isinstance(probed, dict):
        down = [str(d.get("server")) for d in probed.get("degraded") or []]
        text += f"; last probe: {probed.get('up')} of {probed.get('servers')} server(s) up"
        if down:
            text += f" (down: {', '.join(down)})"
    return text


class Debouncer:
    """Collects changed paths until ``quiet`` seconds pass without one, or ``cap`` seconds
    after the first: a burst of saves makes one pass, and a stream that never pauses still
    gets one pass per ``cap``."""

    def __init__(self, quiet: float, cap: float) -> None:
        self.quiet, self.cap = quiet, cap
        self.pending: set[Path] = set()
        self.first = self.last = 0.0

    def add(self, paths: Iterable[Path], now: float) -> None:
        if not self.pending:
            self.first = now
        self.pending.update(paths)
        self.last = now

    def wait(self, now: float) -> float:
        """Seconds until the batch is due (infinite when nothing is pending)."""
        if not self.pending:
            return float("inf")
        return max(0.0, min(self.last + self.quiet, self.first + self.cap) - now)

    def take(self, now: float) -> set[Path]:
        """The batch if it is due, else nothing."""
        if not self.pending or self.wait(now) > 0:
            return set()
        batch, self.pending = self.pending, set()
        return batch


# -- the effectful shell -------------------------------------------------------------------


class Watcher:
    """watchfiles' sync generator in its own thread, feeding batches of paths to ``sink``."""

    def __init__(
        self,
        watchset: WatchSet,
        sink: Callable[[object], None],
        *,
        debounce_ms: int,
        force_polling: bool | None,
    ) -> None:
        self.dirs = watchset.dirs
        self._watchset = watchset
        self._sink = sink
        self._force_polling = force_polling
        self.stop_event = _StopFlag()
        # inotify where there is one (no wake-up while idle), else watchfiles' polling loop
        self._native = _native_watch(self.dirs) if not force_polling else None
        self.step = 0 if self._native is not None else max(5, min(20, debounce_ms))
        run = self._run if self._native is None else self._run_native
        self.thread = threading.Thread(target=run, name="reconciler-watch", daemon=True)
        self.thread.start()
        # Return only once the watches are in place, so no change made after this can be
        # missed (the caller's next pass reads everything made before it). inotify's are in
        # place before the thread starts.
        self.ready = self._native is not None or self.stop_event.polled.wait(timeout=5.0)

    def _run_native(self) -> None:
        assert self._native is not None
        try:
            for paths in self._native.batches():
                kept = {p for p in paths if self._watchset.relevant(p)}
                if kept:
                    self._sink(kept)
        except Exception as e:
            if not self.stop_event.is_set():
                self._sink(WatcherFailed(e))

    def _run(self) -> None:
        import watchfiles

        def keep(change: object, path: str) -> bool:
            return self._watchset.relevant(Path(path))

        try:
            for changes in watchfiles.watch(
                *self.dirs,
                watch_filter=keep,
                debounce=max(self.step, 200),
                step=self.step,
                stop_event=self.stop_event,
                rust_timeout=1000,
                yield_on_timeout=False,
                raise_interrupt=False,
                recursive=False,
                force_polling=self._force_polling,
                poll_delay_ms=50,
                ignore_permission_denied=True,
            ):
                paths = {Path(p) for _change, p in changes}
                if paths:
                    self._sink(paths)
        except Exception as e:
            self.stop_event.polled.set()
            if not self.stop_event.is_set():
                self._sink(WatcherFailed(e))

    def close(self) -> None:
        self.stop_event.set()
        if self._native is not None:
            self._native.wake()
        self.thread.join(timeout=2.0)
        if self._native is not None and not self.thread.is_alive():
            self._native.release()


def _native_watch(dirs: Iterable[Path]) -> inotify.FolderWatch | None:
    """An inotify watch of ``dirs``, or None where inotify is not available (then watchfiles)."""
    if not inotify.available():
        return None
    try:
        return inotify.FolderWatch(dirs)
    except OSError as e:  # e.g. out of watches: watchfiles polls instead
        log.debug("inotify unavailable (%s); watching with watchfiles", e)
        return None


class _StopFlag:
    """watchfiles' stop_event; its first poll from the Rust loop also says "watching now"."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.polled = threading.Event()

    def is_set(self) -> bool:
        self.polled.set()
        return self._stop.is_set()

    def set(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class WatcherFailed:
    error: Exception


_STOP = object()


def acquire_lock(state_dir: Path) -> BaseFileLock:
    """One daemon per state directory; a second one gets AlreadyRunning (exit 2)."""
    from filelock import FileLock, Timeout

    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the state directory {state_dir}: {e.strerror}") from e
    lock = FileLock(str(StateStore(state_dir).daemon_lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        other = read_daemon_status(state_dir) or {}
        pid = f" (pid {other['pid']})" if other.get("pid") else ""
        raise AlreadyRunning(
            f"another `reconcile watch` is already running for the state directory "
            f"{state_dir}{pid}; stop it first, or give this one its own --state-dir"
        ) from None
    return lock


def setup_logging(log_format: str, verbosity: int) -> None:
    """One handler on stderr: text for people, JSON lines (python-json-logger) for machines."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(
        logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    )
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # "N changes detected" is noise
    quiet_libraries(verbosity)

    install_logging()  # every record is scrubbed of known secret values, JSON fields too


@dataclass(frozen=True)
class UiOptions:
    """``--ui ADDR``: the status page; off the loopback only with ``allow_remote`` and a
    token, given as a reference (``${env:NAME}``...) so its value is never on a command line."""

    addr: str
    allow_remote: bool = False
    token: str | None = None  # a secret reference

    def check(self) -> None:
        host, _port = parse_address(self.addr, "--ui")
        if self.token is not None:
            refs = find_references(self.token)
            if len(refs) != 1 or refs[0].text != self.token.strip():
                raise UsageError(
                    "--ui-token takes a reference such as ${env:RECONCILER_UI_TOKEN} or "
                    "${file:~/.config/reconciler/ui-token}, never the token itself"
                )
        if ui.is_loopback(host):
            return
        if not self.allow_remote:
            raise UsageError(
                f"--ui {self.addr}: not a loopback address; the page shows what every client "
                "holds, so serving it further needs --ui-allow-remote and --ui-token"
            )
        if self.token is None:
            raise UsageError("--ui-allow-remote needs --ui-token REF (bearer or basic auth)")

    def resolve_token(self, engine: Engine, state: DesiredState | None) -> str | None:
        """The token's value (registered with the redactor, so it is never shown)."""
        if self.token is None:
            return None
        resolver = (
            engine.secret_resolver(state)
            if state is not None
            else SecretResolver({}, engine.environ, root=engine.root, home=engine.home)
        )
        try:
            value = resolver.resolve_text(self.token.strip())
        except ReconcilerError as e:
            raise UsageError(f"--ui-token: {e}") from e
        REDACTOR.add(value)
        return value


def _start_servers(
    daemon: Daemon, metrics: Metrics, metrics_addr: str | None, page: UiOptions | None
) -> list[MetricsServer]:
    """The metrics endpoint and the status page: one server when both share an address."""
    servers: list[MetricsServer] = []

    def health() -> tuple[bool, str]:
        return _health(daemon, metrics)

    site = None
    if page is not None:
        host, _port = parse_address(page.addr, "--ui")
        site = ui.Site(
            REDACTOR,
            page.resolve_token(daemon.engine, daemon.state),
            local_only=ui.is_loopback(host),
        )
        daemon.site = site
    shared = (
        page is not None
        and metrics_addr is not None
        and parse_address(metrics_addr) == parse_address(page.addr, "--ui")
    )
    if metrics_addr is not None:
        server = MetricsServer(metrics_addr, metrics, health, site=site if shared else None)
        servers.append(server)
        daemon.metrics_url = server.url
        log.info("metrics at %s/metrics", server.url, extra={"event": "metrics"})
        if shared:
            daemon.ui_url = server.url
    if page is not None and not shared:
        server = MetricsServer(page.addr, None, health, site=site, option="--ui")
        servers.append(server)
        daemon.ui_url = server.url
    if daemon.ui_url is not None:
        log.info("status page at %s/", daemon.ui_url, extra={"event": "ui"})
    return servers


def serve(
    engine: Engine,
    options: WatchOptions,
    *,
    metrics_addr: str | None = None,
    page: UiOptions | None = None,
) -> int:
    """Run the daemon until SIGINT/SIGTERM; returns the exit code (0)."""
    if not engine.desired_dir.is_dir():
        raise UsageError(f"desired directory {engine.desired_dir} does not exist")
    if page is not None:
        page.check()
    lock = acquire_lock(engine.store.root)
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    stop = threading.Event()
    metrics = Metrics()
    daemon = Daemon(engine, options, metrics=metrics)
    received: list[tuple[int, bool]] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append((signum, daemon.in_pass))
        stop.set()
        events.put(_STOP)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    servers: list[MetricsServer] = []
    watcher: Watcher | None = None
    debounce_ms = round(options.debounce * 1000)
    try:
        log.info(
            "watching %s (debounce %d ms, resync every %gs%s)",
            engine.desired_dir.absolute(),
            debounce_ms,
            options.interval,
            ", pull" if options.pull else "",
            extra={"event": "start", "pid": os.getpid()},
        )
        daemon.prepare()
        servers = _start_servers(daemon, metrics, metrics_addr, page)
        watcher = Watcher(
            daemon.watchset,
            events.put,
            debounce_ms=debounce_ms,
            force_polling=options.force_polling,
        )
        log.debug("watching folders: %s", ", ".join(map(str, watcher.dirs)))
        daemon.write_status()
        if not stop.is_set():
            _guarded(daemon.iteration, start=True)  # covers all changed before the watch began
            watcher = _follow(daemon, watcher, events.put, debounce_ms, options)
        # watchfiles already waited one quiet step before yielding a batch
        burst = Debouncer(max(0.0, options.debounce - watcher.step / 1000), options.max_delay)
        restart_delay = 1.0
        while not stop.is_set():
            now = time.monotonic()
            # asleep until the next deadline; the heartbeat only matters to a /healthz
            beat = HEARTBEAT if servers else float("inf")
            wait = min(daemon.deadline() - now, beat, burst.wait(now))
            try:
                item = events.get() if wait == float("inf") else events.get(timeout=max(0.0, wait))
            except queue.Empty:
                item = None
            if item is _STOP or stop.is_set():
                break
            if isinstance(item, WatcherFailed):
                log.error(
                    "the file watcher failed (%s); restarting it in %gs", item.error, restart_delay
                )
                watcher.close()
                with contextlib.suppress(queue.Empty):
                    if events.get(timeout=restart_delay) is _STOP or stop.is_set():
                        break
                restart_delay = min(60.0, restart_delay * 2)
                daemon.rebuild_watchset()
                watcher = Watcher(
                    daemon.watchset,
                    events.put,
                    debounce_ms=debounce_ms,
                    force_polling=options.force_polling,
                )
                _guarded(daemon.iteration, start=True)  # events may have been lost: re-read all
                continue
            now = time.monotonic()
            if isinstance(item, set):
                restart_delay = 1.0
                burst.add(item, now)
                if burst.wait(now) > 0:
                    continue
            metrics.beat()
            batch = burst.take(now)
            if batch or daemon.deadline() <= now:
                _guarded(daemon.iteration, batch)
                watcher = _follow(daemon, watcher, events.put, debounce_ms, options)
    finally:
        if watcher is not None:
            watcher.close()
        if daemon.site is not None:
            daemon.site.close()
        for server in servers:
            server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        daemon.write_status(running=False)
        lock.release()
    if received:
        signum, during = received[0]
        name = signal.Signals(signum).name
        log.info(
            "stopping on %s%s",
            name,
            " (the pass in progress completed first)" if during else "",
            extra={"event": "stop", "signal": name, "during_pass": during},
        )
    return 0


def _follow(
    daemon: Daemon,
    watcher: Watcher,
    sink: Callable[[object], None],
    debounce_ms: int,
    options: WatchOptions,
) -> Watcher:
    """Re-watch when the folders to watch changed (a target's folder appeared, say).

    The new watcher starts before the old one stops, so nothing goes unwatched; but a change
    made in a newly watched folder before its watch began produced no event, and the old
    watcher drops what it had not yielded yet when it stops. So everything is checked once
    more against what we left: only what differs gets a pass.
    """
    for _ in range(3):
        if daemon.watchset.dirs == watcher.dirs:
            break
        fresh = Watcher(
            daemon.watchset, sink, debounce_ms=debounce_ms, force_polling=options.force_polling
        )
        watcher.close()
        watcher = fresh
        log.debug("now watching: %s", ", ".join(map(str, watcher.dirs)))
        _guarded(daemon.iteration, recheck=True)
    return watcher


def _guarded(step: Callable[..., object], *args: object, **kwargs: object) -> None:
    """Run one loop step; a bug in it is logged and the daemon goes on (resync retries)."""
    try:
        step(*args, **kwargs)
    except Exception:
        log.exception("watch loop step failed; continuing")


def _health(daemon: Daemon, metrics: Metrics) -> tuple[bool, str]:
    stale = time.monotonic() - metrics.heartbeat
    if stale > 4 * HEARTBEAT and not daemon.in_pass:
        return False, f"loop stalled for {stale:.0f}s"
    if not daemon.valid:
        return True, "ok (desired state invalid: waiting for a fix)"
    return True, "ok"
