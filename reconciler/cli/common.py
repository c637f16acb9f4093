"""What every command shares: the global options, the engine they build, errors to exit codes.

``guarded`` is the one mapping from the reconciler's errors to the documented exit codes
(DESIGN section 7); every command runs through it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import click
from click.shell_completion import CompletionItem

from reconciler.app import markdown, review
from reconciler.core.errors import DesiredStateError, ReconcilerError, RepositoryError, UsageError
from reconciler.core.report import ExitCode, plural
from reconciler.engine import Engine, load_desired
from reconciler.secrets import install_logging, quiet_libraries
from reconciler.store.state import default_state_dir

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EXIT_CODES_HELP = """\b
Exit codes (the same for every command):
  0  converged: no actionable drift (allowed divergences do not count)
  1  actionable drift remains (found by --dry-run or status, or left by on_drift: report)
  2  invalid invocation or invalid desired state; nothing was changed
  3  a required target failed (or a required server: apply or probe); the rest went on
"""


@dataclass
class Settings:
    desired: Path = Path("desired")
    state_dir: Path | None = None
    json: bool = False
    verbosity: int = 0
    color: bool | None = None


def current_settings() -> Settings:
    ctx = click.get_current_context()
    root = ctx.find_root()
    settings: Settings = root.meta.setdefault("reconciler.settings", Settings())
    return settings


def _store(attr: str, transform: Callable[[Any], Any] = lambda v: v) -> Callable[..., None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        source = ctx.get_parameter_source(param.name or "")
        if value is None or (source is click.core.ParameterSource.DEFAULT and value in (0, False)):
            return
        setattr(current_settings(), attr, transform(value))

    return callback


# -- shell completion: names from the desired directory -------------------------------------


def _desired_for_completion(ctx: click.Context) -> Path:
    settings = ctx.find_root().meta.get("reconciler.settings")
    if isinstance(settings, Settings):
        return settings.desired
    return Path(os.environ.get("RECONCILER_DESIRED") or "desired")


def _names(ctx: click.Context, section: str) -> list[str]:
    try:
        state = load_desired(_desired_for_completion(ctx))
    except Exception:  # completion must never fail loudly: an invalid state offers nothing
        return []
    return sorted(state.targets if section == "targets" else state.servers)


def _items(names: list[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_target(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Target names (mirror copies included) declared in the desired directory."""
    return _items(_names(ctx, "targets"), incomplete)


def complete_server(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Server names declared in the desired directory."""
    return _items(_names(ctx, "servers"), incomplete)


def target_option(help: str) -> Callable[[F], F]:
    """``-t/--target T`` (repeatable, completed from desired state) into ``target_names``."""
    return click.option(
        "-t",
        "--target",
        "target_names",
        shell_complete=complete_target,
        multiple=True,
        metavar="T",
        help=help,
    )


def server_option(help: str) -> Callable[[F], F]:
    """``-s/--server S`` (repeatable, completed from desired state) into ``server_names``."""
    return click.option(
        "-s",
        "--server",
        "server_names",
        shell_complete=complete_server,
        multiple=True,
        metavar="S",
        help=help,
    )


def format_option(f: F) -> F:
    """``--format text|json|markdown`` (json is ``--json``; markdown is a PR comment)."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json", "markdown"]),
        default="text",
        show_default=True,
        help="Output: text, JSON (as --json), or markdown for a pull-request comment.",
    )(f)


def markdown_guarded(action: Callable[[], T]) -> T:
    """``guarded`` for --format markdown: invalid desired state is a comment too (exit 2)."""
    try:
        return action()
    except DesiredStateError as e:
        click.echo(markdown.render_invalid([str(p) for p in e.problems]), nl=False)
        sys.exit(int(ExitCode.INVALID))


def complete_record(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Divergence record IDs: the files in desired/divergences/."""
    folder = _desired_for_completion(ctx) / "divergences"
    try:
        names = sorted(p.stem for p in folder.glob("*.yaml"))
    except OSError:
        names = []
    return _items(names, incomplete)


def global_options(f: F) -> F:
    """The options every command accepts, wherever they appear on the line."""
    options = [
        click.option(
            "--desired",
            type=click.Path(path_type=Path, file_okay=False),
            envvar="RECONCILER_DESIRED",
            show_envvar=True,
            expose_value=False,
            callback=_store("desired"),
            help="Desired-state directory [default: ./desired].",
        ),
        click.option(
            "--state-dir",
            type=click.Path(path_type=Path, file_okay=False),
            envvar="RECONCILER_STATE_DIR",
            show_envvar=True,
            expose_value=False,
            callback=_store("state_dir"),
            help="State directory [default: the platform's user state dir].",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_store("json"),
            help="Print one JSON document (schema 1).",
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            expose_value=False,
            callback=_store("verbosity"),
            help="More output (repeatable).",
        ),
        click.option(
            "-q",
            "--quiet",
            count=True,
            expose_value=False,
            callback=_store("verbosity", lambda v: -v),
            help="Less output.",
        ),
        click.option(
            "--no-color",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_store("color", lambda v: False),
            help="Plain text output.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def fail(code: ExitCode, message: str, errors: list[str] | None = None) -> NoReturn:
    """Exit with ``code``: ``message`` on stderr; with --json, ``errors`` (default: the
    message's lines) on stdout."""
    settings = current_settings()
    if settings.json:
        listed = message.splitlines() if errors is None else errors
        click.echo(json.dumps({"schema": 1, "exit_code": int(code), "errors": listed}))
    click.echo(message, err=True)
    sys.exit(int(code))


def fail_invalid(e: DesiredStateError, tail: str = "") -> NoReturn:
    """Exit 2 for invalid desired state: every problem, then one summary line (text only)."""
    problems = [str(p) for p in e.problems]
    summary = f"{plural(len(problems), 'problem')} in desired state{tail}"
    fail(ExitCode.INVALID, "\n".join([*problems, summary]), problems)


def make_engine() -> Any:

    settings = current_settings()
    return Engine(
        settings.desired,
        settings.state_dir or default_state_dir(),
        recorder=review.record_drafts,
        resolving=resolve_progress(settings),
    )


def resolve_progress(
    settings: Settings, stream: TextIO | None = None
) -> Callable[[int, int], None] | None:
    """A progress line on stderr while slow secret resolvers run, for a person watching:
    a terminal, and neither --json nor -q. Cleared when they are done."""
    out = sys.stderr if stream is None else stream
    if settings.json or settings.verbosity < 0 or not out.isatty():
        return None

    def show(done: int, total: int) -> None:
        if done < total:
            out.write(f"\rresolving secrets: {done} of {total} done\x1b[K")
        else:
            out.write("\r\x1b[K")
        out.flush()

    return show


def style() -> Callable[[str, str], str]:
    settings = current_settings()
    color = settings.color
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    if not color:
        return lambda text, role: text
    colors = {"add": "green", "remove": "red", "change": "yellow", "bad": "red", "dim": None}

    def style(text: str, role: str) -> str:
        if role == "bold":
            return click.style(text, bold=True)
        if role == "dim":
            return click.style(text, dim=True)
        return click.style(text, fg=colors.get(role))

    return style


def setup_logging_from_settings() -> None:
    level = {-1: logging.ERROR, 0: logging.ERROR, 1: logging.INFO}.get(
        max(-1, min(current_settings().verbosity, 2)), logging.DEBUG
    )
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    quiet_libraries(current_settings().verbosity)

    install_logging()  # log records are scrubbed of secret values, whatever the handler


def guarded(action: Callable[[], T]) -> T:
    """Run one engine call, mapping the error tree to exit codes (2 invalid, 3 failed)."""
    setup_logging_from_settings()
    try:
        return action()
    except DesiredStateError as e:
        fail_invalid(e, "; nothing was changed")
    except (UsageError, RepositoryError) as e:
        fail(ExitCode.INVALID, f"error: {e}")
    except ReconcilerError as e:
        fail(ExitCode.FAILED, f"error: {e}")
