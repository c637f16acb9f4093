"""`reconcile validate` and `reconcile schema`: desired state alone, no target touched.

The commands pre-commit hooks and editors run; loaded only when one of them runs (cli/lazy.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from reconciler import targets
from reconciler.cli.common import (
    current_settings,
    global_options,
    guarded,
)
from reconciler.core.report import plural
from reconciler.engine import Engine
from reconciler.store import toollock
from reconciler.store.schema import json_schema
from reconciler.targets import DECLARABLE


@click.command()
@global_options
def validate() -> None:
    """Check desired state only: schema, references, placements, the tool lock. Exit 0 or 2.

    Lists every problem at once, each as file:line:column: message (hint).
    Suited to pre-commit hooks and CI.
    """
    settings = current_settings()
    state = guarded(Engine(settings.desired, Path(os.devnull)).load)
    guarded(lambda: toollock.load(settings.desired))  # a malformed tool lock fails here too
    warned = targets.warnings(state)
    if settings.json:
        shown = [str(w) for w in warned]
        click.echo(json.dumps({"schema": 1, "exit_code": 0, "errors": [], "warnings": shown}))
        sys.exit(0)
    for warning in warned:
        click.echo(f"warning: {warning}", err=True)
    if settings.verbosity >= 0:
        click.echo(
            f"desired state is valid: {plural(len(state.servers), 'server')}, "
            f"{plural(len(state.targets), 'target')} in {plural(len(state.files), 'file')}"
        )
    sys.exit(0)


@click.command()
@global_options
def schema() -> None:
    """Print the JSON Schema of a desired-state file (for editor completion)."""
    click.echo(json.dumps(json_schema(DECLARABLE), indent=2))
