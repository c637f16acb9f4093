"""Target kinds: the registry from a ``kind:`` in desired state to the class that handles it.

The kinds are what the family modules declare: a ``kind:`` in desired state is a plain name,
and the desired-state check here (``check``, handed to the loader) refuses one that no family
declares, with the closest known kind, instead of failing at apply time.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from reconciler.core.compare import pointer_parts
from reconciler.core.errors import Problem
from reconciler.core.essence import Capability, bridge_mcp_remote, from_server
from reconciler.core.model import TargetSpec
from reconciler.secrets import (
    essence_strings,
    essence_texts,
    header_through_env,
    without_references,
)
from reconciler.store.desired import DesiredState, Locator, is_glob
from reconciler.store.yamlio import Located
from reconciler.targets import (
    codex,
    ideclients,
    jsonclients,
    mcpjungle,
    mirror,
    opencode,
    references,
    yamlclients,
)
from reconciler.targets.base import Context, Entries, Observation, Target, ToolRules, Write
from reconciler.targets.references import Syntax

__all__ = [
    "CAPABILITIES",
    "DECLARABLE",
    "FAMILIES",
    "KINDS",
    "MCPJUNGLE",
    "MIRROR",
    "REMOTE_KINDS",
    "Context",
    "Entries",
    "Observation",
    "Target",
    "ToolRules",
    "Write",
    "build",
    "supported",
    "warnings",
]

Factory = Callable[[str, TargetSpec, Context], Target]

# The family modules. Each lists the classes of its kinds in ``KIND_CLASSES``; a class
# declares everything about its kind: its name (``kind``), capability mask, scopes (the
# first is the default), default paths per OS, reference dialect and per-tool control key.
# Every family module is imported here (each imports its heavy libraries, tomlkit or httpx,
# only when a target of its kind is built), so a run pays only for the kinds it uses.
_MODULES = (jsonclients, ideclients, yamlclients, codex, opencode, mcpjungle, mirror)

MCPJUNGLE = mcpjungle.KIND
MIRROR = mirror.KIND  # copies from ``mirrors:``, never declared under ``targets:``

FAMILIES: dict[str, type[Target]] = {
    family.kind: family for module in _MODULES for family in module.KIND_CLASSES
}
KINDS: dict[str, Factory] = {
    **{kind: family for kind, family in FAMILIES.items() if kind != MIRROR},
    MIRROR: mirror.build,  # refuses a spec that is not a mirror copy
}
# Kinds reached over the network: their passes wait on I/O and run concurrently.
REMOTE_KINDS = frozenset({MCPJUNGLE})
CAPABILITIES: dict[str, Capability] = {k: f.capability for k, f in FAMILIES.items()}
SCOPES: dict[str, tuple[str, ...]] = {k: f.scopes for k, f in FAMILIES.items()}
# The kinds a ``targets:`` entry may name (a mirror copy comes from ``mirrors:``).
DECLARABLE = tuple(sorted(k for k in FAMILIES if k != MIRROR))


def capability(kind: str) -> Capability | None:
    """What ``kind`` can express (None for a kind without server entries)."""
    found = CAPABILITIES.get(kind)
    return found if found is not None and found.fields else None


def supported(kind: str) -> bool:
    return kind in KINDS


def build(name: str, spec: TargetSpec, context: Context) -> Target:
    return KINDS[spec.kind](name, spec, context)


# -- validation of targets in desired state ------------------------------------------------


def check(state: DesiredState, at: Locator) -> list[Problem]:
    """Every target's kind-specific rules, and the mirrors' (a ``desired.Check``)."""
    problems: list[Problem] = []
    for name, spec in state.targets.items():
        problems += _check_target(state, name, spec, lambda *p, n=name: at("targets", n, *p))
    if state.mirrors or any(t.kind == MIRROR for t in state.targets.values()):
        problems += mirror.check(state, at)
    problems += _check_literals(state, at)
    return problems


def _check_literals(state: DesiredState, at: Locator) -> list[Problem]:
    """Literal text a kind's reference syntax would take for a reference (a ``$HOME`` on
    Gemini CLI): refused with the kind's reason, located at the value (never quoted)."""
    problems: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    for name, spec in state.targets.items():
        syntax: Syntax | None = getattr(FAMILIES.get(spec.kind), "syntax", None)
        if syntax is None or syntax.writable is references.ANY_LITERAL:
            continue
        for server_name in state.placements(name):
            essence = from_server(state.servers[server_name])
            if "$" not in "".join(essence_texts(essence)):
                continue
            for pointer, _field, _key, value in essence_strings(essence):
                if (server_name, pointer, spec.kind) in seen:
                    continue
                if syntax.writable(without_references(value)):
                    continue
                seen.add((server_name, pointer, spec.kind))
                parts = pointer_parts(pointer)
                path = [int(p) if parts[0] == "args" and i == 1 else p for i, p in enumerate(parts)]
                where = at("servers", server_name, *path)
                shown = ".".join(str(p) for p in ("servers", server_name, *path))
                problems.append(
                    Problem(
                        where.file,
                        where.line,
                        where.column,
                        f"{shown}: cannot be written to target '{name}' ({spec.kind}): "
                        f"{syntax.why_not}",
                        "write a reference (${env:NAME}) if the variable is meant, or keep "
                        f"this server off {spec.kind} targets",
                    )
                )
    return problems


def _check_target(state: DesiredState, name: str, spec: TargetSpec, at: Any) -> list[Problem]:
    problems: list[Problem] = []

    def problem(where: Located, message: str, hint: str = "") -> None:
        problems.append(Problem(where.file, where.line, where.column, message, hint))

    kind = spec.kind
    if kind == MIRROR:
        return problems  # refused by mirror.check: mirrors are declared under ``mirrors:``
    if kind not in KINDS:
        hint = f"known kinds: {', '.join(DECLARABLE)}"
        close = difflib.get_close_matches(kind, DECLARABLE, n=1)
        problem(
            at("kind"),
            f"targets.{name}.kind: invalid value {kind!r}",
            f"did you mean '{close[0]}'? {hint}" if close else hint,
        )
        return problems  # nothing else about a kind nobody declares can be checked
    if kind == MCPJUNGLE:
        if spec.url is None:
            problem(
                at("@key"),
                f"target '{name}': an mcpjungle target needs 'url'",
                "for example url: http://127.0.0.1:8080",
            )
        for key in ("path", "scope", "project", "bridge"):
            if getattr(spec, key) is not None:
                problem(at(key), f"target '{name}': '{key}' does not apply to kind mcpjungle")
    else:
        for key in ("url", "token", "timeout"):
            if getattr(spec, key) is not None:
                problem(
                    at(key),
                    f"target '{name}': '{key}' applies only to kind mcpjungle",
                    "a client target is a file: use 'path' to move it",
                )
    if not SCOPES[kind] and kind != MCPJUNGLE:
        title = getattr(FAMILIES[kind], "title", kind)
        if spec.scope is not None:
            problem(at("scope"), f"target '{name}': {title} has one file and no scopes")
        elif spec.project is not None:
            problem(at("project"), f"target '{name}': {title} has one file and no projects")
    elif SCOPES[kind]:
        problems += _check_scope(name, spec, at)
    if spec.profile is not None:
        problems += _check_profile(name, spec, at)
    capability = CAPABILITIES[kind]
    for index, item in enumerate(spec.servers):
        ref = item if isinstance(item, str) else item.name
        ref = ref.removeprefix("!")  # an exclusion names a server too
        where = at("servers", index)
        if is_glob(ref):
            continue
        if ref not in state.servers:
            close = difflib.get_close_matches(ref, list(state.servers), n=1)
            problem(
                where,
                f"target '{name}' places undeclared server '{ref}'",
                f"did you mean '{close[0]}'?" if close else "declare it under servers:",
            )
    for server_name in state.placements(name):
        server = state.servers[server_name]
        transport = server.effective_transport
        if not capability.expresses(transport) and spec.bridge is None:
            where = at("servers")
            problem(
                where,
                f"target '{name}' ({kind}) cannot carry {transport} server '{server_name}'",
                "place it elsewhere, or set bridge: mcp-remote to run it through mcp-remote"
                if transport != "stdio"
                else "this kind carries remote servers only",
            )
    return problems


def warnings(state: DesiredState) -> list[Problem]:
    """What desired state asks that a target will not carry: a field its kind cannot
    express (``cwd`` on Claude Code). Not an error (the server works without it where the
    client starts it from anywhere), but never dropped in silence: ``validate`` lists these,
    and the plan notes them."""
    found: list[Problem] = []
    for name, spec in state.targets.items():
        capability = CAPABILITIES.get(spec.kind)
        if capability is None or not capability.fields:
            continue
        for server_name in state.placements(name):
            server = state.servers[server_name]
            full = from_server(server)
            if not capability.expresses(full["transport"]) and spec.bridge == "mcp-remote":
                full = bridge_mcp_remote(full, header_through_env)
            dropped = capability.unexpressed(full)
            if not dropped:
                continue
            where = state.origins.get(("servers", server_name)) or Located("", 0, 0)
            carriers = sorted(
                k for k, c in CAPABILITIES.items() if all(f in c.fields for f in dropped)
            )
            found.append(
                Problem(
                    where.file,
                    where.line,
                    where.column,
                    f"target '{name}' ({spec.kind}) cannot express "
                    f"{', '.join(dropped)} of server '{server_name}': not written there",
                    f"kinds that carry it: {', '.join(carriers)}" if carriers else "",
                )
            )
    return found


def _check_scope(name: str, spec: TargetSpec, at: Any) -> list[Problem]:
    """``scope`` must exist for the kind; ``project`` goes with (and only with) project/local."""
    problems: list[Problem] = []

    def problem(key: str, message: str, hint: str) -> None:
        where = at(key)
        problems.append(Problem(where.file, where.line, where.column, message, hint))

    scopes = SCOPES[spec.kind]
    scope = spec.scope or scopes[0]
    if scope not in scopes:
        problem(
            "scope",
            f"target '{name}': {spec.kind} has no scope '{scope}'",
            f"scopes: {', '.join(scopes)}",
        )
    elif scope in ("project", "local") and spec.project is None:
        if not (scope == "project" and spec.path is not None):
            problem(
                "scope",
                f"target '{name}': scope '{scope}' needs 'project:' (the project's folder)",
                "for example project: ~/src/app",
            )
    elif scope == "user" and spec.project is not None:
        problem(
            "project",
            f"target '{name}': 'project' applies to scope project or local",
            "set scope: project (or local for Claude Code)",
        )
    return problems


def _check_profile(name: str, spec: TargetSpec, at: Any) -> list[Problem]:
    """``profile`` needs a kind with profiles, the user scope, no ``path``, one folder name."""
    where = at("profile")
    profile = spec.profile or ""
    family = FAMILIES[spec.kind]
    title = getattr(family, "title", spec.kind)
    message = hint = ""
    if not getattr(family, "profiles", False):
        with_profiles = sorted(k for k, f in FAMILIES.items() if getattr(f, "profiles", False))
        message = f"target '{name}': {title} has no profiles"
        hint = f"kinds with profiles: {', '.join(with_profiles)}"
    elif (spec.scope or "user") != "user":
        message = f"target '{name}': 'profile' applies to scope user"
    elif spec.path is not None:
        message = f"target '{name}': set 'profile' or 'path', not both"
    elif profile in ("", ".", "..") or any(c in profile for c in "/\\\0"):
        message = f"target '{name}': profile {profile!r} is not a profile's id or name"
        hint = "the id is the profile's folder under User/profiles; or give its name"
    if not message:
        return []
    return [Problem(where.file, where.line, where.column, message, hint)]
