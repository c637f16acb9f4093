"""`reconcile watch` (the daemon) and `reconcile service` (running it at login).

Loaded only when one of them runs (cli/lazy.py): a pass never imports the daemon, its file
watcher, its metrics server or the service templates.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from reconciler.app import service as svc
from reconciler.app.service import ServiceSpec
from reconciler.app.watch import UiOptions, WatchOptions, serve, setup_logging
from reconciler.cli.common import (
    F,
    current_settings,
    fail,
    global_options,
    guarded,
    make_engine,
)
from reconciler.core.errors import ReconcilerError, UsageError
from reconciler.core.report import ExitCode, plural
from reconciler.engine import Engine
from reconciler.store.state import default_state_dir

# -- the daemon (issue 7) ----------------------------------------------------------------------


def _watch_options(f: F) -> F:
    options = [
        click.option(
            "--interval",
            type=click.FloatRange(min=1),
            default=300,
            show_default=True,
            metavar="S",
            help="Periodic resync of every target, seconds (jittered by 10%).",
        ),
        click.option(
            "--debounce",
            type=click.IntRange(min=0),
            default=200,
            show_default=True,
            metavar="MS",
            help="Quiet time that ends a burst of file changes, milliseconds.",
        ),
        click.option(
            "--pull",
            is_flag=True,
            help="At start and each resync, fetch the desired repository and fast-forward it.",
        ),
        click.option(
            "--metrics",
            "metrics_addr",
            metavar="ADDR",
            help="Serve /metrics and /healthz at PORT or HOST:PORT (PORT alone: loopback).",
        ),
        click.option(
            "--ui",
            "ui_addr",
            metavar="ADDR",
            help="Serve the read-only status page and /api/status at PORT or HOST:PORT "
            "(PORT alone: loopback; the same server as --metrics at the same address).",
        ),
        click.option(
            "--ui-allow-remote",
            is_flag=True,
            help="Allow --ui on a non-loopback address (then --ui-token is required).",
        ),
        click.option(
            "--ui-token",
            metavar="REF",
            help="A reference (${env:NAME}, ${file:PATH}, a resolver) to the token the page "
            "asks for: bearer, or basic auth with the token as password.",
        ),
        click.option(
            "--flap-limit",
            type=click.IntRange(min=0),
            default=6,
            show_default=True,
            metavar="N",
            help="Back off a target whose live edits were reverted N times in a minute "
            "(something keeps fighting the sync); 0: never.",
        ),
        click.option(
            "--probe-interval",
            type=click.FloatRange(min=1),
            default=None,
            metavar="S",
            help="Probe every declared server over MCP every S seconds and export its health "
            "as metrics (off by default: probing runs the servers' commands).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="Log lines for people, or JSON lines for machines.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@_watch_options
@global_options
def watch(
    interval: float,
    debounce: int,
    pull: bool,
    metrics_addr: str | None,
    ui_addr: str | None,
    ui_allow_remote: bool,
    ui_token: str | None,
    flap_limit: int,
    probe_interval: float | None,
    log_format: str,
) -> None:
    """Keep every target converged: reconcile on each saved file, and resync periodically.

    Watches the desired directory and the folder of every target file. Invalid desired
    state is logged and nothing is touched until it is fixed. SIGINT/SIGTERM finish the
    current pass and exit 0. One daemon per state directory (a second one exits 2).
    """
    setup_logging(log_format, current_settings().verbosity)
    options = WatchOptions(
        interval=interval,
        debounce=debounce / 1000,
        pull=pull,
        flap_limit=flap_limit,
        probe_interval=probe_interval,
    )
    page = None if ui_addr is None else UiOptions(ui_addr, ui_allow_remote, ui_token)
    if page is None and (ui_allow_remote or ui_token):
        fail(ExitCode.INVALID, "error: --ui-allow-remote and --ui-token need --ui ADDR")
    sys.exit(guarded(lambda: serve(make_engine(), options, metrics_addr=metrics_addr, page=page)))


@click.group()
def service() -> None:
    """Run `reconcile watch` at login: a systemd user unit (Linux) or launchd agent (macOS)."""


def _service_spec(
    interval: float,
    debounce: int,
    pull: bool,
    metrics_addr: str | None,
    ui_addr: str | None,
    ui_allow_remote: bool,
    ui_token: str | None,
    flap_limit: int,
    probe_interval: float | None,
    log_format: str,
) -> Any:

    settings = current_settings()
    args = ["--interval", f"{interval:g}", "--debounce", str(debounce)]
    if pull:
        args.append("--pull")
    if metrics_addr:
        args += ["--metrics", metrics_addr]
    if ui_addr:
        args += ["--ui", ui_addr]
    if ui_allow_remote:
        args.append("--ui-allow-remote")
    if ui_token:
        args += ["--ui-token", ui_token]
    if flap_limit != 6:
        args += ["--flap-limit", str(flap_limit)]
    if probe_interval is not None:
        args += ["--probe-interval", f"{probe_interval:g}"]
    if log_format != "text":
        args += ["--log-format", log_format]
    return ServiceSpec(
        desired=settings.desired.absolute(),
        state_dir=(settings.state_dir or default_state_dir()).absolute(),
        watch_args=tuple(args),
        env_file=svc.env_file_path(sys.platform, Path.home(), os.environ),
    )


def _referenced_variables() -> list[str]:
    """The ${env:NAME} variables desired state references (none if it does not load)."""
    try:
        state = Engine(current_settings().desired, Path(os.devnull)).load()
    except ReconcilerError:
        return []
    data = [
        *(asdict(s) for s in state.servers.values()),
        *(asdict(t) for t in state.targets.values()),
        *(asdict(r) for r in state.secrets.values()),
    ]
    return svc.referenced_variables(data)


@service.command("print")
@_watch_options
@global_options
def service_print(**watch_args: Any) -> None:
    """Print the unit (or agent) that `install` would write, then where its files go.

    The unit goes to stdout as it would be written; the unit's path and its environment
    file's (the variables desired state references, and PATH; mode 0600) go to stderr.
    """
    try:
        spec = _service_spec(**watch_args)
        text = svc.render(spec, sys.platform, Path.home())
        path = svc.unit_path(sys.platform, Path.home(), os.environ)
    except UsageError as e:
        fail(ExitCode.INVALID, f"error: {e}")
    click.echo(text, nl=False)
    names = ", ".join(["PATH", *_referenced_variables()])
    click.echo(f"# unit: {path}", err=True)
    click.echo(f"# environment file: {spec.env_file} (0600; {names})", err=True)


@service.command("install")
@_watch_options
@click.option("--enable", is_flag=True, help="Also enable and start it now.")
@global_options
def service_install(enable: bool, **watch_args: Any) -> None:
    """Write the unit (or agent) for this desired and state directory, and its environment file.

    The environment file (next to the unit, mode 0600) holds PATH and the variables that
    desired state references, as this shell has them: export them before installing, or
    edit the file. Values already in the file are kept for variables this shell lacks.
    """
    try:
        spec = _service_spec(**watch_args)
        variables = _referenced_variables()
        path = svc.install(spec, sys.platform, Path.home(), os.environ, variables)
        commands = svc.enable_commands(sys.platform, path)
    except (UsageError, ReconcilerError) as e:
        fail(ExitCode.INVALID, f"error: {e}")
    click.echo(f"wrote {path}")
    missing = [n for n in variables if n not in os.environ]
    counted = plural(len(variables), "referenced variable")
    click.echo(f"wrote {spec.env_file} (0600: PATH and {counted})")
    if missing:
        click.echo(f"warning: not set in this shell; set them in that file: {', '.join(missing)}")
    if enable:
        failures = svc.run_commands(commands)
        for failure in failures:
            click.echo(f"error: {failure}", err=True)
        sys.exit(3 if failures else 0)
    click.echo("start it with:\n  " + "\n  ".join(" ".join(c) for c in commands))


@service.command("uninstall")
@click.option("--disable/--no-disable", default=True, help="Stop and disable it first.")
@global_options
def service_uninstall(disable: bool) -> None:
    """Stop (unless --no-disable) and remove the unit (or agent)."""
    try:
        path = svc.unit_path(sys.platform, Path.home(), os.environ)
    except UsageError as e:
        fail(ExitCode.INVALID, f"error: {e}")
    if not path.exists():
        click.echo(f"nothing to remove: {path} does not exist")
        sys.exit(0)
    if disable:
        for failure in svc.run_commands(svc.disable_commands(sys.platform, path)):
            click.echo(f"warning: {failure}", err=True)
    svc.uninstall(sys.platform, Path.home(), os.environ)
    click.echo(f"removed {path}")
