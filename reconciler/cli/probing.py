"""`reconcile probe`: connect to each server as a client would (health, protocol, tools).

Loaded only when the command runs (cli/lazy.py), so a pass never pays for the probe's
rendering and progress display.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from reconciler.app import probe as probes
from reconciler.cli.common import (
    current_settings,
    global_options,
    guarded,
    make_engine,
    server_option,
    target_option,
)
from reconciler.core.report import RunReport
from reconciler.engine import PassOptions


@click.command()
@server_option("Only this server (repeatable).")
@target_option("Probe the live entries this target holds instead of desired state (repeatable).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds per server: spawn or connect, handshake and the whole tool listing.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Servers probed at once.",
)
@click.option(
    "--lock",
    is_flag=True,
    help="Accept the tool surface found into desired/tools.lock.yaml, as a commit "
    "(with --server: only those servers' surface).",
)
@global_options
def probe(
    server_names: tuple[str, ...],
    target_names: tuple[str, ...],
    timeout: float,
    concurrency: int,
    lock: bool,
) -> None:
    """Connect to each server as a client would: health, protocol, tools and their classes.

    Starts each stdio server (declared env plus a minimal base environment, secrets
    resolved) or connects to it over streamable HTTP or SSE (deprecated: flagged), lists
    every tool, counts prompts and resources, and closes. A failing required server exits
    3; an optional one is a warning (exit 0). The tools found are kept in the state
    directory and held to the tool lock: a tool added, removed or changed upstream exits 1.
    Only ``--lock`` writes to desired state.
    """
    settings = current_settings()

    def run() -> probes.ProbeReport:
        engine = make_engine()
        state = engine.load()
        total = probes.count(state, server_names, target_names)
        shown = probes.progress_wanted(json=settings.json, quiet=settings.verbosity < 0)
        with probes.LiveProgress(shown and total > 1, total) as progress:
            return probes.probe(
                engine,
                server_names,
                target_names,
                timeout=timeout,
                concurrency=concurrency,
                on_done=progress,
                lock=lock,
            )

    report = guarded(run)
    if settings.json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(probes.render_text(report))
    sys.exit(int(report.exit_code))


def pass_then_probe(
    dry_run: bool, target_names: tuple[str, ...], server_names: tuple[str, ...]
) -> tuple[Callable[[], RunReport], list[tuple[dict[str, Any], str]]]:
    """``reconcile --probe``: the pass, then a probe of each server it holds. Returns the
    action for the root command's ``_run`` and the list it fills with what each server
    answered (its JSON value and its text), once the action ran."""
    probed: list[tuple[dict[str, Any], str]] = []

    def run_and_probe() -> RunReport:
        engine = make_engine()
        report = engine.run(PassOptions(dry_run, target_names, server_names))
        settings = current_settings()
        wanted = probes.progress_wanted(json=settings.json, quiet=settings.verbosity < 0)
        with probes.LiveProgress(wanted) as progress:
            report, found = probes.probe_pass(
                engine, report, server_names, on_done=progress, on_total=progress.start
            )
        servers = {"servers": [r.to_json() for r in found.results]}
        probed.append((servers, probes.render_text(found)))
        return report

    return run_and_probe, probed
