"""Typed desired state: the value types behind ``desired/*.yaml`` and ``reconcile schema``.

The schema derived from them (``store.schema``) is strict (no coercion: ``enabled: yes`` is
an error, not a string) and closed (an unknown key is an error), because a typo in a GitOps
source of truth must fail in review, not silently do nothing. Cross-object rules (a placement
naming an undeclared server, an http server on a stdio-only target) live in
``store.desired``, which knows file locations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal

SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def server_name_problem(name: str) -> str | None:
    """Why ``name`` is not a portable server name, or None if it is (MCPJungle's rule)."""
    if not SERVER_NAME.match(name):
        return "only letters, digits, '-' and '_' are allowed"
    if "__" in name:
        return "'__' is reserved as the tool separator by MCPJungle and Gemini"
    if name.endswith("_"):
        return "a trailing '_' is not allowed"
    return None


# A target or mirror name becomes a state-directory file name and a git path: it must be one
# plain path component (no separator, no NUL, no leading dot, no "..").
PATH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def path_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file of its own, or None if it can."""
    if not PATH_NAME.match(name) or ".." in name:
        return (
            "a name becomes a file name: letters, digits, '.', '-' and '_' only, starting"
            " with a letter or digit, no '..', at most 100 characters"
        )
    return None


# A target's ``kind`` is a plain name here: the kinds are what the target families declare
# (``reconciler.targets.FAMILIES``), checked by the targets layer's desired-state check, so
# that adding a client kind touches its family module and not this one.
MIRROR_COPY_KIND = "mirror"  # the kind of a mirror copy's spec: declared under ``mirrors:``


class OnDrift(StrEnum):
    """What a non-dry run does with a live edit of a managed entry."""

    SYNC = "sync"  # revert it to desired
    RECORD = "record"  # commit an allowed-divergence record
    REPORT = "report"  # leave it, report it, exit 1


class Block(StrEnum):
    """Which classes of tools a policy disables (``core.tools.BLOCKED``)."""

    NONE = "none"
    DESTRUCTIVE = "destructive"  # the destructive ones
    MUTATING = "mutating"  # every tool that is not read-only


class OnChange(StrEnum):
    """What a tool new or changed against the tool lock gets until the lock is updated."""

    REPORT = "report"  # drift in probe and audit; the tool is governed as any other
    BLOCK = "block"  # also disabled wherever enforceable


def written_fields(cls: type) -> list[Field[Any]]:
    """The fields of value type ``cls`` a user writes, in declaration order: all but those
    marked ``metadata={"derived": True}`` (``ToolPolicy.given``)."""
    return [f for f in fields(cls) if not f.metadata.get("derived")]


# Value types. Plain frozen dataclasses, keyword-only like the YAML mappings they come from:
# every pass handles them, and a cached pass must not pay for importing pydantic, so the
# schema that validates them (strict, closed) is derived from these very classes by
# ``store.schema`` when a file is validated. A field's ``metadata`` holds the constraints
# that schema adds (``gt``, ``min_length``); a rule over several fields is a ``__post_init__``
# that raises ValueError, which the schema reports at the object, like any other error.


@dataclass(frozen=True, init=False)
class ToolPolicy:
    """Governed tools of a server (DESIGN.md 6B): ``allow``/``deny`` are globs over the
    tool's own name; deny beats allow, an explicit allow beats ``block``."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    block: Block = Block.NONE
    on_change: OnChange = OnChange.REPORT
    # The keys written for this policy: they win whole over ``defaults: {tools: ...}``
    # (``core.tools.merge_policy``). Not part of the policy's value, nor a key of the schema.
    given: frozenset[str] = field(
        default=frozenset(), compare=False, repr=False, metadata={"derived": True}
    )

    def __init__(
        self,
        *,
        allow: tuple[str, ...] | None = None,
        deny: tuple[str, ...] | None = None,
        block: Block | None = None,
        on_change: OnChange | None = None,
    ) -> None:
        given = {"allow": allow, "deny": deny, "block": block, "on_change": on_change}
        set_ = object.__setattr__  # frozen: the one place the fields are set
        set_(self, "allow", tuple(allow or ()))
        set_(self, "deny", tuple(deny or ()))
        set_(self, "block", Block.NONE if block is None else Block(block))
        set_(self, "on_change", OnChange.REPORT if on_change is None else OnChange(on_change))
        set_(self, "given", frozenset(k for k, v in given.items() if v is not None))


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """``defaults:``: what applies to every server that does not say otherwise.

    ``tools`` is merged key by key under each server's own ``tools`` (the server's keys win
    whole; ``core.tools.merge_policy``).
    """

    tools: ToolPolicy | None = None


@dataclass(frozen=True, kw_only=True)
class Server:
    """One MCP server, declared once. stdio when ``command`` is set, http/sse when ``url`` is."""

    description: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    transport: Literal["stdio", "http", "sse"] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    required: bool = False
    tools: ToolPolicy | None = None
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "set exactly one of 'command' (a stdio server) or 'url' (an http/sse server)"
            )
        if self.command is not None:
            if self.transport not in (None, "stdio"):
                raise ValueError(f"transport {self.transport!r} needs 'url', not 'command'")
            if self.headers:
                raise ValueError("'headers' apply to http/sse servers; a stdio server uses 'env'")
        else:
            if self.transport == "stdio":
                raise ValueError("transport 'stdio' needs 'command', not 'url'")
            if self.args or self.env or self.cwd:
                raise ValueError("'args', 'env' and 'cwd' apply to stdio servers only")

    @property
    def effective_transport(self) -> str:
        if self.command is not None:
            return "stdio"
        return self.transport or "http"


@dataclass(frozen=True, kw_only=True)
class PlacementRef:
    """A placement written as a mapping: ``{name: github, required: false}``."""

    name: str
    required: bool | None = None


# A placement: a server name (or glob, or ``!NAME``) or a mapping; the schema tries the
# members of a union left to right.
Placement = str | PlacementRef

_POSITIVE = {"gt": 0}


@dataclass(frozen=True, kw_only=True)
class TargetSpec:
    """A place that holds copies of servers. Kind-specific fields are checked in ``desired.py``."""

    kind: str
    path: str | None = None
    scope: Literal["user", "project", "local"] | None = None
    project: str | None = None
    # A client profile of the user scope (VS Code: a folder under ``User/profiles``, or the
    # profile's name); kinds without profiles refuse it.
    profile: str | None = None
    servers: tuple[Placement, ...] = ("*",)
    on_drift: OnDrift = OnDrift.SYNC
    prune: bool = False
    exclusive: bool = False
    optional: bool = False
    create: bool = True  # a missing client file: create it (false: skip, report absent)
    secrets: Literal["reference", "resolve"] | None = None
    bridge: Literal["mcp-remote"] | None = None
    url: str | None = None
    token: str | None = None
    timeout: float | None = field(default=None, metadata=_POSITIVE)


@dataclass(frozen=True, kw_only=True)
class Mirror:
    """Source-copy parity for a file tree (the ``mirrors`` issue implements it)."""

    source: str
    copies: tuple[str, ...] = field(metadata={"min_length": 1})
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    on_drift: OnDrift = OnDrift.REPORT
    prune: bool = False


@dataclass(frozen=True, kw_only=True)
class MirrorCopySpec(TargetSpec):
    """The target spec of one mirror copy, derived from ``mirrors:`` (never written by hand)."""

    mirror: str
    source: str
    copy_path: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def mirror_target_name(mirror: str, copy: str, copies: int) -> str:
    """DESIGN section 3: the mirror's name, or ``<mirror>:<copy path>`` with several copies."""
    return mirror if copies == 1 else f"{mirror}:{copy}"


def mirror_targets(mirrors: Mapping[str, Mirror]) -> dict[str, MirrorCopySpec]:
    """One target spec per mirror copy, in declaration order: each copy is a target."""
    out: dict[str, MirrorCopySpec] = {}
    for name, mirror in mirrors.items():
        for copy in mirror.copies:
            out[mirror_target_name(name, copy, len(mirror.copies))] = MirrorCopySpec(
                kind=MIRROR_COPY_KIND,
                path=copy,
                servers=(),
                on_drift=mirror.on_drift,
                prune=mirror.prune,
                mirror=name,
                source=mirror.source,
                copy_path=copy,
                include=mirror.include,
                exclude=mirror.exclude,
            )
    return out


@dataclass(frozen=True, kw_only=True)
class Resolver:
    """A secret resolver: a command run without a shell; ``{name}`` is substituted."""

    command: tuple[str, ...] = field(metadata={"min_length": 1})
    timeout: float = field(default=10.0, metadata=_POSITIVE)


@dataclass(frozen=True, kw_only=True)
class DesiredFile:
    """One file of ``desired/``: any of the four sections, and ``defaults`` (in one file)."""

    defaults: Defaults | None = None
    servers: dict[str, Server] = field(default_factory=dict)
    targets: dict[str, TargetSpec] = field(default_factory=dict)
    mirrors: dict[str, Mirror] = field(default_factory=dict)
    secrets: dict[str, Resolver] = field(default_factory=dict)
