"""The command line: parse arguments, call the engine, render, exit with the documented code.

Thin on purpose: no reconciling logic lives here, and nothing below this module imports
click. Global options (``--desired``, ``--state-dir``, ``--json``, ``-q``/``-v``,
``--no-color``) are accepted before or after a subcommand, as DESIGN section 7 promises.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click

from reconciler.app import markdown
from reconciler.cli.common import (
    EXIT_CODES_HELP,
    current_settings,
    fail,
    format_option,
    global_options,
    guarded,
    make_engine,
    markdown_guarded,
    server_option,
    style,
    target_option,
)
from reconciler.cli.lazy import LazyGroup, load_attribute
from reconciler.core.report import ExitCode, RunReport, render_text
from reconciler.engine import PassOptions
from reconciler.secrets import wrap_streams


def _run(
    action: Callable[[], RunReport],
    probed: list[tuple[dict[str, Any], str]] | None = None,
    *,
    output_format: str = "text",
) -> NoReturn:
    started = time.monotonic()
    if output_format == "markdown":
        report = guarded(lambda: markdown_guarded(action))
        click.echo(markdown.render_plan(report), nl=False)
        sys.exit(int(report.exit_code))
    report = guarded(action)
    took = time.monotonic() - started
    settings = current_settings()
    if settings.json or output_format == "json":
        data = report.to_json()
        if probed:  # reconcile --probe: what each server answered
            data["probe"] = probed[0][0]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        verbosity = settings.verbosity
        if probed and (verbosity >= 0 or report.exit_code):
            click.echo(probed[0][1])
        text = render_text(
            report, style(), verbose=verbosity > 0, quiet=verbosity < 0, duration=took
        )
        click.echo(text)
    sys.exit(int(report.exit_code))


@click.group(
    cls=LazyGroup,
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
@format_option
@click.version_option(package_name="mcp-reconciler", prog_name="reconcile")
@global_options
@click.pass_context
def main(
    ctx: click.Context,
    dry_run: bool,
    target_names: tuple[str, ...],
    server_names: tuple[str, ...],
    probe_after: bool,
    output_format: str,
) -> None:
    """Reconcile MCP server configurations with the desired state in git.

    Without a command: one pass over every target. It observes each target, compares it
    with desired/, and applies what differs (or, with --dry-run, only shows it).
    """
    wrap_streams()  # every write to stdout and stderr passes the secret redactor
    if ctx.invoked_subcommand is not None:
        return

    if not probe_after:
        _run(
            lambda: make_engine().run(PassOptions(dry_run, target_names, server_names)),
            output_format=output_format,
        )
    if dry_run:
        fail(ExitCode.INVALID, "error: --probe runs servers, so it is never done in a dry run")
    # The probe's modules load only on this path (cli/lazy.py), never on a plain pass.
    run_and_probe, probed = load_attribute("probing:pass_then_probe")(
        dry_run, target_names, server_names
    )
    _run(run_and_probe, probed, output_format=output_format)


# -- examples: every command's --help ends with two or three ---------------------------------

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("reconcile --dry-run", "what would change, and why (exit 1: drift found)"),
        ("reconcile", "apply it"),
        ("reconcile --target desktop --json", "one target, machine-readable"),
    ),
    "status": (
        ("reconcile status", "server x target matrix"),
        ("reconcile status --watch", "redrawn on every pass of the daemon"),
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
        ("reconcile watch --ui 127.0.0.1:9465", "the status page on loopback"),
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
main.decorate = _examples  # each subcommand gets its examples when cli/lazy.py loads it
