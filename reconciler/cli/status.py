"""`reconcile status`: the server x target matrix from a fresh observation.

A module of its own so that the pass itself never imports the matrix and daemon-status
rendering (cli/lazy.py loads it when the command runs).
"""

from __future__ import annotations

import json
import sys
import time

import click

from reconciler.app import markdown
from reconciler.app.status import PassWaiter, live_matrix, matrix_json, render_matrix
from reconciler.app.watch import read_daemon_status, render_daemon_status
from reconciler.cli.common import (
    current_settings,
    fail,
    format_option,
    global_options,
    guarded,
    make_engine,
    markdown_guarded,
    setup_logging_from_settings,
    target_option,
)
from reconciler.core.errors import ReconcilerError
from reconciler.core.report import ExitCode
from reconciler.engine import Engine, PassOptions


@click.command()
@target_option("Only this target (repeatable).")
@format_option
@click.option(
    "--watch",
    "keep_watching",
    is_flag=True,
    help="Keep the matrix on screen and redraw it on every pass of the daemon (Ctrl-C stops).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    metavar="S",
    help="With --watch: redraw at least this often (when no daemon records passes).",
)
@global_options
def status(
    target_names: tuple[str, ...], output_format: str, keep_watching: bool, interval: float
) -> None:
    """Server x target matrix from a fresh observation (writes nothing).

    Each cell is one of: in_sync, drift, missing, disabled, error, or '.' where the
    server is not placed. Also shows each server's tools by class from the last probe,
    and the result of the last applying pass, if any.
    """

    engine = make_engine()
    if keep_watching:
        if output_format != "text" or current_settings().json:
            fail(ExitCode.INVALID, "error: status --watch draws text only")
        setup_logging_from_settings()
        live_matrix(lambda: _matrix_frame(engine, target_names), _pass_waiter(engine, interval))
        sys.exit(0)
    if output_format == "markdown":
        state = guarded(lambda: markdown_guarded(engine.load))
    else:
        state = guarded(engine.load)
    report = guarded(lambda: engine.run(PassOptions(dry_run=True, targets=target_names), state))
    last = engine.store.read_status()
    tools = engine.store.tool_inventory()

    daemon = read_daemon_status(engine.store.root)
    if output_format == "markdown":
        cells = matrix_json(state, report, last, tools)["servers"]
        text = markdown.render_plan(report, title="mcp-reconciler status", matrix=cells)
        click.echo(text, nl=False)
    elif current_settings().json or output_format == "json":
        data = {**matrix_json(state, report, last, tools), "daemon": daemon}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(render_matrix(state, report, last, tools))
        if daemon is not None:
            click.echo(render_daemon_status(daemon))
    sys.exit(int(report.exit_code))


def _matrix_frame(engine: Engine, target_names: tuple[str, ...]) -> str:
    """One drawing of ``status --watch``: when, the daemon's last pass, then the matrix now
    (in this order: a matrix taller than the terminal is cut at the bottom)."""
    lines = [f"{time.strftime('%H:%M:%S')}: redrawn on every pass of the daemon; Ctrl-C stops"]
    daemon = read_daemon_status(engine.store.root)
    if daemon is not None:
        lines.append(render_daemon_status(daemon))
    try:
        state = engine.load()
        report = engine.run(PassOptions(dry_run=True, targets=target_names), state)
        lines.append(render_matrix(state, report, engine.store.read_status()))
    except ReconcilerError as e:
        lines.append(f"error: {e}")
    return "\n".join(lines)


def _pass_waiter(engine: Engine, interval: float) -> PassWaiter:
    return PassWaiter(lambda: read_daemon_status(engine.store.root), interval)
