"""The server x target matrix of ``reconcile status``, built from a dry-run report.

One cell per (server, target): where each copy stands right now. The last applying pass
(from the status file) is shown beside it, so a glance tells both "now" and "last run".

Below it, the parity view: for every server placed both on a local client and on an
MCPJungle registry, whether the two live copies agree, field by field. Both are essences
already (sealed: secrets compare by fingerprint), so the only work is masking what one side
cannot express (Claude Desktop has no ``enabled``, MCPJungle no ``cwd``) or could not show
(MCPJungle without admin rights has no headers), and reading a client's ``mcp-remote``
bridge back as the URL it reaches.

``status --watch`` keeps the matrix on screen (rich's Live display, imported only then) and
redraws it each time the daemon records a pass.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, TextIO

from reconciler.core.compare import FieldChange, diff
from reconciler.core.enforce import is_governance_note
from reconciler.core.essence import Essence, display, normalize_url
from reconciler.core.plan import Action
from reconciler.core.report import RunReport, TargetReport
from reconciler.core.tools import ServerTools
from reconciler.store.desired import DesiredState
from reconciler.targets import CAPABILITIES, MCPJUNGLE

NOT_PLACED = "."


def cell(
    state: DesiredState,
    target: TargetReport,
    server: str,
    placed: Mapping[str, Collection[str]] | None = None,
) -> str:
    """``placed``: each target's placements, computed once per matrix (``placements_of``)."""
    mirror = getattr(state.targets.get(target.name), "mirror", None)
    if mirror is not None or server not in state.servers:
        return mirror_cell(target, server, mirror)
    names = placed.get(target.name) if placed is not None else None
    if server not in (names if names is not None else state.placements(target.name)):
        return NOT_PLACED
    if target.error is not None:
        return "error"
    for change in target.changes:
        if change.server == server:
            if change.action is Action.CREATE:
                return "missing"
            if change.action is Action.DISABLE and not change.fields[1:]:
                return "disabled" if change.origin.value != "live" else "drift"
            return "drift"
    if any(a.server == server for a in target.allowed):
        return "allowed"  # differs, covered by a divergence record
    if server in target.in_sync:
        return "in_sync"
    return "disabled"  # placed, disabled, and absent from a kind without a switch


def placements_of(state: DesiredState, report: RunReport) -> dict[str, frozenset[str]]:
    """The servers each server target of the report carries: one expansion per target, not
    one per cell (globs make it linear in the servers)."""
    return {
        t.name: frozenset(state.placements(t.name))
        for t in report.targets
        if t.name in state.targets and getattr(state.targets[t.name], "mirror", None) is None
    }


def mirror_cell(target: TargetReport, row: str, mirror: str | None) -> str:
    """A mirror's row: its own copies' targets in sync, drifted, allowed or failed."""
    if mirror != row:
        return NOT_PLACED
    if target.error is not None:
        return "error"
    if target.pending:
        return "drift"
    return "allowed" if target.allowed else "in_sync"


def mirror_rows(state: DesiredState) -> list[str]:
    """Mirrors get rows of their own below the servers (a mirror's copies are its targets)."""
    return [m for m in state.mirrors if m not in state.servers]


@dataclass(frozen=True)
class Parity:
    """One server's local copy against its MCPJungle copy.

    ``state``: ``same``, ``differs``, ``missing`` (absent on one side) or ``unknown`` (a side
    failed to observe). ``fields`` go from the local value (``old``) to the MCPJungle one
    (``new``); ``masked`` are the fields compared on neither side.
    """

    server: str
    local: str
    jungle: str
    state: str
    fields: tuple[FieldChange, ...] = ()
    masked: tuple[str, ...] = ()
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "local": self.local,
            "mcpjungle": self.jungle,
            "state": self.state,
            "differences": [
                {"path": f.path, "local": display(f.old), "mcpjungle": display(f.new)}
                for f in self.fields
            ],
            "masked": list(self.masked),
            "reason": self.reason,
        }


def _kind(target: TargetReport) -> str | None:
    """The report's kind when a family declares it (None for anything else)."""
    return target.kind if target.kind in CAPABILITIES else None


def _bridged_url(essence: Essence) -> str | None:
    """The URL a ``npx -y mcp-remote URL`` bridge reaches, or None if it is not one."""
    args = essence.get("args") or []
    if essence.get("command") == "npx" and args[:2] == ["-y", "mcp-remote"] and len(args) > 2:
        return normalize_url(str(args[2]))
    return None


def parity(state: DesiredState, report: RunReport) -> list[Parity]:
    """Every (server, local client, MCPJungle) triple where the server is placed on both."""
    jungles = [t for t in report.targets if _kind(t) == MCPJUNGLE]
    clients = [t for t in report.targets if _kind(t) not in (None, MCPJUNGLE)]
    rows = []
    for server_name, server in state.servers.items():
        names = (server_name, *server.aliases)
        for jungle in jungles:
            if server_name not in state.placements(jungle.name):
                continue
            for local in clients:
                if server_name not in state.placements(local.name):
                    continue
                rows.append(_compare(server_name, names, local, jungle))
    return rows


def _compare(
    server: str, names: tuple[str, ...], local: TargetReport, jungle: TargetReport
) -> Parity:
    row = Parity(server, local.name, jungle.name, "unknown")
    failed = next((t for t in (local, jungle) if t.error is not None), None)
    if failed is not None:
        return replace(row, reason=f"{failed.name} could not be observed")
    mine = next((local.live[n] for n in names if n in local.live), None)
    theirs = next((jungle.live[n] for n in names if n in jungle.live), None)
    if mine is None or theirs is None:
        absent = " and ".join(t.name for t, e in ((local, mine), (jungle, theirs)) if e is None)
        return replace(row, state="missing", reason=f"absent on {absent}")
    ours, gateway = CAPABILITIES[local.kind], CAPABILITIES[MCPJUNGLE]
    common = (ours.fields & gateway.fields) | {"transport"}
    if not (ours.enabled_switch and gateway.enabled_switch):
        common -= {"enabled"}
    common -= local.blind | jungle.blind
    bridged = _bridged_url(mine) if theirs.get("transport") != "stdio" else None
    if bridged is not None:
        # A client that cannot speak http reaches the server through mcp-remote: only the
        # URL can be compared (headers travel as literal arguments there).
        left, right = {"url": bridged}, {"url": theirs.get("url")}
        masked = sorted(set(theirs) - {"url", "transport"})
        reason = f"{local.name} reaches it through an mcp-remote bridge: only the url compared"
    else:
        left = {k: v for k, v in mine.items() if k in common}
        right = {k: v for k, v in theirs.items() if k in common}
        masked = sorted((set(mine) | set(theirs) | local.blind | jungle.blind) - common)
        reason = ""
    fields = diff(left, right)
    return Parity(
        server,
        local.name,
        jungle.name,
        "differs" if fields else "same",
        fields,
        tuple(masked),
        reason,
    )


def tool_counts(
    state: DesiredState, inventory: Mapping[str, ServerTools] | None
) -> dict[str, dict[str, Any] | None]:
    """Per declared server, its tools by class from the last probe (None: never probed).
    Status never probes: it reads what ``reconcile probe`` kept."""
    found = inventory or {}
    return {
        server: None
        if server not in found
        else {"counts": found[server].counts(), "probed_at": found[server].probed_at}
        for server in state.servers
    }


def matrix_json(
    state: DesiredState,
    report: RunReport,
    last: dict[str, Any] | None,
    tools: Mapping[str, ServerTools] | None = None,
) -> dict[str, Any]:
    placed = placements_of(state, report)
    return {
        "schema": 1,
        "exit_code": int(report.exit_code),
        "servers": {
            server: {t.name: cell(state, t, server, placed) for t in report.targets}
            for server in state.servers
        },
        "mirrors": {
            m: {t.name: cell(state, t, m, placed) for t in report.targets}
            for m in mirror_rows(state)
        },
        "unmanaged": {t.name: list(t.unmanaged) for t in report.targets if t.unmanaged},
        "governance": {t.name: list(governance(t)) for t in report.targets if governance(t)},
        "targets": report.to_json()["targets"],
        "degraded": report.to_json()["degraded"],
        "parity": [p.to_json() for p in parity(state, report)],
        "tools": tool_counts(state, tools),
        "last_pass": None
        if last is None
        else {
            "exit_code": last.get("exit_code"),
            "finished": last.get("finished"),
            "duration_s": last.get("duration_s"),
        },
    }


def governance(target: TargetReport) -> tuple[str, ...]:
    """What the target's pass said about tool policies: not enforceable, no inventory."""
    return tuple(n for n in target.notes if is_governance_note(n))


def render_tools(state: DesiredState, tools: Mapping[str, ServerTools] | None) -> list[str]:
    counts = tool_counts(state, tools)
    lines = ["tools by class (last probe):"] if counts else []
    for server, found in counts.items():
        if found is None:
            lines.append(f"  {server}: not probed yet (`reconcile probe`)")
            continue
        text = ", ".join(f"{n} {c}" for c, n in found["counts"].items())
        lines.append(f"  {server}: {text} (probed {found['probed_at'] or '?'})")
    return lines


def render_matrix(
    state: DesiredState,
    report: RunReport,
    last: dict[str, Any] | None,
    tools: Mapping[str, ServerTools] | None = None,
) -> str:
    names = [t.name for t in report.targets]
    rows = [["server", *names]]
    placed = placements_of(state, report)
    for server in [*state.servers, *mirror_rows(state)]:
        rows.append([server, *(cell(state, t, server, placed) for t in report.targets)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for t in report.targets:
        if t.unmanaged:
            lines.append(f"unmanaged on {t.name}: {', '.join(t.unmanaged)}")
        if t.error:
            lines.append(f"error on {t.name}: {t.error}")
        for value in t.resolved:
            lines.append(f"resolved into {t.name}: {value.note}")
        for note in governance(t):
            lines.append(f"governance on {t.name}: {note}")
    copies = parity(state, report)
    if copies:
        lines.append("parity of local and MCPJungle copies:")
    for p in copies:
        sign = {"same": "=", "differs": "≠"}.get(p.state, "?")
        line = f"  {p.server}: {p.local} {sign} {p.jungle}"
        if p.state in ("missing", "unknown"):
            line += f" ({p.state}: {p.reason})"
        elif p.reason:
            line += f" ({p.reason})"
        lines.append(line)
        for f in p.fields:
            lines.append(
                f"      ~ {f.path}: {display(f.old)} ({p.local}) vs {display(f.new)} ({p.jungle})"
            )
        if p.masked and p.state == "differs":
            lines.append(f"      not compared: {', '.join(p.masked)}")
    lines += render_tools(state, tools)
    if last is not None:
        finished = last.get("finished")
        when = (
            datetime.datetime.fromtimestamp(finished, datetime.UTC).isoformat(timespec="seconds")
            if isinstance(finished, (int, float))
            else "?"
        )
        lines.append(f"last applying pass: {when}, exit code {last.get('exit_code')}")
    else:
        lines.append("last applying pass: none recorded")
    return "\n".join(lines)


# -- status --watch: the matrix redrawn on every pass -------------------------------------


class PassWaiter:
    """Waits until the daemon records a new pass or probe (its status file), or at most
    ``interval`` seconds (no daemon running: the matrix is refreshed on a timer instead).

    The status file is read every ``poll`` seconds: a cheap stat-sized read, and the only
    signal a separate process has of the daemon's passes.
    """

    def __init__(
        self,
        read: Callable[[], Mapping[str, Any] | None],
        interval: float,
        *,
        poll: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._read, self.interval, self.poll = read, interval, poll
        self._clock, self._sleep = clock, sleep

    def _key(self) -> tuple[Any, ...]:
        data = self._read() or {}
        probe = data.get("last_probe") or {}
        return data.get("passes"), data.get("running"), probe.get("finished")

    def __call__(self) -> bool:
        """True when a pass landed, False when the interval ran out."""
        seen = self._key()
        deadline = self._clock() + self.interval
        while self._clock() < deadline:
            self._sleep(min(self.poll, max(0.0, deadline - self._clock())))
            if self._key() != seen:
                return True
        return False


def live_matrix(
    render: Callable[[], str],
    wait: Callable[[], bool],
    *,
    file: TextIO | None = None,
    frames: int | None = None,
) -> int:
    """Show ``render()`` in rich's Live display and redraw it after every ``wait()``, until
    Ctrl-C (or ``frames`` drawings); returns how many were drawn."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(file=file) if file is not None else Console()
    drawn = 0
    try:
        with Live(Text(render()), console=console, auto_refresh=False) as live:
            drawn = 1
            while frames is None or drawn < frames:
                wait()
                live.update(Text(render()), refresh=True)
                drawn += 1
    except KeyboardInterrupt:
        pass
    return drawn
