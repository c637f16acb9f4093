"""Rendering: a target's essence turned into what the target must hold.

This module exists because what may stay a reference depends on the target: on a client
that can reference an environment variable itself, ``${env:NAME}`` stays a reference (in
its one canonical spelling; each client dialect converts it to its own syntax), and every
other reference is resolved; elsewhere every reference is resolved to its value and the
write is marked sensitive (file mode 0600). ``referable`` says which values a target can
keep, from its capability (a client that passes a variable through only under its own name,
as Codex does, keeps fewer), ``reference_mode`` reads a
target's ``secrets:`` option, and ``seal_paths`` seals the resolved strings outside env and
headers so they are compared and shown by fingerprint only. A reference that cannot be
resolved fails the target's plan (``SecretError``); nothing empty or literal is ever
written in its place.
"""

from __future__ import annotations

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
from reconciler.secrets.references import (
    BEARER_ENV,
    ENV,
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
    notes: tuple[str, ...] = ()


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

    Clients with interpolation take a reference anywhere. A client that passes a variable
    through by name only (Codex) keeps: an env entry named like its variable (``env_vars``),
    ``Authorization: Bearer ${env:V}`` (``bearer_token_env_var``) and a header that is
    exactly ``${env:V}`` (``env_http_headers``).
    """
    if not can_reference(capability):
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


def render_essence(
    essence: Essence,
    resolver: SecretResolver,
    *,
    keep_env: bool,
    capability: Capability | None = None,
    kind: str = "",
    server: str = "",
) -> RenderedSecrets:
    """The essence a target must hold: references kept (``keep_env``, where ``capability``
    allows) or resolved. ``kind`` names the target kind in notes.

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
    notes: list[str] = []
    errors: list[SecretError] = []
    for pointer, field, key, value in list(essence_strings(essence)):
        refs = find_references(value)
        if not refs:
            continue
        has_env = any(r.scheme == ENV for r in refs)
        keep = False
        if keep_env and has_env:
            keep = capability is not None and referable(
                capability, field, key, canonical_env(value)
            )
            if not keep:
                notes.append(
                    f"{server or 'server'} {pointer}: {kind or 'this target'} cannot keep this as "
                    "a "
                    "reference (it passes a variable through only under its own name: "
                    "env_vars, bearer_token_env_var, env_http_headers), so the value is "
                    "resolved into the file (mode 0600)"
                )

        resolved_secret = False

        def value_of(ref: Reference, keep: bool = keep) -> str:
            nonlocal resolved_secret
            if keep and ref.scheme == ENV:
                return ref.canonical
            try:
                result = resolver.resolve(ref)
            except SecretError as e:
                errors.append(e)
                return ref.text
            resolved_secret = resolved_secret or ref.is_secret
            return result

        text = substitute(value, refs, value_of)
        if field == "url" and text != value:
            text = normalize_url(text)  # a resolved host compares as the live one does
        _set(out, pointer, text)
        if resolved_secret:
            sensitive = True
            paths.add(pointer)
    if errors:
        detail = "; ".join(dict.fromkeys(str(e) for e in errors))
        where = f"server '{server}': " if server else ""
        raise SecretError(
            f"{where}cannot resolve {detail}; nothing is written to this target",
            recoverable=all(e.recoverable for e in errors),
        )
    return RenderedSecrets(out, sensitive, frozenset(paths), tuple(notes))


def seal_paths(essence: Essence, paths: Iterable[str], fingerprint: Sealer) -> Essence:
    """Seal strings outside env/headers that hold resolved secrets (args, url, command, cwd).

    ``essence.seal`` already seals every env and header value; this covers a secret passed
    as an argument or in a URL, so that it is compared, stored and shown by fingerprint.
    """
    if not paths:
        return essence
    out = essence
    for pointer in paths:
        parts = pointer_parts(pointer)
        if not parts or parts[0] in SECRET_FIELDS or parts[0] not in out:
            continue
        if out is essence:
            out = dict(essence)
        if parts[0] == "args" and len(parts) == 2 and isinstance(out["args"], list):
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
