"""The server x target matrix of ``reconcile status``, built from a dry-run report.

One cell per (server, target): where each copy stands right now. The last applying pass
(from the status file) is shown beside it, so a glance tells both "now" and "last run".
"""

from __future__ import annotations

from typing import Any

from reconciler.desired import DesiredState
from reconciler.plan import Action
from reconciler.report import RunReport, TargetReport

NOT_PLACED = "."


def cell(state: DesiredState, target: TargetReport, server: str) -> str:
    if server not in state.placements(target.name):
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


def matrix_json(
    state: DesiredState, report: RunReport, last: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "schema": 1,
        "exit_code": int(report.exit_code),
        "servers": {
            server: {t.name: cell(state, t, server) for t in report.targets}
            for server in state.servers
        },
        "unmanaged": {t.name: list(t.unmanaged) for t in report.targets if t.unmanaged},
        "targets": report.to_json()["targets"],
        "degraded": report.to_json()["degraded"],
        "last_pass": None
        if last is None
        else {
            "exit_code": last.get("exit_code"),
            "finished": last.get("finished"),
            "duration_s": last.get("duration_s"),
        },
    }


def render_matrix(state: DesiredState, report: RunReport, last: dict[str, Any] | None) -> str:
    names = [t.name for t in report.targets]
    rows = [["server", *names]]
    for server in state.servers:
        rows.append([server, *(cell(state, t, server) for t in report.targets)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for t in report.targets:
        if t.unmanaged:
            lines.append(f"unmanaged on {t.name}: {', '.join(t.unmanaged)}")
        if t.error:
            lines.append(f"error on {t.name}: {t.error}")
    if last is not None:
        import datetime

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
