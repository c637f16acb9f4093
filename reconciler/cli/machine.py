"""`reconcile audit` and `reconcile discover`: every MCP client config on the machine.

Loaded only when one of them runs (cli/lazy.py): the machine-wide scan is not part of a pass.
"""

from __future__ import annotations

import json
import sys

import click

from reconciler.app import audit as audits
from reconciler.app import discover as discovery
from reconciler.cli.common import (
    current_settings,
    global_options,
    guarded,
    make_engine,
    target_option,
)


@click.command()
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


@click.command()
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
