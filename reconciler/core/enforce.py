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
from functools import cached_property

from reconciler.core.model import Block, OnChange, ToolPolicy
from reconciler.core.tools import Governance, ToolClass, govern

# An inventory older than this is stale: a pass still enforces it, and says so.
INVENTORY_MAX_AGE_DAYS = 7


@dataclass(frozen=True)
class Governed:
    """One server's tool policy with what the last probe knows of its tools.

    ``classes`` is the probe's inventory of the server (tool name -> class), None when the
    server was never probed; ``stale`` when that inventory is older than
    ``INVENTORY_MAX_AGE_DAYS``; ``changed``: its tools new or changed against the tool lock
    (``core.tools.unreviewed``), held disabled by ``on_change: block``.
    """

    policy: ToolPolicy
    classes: Mapping[str, ToolClass] | None = None
    stale: bool = False
    changed: frozenset[str] = field(default=frozenset())

    @property
    def known(self) -> bool:
        return self.classes is not None

    def governance(
        self, names: Iterable[str] = (), classes: Mapping[str, ToolClass] | None = None
    ) -> Governance:
        """``core.tools.govern`` over the probe's inventory, where ``classes`` (a target's
        own listing, from its annotations) overrides it and ``names`` seen on the target
        but in neither count as unannotated (destructive)."""
        inventory = dict(self.classes) if self.classes is not None else None
        if classes:
            inventory = (inventory or {}) | dict(classes)
        listed = list(names)
        if listed:
            inventory = inventory or {}
            for name in listed:
                inventory.setdefault(name, ToolClass.DESTRUCTIVE)
        return govern(self.policy, inventory, self.changed)

    def disabled(
        self, names: Iterable[str] = (), classes: Mapping[str, ToolClass] | None = None
    ) -> frozenset[str]:
        """The tools this policy disables (exact names need no inventory)."""
        listed = list(names)
        if not listed and not classes:
            return self.probed.disabled
        return self.governance(listed, classes).disabled

    @cached_property
    def probed(self) -> Governance:
        """The governance from the probe's inventory alone, computed once: a pass reads
        it for planning, notes and what it remembers."""
        return self.governance()

    @property
    def restrictive(self) -> bool:
        """The policy can disable something."""
        return has_effect(self.policy)


def has_effect(policy: ToolPolicy | None) -> bool:
    """Whether a policy can disable anything (``allow`` alone only excepts from ``block``)."""
    return policy is not None and bool(
        policy.deny or policy.block is not Block.NONE or policy.on_change is OnChange.BLOCK
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
    if not governed.known:
        unresolved = governed.probed.unresolved
        if unresolved:
            return (
                f"{NO_INVENTORY} '{server}': {', '.join(unresolved)} not enforced, only exact"
                " names; run `reconcile probe` to enforce the rest"
            )
        return None
    if governed.stale:
        return (
            f"{STALE_INVENTORY} '{server}' is stale (over {INVENTORY_MAX_AGE_DAYS} days):"
            " enforced as it is; run `reconcile probe` to refresh it"
        )
    return None
