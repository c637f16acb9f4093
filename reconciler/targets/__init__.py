"""Target kinds: the registry from a ``kind:`` in desired state to the class that handles it.

A kind is supported when it has an entry here; validation rejects placements on kinds that
are declared by the schema but not implemented yet, instead of failing at apply time.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.core.model import Kind
from reconciler.core.model import Target as TargetSpec
from reconciler.targets.base import Context, Observation, Target, Write

__all__ = [
    "KINDS",
    "REMOTE_KINDS",
    "Context",
    "Observation",
    "Target",
    "Write",
    "build",
    "supported",
]

Factory = Callable[[str, TargetSpec, Context], Target]

# Kinds reached over the network: their passes wait on I/O and run concurrently.
REMOTE_KINDS = frozenset({Kind.MCPJUNGLE})


def _claude_desktop(name: str, spec: TargetSpec, context: Context) -> Target:
    from reconciler.targets.jsonclients import ClaudeDesktop

    return ClaudeDesktop(name, spec, context)


def _mcpjungle(name: str, spec: TargetSpec, context: Context) -> Target:
    from reconciler.targets.mcpjungle import MCPJungleTarget

    return MCPJungleTarget(name, spec, context)


def _lazy(module: str, cls: str) -> Factory:
    def build(name: str, spec: TargetSpec, context: Context) -> Target:
        from importlib import import_module

        target: Target = getattr(import_module(module), cls)(name, spec, context)
        return target

    return build


# Factories import their module lazily, so a run pays only for the kinds it uses.
KINDS: dict[Kind, Factory] = {
    Kind.CLAUDE_DESKTOP: _claude_desktop,
    Kind.MCPJUNGLE: _mcpjungle,
    Kind.CLAUDE_CODE: _lazy("reconciler.targets.jsonclients", "ClaudeCode"),
    Kind.CURSOR: _lazy("reconciler.targets.jsonclients", "Cursor"),
    Kind.VSCODE: _lazy("reconciler.targets.jsonclients", "VSCode"),
    Kind.WINDSURF: _lazy("reconciler.targets.jsonclients", "Windsurf"),
    Kind.CODEX: _lazy("reconciler.targets.codex", "Codex"),
    Kind.GEMINI: _lazy("reconciler.targets.jsonclients", "Gemini"),
    Kind.OPENCODE: _lazy("reconciler.targets.opencode", "OpenCode"),
    Kind.MIRROR: _lazy("reconciler.targets.mirror", "build"),  # copies from ``mirrors:``
}


def supported(kind: Kind) -> bool:
    return kind in KINDS


def build(name: str, spec: TargetSpec, context: Context) -> Target:
    return KINDS[spec.kind](name, spec, context)
