"""Command line of the git-backed commands: allow, divergences, adopt, import.

Kept beside ``cli/main.py`` and loaded by its registry (cli/lazy.py) when one of them runs:
the same thin layer (parse, call, render, exit with the documented code), no reconciling logic.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Any, NoReturn

import click

from reconciler.app import adopt as adopting
from reconciler.app import review
from reconciler.cli.common import (
    complete_record,
    complete_server,
    complete_target,
    current_settings,
    fail,
    global_options,
    guarded,
    make_engine,
)
from reconciler.core.report import ExitCode


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from e


def register(main: click.Group) -> None:
    """Add the commands to the ``reconcile`` group."""

    def finish(payload: dict[str, Any], text: str, code: int = 0) -> NoReturn:
        if current_settings().json:
            click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        elif current_settings().verbosity >= 0 or code:
            click.echo(text)
        sys.exit(code)

    @main.command()
    @click.argument("server", shell_complete=complete_server)
    @click.option(
        "-t",
        "--target",
        shell_complete=complete_target,
        required=True,
        metavar="T",
        help="The target that differs.",
    )
    @click.option(
        "--path",
        "paths",
        multiple=True,
        metavar="P",
        help="A JSON Pointer to allow (repeatable) [default: all of the current drift].",
    )
    @click.option("--reason", required=True, help="Why the difference is intended.")
    @click.option(
        "--expires", callback=_date, metavar="DATE", help="Last day it is allowed (YYYY-MM-DD)."
    )
    @click.option("--force", is_flag=True, help="Allow an expiry more than a year out.")
    @global_options
    def allow(
        server: str,
        target: str,
        paths: tuple[str, ...],
        reason: str,
        expires: date | None,
        force: bool,
    ) -> None:
        """Record the current drift of SERVER on a target as an allowed divergence, and commit.

        The record (desired/divergences/<target>--<server>.yaml) covers the drift while the
        live values at its paths stay as they are now; an edit makes them drift again.
        """
        done = guarded(
            lambda: review.allow(make_engine(), server, target, paths, reason, expires, force)
        )
        code = int(ExitCode.DRIFT) if done.expired else 0
        record = done.records[0]
        text = [f"allowed {record.server} on {record.target} ({record.shown_paths})"]
        text.append(f"  record {done.shown[0]}, commit {done.commit or '(nothing to commit)'}")
        text += [f"warning: {n}" for n in done.notes]
        finish(done.to_json(code), "\n".join(text), code)

    @main.group(invoke_without_command=True)
    @global_options
    @click.pass_context
    def divergences(ctx: click.Context) -> None:
        """Review divergence records and the commits that made them (default: list)."""
        if ctx.invoked_subcommand is None:
            ctx.invoke(divergences_list)

    @divergences.command("list")
    @global_options
    def divergences_list() -> None:
        """Each record: commit, author, date, reason, expiry and state.

        States: active, unreviewed, expiring (within a week), expired, stale (the drift is
        gone), changed (the live value moved on: it is drift again), unknown.
        """
        listed = guarded(lambda: review.list_records(make_engine()))
        payload = {"schema": 1, "exit_code": 0, "records": [i.to_json() for i in listed]}
        finish(payload, review.render_list(listed))

    @divergences.command("show")
    @click.argument("record_id", metavar="ID", shell_complete=complete_record)
    @global_options
    def divergences_show(record_id: str) -> None:
        """One record, its commit, and the current difference (secrets masked)."""
        item, message = guarded(lambda: review.show(make_engine(), record_id))
        payload = {"schema": 1, "exit_code": 0, "record": item.to_json(), "message": message}
        finish(payload, review.render_show(item, message))

    def _done(verb: str, done: Any) -> NoReturn:
        lines = [f"{verb} {r.id} ({f})" for r, f in zip(done.records, done.shown, strict=True)]
        if done.commit:
            lines.append(f"commit {done.commit}")
        lines += list(done.notes)
        finish(done.to_json(0), "\n".join(lines))

    @divergences.command("accept")
    @click.argument("record_id", metavar="ID", shell_complete=complete_record)
    @global_options
    def divergences_accept(record_id: str) -> None:
        """Mark a record reviewed (reviewed: true) and commit."""
        _done("accepted", guarded(lambda: review.accept(make_engine(), record_id)))

    @divergences.command("renew")
    @click.argument("record_id", metavar="ID", shell_complete=complete_record)
    @click.option(
        "--expires",
        required=True,
        callback=_date,
        metavar="DATE",
        help="The new last day it is allowed (YYYY-MM-DD).",
    )
    @click.option("--reason", help="A new reason [default: keep the record's].")
    @click.option("--force", is_flag=True, help="Allow an expiry more than a year out.")
    @global_options
    def divergences_renew(record_id: str, expires: date, reason: str | None, force: bool) -> None:
        """Give a record a new expiry (and optionally a new reason), and commit."""
        _done(
            "renewed",
            guarded(lambda: review.renew(make_engine(), record_id, expires, reason, force)),
        )

    @divergences.command("reject")
    @click.argument("record_id", metavar="ID", shell_complete=complete_record)
    @global_options
    def divergences_reject(record_id: str) -> None:
        """Remove a record and commit; the next pass syncs the target, even on_drift: record."""
        _done("rejected", guarded(lambda: review.reject(make_engine(), record_id)))

    @divergences.command("prune-stale")
    @global_options
    def divergences_prune() -> None:
        """Remove every stale record (its drift is gone) in one commit."""
        _done("pruned", guarded(lambda: review.prune_stale(make_engine())))

    @main.command()
    @click.argument("server", shell_complete=complete_server)
    @click.option(
        "-t",
        "--target",
        shell_complete=complete_target,
        required=True,
        metavar="T",
        help="Take the entry from here.",
    )
    @global_options
    def adopt(server: str, target: str) -> None:
        """Write SERVER's live entry on a target back into desired state, and commit.

        The YAML file keeps its comments and layout; secret values become ${env:NAME}
        references (listed), never literals.
        """
        done = guarded(lambda: adopting.adopt(make_engine(), server, target))
        finish(done.to_json(), done.render())

    @main.command("import")
    @click.option(
        "-t",
        "--target",
        shell_complete=complete_target,
        metavar="T",
        help="A declared target, or a kind (claude-desktop, ...) to declare a target of.",
    )
    @click.option(
        "--discover",
        "from_discovery",
        is_flag=True,
        help="From every MCP client config `reconcile discover` lists: each client a target.",
    )
    @click.option(
        "-s",
        "--server",
        "servers",
        shell_complete=complete_server,
        multiple=True,
        metavar="S",
        help="Only this entry.",
    )
    @click.option(
        "--only-target",
        is_flag=True,
        help="Keep the new servers to this target (other targets get an exclusion !NAME).",
    )
    @global_options
    def import_(
        target: str | None, from_discovery: bool, servers: tuple[str, ...], only_target: bool
    ) -> None:
        """Bootstrap desired state from what a target holds, and commit.

        Creates server definitions and the target's placement; inline secrets are moved
        into ${env:NAME} references and listed, so you can export them. With --discover:
        from every client config on the machine at once (the same server in several
        clients becomes one declaration, its differences named; each client a target).
        """
        if from_discovery:
            if target is not None or servers or only_target:
                fail(
                    ExitCode.INVALID,
                    "error: --discover imports every discovered config; it takes no "
                    "--target, --server or --only-target",
                )
            found = guarded(lambda: adopting.import_discovered(make_engine()))
            finish(found.to_json(), found.render())
        if target is None:
            fail(ExitCode.INVALID, "error: give --target T, or --discover")
        name: str = target
        done = guarded(lambda: adopting.import_target(make_engine(), name, servers, only_target))
        finish(done.to_json(), done.render())


# The commands by name, for the registry in cli/lazy.py, which imports this module only when
# one of them runs.
_COMMANDS = click.Group()
register(_COMMANDS)
allow, divergences, adopt, import_ = (
    _COMMANDS.commands[name] for name in ("allow", "divergences", "adopt", "import")
)
