"""`reconcile completion SHELL`: the shell completion script.

Loaded only when the command runs (cli/lazy.py); the script is built from the root group
of the running command line, so this module does not import cli/main.py.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from reconciler.cli.common import (
    global_options,
)


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@global_options
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    It completes commands and options, and target names, server names and divergence
    record IDs from the desired directory (--desired or RECONCILER_DESIRED).
    """
    cls = get_completion_class(shell)
    assert cls is not None  # the choice allows only the shells click knows
    click.echo(
        cls(
            click.get_current_context().find_root().command, {}, "reconcile", "_RECONCILE_COMPLETE"
        ).source()
    )
