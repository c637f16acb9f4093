"""The `reconcile` group's subcommands, each imported only when it runs.

Why: the pass (`reconcile`, `reconcile --dry-run`) is what users run in shells, pre-commit
hooks and CI, and its start-up is most of a small pass. Importing every command module up
front (the daemon and its metrics server, the probe, the machine-wide audit, the service
templates, the git-backed review commands) made every pass pay for all of them. So the root
group (cli/main.py) knows each subcommand by a dotted name and its short help, and imports
the command's module when that command is invoked: click's documented lazy-loading group.

This registry is the one place the package imports its own modules lazily
(docs/ARCHITECTURE.md, "Lazy imports"): it names modules of ``reconciler.cli`` only, by
string, and ``tests/test_architecture.py`` allows `importlib.import_module` here and nowhere
else. `reconcile --help` lists every command from the short helps kept here, without
importing them; a test keeps them equal to the commands' own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class Subcommand:
    """Where a subcommand lives and what `reconcile --help` says of it."""

    target: str  # "module:attribute", the module in reconciler.cli
    short_help: str  # the first sentence of the command's help

    def load(self) -> click.Command:
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


def load_attribute(target: str) -> Any:
    """``module:attribute`` of ``reconciler.cli``, imported now: the root command's own
    optional paths (``--probe``) that a plain pass must not pay for."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(f"reconciler.cli.{module_name}"), attribute)


def _at(module: str, attribute: str, short_help: str) -> Subcommand:
    return Subcommand(f"reconciler.cli.{module}:{attribute}", short_help)


SUBCOMMANDS: Mapping[str, Subcommand] = {
    "adopt": _at(
        "divergences",
        "adopt",
        "Write SERVER's live entry on a target back into desired state, and commit.",
    ),
    "allow": _at(
        "divergences",
        "allow",
        "Record the current drift of SERVER on a target as an allowed divergence, and commit.",
    ),
    "audit": _at(
        "machine", "audit", "List every inline secret in every MCP config on the machine."
    ),
    "completion": _at(
        "completion",
        "completion",
        "Print the shell completion script for SHELL (bash, zsh or fish).",
    ),
    "discover": _at(
        "machine",
        "discover",
        "List every MCP client config on this machine, declared as a target or not.",
    ),
    "divergences": _at(
        "divergences",
        "divergences",
        "Review divergence records and the commits that made them (default: list).",
    ),
    "import": _at(
        "divergences",
        "import_",
        "Bootstrap desired state from what a target holds, and commit.",
    ),
    "probe": _at(
        "probing",
        "probe",
        "Connect to each server as a client would: health, protocol, tools and their classes.",
    ),
    "schema": _at(
        "checks",
        "schema",
        "Print the JSON Schema of a desired-state file (for editor completion).",
    ),
    "service": _at(
        "daemon",
        "service",
        "Run `reconcile watch` at login: a systemd user unit (Linux) or launchd agent (macOS).",
    ),
    "status": _at(
        "status", "status", "Server x target matrix from a fresh observation (writes nothing)."
    ),
    "validate": _at(
        "checks",
        "validate",
        "Check desired state only: schema, references, placements, the tool lock.",
    ),
    "watch": _at(
        "daemon",
        "watch",
        "Keep every target converged: reconcile on each saved file, and resync periodically.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands come from a registry of `Subcommand`, loaded on first use.

    ``decorate(command, name)`` runs once on each command when it is loaded (the root adds
    its examples to the help there).
    """

    def __init__(
        self,
        *args: Any,
        subcommands: Mapping[str, Subcommand] = SUBCOMMANDS,
        decorate: Callable[[click.Command, str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.subcommands = subcommands
        self.decorate = decorate

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        lazy = self.subcommands.get(cmd_name)
        if lazy is None:
            return None
        command = lazy.load()
        if self.decorate is not None:
            self.decorate(command, cmd_name)
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section of --help from the registry's short helps: nothing imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            if name in self.subcommands and name not in self.commands:
                # click's own shortening, on a stand-in that holds the registry's sentence
                stand_in = click.Command(name, help=self.subcommands[name].short_help)
                rows.append((name, stand_in.get_short_help_str(limit)))
                continue
            command = self.commands[name]
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
