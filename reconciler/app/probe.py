"""``reconcile probe``: connect to each server the way a client does, and report like a pass.

A configuration in sync can still be broken: the command is not installed, the token has
expired, the server crashes on start. This command builds one ``ProbeSpec`` per server from
desired state (secrets resolved, as a client would see them) or, with ``--target``, from
the live entry that target holds, hands them to ``reconciler.probe``, and turns the results
into a degraded report with the documented exit codes: 3 when a required server failed,
0 otherwise (an optional server's failure is a warning).

Probing runs commands from desired state, so it happens only when asked: this command, and
never ``validate``, ``status`` or a dry run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TextIO

from reconciler.app import toolgov
from reconciler.app.toolgov import Surface
from reconciler.core.errors import ReconcilerError, UsageError
from reconciler.core.essence import Essence, from_server
from reconciler.core.report import SCHEMA_VERSION, Degraded, ExitCode, RunReport
from reconciler.engine import Engine
from reconciler.probe import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    Phase,
    ProbeResult,
    ProbeSpec,
    probe_all,
)
from reconciler.secrets import SecretError, SecretResolver, redact, redact_data, render_essence
from reconciler.store import toollock
from reconciler.store.desired import DesiredState
from reconciler.targets import MCPJUNGLE

REREGISTER = "re-register: MCPJungle lists tools only at registration"


@dataclass(frozen=True)
class Parity:
    """A server whose live tools differ from the tools an MCPJungle target lists for it.

    MCPJungle lists a server's tools when it registers it and never again, so a tool the
    server gained since (``missing``) or lost (``stale``) is drift, with one fix."""

    server: str
    target: str  # the MCPJungle target
    entry: str  # the server's name there
    probed: str | None  # the target whose live entry was probed, None for desired state
    missing: tuple[str, ...]  # on the live server, not in MCPJungle's list
    stale: tuple[str, ...]  # in MCPJungle's list, gone from the live server

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "target": self.target,
            "entry": self.entry,
            "probed": self.probed,
            "missing": list(self.missing),
            "stale": list(self.stale),
            "fix": REREGISTER,
        }


@dataclass(frozen=True)
class ProbeReport:
    """Every probed server, its tool parity with MCPJungle, and the exit code they make."""

    results: tuple[ProbeResult, ...]
    parity: tuple[Parity, ...] = ()
    notes: tuple[str, ...] = ()
    surface: Surface | None = None  # the tool surface against the lock (desired definitions)

    @property
    def exit_code(self) -> ExitCode:
        if any(not r.ok and r.required for r in self.results):
            return ExitCode.FAILED
        if self.parity or (self.surface is not None and self.surface.drift):
            return ExitCode.DRIFT
        return ExitCode.CONVERGED

    @property
    def degraded(self) -> tuple[ProbeResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "exit_code": int(self.exit_code),
            "servers": [r.to_json() for r in self.results],
            "degraded": [_degraded_json(r) for r in self.degraded],
            "parity": [p.to_json() for p in self.parity],
            "tool_surface": self.surface.to_json() if self.surface is not None else None,
            "notes": list(self.notes),
        }


def _degraded_json(result: ProbeResult) -> dict[str, Any]:
    return {
        "server": result.server,
        "target": result.target,
        "phase": result.phase.value if result.phase is not None else None,
        "required": result.required,
        "error": result.error,
        "recoverable": result.recoverable,
        "context": result.context.to_json(),
    }


def probe(
    engine: Engine,
    servers: Sequence[str] = (),
    targets: Sequence[str] = (),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_done: Callable[[ProbeResult], None] | None = None,
    lock: bool = False,
) -> ProbeReport:
    """Probe the selected servers: their desired definitions, or the live entries of
    ``targets`` (one probe per target and placed server).

    A probe of the desired definitions keeps each server's tool inventory in the state
    directory and compares it with the tool lock; ``lock`` accepts what was found into the
    lock, as a commit (``toolgov.write_lock``)."""
    if lock and targets:
        raise UsageError(
            "--lock reviews the servers' own surface: probe their desired definitions,"
            " without --target"
        )
    state = engine.load()
    for name in servers:
        if name not in state.servers:
            known = ", ".join(state.servers) or "none"
            raise UsageError(f"unknown server: {name} (declared: {known})")
    for name in targets:
        if name not in state.targets:
            known = ", ".join(state.targets) or "none"
            raise UsageError(f"unknown target: {name} (declared: {known})")
    resolver = engine.secret_resolver(state)
    specs: list[ProbeSpec] = []
    failed: dict[int, ProbeResult] = {}  # position -> a result decided before probing
    wanted = list(servers) or list(state.servers)
    if not targets:
        for name in wanted:
            server = state.servers[name]
            _add(specs, failed, name, None, from_server(server), server.required, resolver)
    else:
        for target in targets:
            live = engine.observe(target, state.targets[target], state).entries
            for name, placement in state.placements(target).items():
                if name not in wanted:
                    continue
                aliases = (name, *state.servers[name].aliases)
                entry = next((live[a] for a in aliases if a in live), None)
                if entry is None:
                    failed[len(specs) + len(failed)] = _not_there(name, target, placement.required)
                    continue
                _add(specs, failed, name, target, entry, placement.required, resolver)
    if lock:
        toolgov.require_lockable(engine)
    report = _run(specs, failed, timeout=timeout, concurrency=concurrency, on_done=on_done)
    report = jungle_parity(engine, state, report)
    if targets:
        return report
    return governed(engine, state, report, lock=lock, everything=not servers)


def governed(
    engine: Engine, state: DesiredState, report: ProbeReport, *, lock: bool, everything: bool
) -> ProbeReport:
    """Keep the tool inventory of the servers that answered, and hold it to the lock (or,
    with ``lock``, write it into the lock)."""
    inventory = toolgov.inventory_of(report.results)
    if inventory:
        engine.store.save_tool_inventory(inventory)
    surface = toolgov.compare(toollock.load(engine.desired_dir), inventory)
    if lock:
        done = toolgov.write_lock(engine, inventory, list(state.servers), everything=everything)
        surface = replace(surface, drift=(), unlocked=(), lock=done)
    return replace(report, surface=surface)


def jungle_parity(engine: Engine, state: DesiredState, report: ProbeReport) -> ProbeReport:
    """Compare each server that answered with the tool list of every MCPJungle target it is
    placed on (``GET /api/v0/tools``, read by observing the target)."""
    placed = {
        name: [
            s for s in state.placements(name) if any(r.ok and r.server == s for r in report.results)
        ]
        for name, spec in state.targets.items()
        if spec.kind == MCPJUNGLE
    }
    parity: list[Parity] = []
    notes: list[str] = []
    for target, servers in placed.items():
        if not servers:
            continue
        try:
            listed = engine.observe(target, state.targets[target], state).tools
        except ReconcilerError as e:
            notes.append(f"tool parity with {target} not checked: {redact(str(e))}")
            continue
        for result in report.results:
            if not result.ok or result.server not in servers:
                continue
            names = (result.server, *state.servers[result.server].aliases)
            entry = next((n for n in names if n in listed), None)
            if entry is None:
                continue  # not registered there: the pass's drift, not parity
            live = {t.name for t in result.tools}
            there = set(listed[entry])
            if live != there:
                parity.append(
                    Parity(
                        result.server,
                        target,
                        entry,
                        result.target,
                        tuple(sorted(live - there)),
                        tuple(sorted(there - live)),
                    )
                )
    return replace(report, parity=tuple(parity), notes=tuple(notes))


def _run(
    specs: list[ProbeSpec],
    failed: dict[int, ProbeResult],
    *,
    timeout: float,
    concurrency: int,
    on_done: Callable[[ProbeResult], None] | None,
) -> ProbeReport:
    """Probe ``specs`` and merge the results with those decided before, in their order."""
    results = iter(
        probe_all(specs, timeout=timeout, concurrency=concurrency, redact=redact, on_done=on_done)
    )
    total = len(specs) + len(failed)
    return ProbeReport(tuple(failed[i] if i in failed else next(results) for i in range(total)))


def held(state: DesiredState, report: RunReport, servers: Sequence[str] = ()) -> dict[str, bool]:
    """The servers a pass left in place somewhere (placed, enabled, not failed), each with
    whether it is required: required on a required target where it is required."""
    out: dict[str, bool] = {}
    for t in report.targets:
        if t.name not in state.targets or (t.error is not None and not t.failed):
            continue  # a target that failed as a whole holds nothing we know of
        failed = {c.server for c in t.changes if c.entry in t.failed}
        optional = state.targets[t.name].optional
        for name, placement in state.placements(t.name).items():
            if servers and name not in servers:
                continue
            if name in failed or not state.servers[name].enabled:
                continue
            out[name] = out.get(name, False) or (placement.required and not optional)
    return out


def probe_pass(
    engine: Engine,
    report: RunReport,
    servers: Sequence[str] = (),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_done: Callable[[ProbeResult], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> tuple[RunReport, ProbeReport]:
    """``reconcile --probe``: after an applying pass, probe each server it holds (its
    desired definition, once however many targets carry it) and add the failures to the
    pass's ``degraded`` list, where a required one makes exit 3. Never after a dry run."""
    if report.dry_run:
        raise UsageError("--probe runs servers: it is never done in a dry run")
    state = engine.load()
    resolver = engine.secret_resolver(state)
    specs: list[ProbeSpec] = []
    failed: dict[int, ProbeResult] = {}
    for name, required in held(state, report, servers).items():
        _add(specs, failed, name, None, from_server(state.servers[name]), required, resolver)
    if on_total is not None:
        on_total(len(specs) + len(failed))
    probed = _run(specs, failed, timeout=timeout, concurrency=concurrency, on_done=on_done)
    inventory = toolgov.inventory_of(probed.results)
    if inventory:
        engine.store.save_tool_inventory(inventory)
    extra = tuple(as_degraded(r) for r in probed.degraded)
    report = replace(report, probed=report.probed + extra)
    status = engine.store.read_status()
    if status is not None:  # the pass's status file: with what the probe found
        document = report.to_json()
        status.update(exit_code=document["exit_code"], degraded=document["degraded"])
        engine.store.write_status(redact_data(status))
    return report, probed


def as_degraded(result: ProbeResult) -> Degraded:
    """A failed probe as an entry of a pass's ``degraded`` list."""
    return Degraded(
        server=result.server,
        target=result.target,
        phase=result.phase.value if result.phase is not None else None,
        required=result.required,
        error=result.error,
        recoverable=result.recoverable,
        context=result.context.to_json(),
    )


def _add(
    specs: list[ProbeSpec],
    failed: dict[int, ProbeResult],
    server: str,
    target: str | None,
    essence: Essence,
    required: bool,
    resolver: SecretResolver,
) -> None:
    """One spec with the references of ``essence`` resolved, or a spawn failure if they
    cannot be (the message names the reference, never a value)."""
    try:
        done = render_essence(essence, resolver, keep_env=False)
    except SecretError as e:
        failed[len(specs) + len(failed)] = ProbeResult(
            server=server,
            target=target,
            ok=False,
            transport=str(essence.get("transport", "stdio")),
            required=required,
            phase=Phase.SPAWN,
            error=redact(str(e)),
            recoverable=e.recoverable,
        )
        return
    resolved = done.essence
    specs.append(
        ProbeSpec(
            server=server,
            transport=resolved["transport"],
            command=resolved.get("command"),
            args=tuple(resolved.get("args", ())),
            env=_strings(resolved.get("env")),
            cwd=resolved.get("cwd"),
            url=resolved.get("url"),
            headers=_strings(resolved.get("headers")),
            target=target,
            required=required,
        )
    )


def _strings(value: Any) -> Mapping[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def _not_there(server: str, target: str, required: bool) -> ProbeResult:
    return ProbeResult(
        server=server,
        target=target,
        ok=False,
        transport="-",
        required=required,
        phase=Phase.SPAWN,
        error=f"target '{target}' holds no entry for '{server}' (run `reconcile` to sync it)",
        recoverable=False,
    )


def render_text(report: ProbeReport) -> str:
    """The human table (server, transport, status, protocol, tools, latency), then each
    failure with its phase and context."""
    rows = [("SERVER", "TRANSPORT", "STATUS", "PROTOCOL", "TOOLS", "RO/MUT/DES", "LATENCY")]
    for r in report.results:
        name = r.server if r.target is None else f"{r.server} @ {r.target}"
        transport = r.transport + (" (deprecated)" if r.context.deprecated else "")
        tools = str(len(r.tools)) if r.ok else "-"
        classes = "/".join(str(n) for n in r.tool_classes().values()) if r.ok else "-"
        latency = f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-"
        rows.append((name, transport, r.status, r.protocol_version or "-", tools, classes, latency))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for r in report.degraded:
        level = "error" if r.required else "warning"
        where = f" on {r.target}" if r.target else ""
        phase = r.phase.value if r.phase is not None else "probe"
        lines.append(f"{level}: {r.server}{where}: {phase} failed: {r.error}")
        context = r.context
        if context.command:
            lines.append(f"  command: {context.command}")
        if context.exit_status is not None:
            lines.append(f"  exit status: {context.exit_status}")
        if context.http_status is not None:
            lines.append(f"  http status: {context.http_status}")
        if context.unsupported:
            lines.append(f"  unsupported: {context.unsupported}")
        if context.stderr_tail:
            lines += [f"  stderr: {line}" for line in context.stderr_tail.splitlines()[-5:]]
    for p in report.parity:
        where = f" (live entry of {p.probed})" if p.probed else ""
        lines.append(f"drift: {p.server}{where}: tools differ from what {p.target} lists")
        if p.missing:
            lines.append(f"  on the server, not listed by {p.target}: {', '.join(p.missing)}")
        if p.stale:
            lines.append(f"  listed by {p.target}, gone from the server: {', '.join(p.stale)}")
        lines.append(f"  fix: {REREGISTER}")
    lines += _surface_lines(report.surface)
    lines += [f"note: {note}" for note in report.notes]
    failed = sum(1 for r in report.degraded if r.required)
    warned = len(report.degraded) - failed
    up = len(report.results) - len(report.degraded)
    lines.append(
        f"{up} up, {failed} required failed, {warned} optional failed"
        f" of {len(report.results)} server{'s' if len(report.results) != 1 else ''}"
    )
    return "\n".join(lines)


def _surface_lines(surface: Surface | None) -> list[str]:
    if surface is None:
        return []
    lines = [f"drift: {d.describe()}" for d in surface.drift]
    if surface.drift:
        lines.append("  fix: review the change, then `reconcile probe --lock --server SERVER`")
    if surface.unlocked:
        lines.append(
            f"note: no tool lock entry for {', '.join(surface.unlocked)}"
            " (`reconcile probe --lock` reviews and records it)"
        )
    done = surface.lock
    if done is not None:
        if done.sha is None:
            lines.append("lock: the tool lock is up to date")
        else:
            lines.append(
                f"lock: {len(done.accepted)} tool change(s) of {', '.join(done.servers)}"
                f" accepted in commit {done.sha[:10]}"
            )
            lines += [f"  {d.server}/{d.tool}: {d.change.value}" for d in done.accepted[:20]]
            if len(done.accepted) > 20:
                lines.append(f"  ... and {len(done.accepted) - 20} more")
    return lines


def progress_wanted(*, json: bool, quiet: bool, stdout: TextIO | None = None) -> bool:
    """Live progress only for a person watching: stdout is a terminal, and neither
    ``--json`` nor ``-q`` was asked."""
    stream = sys.stdout if stdout is None else stdout
    return not json and not quiet and stream.isatty()


class LiveProgress:
    """A live progress bar (rich, on stderr) while servers are probed; a no-op when not
    ``enabled``. Called with each result as it finishes (``on_done``); ``start`` sets the
    total when it is known. Server names are data: rich's console markup is off."""

    def __init__(self, enabled: bool, total: int | None = None) -> None:
        self.enabled = enabled
        self.total = total
        self.done = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> LiveProgress:
        if self.enabled:
            from rich.console import Console  # heavy: only on a terminal
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            console = Console(stderr=True, markup=False, highlight=False, emoji=False)
            self._bar = Progress(
                TextColumn("probing", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[last]}", markup=False),
                console=console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("probe", total=self.total, last="")
        return self

    def start(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def __call__(self, result: ProbeResult) -> None:
        self.done += 1
        if self._bar is not None:
            where = f" @ {result.target}" if result.target else ""
            self._bar.update(self._task, advance=1, last=f"{result.server}{where} {result.status}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def count(state: DesiredState, servers: Sequence[str], targets: Sequence[str]) -> int:
    """How many probes ``probe`` will run, for the progress line."""
    wanted = list(servers) or list(state.servers)
    if not targets:
        return len(wanted)
    return sum(len([s for s in state.placements(t) if s in wanted]) for t in targets)
