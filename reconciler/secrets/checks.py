"""The secret rules of desired state, run by the desired loader as one of its ``checks``.

This module exists because the loader (``reconciler.store.desired``) sits below the secrets
layer and cannot import it: ``check_desired`` is handed to it (``engine.load_desired`` wires
it), and returns located problems: resolver declarations, reference syntax, each target's
``secrets:`` option, and literal secrets. A literal secret's value is registered with the
redactor and never appears in a problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Protocol

from reconciler.core.compare import pointer_parts
from reconciler.core.errors import Problem
from reconciler.core.essence import Capability, Essence, from_server
from reconciler.core.model import Resolver, Server, TargetSpec
from reconciler.secrets.detection import (
    detect,
    has_secret_marker,
    scan_essence,
    template_url_secrets,
)
from reconciler.secrets.redaction import REDACTOR, Redactor
from reconciler.secrets.references import (
    BUILTIN_SCHEMES,
    ENV_NAME,
    RESOLVER_NAME,
    essence_strings,
    find_references,
    reference_problem,
)
from reconciler.secrets.rendering import can_reference


class _Where(Protocol):
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


def check_desired(
    servers: Mapping[str, Server],
    targets: Mapping[str, TargetSpec],
    resolvers: Mapping[str, Resolver],
    at: Callable[..., _Where],
    *,
    capability_of: Callable[[str], Capability | None],
    redactor: Redactor | None = None,
) -> list[Problem]:
    """Secret rules of desired state, each problem located: ``at(section, name, *path)``.

    Resolver declarations, reference syntax, the ``secrets:`` option of each target, and
    literal secrets. A literal secret's value is registered with the redactor (so nothing
    else can print it) and never appears in the problem.
    """
    redactor = REDACTOR if redactor is None else redactor
    problems: list[Problem] = []

    def problem(where: _Where, message: str, hint: str = "") -> None:
        problems.append(Problem(where.file, where.line, where.column, message, hint))

    for name, resolver in resolvers.items():
        if name in BUILTIN_SCHEMES or not RESOLVER_NAME.fullmatch(name):
            problem(
                at("secrets", name),
                f"secrets: '{name}' cannot name a resolver",
                "env and file are built in; a name is letters, digits, '-' and '_'",
            )
        if not any("{name}" in part for part in resolver.command):
            problem(
                at("secrets", name, "command"),
                f"secrets.{name}.command never uses {{name}}",
                "every secret would get the same value; put {name} where the secret's name goes",
            )

    def check_string(section: str, owner: str, path: tuple[str | int, ...], text: str) -> None:
        for ref in find_references(text):
            why = reference_problem(ref, resolvers)
            if why is not None:
                shown = ".".join(str(p) for p in (section, owner, *path))
                problem(at(section, owner, *path), f"{shown}: {why[0]}", why[1])

    for name, server in servers.items():
        if _plainly_clean(server):
            continue
        essence_like: Essence = {
            k: v for k, v in from_server(server).items() if k not in ("transport", "enabled")
        }
        for pointer, _field, _key, value in essence_strings(essence_like):
            check_string("servers", name, _loc(pointer), value)
        for finding in scan_essence(essence_like, known=False):
            redactor.add(finding.value)
            loc = _loc(finding.path)
            problem(
                at("servers", name, *loc),
                f"servers.{name}.{'.'.join(map(str, loc))}: a literal secret ({finding.kind}) "
                "in desired state",
                "replace it with a reference, e.g. "
                + _suggest(name, loc, finding.value)
                + ", and give the value through the environment or a secrets: resolver",
            )

    for name, spec in targets.items():
        if spec.secrets == "reference" and not can_reference(capability_of(spec.kind)):
            problem(
                at("targets", name, "secrets"),
                f"target '{name}': kind {spec.kind} cannot reference environment "
                "variables, so 'secrets: reference' is impossible",
                "remove the option: values are resolved at apply time and written with mode 0600",
            )
        for field in ("token", "url"):
            value = getattr(spec, field)
            if not isinstance(value, str):
                continue
            check_string("targets", name, (field,), value)
            kind = detect(value, field)
            if kind is not None:
                redactor.add(value)
                problem(
                    at("targets", name, field),
                    f"targets.{name}.{field}: a literal secret ({kind}) in desired state",
                    "use a reference, e.g. token: ${env:MCPJUNGLE_ADMIN_TOKEN}",
                )
    return problems


def _plainly_clean(server: Server) -> bool:
    """No reference, no token shape, no secret-like name anywhere: nothing to check (fast)."""
    parts = [server.command or "", server.cwd or "", server.url or "", *server.args]
    parts += [*server.env.values(), *server.headers.values(), *server.env, *server.headers]
    low = "\n".join(parts).lower()
    if "${" in low or "<get_from_infisical:" in low:
        return False
    return not has_secret_marker(low)


def _loc(pointer: str) -> tuple[str | int, ...]:
    parts = pointer_parts(pointer)
    return tuple(int(p) if parts[0] == "args" and i == 1 else p for i, p in enumerate(parts))


def _suggest(server: str, loc: tuple[str | int, ...], value: str = "") -> str:
    if "://" in value:  # only the secret parts of a URL become references
        templated, variables = template_url_secrets(value, _env_name(server))
        if variables:
            return templated
    if len(loc) == 2 and loc[0] == "env" and ENV_NAME.fullmatch(str(loc[1])):
        return f"${{env:{loc[1]}}}"
    if len(loc) == 2 and loc[0] == "headers" and str(loc[1]).lower() == "authorization":
        return f"Bearer ${{env:{_env_name(server)}_TOKEN}}"
    return f"${{env:{_env_name(server)}_SECRET}}"


def _env_name(server: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", server).upper().strip("_") or "SERVER"
