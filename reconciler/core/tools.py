"""Tool governance in the pure core: classes, the effective set of disabled tools, the lock.

A server's tools are governed from three plain inputs, none of which this module reads
itself: the policy (``tools:`` in desired state, after ``defaults:``), the inventory (each
tool's class, from the last probe or a gateway's own listing) and the lock (the reviewed
surface, ``desired/tools.lock.yaml``). Every target family compiles the same ``Governance``
into its own control, so the rules live here once (DESIGN.md 6B).

Annotations are hints from the server and untrusted: only an explicit ``readOnlyHint: true``
lowers a tool's class, and an unannotated tool counts as destructive (the MCP spec's
defaults, reference/MCPRUNTIME.md section 5).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from reconciler.core.model import Block, OnChange, ToolPolicy, written_fields

GLOB_CHARS = frozenset("*?[")
# The fields of a tool the lock covers, in the order a change is explained.
LOCKED_FIELDS = ("description", "input_schema", "annotations")
FIELD_HASH = 16  # hex digits of each field's hash: it explains a change, sha256 decides it


class ToolClass(StrEnum):
    """How much harm a tool can do, as far as its annotations admit."""

    READ_ONLY = "read-only"
    MUTATING = "mutating"
    DESTRUCTIVE = "destructive"


def classify(annotations: Mapping[str, Any] | None) -> ToolClass:
    """The class of a tool from its MCP annotations (wire spelling: ``readOnlyHint``...).

    Read-only only when ``readOnlyHint`` is exactly True; destructive when not read-only and
    ``destructiveHint`` is not exactly False (the spec's default is true); mutating otherwise.
    A hint of the wrong type (``"true"``, 1) is not trusted either way.
    """
    hints = annotations or {}
    if hints.get("readOnlyHint") is True:
        return ToolClass.READ_ONLY
    if hints.get("destructiveHint") is False:
        return ToolClass.MUTATING
    return ToolClass.DESTRUCTIVE


# Which classes each ``block`` level disables.
BLOCKED: Mapping[Block, frozenset[ToolClass]] = {
    Block.NONE: frozenset(),
    Block.DESTRUCTIVE: frozenset({ToolClass.DESTRUCTIVE}),
    Block.MUTATING: frozenset({ToolClass.MUTATING, ToolClass.DESTRUCTIVE}),
}


def is_glob(pattern: str) -> bool:
    """Whether a policy entry is a glob (needs an inventory) or one exact tool name."""
    return any(c in GLOB_CHARS for c in pattern)


@dataclass(frozen=True)
class Governance:
    """What the policy disables on one server.

    ``disabled`` holds exact server-local tool names. ``unresolved`` holds the parts of the
    policy that need an inventory this pass does not have (deny globs, ``block: ...``): they
    are reported, never guessed. ``stale`` says the inventory behind it is missing or older
    than the lock, for the notes of plan, status and audit.
    """

    disabled: frozenset[str] = frozenset()
    unresolved: tuple[str, ...] = ()
    stale: bool = False

    @property
    def governed(self) -> bool:
        return bool(self.disabled or self.unresolved)


def govern(
    policy: ToolPolicy | None,
    inventory: Mapping[str, ToolClass] | None,
    changed: frozenset[str] = frozenset(),
) -> Governance:
    """The effective set of disabled tools of one server.

    Precedence, strongest first: ``deny`` (globs over the tool's own name); with
    ``on_change: block``, a tool in ``changed`` (new or changed against the lock); an
    explicit ``allow``; ``block`` by class. Without an inventory, deny entries without glob
    characters are still disabled exactly; deny globs and ``block`` go to ``unresolved``.
    """
    if policy is None:
        return Governance()
    exact = frozenset(p for p in policy.deny if not is_glob(p))
    held = changed if policy.on_change is OnChange.BLOCK else frozenset()
    if inventory is None:
        unresolved = [p for p in policy.deny if is_glob(p)]
        if policy.block is not Block.NONE:
            unresolved.append(f"block: {policy.block.value}")
        return Governance(exact | held, tuple(unresolved), stale=bool(unresolved))
    blocked = BLOCKED[policy.block]
    off = set(exact | held)
    for tool, tool_class in inventory.items():
        if _matches(tool, policy.deny):
            off.add(tool)
        elif _matches(tool, policy.allow):
            continue
        elif tool_class in blocked:
            off.add(tool)
    return Governance(frozenset(off))


def _matches(tool: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(tool, p) for p in patterns)


def merge_policy(defaults: ToolPolicy | None, own: ToolPolicy | None) -> ToolPolicy | None:
    """A server's policy over ``defaults: {tools: ...}``: each key the server sets itself
    wins whole (its ``allow`` replaces the default ``allow``, not adds to it); the keys it
    leaves out come from the defaults."""
    if defaults is None or own is None:
        return own if defaults is None else defaults
    values = {
        f.name: getattr(own if f.name in own.given else defaults, f.name)
        for f in written_fields(ToolPolicy)
        if f.name in own.given | defaults.given
    }
    return ToolPolicy(**values)


# -- the tool surface and the lock ---------------------------------------------------------


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8; the input of every lock hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


@dataclass(frozen=True)
class ToolRecord:
    """One tool as the lock and the inventory keep it: its class and hashes, no texts.

    ``sha256`` covers name, description, input schema and annotations together (canonical
    JSON); ``fields`` holds a short hash per field of ``LOCKED_FIELDS``, so a change can
    name the field that moved.
    """

    name: str
    tool_class: ToolClass
    sha256: str
    fields: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {"class": self.tool_class.value, "sha256": self.sha256, "fields": dict(self.fields)}


def tool_record(
    name: str,
    description: str | None,
    input_schema: Mapping[str, Any] | None,
    annotations: Mapping[str, Any] | None,
) -> ToolRecord:
    """The record of a tool as a server listed it (annotations in wire spelling)."""
    parts: dict[str, Any] = {
        "description": description,
        "input_schema": dict(input_schema) if input_schema is not None else None,
        "annotations": dict(annotations) if annotations is not None else None,
    }
    return ToolRecord(
        name,
        classify(annotations),
        _sha({"name": name, **parts}),
        {key: _sha(parts[key])[:FIELD_HASH] for key in LOCKED_FIELDS},
    )


@dataclass(frozen=True)
class ServerTools:
    """One server's tool surface as last probed: records by tool name, and when."""

    server: str
    tools: Mapping[str, ToolRecord] = field(default_factory=dict, hash=False)
    probed_at: str | None = None  # ISO 8601 UTC

    def classes(self) -> dict[str, ToolClass]:
        return {name: record.tool_class for name, record in self.tools.items()}

    def counts(self) -> dict[str, int]:
        """Tool counts by class, every class present (for probe and status)."""
        counts = {c.value: 0 for c in ToolClass}
        for record in self.tools.values():
            counts[record.tool_class.value] += 1
        return counts


class SurfaceChange(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class ToolDrift:
    """A tool whose surface differs from the lock: "tool surface changed upstream"."""

    server: str
    tool: str
    change: SurfaceChange
    fields: tuple[str, ...] = ()  # for a change: description, input_schema, annotations, class

    def describe(self) -> str:
        what = f"tool '{self.tool}' of server '{self.server}'"
        if self.change is SurfaceChange.CHANGED:
            return f"tool surface changed upstream: {what} changed ({', '.join(self.fields)})"
        return f"tool surface changed upstream: {what} {self.change.value}"

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "tool": self.tool,
            "change": self.change.value,
            "fields": list(self.fields),
            "message": self.describe(),
        }


def surface_drift(
    server: str, locked: Mapping[str, ToolRecord], current: Mapping[str, ToolRecord]
) -> tuple[ToolDrift, ...]:
    """Every tool added, removed or changed in ``current`` against the lock, sorted by name.

    A changed tool names each field whose hash differs, and ``class`` when its class moved;
    a lock entry without field hashes names what it can (``sha256``).
    """
    out: list[ToolDrift] = []
    for name in sorted(set(locked) | set(current)):
        old, new = locked.get(name), current.get(name)
        if old is None:
            out.append(ToolDrift(server, name, SurfaceChange.ADDED))
        elif new is None:
            out.append(ToolDrift(server, name, SurfaceChange.REMOVED))
        elif old.sha256 != new.sha256 or old.tool_class != new.tool_class:
            fields = [k for k in LOCKED_FIELDS if old.fields.get(k) != new.fields.get(k)]
            if not old.fields or not fields:
                fields = ["sha256"]  # a lock entry without field hashes: say what differs
            if old.tool_class != new.tool_class:
                fields.append("class")
            out.append(ToolDrift(server, name, SurfaceChange.CHANGED, tuple(fields)))
    return tuple(out)


def changed_tools(drift: Iterable[ToolDrift]) -> frozenset[str]:
    """The tools ``on_change: block`` holds disabled: added or changed, not removed."""
    return frozenset(d.tool for d in drift if d.change is not SurfaceChange.REMOVED)


def unreviewed(
    locked: Mapping[str, ToolRecord] | None, inventory: ServerTools | None
) -> frozenset[str]:
    """For the engine: the tools of ``inventory`` new or changed against the lock (none
    without an inventory; every tool when the server has no lock entry)."""
    if inventory is None:
        return frozenset()
    return changed_tools(surface_drift(inventory.server, locked or {}, inventory.tools))
