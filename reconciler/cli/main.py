"""The command line: parse arguments, call the engine, render, exit with the documented code.

Thin on purpose: no reconciling logic lives here, and nothing below this module imports
click. Global options (``--desired``, ``--state-dir``, ``--json``, ``-q``/``-v``,
``--no-color``) are accepted before or after a subcommand, as DESIGN section 7 promises.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from click.shell_completion import get_completion_class

from reconciler.app import audit as audits
from reconciler.app import discover as discovery
from reconciler.app import probe as probes
from reconciler.app import service as svc
from reconciler.app.service import ServiceSpec
from reconciler.app.status import matrix_json, render_matrix
from reconciler.app.watch import (
    WatchOptions,
    read_daemon_status,
    render_daemon_status,
    serve,
    setup_logging,
)
from reconciler.cli.common import (
    EXIT_CODES_HELP,
    F,
    current_settings,
    fail,
    global_options,
    guarded,
    make_engine,
    server_option,
    style,
    target_option,
)
from reconciler.cli.divergences import register
from reconciler.core.errors import ReconcilerError, UsageError
from reconciler.core.model import json_schema
from reconciler.core.report import ExitCode, RunReport, plural, render_text
from reconciler.engine import Engine, PassOptions
from reconciler.secrets import wrap_streams
from reconciler.store import toollock
from reconciler.store.state import default_state_dir
from reconciler.targets import DECLARABLE


def _run(
    action: Callable[[], RunReport], probed: list[probes.ProbeReport] | None = None
) -> NoReturn:
    started = time.monotonic()
    report = guarded(action)
    took = time.monotonic() - started
    settings = current_settings()
    if settings.json:
        data = report.to_json()
        if probed:  # reconcile --probe: what each server answered
            data["probe"] = {"servers": [r.to_json() for r in probed[0].results]}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        verbosity = settings.verbosity
        if probed and (verbosity >= 0 or report.exit_code):
            click.echo(probes.render_text(probed[0]))
        text = render_text(
            report, style(), verbose=verbosity > 0, quiet=verbosity < 0, duration=took
        )
        click.echo(text)
    sys.exit(int(report.exit_code))


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.option("--dry-run", is_flag=True, help="Plan and show; write nothing (not even state).")
@target_option("Only this target (repeatable).")
@server_option("Only this server (repeatable).")
@click.option(
    "--probe",
    "probe_after",
    is_flag=True,
    help="After the pass, probe each server it holds over MCP; a failing required one "
    "exits 3. Never with --dry-run.",
)
@click.version_option(package_name="mcp-reconciler", prog_name="reconcile")
@global_options
@click.pass_context
def main(
    ctx: click.Context,
    dry_run: bool,
    target_names: tuple[str, ...],
    server_names: tuple[str, ...],
    probe_after: bool,
) -> None:
    """Reconcile MCP server configurations with the desired state in git.

    Without a command: one pass over every target. It observes each target, compares it
    with desired/, and applies what differs (or, with --dry-run, only shows it).
    """
    wrap_streams()  # every write to stdout and stderr passes the secret redactor
    if ctx.invoked_subcommand is not None:
        return

    if not probe_after:
        _run(lambda: make_engine().run(PassOptions(dry_run, target_names, server_names)))
    if dry_run:
        fail(ExitCode.INVALID, "error: --probe runs servers, so it is never done in a dry run")
    probed: list[probes.ProbeReport] = []

    def run_and_probe() -> RunReport:
        engine = make_engine()
        report = engine.run(PassOptions(dry_run, target_names, server_names))
        settings = current_settings()
        wanted = probes.progress_wanted(json=settings.json, quiet=settings.verbosity < 0)
        with probes.LiveProgress(wanted) as progress:
            report, found = probes.probe_pass(
                engine, report, server_names, on_done=progress, on_total=progress.start
            )
        probed.append(found)
        return report

    _run(run_and_probe, probed)


@main.command()
@target_option("Only this target (repeatable).")
@global_options
def status(target_names: tuple[str, ...]) -> None:
    """Server x target matrix from a fresh observation (writes nothing).

    Each cell is one of: in_sync, drift, missing, disabled, error, or '.' where the
    server is not placed. Also shows each server's tools by class from the last probe,
    and the result of the last applying pass, if any.
    """

    engine = make_engine()
    state = guarded(engine.load)
    report = guarded(lambda: engine.run(PassOptions(dry_run=True, targets=target_names), state))
    last = engine.store.read_status()
    tools = engine.store.tool_inventory()

    daemon = read_daemon_status(engine.store.root)
    if current_settings().json:
        data = {**matrix_json(state, report, last, tools), "daemon": daemon}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(render_matrix(state, report, last, tools))
        if daemon is not None:
            click.echo(render_daemon_status(daemon))
    sys.exit(int(report.exit_code))


@main.command()
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


@main.command()
@global_options
def validate() -> None:
    """Check desired state only: schema, references, placements, the tool lock. Exit 0 or 2.

    Lists every problem at once, each as file:line:column: message (hint).
    Suited to pre-commit hooks and CI.
    """
    settings = current_settings()
    state = guarded(Engine(settings.desired, Path(os.devnull)).load)
    guarded(lambda: toollock.load(settings.desired))  # a malformed tool lock fails here too
    if settings.json:
        click.echo(json.dumps({"schema": 1, "exit_code": 0, "errors": []}))
    elif settings.verbosity >= 0:
        click.echo(
            f"desired state is valid: {plural(len(state.servers), 'server')}, "
            f"{plural(len(state.targets), 'target')} in {plural(len(state.files), 'file')}"
        )
    sys.exit(0)


@main.command()
@target_option("Only this target, kind, or kind:path that `reconcile discover` lists (repeatable).")
@click.option(
    "--strict",
    is_flag=True,
    help="Also count values mcp-reconciler resolved from references (Claude Desktop...).",
)
@click.option(
    "--declared",
    "declared_only",
    is_flag=True,
    help="Only the declared targets (by default every MCP config on the machine).",
)
@global_options
def audit(target_names: tuple[str, ...], strict: bool, declared_only: bool) -> None:
    """List every inline secret in every MCP config on the machine. Exit 1 if any.

    Covers the declared targets and every client config `reconcile discover` finds (named
    kind:path when no target declares it); --declared keeps to the declared targets.
    Each finding: target, server, field, kind (github-token, bearer-token, url-query-secret,
    high-entropy...) and the value's keyed fingerprint, never the value. `reconcile import`
    and `reconcile adopt` move such values into references. Writes nothing.
    """

    report = guarded(
        lambda: audits.audit(
            make_engine(), target_names, strict=strict, declared_only=declared_only
        )
    )
    if current_settings().json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(audits.render_text(report))
    sys.exit(int(report.exit_code))


@main.command()
@global_options
def discover() -> None:
    """List every MCP client config on this machine, declared as a target or not.

    For every client kind and scope: the user files at each client's own location, and the
    project files of the git repository around the current directory. Each row: kind,
    scope, path, the servers found, and the declared target that points at it. Reads only.
    """

    def run() -> discovery.Discovery:
        engine = make_engine()
        return discovery.discover(engine, discovery.desired_or_nothing(engine))

    found = guarded(run)
    if current_settings().json:
        click.echo(json.dumps(found.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(discovery.render_text(found))
    sys.exit(0)


@main.command()
@global_options
def schema() -> None:
    """Print the JSON Schema of a desired-state file (for editor completion)."""
    click.echo(json.dumps(json_schema(DECLARABLE), indent=2))


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


@main.command()
@_watch_options
@global_options
def watch(
    interval: float,
    debounce: int,
    pull: bool,
    metrics_addr: str | None,
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
    sys.exit(guarded(lambda: serve(make_engine(), options, metrics_addr=metrics_addr)))


@main.group()
def service() -> None:
    """Run `reconcile watch` at login: a systemd user unit (Linux) or launchd agent (macOS)."""


def _service_spec(
    interval: float,
    debounce: int,
    pull: bool,
    metrics_addr: str | None,
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
        *(s.model_dump(mode="json") for s in state.servers.values()),
        *(t.model_dump(mode="json") for t in state.targets.values()),
        *(r.model_dump(mode="json") for r in state.secrets.values()),
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


register(main)  # allow, divergences, adopt, import: cli/divergences.py


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@global_options
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    It completes commands and options, and target names, server names and divergence
    record IDs from the desired directory (--desired or RECONCILER_DESIRED).
    """
    cls = get_completion_class(shell)
    assert cls is not None  # the choice allows only the shells click knows
    click.echo(cls(main, {}, "reconcile", "_RECONCILE_COMPLETE").source())


# -- examples: every command's --help ends with two or three ---------------------------------

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("reconcile --dry-run", "what would change, and why (exit 1: drift found)"),
        ("reconcile", "apply it"),
        ("reconcile --target desktop --json", "one target, machine-readable"),
    ),
    "status": (
        ("reconcile status", "server x target matrix"),
        ("reconcile status --target desktop --json", "one target, machine-readable"),
    ),
    "probe": (
        ("reconcile probe", "every declared server"),
        ("reconcile probe --server time --json", "one server, machine-readable"),
        ("reconcile probe --target code", "the live entries of one target"),
    ),
    "validate": (
        ("reconcile validate", "check desired/ (pre-commit, CI)"),
        ("reconcile validate --json", "the problems as a JSON list"),
    ),
    "audit": (
        ("reconcile audit", "inline secrets in every MCP config on the machine"),
        ("reconcile audit --declared", "the declared targets only"),
        ("reconcile audit --target desktop --json", "one target, machine-readable"),
    ),
    "discover": (
        ("reconcile discover", "every MCP client config on this machine"),
        ("reconcile discover --json", "machine-readable"),
    ),
    "schema": (
        ("reconcile schema > desired.schema.json", "for editor completion"),
        ("reconcile schema | jq .properties", "the top-level keys"),
    ),
    "watch": (
        ("reconcile watch", "the daemon, in the foreground"),
        ("reconcile watch --pull --metrics 127.0.0.1:9464", "pull git, serve metrics"),
    ),
    "service": (
        ("reconcile service print", "the unit, and where its files go"),
        ("reconcile service install --enable", "write it and start it now"),
    ),
    "service print": (
        ("reconcile service print", "the unit (or agent) install would write"),
        ("reconcile service print --desired ~/fleet/desired", "for another repository"),
    ),
    "service install": (
        ("reconcile service install", "write the unit and its environment file"),
        ("reconcile service install --enable --pull", "and start it now, pulling git"),
    ),
    "service uninstall": (
        ("reconcile service uninstall", "stop and remove the unit"),
        ("reconcile service uninstall --no-disable", "remove it, leave it running"),
    ),
    "allow": (
        (
            'reconcile allow time -t desktop --path /args/1 --reason "Paris office"',
            "one field",
        ),
        ('reconcile allow time -t desktop --reason "trial" --expires 2027-01-31', "all of it"),
    ),
    "divergences": (
        ("reconcile divergences", "list every record"),
        ("reconcile divergences show desktop--time", "one record and its commit"),
    ),
    "divergences list": (
        ("reconcile divergences list", "every record, its commit and state"),
        ("reconcile divergences list --json", "machine-readable"),
    ),
    "divergences show": (
        ("reconcile divergences show desktop--time", "the record, commit and difference"),
        ("reconcile divergences show desktop--time --json", "machine-readable"),
    ),
    "divergences accept": (
        ("reconcile divergences accept desktop--time", "mark it reviewed"),
        ("reconcile divergences accept desktop--time --json", "machine-readable"),
    ),
    "divergences renew": (
        ("reconcile divergences renew desktop--time --expires 2027-03-31", "a new expiry"),
        (
            'reconcile divergences renew desktop--time --expires 2027-03-31 --reason "still"',
            "and a new reason",
        ),
    ),
    "divergences reject": (
        ("reconcile divergences reject desktop--time", "remove it; the next pass syncs"),
        ("reconcile divergences reject desktop--time && reconcile", "and sync now"),
    ),
    "divergences prune-stale": (
        ("reconcile divergences prune-stale", "remove records whose drift is gone"),
        ("reconcile divergences prune-stale --json", "machine-readable"),
    ),
    "adopt": (
        ("reconcile adopt time --target desktop", "the live entry becomes desired"),
        ("reconcile adopt github -t code --json", "machine-readable"),
    ),
    "import": (
        ("reconcile import --target claude-desktop", "declare a target and its servers"),
        ("reconcile import -t desktop -s fetch --only-target", "one server, kept there"),
    ),
    "completion": (
        ("reconcile completion bash > ~/.local/share/bash-completion/completions/reconcile", ""),
        ("reconcile completion fish > ~/.config/fish/completions/reconcile.fish", ""),
    ),
}


def _examples(command: click.Command, path: str = "") -> None:
    """Append each command's examples to its help, after the options (epilog)."""
    width = max(len(c) for c, _ in EXAMPLES[path])
    lines = [f"  {c.ljust(width)}   {why}".rstrip() for c, why in EXAMPLES[path]]
    block = "\b\nExamples:\n" + "\n".join(lines)
    command.epilog = f"{command.epilog}\n\n{block}" if command.epilog else block
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _examples(sub, f"{path} {name}".strip())


_examples(main)
