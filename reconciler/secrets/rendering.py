"""Rendering: a target's essence turned into what the target must hold.

This module exists because what may stay a reference depends on the target: on a client
that can reference an environment variable itself, ``${env:NAME}`` stays a reference (in
its one canonical spelling; each client dialect converts it to its own syntax), and every
other reference is resolved; elsewhere every reference is resolved to its value and the
write is marked sensitive (file mode 0600). ``referable`` says which values a target can
keep, from its capability (a client that passes a variable through only under its own name,
as Codex does, keeps fewer; one that expands references in some fields only, as Crush does,
keeps them there only), ``reference_mode`` reads a
target's ``secrets:`` option, and ``seal_paths`` seals the resolved strings outside env and
headers so they are compared and shown by fingerprint only. A reference that cannot be
resolved fails the target's plan (``SecretError``); nothing empty or literal is ever
written in its place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.core.compare import pointer_parts
from reconciler.core.essence import (
    SECRET_FIELDS,
    Capability,
    Essence,
    Sealer,
    is_sealed_value,
    normalize_url,
)
from reconciler.core.report import ResolvedValue
from reconciler.secrets.references import (
    BEARER_ENV,
    ENV,
    ENV_NAME,
    ONLY_ENV,
    Reference,
    canonical_env,
    essence_strings,
    find_references,
    substitute,
)
from reconciler.secrets.resolution import SecretError, SecretResolver


@dataclass(frozen=True)
class RenderedSecrets:
    """A target's essence with its references rendered, and what that implies."""

    essence: Essence
    sensitive: bool  # it holds at least one resolved secret value: write it 0600
    secret_paths: frozenset[str]  # JSON Pointers of strings that hold resolved secret values
    resolved: tuple[ResolvedValue, ...] = ()  # each resolved secret value, named


def can_reference(capability: Capability | None) -> bool:
    """Whether a target can keep ``${env:NAME}`` at all (None: no server entries)."""
    return capability is not None and capability.env_references


def reference_mode(capability: Capability | None, option: str | None) -> bool:
    """True when ``${env:NAME}`` stays a reference on this target (``secrets:`` option)."""
    if option == "resolve":
        return False
    return can_reference(capability)


def referable(capability: Capability, field: str, key: str | None, value: str) -> bool:
    """Whether ``value`` (canonical ``${env:NAME}`` spelling) can stay as it is on a target.

    Clients with interpolation take a reference in every field they expand it in
    (``capability.reference_fields``: Crush only in command, env and headers). A client
    that passes a variable through by name only (Codex) keeps: an env entry named like its
    variable (``env_vars``), ``Authorization: Bearer ${env:V}`` (``bearer_token_env_var``)
    and a header that is exactly ``${env:V}`` (``env_http_headers``).
    """
    if not capability.expands_in(field):
        return False
    if not capability.references_by_name:
        return True
    whole = ONLY_ENV.fullmatch(value)
    if field == "env":
        return whole is not None and whole.group(1) == key
    if field == "headers":
        if whole is not None:
            return True
        return (key or "").lower() == "authorization" and BEARER_ENV.fullmatch(value) is not None
    return False


def _mentions_reference(essence: Essence) -> bool:
    """Whether any string of the essence may hold a reference (a hot path: no generators)."""
    for value in essence.values():
        if isinstance(value, str):
            if "${" in value or "<GET_FROM_INFISICAL:" in value:
                return True
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str) and ("${" in item or "<GET_FROM_INFISICAL:" in item):
                    return True
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, str) and ("${" in item or "<GET_FROM_INFISICAL:" in item):
                    return True
    return False


def _set(essence: Essence, pointer: str, value: str) -> None:
    parts = pointer_parts(pointer)
    if len(parts) == 1:
        essence[parts[0]] = value
    elif parts[0] == "args":
        essence["args"][int(parts[1])] = value
    else:
        essence[parts[0]][parts[1]] = value


def header_through_env(value: str) -> tuple[str, dict[str, str]]:
    """A header value for mcp-remote: each reference becomes ``${VAR}``, which mcp-remote
    expands from its environment, and VAR gets the reference through ``env`` (rendered as
    any env value is, kept or resolved per target). ``Bearer ${env:TOKEN}`` gives
    ``Bearer ${TOKEN}`` and ``{TOKEN: ${env:TOKEN}}``."""
    refs = find_references(value)
    if not refs:
        return value, {}
    env: dict[str, str] = {}

    def through(ref: Reference) -> str:
        variable = _variable("headers", None, [ref])
        env[variable] = ref.canonical
        return "${" + variable + "}"

    return substitute(value, refs, through), env


def render_essence(
    essence: Essence,
    resolver: SecretResolver,
    *,
    keep_env: bool,
    capability: Capability | None = None,
    kind: str = "",
    server: str = "",
    literal: frozenset[str] = frozenset(),
) -> RenderedSecrets:
    """The essence a target must hold: references kept (``keep_env``, where ``capability``
    allows) or resolved. ``kind`` names the target kind in notes. Strings at ``literal``
    pointers are another program's text (an mcp-remote ``--header``), never rendered.

    Raises SecretError naming every reference that could not be resolved (and no value).
    """
    if not _mentions_reference(essence):
        return RenderedSecrets(essence, False, frozenset())
    out: Essence = {
        k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
        for k, v in essence.items()
    }
    sensitive = False
    paths: set[str] = set()
    resolved: list[ResolvedValue] = []
    errors: list[SecretError] = []
    for pointer, field, key, value in list(essence_strings(essence)):
        refs = find_references(value)
        if not refs or pointer in literal:
            continue
        keep = (
            keep_env
            and capability is not None
            and any(r.scheme == ENV for r in refs)
            and referable(capability, field, key, canonical_env(value))
        )
        secret_refs: list[Reference] = []

        def value_of(
            ref: Reference, keep: bool = keep, secret_refs: list[Reference] = secret_refs
        ) -> str:
            if keep and ref.scheme == ENV:
                return ref.canonical
            try:
                result = resolver.resolve(ref)
            except SecretError as e:
                errors.append(e)
                return ref.text
            if ref.is_secret:
                secret_refs.append(ref)
            return result

        text = substitute(value, refs, value_of)
        if field == "url" and text != value:
            text = normalize_url(text)  # a resolved host compares as the live one does
        _set(out, pointer, text)
        if secret_refs:
            sensitive = True
            paths.add(pointer)
            why, avoid = explain(capability, field, key, secret_refs, keep_env=keep_env, kind=kind)
            names = tuple(dict.fromkeys(r.canonical for r in secret_refs))
            resolved.append(ResolvedValue(server or "server", pointer, names, why, avoid))
    if errors:
        detail = "; ".join(dict.fromkeys(str(e) for e in errors))
        where = f"server '{server}': " if server else ""
        raise SecretError(
            f"{where}cannot resolve {detail}; nothing is written to this target",
            recoverable=all(e.recoverable for e in errors),
        )
    return RenderedSecrets(out, sensitive, frozenset(paths), tuple(resolved))


def _variable(field: str, key: str | None, refs: list[Reference]) -> str:
    """The environment variable to suggest for a value: the variable it already names, its
    env key, else the reference's name made a variable name (``${infisical:gh-token}``:
    ``GH_TOKEN``)."""
    if refs[0].scheme == ENV:
        return refs[0].name
    if field == "env" and key is not None and ENV_NAME.fullmatch(key):
        return key
    name = re.sub(r"[^A-Za-z0-9]+", "_", refs[0].name.rsplit("/", 1)[-1]).upper().strip("_")
    if not name or name[0].isdigit():
        name = "SECRET_" + name
    return name


def explain(
    capability: Capability | None,
    field: str,
    key: str | None,
    refs: list[Reference],
    *,
    keep_env: bool,
    kind: str = "",
) -> tuple[str, str]:
    """Why a secret is resolved into this target's file, and how to keep it out (the
    per-kind facts come from the kind's capability: whether it expands variables at all,
    whether only by the variable's own name, and in which fields)."""
    who = kind or "this target"
    variable = _variable(field, key, refs)
    wanted = f"${{env:{variable}}}"
    export = f"export {variable} to {who}'s environment"
    if not can_reference(capability):
        return (
            f"{who} cannot expand references",
            f"none on {who} (the file is kept at mode 0600); a client that expands "
            f"{wanted} keeps it out",
        )
    assert capability is not None
    if not capability.expands_in(field):
        where = ", ".join(sorted(capability.reference_fields or ()))
        return (
            f"{who} expands no reference in {field}",
            f"{who} expands references only in {where}: pass the secret through one of "
            f"those (as {wanted}) instead of {field}",
        )
    schemes = sorted({r.scheme for r in refs if r.scheme != ENV})
    if not keep_env:
        why = "the target says secrets: resolve"
        return why, f"remove secrets: resolve, write {wanted} and {export}"
    if schemes:
        why = f"{who} cannot run the {', '.join(schemes)} resolver"
    else:
        why = (
            f"{who} passes a variable through only under its own name "
            "(env_vars, bearer_token_env_var, env_http_headers)"
        )
    if capability.references_by_name:
        if field == "env":
            return why, f"write {key}: ${{env:{key}}} and export {key} to {who}'s environment"
        if field == "headers" and (key or "").lower() == "authorization":
            return why, f"write Authorization: Bearer {wanted} and {export}"
        if field == "headers":
            return why, f"write the whole header as {wanted} and {export}"
        return why, f"{who} takes no variable in {field}: pass the secret through env instead"
    return why, f"write {wanted} in desired state and {export}"


def seal_paths(essence: Essence, paths: Iterable[str], fingerprint: Sealer) -> Essence:
    """Seal the strings that hold resolved secrets, wherever they sit (env, headers, args,
    url, command, cwd), so that they are compared, stored and shown by fingerprint only,
    whatever their name or shape (``essence.seal`` masks by those)."""
    if not paths:
        return essence
    out = essence
    for pointer in paths:
        parts = pointer_parts(pointer)
        if not parts or parts[0] not in out:
            continue
        if out is essence:
            out = dict(essence)
        if parts[0] in SECRET_FIELDS and len(parts) == 2 and isinstance(out[parts[0]], dict):
            mapping = out[parts[0]]
            if parts[1] in mapping and not is_sealed_value(mapping[parts[1]]):
                out[parts[0]] = {**mapping, parts[1]: fingerprint(str(mapping[parts[1]]))}
        elif parts[0] == "args" and len(parts) == 2 and isinstance(out["args"], list):
            index = int(parts[1])
            if index < len(out["args"]) and not is_sealed_value(out["args"][index]):
                args = list(out["args"])
                args[index] = fingerprint(str(args[index]))
                out["args"] = args
        elif (
            len(parts) == 1
            and isinstance(out[parts[0]], str)
            and not is_sealed_value(out[parts[0]])
        ):
            out[parts[0]] = fingerprint(out[parts[0]])
    return out
