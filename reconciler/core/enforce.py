"""What a pass enforces of one server's tool policy on one target: the governed server.

A tool policy (``tools:`` in desired state) says which tools of a server must be off; the
pure core turns it into the set of disabled tools from the last probe's inventory
(``govern``). Each target then holds that set in its own control: MCPJungle's tool flags,
Claude Code's ``permissions.deny``, Codex's ``disabled_tools`` and the others
(``reference/TOOLCONTROLS.md``). This module holds the values planning needs for that, and
the wording for a kind that has no control at all, so that a policy is never ignored in
silence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from reconciler.core.model import ToolPolicy

GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Governed:
    """One server's tool policy with what the last probe knows of its tools.

    ``classes`` is the probe's inventory of the server (tool name -> class), None when the
    server was never probed; ``stale`` when that inventory is older than the server's
    definition or the probe's freshness bound.
    """

    policy: ToolPolicy
    classes: Mapping[str, str] | None = None
    stale: bool = False
    # Tools new or changed against the tool lock (kept off with ``on_change: block``).
    changed: frozenset[str] = field(default=frozenset())

    @property
    def known(self) -> bool:
        return self.classes is not None

    def disabled(self, names: Iterable[str] = ()) -> frozenset[str]:
        """The tools this policy disables: those of the inventory, plus ``names`` seen on the
        target itself (MCPJungle lists them; a tool never probed counts as unannotated), plus
        every exact name in ``deny`` (which needs no inventory)."""
        inventory = dict(self.classes or {})
        for name in names:
            inventory.setdefault(name, "destructive")
        off = _govern(self.policy, inventory, self.changed)
        return off | exact_denies(self.policy)

    @property
    def restrictive(self) -> bool:
        """The policy can disable something (it is not an empty ``tools:``)."""
        block = getattr(self.policy, "block", "none")
        return bool(self.policy.deny or self.policy.allow or str(block) != "none")


def exact_denies(policy: ToolPolicy) -> frozenset[str]:
    """The ``deny`` entries without a glob character: tool names as they are."""
    return frozenset(d for d in policy.deny if not GLOB_CHARS & set(d))


def _govern(
    policy: ToolPolicy, inventory: Mapping[str, str], changed: frozenset[str]
) -> frozenset[str]:
    """Stand-in for ``core.tools.govern`` until it lands: allow/deny globs only."""
    return frozenset(
        tool
        for tool in inventory
        if any(fnmatchcase(tool, g) for g in policy.deny)
        or (policy.allow and not any(fnmatchcase(tool, g) for g in policy.allow))
    )


@dataclass(frozen=True)
class NativeTools:
    """One entry's tools as a client's own control holds them, for planning.

    ``desired``: the tools the policy disables; ``owned``: those this tool disabled before
    (recorded as last applied); ``off``: which tools of both sets the control denies now.
    Rules the user wrote for any other tool are not looked at, so never touched.
    """

    desired: frozenset[str]
    owned: frozenset[str]
    off: frozenset[str]


NOT_ENFORCEABLE = "not enforceable on"
NO_INVENTORY = "no tool inventory for"
STALE_INVENTORY = "tool inventory for"


def not_enforceable(kind: str, server: str) -> str:
    """The note for a server whose policy a target's kind cannot hold."""
    return (
        f"tools of '{server}' {NOT_ENFORCEABLE} {kind}: the client has no per-tool control,"
        " so the tools its policy disables stay offered there"
    )


def is_governance_note(note: str) -> bool:
    """A note of this module's (for ``status`` and ``audit``, which show only these)."""
    return (
        (note.startswith("tools of '") and f" {NOT_ENFORCEABLE} " in note)
        or note.startswith(NO_INVENTORY)
        or (note.startswith(STALE_INVENTORY) and "is stale" in note)
    )


def inventory_note(server: str, governed: Governed) -> str | None:
    """Why a pass enforces less than the policy says, for a server (None: nothing to say)."""
    needs = governed.restrictive and set(governed.policy.deny) != exact_denies(governed.policy)
    needs = needs or str(getattr(governed.policy, "block", "none")) != "none"
    needs = needs or bool(governed.policy.allow)
    if not governed.known and needs:
        return (
            f"{NO_INVENTORY} '{server}': only its exact-name denies are enforced;"
            " run `reconcile probe` to enforce the rest"
        )
    if governed.stale:
        return f"{STALE_INVENTORY} '{server}' is stale: run `reconcile probe` to refresh it"
    return None
