"""Typed desired state: the pydantic models behind ``desired/*.yaml`` and ``reconcile schema``.

The models are strict (no coercion: ``enabled: yes`` is an error, not a string) and closed
(an unknown key is an error), because a typo in a GitOps source of truth must fail in review,
not silently do nothing. Cross-object rules (a placement naming an undeclared server, an http
server on a stdio-only target) live in ``desired.py``, which knows file locations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictStr, model_validator

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


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Block(StrEnum):
    """Which classes of tools a policy disables (``core.tools.BLOCKED``)."""

    NONE = "none"
    DESTRUCTIVE = "destructive"  # the destructive ones
    MUTATING = "mutating"  # every tool that is not read-only


class OnChange(StrEnum):
    """What a tool new or changed against the tool lock gets until the lock is updated."""

    REPORT = "report"  # drift in probe and audit; the tool is governed as any other
    BLOCK = "block"  # also disabled wherever enforceable


class ToolPolicy(_Closed):
    """Governed tools of a server (DESIGN.md 6B): ``allow``/``deny`` are globs over the
    tool's own name; deny beats allow, an explicit allow beats ``block``."""

    allow: tuple[StrictStr, ...] = ()
    deny: tuple[StrictStr, ...] = ()
    block: Block = Block.NONE
    on_change: OnChange = OnChange.REPORT


class Defaults(_Closed):
    """``defaults:``: what applies to every server that does not say otherwise.

    ``tools`` is merged key by key under each server's own ``tools`` (the server's keys win
    whole; ``core.tools.merge_policy``).
    """

    tools: ToolPolicy | None = None


class Server(_Closed):
    """One MCP server, declared once. stdio when ``command`` is set, http/sse when ``url`` is."""

    description: StrictStr | None = None
    command: StrictStr | None = None
    args: tuple[StrictStr, ...] = ()
    env: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    cwd: StrictStr | None = None
    url: StrictStr | None = None
    transport: Literal["stdio", "http", "sse"] | None = None
    headers: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    enabled: StrictBool = True
    required: StrictBool = False
    tools: ToolPolicy | None = None
    aliases: tuple[StrictStr, ...] = ()

    @model_validator(mode="after")
    def _one_endpoint(self) -> Server:
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
        return self

    @property
    def effective_transport(self) -> str:
        if self.command is not None:
            return "stdio"
        return self.transport or "http"


class PlacementRef(_Closed):
    """A placement written as a mapping: ``{name: github, required: false}``."""

    name: StrictStr
    required: StrictBool | None = None


Placement = Annotated[StrictStr | PlacementRef, Field(union_mode="left_to_right")]


class TargetSpec(_Closed):
    """A place that holds copies of servers. Kind-specific fields are checked in ``desired.py``."""

    kind: StrictStr
    path: StrictStr | None = None
    scope: Literal["user", "project", "local"] | None = None
    project: StrictStr | None = None
    # A client profile of the user scope (VS Code: a folder under ``User/profiles``, or the
    # profile's name); kinds without profiles refuse it.
    profile: StrictStr | None = None
    servers: tuple[Placement, ...] = ("*",)
    on_drift: OnDrift = OnDrift.SYNC
    prune: StrictBool = False
    exclusive: StrictBool = False
    optional: StrictBool = False
    create: StrictBool = True  # a missing client file: create it (false: skip, report absent)
    secrets: Literal["reference", "resolve"] | None = None
    bridge: Literal["mcp-remote"] | None = None
    url: StrictStr | None = None
    token: StrictStr | None = None
    timeout: Annotated[float, Strict()] | None = Field(default=None, gt=0)


class Mirror(_Closed):
    """Source-copy parity for a file tree (the ``mirrors`` issue implements it)."""

    source: StrictStr
    copies: tuple[StrictStr, ...] = Field(min_length=1)
    include: tuple[StrictStr, ...] = ()
    exclude: tuple[StrictStr, ...] = ()
    on_drift: OnDrift = OnDrift.REPORT
    prune: StrictBool = False


class MirrorCopySpec(TargetSpec):
    """The target spec of one mirror copy, derived from ``mirrors:`` (never written by hand)."""

    mirror: StrictStr
    source: StrictStr
    copy_path: StrictStr
    include: tuple[StrictStr, ...] = ()
    exclude: tuple[StrictStr, ...] = ()


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


class Resolver(_Closed):
    """A secret resolver: a command run without a shell; ``{name}`` is substituted."""

    command: tuple[StrictStr, ...] = Field(min_length=1)
    timeout: Annotated[float, Strict()] = Field(default=10.0, gt=0)


class DesiredFile(_Closed):
    """One file of ``desired/``: any of the four sections, and ``defaults`` (in one file)."""

    defaults: Defaults | None = None
    servers: dict[StrictStr, Server] = Field(default_factory=dict)
    targets: dict[StrictStr, TargetSpec] = Field(default_factory=dict)
    mirrors: dict[StrictStr, Mirror] = Field(default_factory=dict)
    secrets: dict[StrictStr, Resolver] = Field(default_factory=dict)


def json_schema(kinds: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON Schema of one desired-state file, for editors and ``reconcile schema``.

    ``kinds``: the target kinds the families declare, listed as the enum of ``kind``.
    """
    schema = DesiredFile.model_json_schema()
    if kinds:
        schema["$defs"]["TargetSpec"]["properties"]["kind"]["enum"] = list(kinds)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mcp-reconciler desired state"
    return schema
