"""`reconcile status`: the server x target matrix from a fresh observation.

A module of its own so that the pass itself never imports the matrix and daemon-status
rendering (cli/lazy.py loads it when the command runs).
"""

from __future__ import annotations

import json
import sys

import click

from reconciler.app.status import matrix_json, render_matrix
from reconciler.app.watch import read_daemon_status, render_daemon_status
from reconciler.cli.common import (
    current_settings,
    global_options,
    guarded,
    make_engine,
    target_option,
)
from reconciler.engine import PassOptions


@click.command()
@target_option("Only this target (repeatable).")
@global_options
def status(target_names: tuple[str, ...]) -> None:
    """Server x target matrix from a fresh observation (writes nothing).

    Each cell is one of: in_sync, drift, missing, disabled, error, or '.' where the
    server is not placed. Also shows the result of the last applying pass, if any.
    """

    engine = make_engine()
    state = guarded(engine.load)
    report = guarded(lambda: engine.run(PassOptions(dry_run=True, targets=target_names), state))
    last = engine.store.read_status()

    daemon = read_daemon_status(engine.store.root)
    if current_settings().json:
        data = {**matrix_json(state, report, last), "daemon": daemon}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(render_matrix(state, report, last))
        if daemon is not None:
            click.echo(render_daemon_status(daemon))
    sys.exit(int(report.exit_code))
