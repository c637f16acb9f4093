"""The essence: one server entry in a normalized, comparable form.

Every client spells the same server differently (``type: http`` here, ``httpUrl`` there,
``serverUrl`` elsewhere, a command merged with its args in opencode). Drift is never
computed on raw files: each target maps its entries to an essence, desired state is mapped
to the essence the target can express (its capability mask), and the two are compared.

An essence is plain JSON data (``dict``), so it diffs, serializes and hashes trivially:

    {"transport": "stdio", "command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}}
    {"transport": "http", "url": "https://example.com/mcp", "headers": {"X-Team": "a"}}

Rules (reference/CLIENTS.md 4.3): ``transport`` is ``stdio``, ``http`` (streamable) or
``sse``; ``args`` is ordered; ``env``/``headers`` are maps; empty maps, lists and strings
equal absence; URLs get a lowercase scheme and host and lose a default port, but keep a
trailing slash and the fragment. ``enabled`` appears only where the kind has a switch.

Secret values under ``env`` and ``headers`` (by their name or shape, or resolved from a
reference) are sealed (replaced by a keyed fingerprint) before they are compared, stored
as last-applied, or shown; the others (``TZ: UTC``) stay readable.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reconciler.core.model import Server

Essence = dict[str, Any]

TRANSPORTS = ("stdio", "http", "sse")
SECRET_FIELDS = ("env", "headers")
# The order fields are shown and written in; also the complete set of essence fields.
FIELDS = ("transport", "command", "args", "env", "cwd", "url", "headers", "enabled")


@dataclass(frozen=True)
class Capability:
    """What a target kind can express: its transports, fields, and enabled switch."""

    transports: frozenset[str]
    fields: frozenset[str]
    enabled_switch: bool = False
    # The client can reference an environment variable itself (reference/CLIENTS.md 1.13):
    # essences carry ``${env:NAME}`` and the dialect writes the client's own syntax.
    env_references: bool = False
    # References pass through only by the variable's own name (Codex: ``env_vars``,
    # ``bearer_token_env_var``, ``env_http_headers``), not inside other text.
    references_by_name: bool = False
    # The essence fields the client expands a reference in (None: every field). Crush
    # expands only in command, env and headers: a reference elsewhere is resolved into
    # the file. Declared by the family together with its dialect's ``Syntax.fields``.
    reference_fields: frozenset[str] | None = None
    # No update in place: every change of an entry is a replace (MCPJungle re-registers).
    replace_only: bool = False
    # Single tools can be switched off: governed tools (``tools.deny``/``allow``) apply.
    tool_switch: bool = False
    # The client has a per-tool control in its files (a deny list: Claude Code's
    # ``permissions.deny``, Codex's ``disabled_tools``, ...): governed tools are written
    # there as rules (the family's ``tool_rule``), owned like server entries.
    tool_rules: bool = False

    @property
    def enforces_tools(self) -> bool:
        return self.tool_switch or self.tool_rules

    def expands_in(self, field: str) -> bool:
        """Whether the client expands a reference it finds in ``field``."""
        return self.env_references and (
            self.reference_fields is None or field in self.reference_fields
        )

    def expresses(self, transport: str) -> bool:
        return transport in self.transports

    def unexpressed(self, essence: Essence) -> tuple[str, ...]:
        """The fields of ``essence`` this kind has no place for (``cwd`` on Claude Code):
        ``mask`` leaves them out, and validation and the plan say so."""
        if essence.keys() - self.fields <= _ALWAYS_EXPRESSED:  # the common case, in C
            return ()
        return tuple(k for k in essence if k not in self.fields and k not in _ALWAYS_EXPRESSED)


_ALWAYS_EXPRESSED = frozenset({"transport", "enabled"})


# Field sets the target families build their capability masks from.
STDIO_FIELDS = frozenset({"transport", "command", "args", "env"})
REMOTE_FIELDS = frozenset({"url", "headers"})


# The same URLs recur in every target and pass, and parsing one is the dearest step of
# normalizing an entry: each is normalized once per process.
@functools.lru_cache(maxsize=4096)
def normalize_url(url: str) -> str:
    """Lowercase scheme and host, drop a default port; keep path, slash, query, fragment."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    if "{" in parts.netloc:  # a reference in the host (``https://${env:HOST}/mcp``) stays as is
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and not (
        (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    ):
        host = f"{host}:{port}"
    userinfo = ""
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        userinfo += "@"
    return urlunsplit((scheme, userinfo + host, parts.path, parts.query, parts.fragment))


def normalize(raw: Mapping[str, Any]) -> Essence:
    """Canonical essence from loosely filled fields: defaults in, empties out, stable order."""
    transport = raw.get("transport")
    if not transport:
        transport = "stdio" if raw.get("command") else "http"
    out: Essence = {"transport": transport}
    for field in _NORMALIZED:  # a hot path: every desired and live entry of every target
        value = raw.get(field)
        # Empties out: None, "", [] and {} (not False or 0); a value that is not empty
        # is told apart by its truth alone, without comparing it with each empty.
        if value is None or (not value and isinstance(value, (str, list, Mapping))):
            continue
        if field == "args":
            value = [a if type(a) is str else str(a) for a in value]
        elif field in SECRET_FIELDS and isinstance(value, Mapping):
            value = {str(k): str(v) for k, v in sorted(value.items())}
        elif field == "url":
            value = normalize_url(str(value))
        out[field] = value
    return out


_NORMALIZED = FIELDS[1:]  # after "transport"


def from_server(server: Server) -> Essence:
    """The full essence of a declared server, before any target's capability mask."""
    return normalize(
        {
            "transport": server.effective_transport,
            "command": server.command,
            "args": list(server.args),
            "env": dict(server.env),
            "cwd": server.cwd,
            "url": server.url,
            "headers": dict(server.headers),
            "enabled": server.enabled,
        }
    )


# Splits a header value holding references into mcp-remote's own ``${VAR}`` text and the
# environment that gives each VAR its reference (the secrets layer's grammar provides it).
ThroughEnv = Callable[[str], tuple[str, dict[str, str]]]

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def bridge_mcp_remote(essence: Essence, through_env: ThroughEnv | None = None) -> Essence:
    """Render a remote server as a stdio one through ``npx -y mcp-remote URL``.

    A header holding a reference stays one: ``--header "Authorization:Bearer ${TOKEN}"``,
    which mcp-remote expands from its own environment, and ``env: {TOKEN: ${env:TOKEN}}``
    (``through_env`` splits the value), so the secret never sits in the process arguments.
    mcp-remote refuses a plain ``http://`` URL that is not on this machine without
    ``--allow-http``.
    """
    args = ["-y", "mcp-remote", essence["url"]]
    env: dict[str, str] = {}
    for name, value in essence.get("headers", {}).items():
        if through_env is not None:
            value, needed = through_env(value)
            env.update(needed)
        args += ["--header", f"{name}:{value}"]
    if essence.get("transport") == "sse":
        args += ["--transport", "sse-only"]
    try:
        parts = urlsplit(str(essence["url"]))
        plain_remote = parts.scheme == "http" and (parts.hostname or "") not in _LOCAL_HOSTS
    except ValueError:
        plain_remote = False
    if plain_remote:
        args.append("--allow-http")
    return normalize({"transport": "stdio", "command": "npx", "args": args, "env": env})


def bridged_headers(essence: Essence) -> frozenset[str]:
    """The JSON Pointers of a bridge's ``--header`` values: mcp-remote's own text, whose
    ``${VAR}`` no one but mcp-remote expands."""
    args = essence.get("args") or []
    return frozenset(f"/args/{i}" for i in range(1, len(args)) if args[i - 1] == "--header")


def mask(essence: Essence, capability: Capability) -> Essence:
    """Drop what the kind cannot express, so both sides are compared on the same fields."""
    fields = capability.fields
    masked = {k: v for k, v in essence.items() if k in fields or k == "transport"}
    if capability.enabled_switch:
        masked.setdefault("enabled", True)
    else:
        masked.pop("enabled", None)
    return masked


Sealer = Callable[[str], str]


def fingerprint_with(key: bytes) -> Sealer:
    """A keyed fingerprint function: equal values give equal prints, and none is reversible."""

    # The same values recur across targets and passes: each is fingerprinted once. The
    # cache lives and dies with this function, which is made once per pass.
    @functools.lru_cache(maxsize=1 << 16)
    def seal(value: str) -> str:
        digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest}"

    return seal


# Whether the value under ``key`` of an env or headers map is a secret (field, key, value).
SecretTest = Callable[[str, str, str], bool]


def seal(essence: Essence, fingerprint: Sealer, secret: SecretTest | None = None) -> Essence:
    """The essence with every secret-bearing env and header value replaced by its keyed
    fingerprint: those ``secret`` says are secrets (the secrets layer's rule: a secret-like
    name, a secret's shape), or every one when no rule is given. ``TZ: UTC`` stays readable.

    An essence without env or headers has nothing to seal: it is returned as is.
    """
    if "env" not in essence and "headers" not in essence:
        return essence
    sealed = dict(essence)
    for field in SECRET_FIELDS:
        if field in sealed:
            sealed[field] = {
                k: fingerprint(v) if secret is None or secret(field, k, v) else v
                for k, v in sealed[field].items()
            }
    return sealed


def is_sealed_value(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("hmac-sha256:")


def display(value: Any) -> str:
    """A value as shown to people: sealed values become ``‹secret:4f1c2a›``."""
    if is_sealed_value(value):
        return f"‹secret:{value.split(':', 1)[1][:6]}›"
    if value is None:
        return "(absent)"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(display(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {display(v)}" for k, v in value.items()) + "}"
    return str(value)
