"""A faithful fake of the MCPJungle 0.4.5 HTTP server, for tests.

Why it exists: MCPJungle (Go) cannot be built on our machines (no Go module proxy, Debian's Go
is too old: /work/shared/reference/MCPJUNGLE.md §8), yet the reconciler's ``mcpjungle`` target
must be tested against the real server's behaviour, quirks included. This module serves the
contract written down in that reference ("ref §N" below; the errata of §10 win over earlier
sections) on a loopback port, from a real ``ThreadingHTTPServer``, so the product's HTTP code
runs unchanged. Where the reference is silent, the choice follows the Go code it describes and
the comment says so.

It also misbehaves on demand: ``inject()`` queues faults per (method, path pattern): a canned
answer, a delay, or a dropped connection, each before or after the request takes effect. And
it records every request, so tests can count reads and writes.

Scope: servers, tools, init, auth and the system endpoints are faked in full. Routes that exist
in 0.4.5 but that the reconciler does not use (tool invocation, prompts and resources beyond
listing, tool groups, clients, users except whoami, the MCP proxy, the dashboard) go through
the same middleware and then answer 501 ``{"error": "not implemented by the fake ..."}``, so a
test never mistakes "not faked" for gin's "no such route". Upstream MCP servers are not real
either: each registration looks its name up in ``upstreams`` (see ``Upstream``).

Usage::

    with FakeMCPJungle({"github": ["search", ("get_issue", "Fetch one issue")]}) as jungle:
        httpx.post(f"{jungle.url}/api/v0/servers", json={...})
        assert "github__search" in jungle.tools
        jungle.inject("POST", "/api/v0/servers", Respond(503, {"error": "busy"}), Drop())
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import secrets
import socket
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "Delay",
    "Drop",
    "FakeMCPJungle",
    "Fault",
    "OAuthSession",
    "RecordedRequest",
    "Respond",
    "ServerRecord",
    "ToolRecord",
    "Trickle",
    "Upstream",
    "UpstreamTool",
    "User",
]

VERSION = "v0.4.5"  # ref §1: goreleaser builds report the tag with a "v" prefix

# Texts quoted by the reference; tests of the product may import them.
NOT_INITIALIZED = "server is not initialized"  # ref §2.1
MISSING_TOKEN = "missing access token"  # ref §2.1
INVALID_TOKEN = "invalid access token: user not found: not found"  # ref §2.1
NOT_ADMIN = "user is not authorized to perform this action"  # ref §2.1
ENTERPRISE_ONLY = "this request is only allowed in enterprise mode"  # ref §2.1
DUPLICATE_SERVER = "failed to register mcp server: UNIQUE constraint failed: mcp_servers.name"
GIN_404 = b"404 page not found"  # ref §2.1: gin's default, plain text, not JSON
OAUTH_REQUIRED_CODE = "upstream_oauth_required"  # ref §2.1, §2.4 step 5

TRANSPORTS = ("streamable_http", "stdio", "sse")
_TRANSPORT_HINT = "(acceptable values: 'streamable_http', 'stdio', 'sse')"
_JSON = "application/json; charset=utf-8"  # what gin's c.JSON sends


# --------------------------------------------------------------------------- upstream fixture


@dataclass(frozen=True)
class UpstreamTool:
    """One tool the fake upstream MCP server lists at registration time."""

    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    annotations: Mapping[str, Any] = field(default_factory=dict)


ToolSpec = str | tuple[str, str] | UpstreamTool


@dataclass(frozen=True)
class Upstream:
    """How the upstream MCP server behind one registration behaves (ref §2.1: registration is
    synchronous, MCPJungle connects and lists tools before answering).

    ``connect_error``: the connection fails; registration answers 500 (ref §2.4 step 5).
    ``list_tools_error``: listing fails; 500, but the server row stays (ref §2.4 step 7).
    ``requires_oauth``: the upstream answers 401; 202 with ``oauth_redirect_uri``, else 400.
    ``bearer_token``: the static token the upstream expects; a different one is a 401 too.
    """

    tools: Sequence[ToolSpec] = ()
    connect_error: str | None = None
    list_tools_error: str | None = None
    requires_oauth: bool = False
    bearer_token: str | None = None

    def tool_list(self) -> list[UpstreamTool]:
        out: list[UpstreamTool] = []
        for spec in self.tools:
            if isinstance(spec, UpstreamTool):
                out.append(spec)
            elif isinstance(spec, tuple):
                out.append(UpstreamTool(spec[0], spec[1]))
            else:
                out.append(UpstreamTool(spec))
        return out


# --------------------------------------------------------------------------- server state


@dataclass
class OAuthConfig:
    """Upstream OAuth settings, kept once a token is stored (ref §2.4 server_configs)."""

    redirect_uri: str
    client_id: str = ""
    client_secret: str = ""
    scopes: list[str] | None = None


@dataclass
class ServerRecord:
    """One row of ``mcp_servers`` with its transport config, as 0.4.5 stores it."""

    id: int
    name: str
    transport: str
    description: str = ""
    enabled: bool = True
    session_mode: str = "stateless"
    url: str = ""  # streamable_http, sse
    bearer_token: str = ""  # streamable_http, sse
    headers: dict[str, str] | None = None  # streamable_http only (ref §3)
    command: str = ""  # stdio
    args: list[str] | None = None  # stdio; empty is stored as null (ref §10.4)
    env: dict[str, str] | None = None  # stdio
    oauth: OAuthConfig | None = None


@dataclass
class ToolRecord:
    """One row of ``tools``; ``name`` is the upstream's name, without the server prefix."""

    id: int
    server: str
    name: str
    enabled: bool = True
    description: str = ""
    input_schema: Any = field(default_factory=lambda: {"type": "object"})
    annotations: Any = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def canonical_name(self) -> str:
        return f"{self.server}__{self.name}"  # ref §3: separator "__"


@dataclass(frozen=True)
class User:
    username: str
    role: Literal["admin", "user"]


@dataclass
class OAuthSession:
    """A registration waiting for the upstream OAuth dance (ref §2.4, 202)."""

    id: str
    state: str
    authorization_url: str
    expires_at: datetime
    request: RegisterInput
    session_mode: str


@dataclass
class RegisterInput:
    """``types.RegisterServerInput`` after Go's JSON binding: absent strings are "", absent
    lists and maps are None (nil), and ``[]`` stays ``[]``."""

    name: str = ""
    transport: str = ""
    description: str = ""
    url: str = ""
    bearer_token: str = ""
    headers: dict[str, str] | None = None
    command: str = ""
    args: list[str] | None = None
    env: dict[str, str] | None = None
    session_mode: str = ""
    oauth_redirect_uri: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: str = ""
    oauth_scopes: list[str] | None = None


# --------------------------------------------------------------------------- faults and log


@dataclass(frozen=True)
class Respond:
    """Answer with this instead of handling the request (no state change); with
    ``after=True``, handle the request (the change is made) and send this answer in place of
    the real one (a success whose body is garbage).

    ``body``: dict/list -> JSON as gin writes it; str -> text/plain; bytes as is; None -> empty.
    """

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    after: bool = False


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering. ``after=False``: before the request takes effect (a
    slow server); ``after=True``: the change is made at once and only the answer is late (a
    client timeout then hides a success). Stopping the fake cuts the wait short."""

    seconds: float
    after: bool = False


@dataclass(frozen=True)
class Drop:
    """Close the connection without any answer, before the request takes effect or, with
    ``after=True``, after it did (the answer is lost, the change is not)."""

    after: bool = False


@dataclass(frozen=True)
class Trickle:
    """Handle the request, then send the answer's body one byte every ``interval`` seconds:
    each read returns in time, so only a deadline on the whole answer stops the wait."""

    interval: float


Fault = Respond | Delay | Drop | Trickle
# What ``save_state`` copies: servers, tools, OAuth sessions, the id counters.
SavedState = tuple[
    dict[str, "ServerRecord"], dict[str, "ToolRecord"], dict[str, "OAuthSession"], dict[str, int]
]


@dataclass
class RecordedRequest:
    """One request as the fake received it, plus what became of it."""

    method: str
    path: str  # percent-decoded, as gin routes it
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    raw_body: bytes
    body: Any  # parsed JSON; the text if it is not JSON; None if empty
    fault: Fault | None = None
    processed: bool = False  # the route ran: any state change has happened
    status: int | None = None  # None until answered, and for a dropped connection
    dropped: bool = False
    finished: bool = False

    @property
    def mutating(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")


# --------------------------------------------------------------------------- Go-isms


def _go_json(value: Any) -> bytes:
    """encoding/json output: compact, UTF-8, with <, >, & and U+2028/9 escaped. Map keys are
    sorted by Go; struct fields keep declaration order, so callers build dicts in that order
    and sort maps themselves (``_sorted``)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text.encode()


def _sorted(mapping: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if mapping is None else dict(sorted(mapping.items()))


def _go_time(moment: datetime) -> str:
    """time.Time's JSON form: RFC 3339 with trailing zeros of the fraction trimmed."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # close enough to strconv.Quote


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class _BindError(Exception):
    """A JSON body that Go's decoder would reject; the message is Go's."""


# Binding specs: JSON key -> (Python kind, Go type name as printed in errors).
_FieldSpec = Mapping[str, tuple[type, str]]
_REGISTER_FIELDS: _FieldSpec = {
    "name": (str, "string"),
    "transport": (str, "string"),
    "description": (str, "string"),
    "url": (str, "string"),
    "bearer_token": (str, "string"),
    "headers": (dict, "map[string]string"),
    "command": (str, "string"),
    "args": (list, "[]string"),
    "env": (dict, "map[string]string"),
    "session_mode": (str, "string"),
    "oauth_redirect_uri": (str, "string"),
    "oauth_client_id": (str, "string"),
    "oauth_client_secret": (str, "string"),
    "oauth_scopes": (list, "[]string"),
}


def _bind(raw: bytes, fields: _FieldSpec, struct: str, go_type: str) -> dict[str, Any]:
    """gin's ShouldBindJSON (json.Decoder.Decode) into a struct of string / []string /
    map[string]string fields. Go quirks kept: keys match case-insensitively, unknown keys
    are ignored, null leaves the zero value, trailing data after the first value is ignored,
    and the earliest type error wins (ref §2.1: "JSON binding is lenient")."""
    doc = raw.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not doc:
        raise _BindError("EOF")
    try:
        value, _ = json.JSONDecoder().raw_decode(doc)
    except json.JSONDecodeError as exc:
        # Go names the offending character; its "looking for ..." context is approximated.
        if exc.pos >= len(doc):
            raise _BindError("unexpected EOF") from None
        char = json.dumps(doc[exc.pos])[1:-1].replace("'", "\\'")
        raise _BindError(f"invalid character '{char}' looking for beginning of value") from None
    out: dict[str, Any] = {name: "" if kind is str else None for name, (kind, _) in fields.items()}
    if value is None:
        return out
    if not isinstance(value, dict):
        top = _go_kind(value)
        raise _BindError(f"json: cannot unmarshal {top} into Go value of type {go_type}")
    first_error: str | None = None
    for key, item in value.items():
        name = (
            key
            if key in fields
            else next((f for f in fields if f.casefold() == key.casefold()), None)
        )
        if name is None or item is None:
            if name is not None and fields[name][0] is not str:
                out[name] = None  # null sets a slice or map to nil, leaves a string alone
            continue
        kind, type_name = fields[name]
        got: str | None = None if isinstance(item, kind) else _go_kind(item)
        if got is None and kind is not str:
            members = list(item.values()) if isinstance(item, dict) else list(item)
            wrong = next((m for m in members if m is not None and not isinstance(m, str)), None)
            if wrong is not None:
                got, type_name = _go_kind(wrong), "string"
        if got is not None:
            first_error = first_error or (
                f"json: cannot unmarshal {got} into Go struct field {struct}.{name} "
                f"of type {type_name}"
            )
            continue
        # a null member of a string slice or map decodes as ""
        if isinstance(item, dict):
            item = {k: v or "" for k, v in item.items()}
        elif isinstance(item, list):
            item = [v or "" for v in item]
        out[name] = item
    if first_error is not None:
        raise _BindError(first_error)
    return out


def _parse_bool(text: str) -> bool | None:
    """strconv.ParseBool; None when Go would return an error."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")


def _server_name_problem(name: str) -> str | None:
    """validateServerName, in the order of the reference's list (ref §2.4 step 3)."""
    if name == "":
        return "must not be empty"
    if not _NAME_RE.fullmatch(name):
        return "must follow the regular expression ^[a-zA-Z0-9_-]+$"
    if "__" in name:
        return "must not contain multiple consecutive underscores"
    if name.endswith("_"):
        return "must not end with an underscore"
    return None


def _invalid_name(name: str, problem: str) -> str:
    return f"invalid server name: '{name}' {problem}: invalid user input"


def _valid_url(url: str) -> bool:
    """url.Parse succeeds, scheme http/https, non-empty host (ref §3)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False  # net/url rejects control characters
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    host = parts.netloc.rpartition("@")[2]
    return parts.scheme in ("http", "https") and host != "" and " " not in host


def _not_found(server: str) -> str:
    return f"MCP server {server} not found: not found"  # GetMcpServer wrapping ErrNotFound


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = _JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json(status: int, value: Any) -> _Reply:
    return _Reply(status, _go_json(value))


def _error(status: int, message: str, code: str | None = None) -> _Reply:
    body: dict[str, str] = {"error": message}
    if code is not None:
        body["code"] = code  # pkg/types/api_error.go: struct order, error first
    return _json(status, body)


def _fault_reply(fault: Respond) -> _Reply:
    if fault.body is None:
        reply = _Reply(fault.status, b"", None)
    elif isinstance(fault.body, bytes):
        reply = _Reply(fault.status, fault.body, "application/octet-stream")
    elif isinstance(fault.body, str):
        reply = _Reply(fault.status, fault.body.encode(), "text/plain; charset=utf-8")
    else:
        reply = _json(fault.status, fault.body)
    for name, value in fault.headers.items():
        if name.lower() == "content-type":
            reply.content_type = value
        else:
            reply.headers.append((name, value))
    return reply


@dataclass
class _Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    user: User | None = None

    def q(self, name: str) -> str:
        """gin's c.Query: the first value, "" when absent."""
        return self.query.get(name, [""])[0]


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    """gin-style pattern: ``:name`` is one non-empty segment, ``*name`` the rest of the path."""
    parts: list[str] = []
    for segment in pattern.split("/"):
        if segment.startswith(":"):
            parts.append(f"(?P<{segment[1:]}>[^/]+)")
        elif segment.startswith("*"):
            parts.append(f"(?P<{segment[1:] or 'rest'}>.*)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/".join(parts))


_Handler = Callable[["FakeMCPJungle", _Call], _Reply]


@dataclass(frozen=True)
class _Route:
    method: str  # "*" = gin's Any
    pattern: str
    handler: _Handler | None  # None: exists in 0.4.5, not faked -> 501
    access: Literal["public", "user", "admin"] = "user"
    enterprise_only: bool = False
    needs_init: bool = True
    when: Literal["always", "dev", "otel"] = "always"


# --------------------------------------------------------------------------- the fake


class FakeMCPJungle:
    """In-memory MCPJungle 0.4.5 on ``http://127.0.0.1:<port>``; a context manager.

    ``upstreams``: server name -> ``Upstream``, or just a list of tool names / (name,
    description) pairs. A name missing from it gets ``default_upstream`` (an upstream with no
    tools); pass ``default_upstream=None`` to make unknown names fail to connect.

    ``mode``: "development" (no auth, initialized at start like ``mcpjungle start``) or
    "enterprise" (starts uninitialized until ``POST /init``, ref §4). ``initialized`` overrides
    that; an initialized enterprise fake already has the admin user, whose token is
    ``admin_token`` (random unless given). Other users: ``add_user()``.

    State is public and live: ``servers`` (name -> ServerRecord, in ID order), ``tools``
    (canonical name -> ToolRecord), ``oauth_sessions``, ``users`` (token -> User),
    ``upstreams``. Change it between requests; ``add_server()`` seeds a registered server.
    """

    def __init__(
        self,
        upstreams: Mapping[str, Upstream | Sequence[ToolSpec]] | None = None,
        *,
        mode: Literal["development", "enterprise"] = "development",
        initialized: bool | None = None,
        admin_token: str | None = None,
        default_upstream: Upstream | None = Upstream(),  # frozen: safe as a default
        otel_enabled: bool | None = None,
        version: str = VERSION,
    ) -> None:
        self.mode: Literal["development", "enterprise"] = mode
        self.initialized = (mode == "development") if initialized is None else initialized
        self.admin_token = admin_token or secrets.token_urlsafe(32)  # 43 chars, like 0.4.5
        self.default_upstream = default_upstream
        # ref §2.2: /metrics exists only with OTel, on by default in enterprise mode only
        self.otel_enabled = (mode == "enterprise") if otel_enabled is None else otel_enabled
        self.version = version
        self.upstreams: dict[str, Upstream] = {}
        for name, spec in (upstreams or {}).items():
            self.set_upstream(name, spec)
        self.servers: dict[str, ServerRecord] = {}
        self.tools: dict[str, ToolRecord] = {}
        self.oauth_sessions: dict[str, OAuthSession] = {}
        self.users: dict[str, User] = {}
        if self.initialized and mode == "enterprise":
            self.users[self.admin_token] = User("admin", "admin")
        self.errors: list[BaseException] = []  # bugs in the fake itself; tests assert empty
        self._ids = {"servers": 0, "tools": 0}
        self._log: list[RecordedRequest] = []
        self._faults: list[tuple[str, str, deque[Fault]]] = []
        self._cond = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> Self:
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        # A short poll interval: shutdown() waits for the loop to notice it.
        httpd = self._httpd
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.02),
            name="fake-mcpjungle",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut pending delays short, close every connection, join threads."""
        if self._httpd is None or self._thread is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()  # joins handler threads (block_on_close)
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- test API: state

    def set_upstream(self, name: str, spec: Upstream | Sequence[ToolSpec]) -> None:
        """What registering ``name`` will find upstream from now on."""
        self.upstreams[name] = spec if isinstance(spec, Upstream) else Upstream(tuple(spec))

    def add_user(
        self, username: str, token: str | None = None, role: Literal["admin", "user"] = "user"
    ) -> str:
        """A user token for enterprise mode (there is no user API in the fake); returns it."""
        token = token or secrets.token_urlsafe(32)
        with self._cond:
            self.users[token] = User(username, role)
        return token

    def add_server(
        self,
        name: str,
        *,
        transport: str = "streamable_http",
        url: str | None = None,
        description: str = "",
        bearer_token: str = "",
        headers: Mapping[str, str] | None = None,
        command: str = "",
        args: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        session_mode: str = "stateless",
        enabled: bool = True,
        tools: Sequence[ToolSpec] | None = None,
    ) -> ServerRecord:
        """Put a server into the state as if registered earlier (replacing one of that name):
        no request, no validation. Tools default to what the upstream for ``name`` lists; a
        disabled server's tools are disabled, as after ``POST /servers/:name/disable``."""
        with self._cond:
            if name in self.servers:
                self._deregister(name)
            if url is None and transport != "stdio":
                url = f"http://{name}.upstream.test/mcp"
            record = self._new_server(
                RegisterInput(
                    name=name,
                    transport=transport,
                    description=description,
                    url=url or "",
                    bearer_token=bearer_token,
                    headers=dict(headers) if headers else None,
                    command=command,
                    args=list(args) if args else None,
                    env=dict(env) if env else None,
                ),
                session_mode,
            )
            record.enabled = enabled
            upstream = self._upstream_for(name) or Upstream()
            specs = upstream.tool_list() if tools is None else Upstream(tuple(tools)).tool_list()
            for spec in specs:
                self._new_tool(name, spec).enabled = enabled
            return record

    def save_state(self) -> SavedState:
        """A copy of the registry (servers, tools, OAuth sessions, ids), for ``restore_state``:
        to run the same request sequence twice from the same start."""
        with self._cond:
            return copy.deepcopy((self.servers, self.tools, self.oauth_sessions, self._ids))

    def restore_state(self, saved: SavedState) -> None:
        """Put back a registry ``save_state`` returned (a copy of it: it can be used again)."""
        with self._cond:
            self.servers, self.tools, self.oauth_sessions, self._ids = copy.deepcopy(saved)

    # ---- test API: faults and the request log

    def inject(self, method: str, pattern: str, *faults: Fault) -> None:
        """Queue faults for requests matching ``method`` ("*" = any) and ``pattern`` (gin-style:
        ``/api/v0/servers/:name``; ``*rest`` matches the remainder). Each matching request
        consumes one fault, in order; when the queue is empty, requests are handled normally.
        Queues are tried in the order they were first injected."""
        with self._cond:
            for m, p, queue in self._faults:
                if (m, p) == (method.upper(), pattern):
                    queue.extend(faults)
                    return
            self._faults.append((method.upper(), pattern, deque(faults)))

    @property
    def pending_faults(self) -> int:
        with self._cond:
            return sum(len(queue) for _, _, queue in self._faults)

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the start or ``reset_log()``, oldest first."""
        with self._cond:
            return list(self._log)

    @property
    def mutations(self) -> list[RecordedRequest]:
        """The requests whose method may change state (not GET, HEAD, OPTIONS)."""
        return [r for r in self.requests if r.mutating]

    def reset_log(self) -> None:
        with self._cond:
            self._log.clear()

    def requests_to(self, method: str = "*", pattern: str = "*rest") -> list[RecordedRequest]:
        """Logged requests matching ``method`` ("*" = any) and a gin-style ``pattern``."""
        return [r for r in self.requests if _matches(method, pattern, r.method, r.path)]

    def count(self, method: str = "*", pattern: str = "*rest") -> int:
        return len(self.requests_to(method, pattern))

    def wait_for_request(
        self,
        method: str = "*",
        pattern: str = "*rest",
        *,
        processed: bool = False,
        finished: bool = False,
        timeout: float = 5.0,
    ) -> RecordedRequest:
        """Block until a matching request is logged (and, if asked, processed or finished).
        For tests whose client gave up before the fake did (timeouts, dropped connections)."""

        def found() -> RecordedRequest | None:
            for r in self._log:
                if (
                    _matches(method, pattern, r.method, r.path)
                    and (r.processed or not processed)
                    and (r.finished or not finished)
                ):
                    return r
            return None

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise TimeoutError(f"no {method} {pattern} request within {timeout}s")
            request = found()
            assert request is not None
            return request

    # ---- request handling (handler threads)

    def _serve(self, handler: _RequestHandler) -> None:
        """One request: log it, apply a queued fault, route it, answer (or not)."""
        call = handler.read_call()
        record = RecordedRequest(
            call.method, call.path, call.query, call.headers, call.body, _parse_body(call.body)
        )
        with self._cond:
            self._log.append(record)
            record.fault = fault = self._take_fault(call.method, call.path)
            self._cond.notify_all()
        try:
            if isinstance(fault, Respond) and not fault.after:
                self._answer(handler, record, _fault_reply(fault), call.method)
                return
            if isinstance(fault, Drop) and not fault.after:
                self._drop(handler, record)
                return
            if isinstance(fault, Delay) and not fault.after and self._stopping.wait(fault.seconds):
                self._drop(handler, record)  # stopping: the slow request never completes
                return
            with self._cond:
                try:
                    reply = self._route(call)
                except Exception as exc:  # a bug in the fake: visible, never silent
                    self.errors.append(exc)
                    reply = _error(500, f"fake MCPJungle crashed: {exc!r}")
                record.processed = True
                self._cond.notify_all()
            if isinstance(fault, Drop):
                self._drop(handler, record)
                return
            if isinstance(fault, Delay) and fault.after and self._stopping.wait(fault.seconds):
                self._drop(handler, record)
                return
            if isinstance(fault, Respond):  # after=True: the change is made, the answer lies
                reply = _fault_reply(fault)
            trickle = fault.interval if isinstance(fault, Trickle) else None
            self._answer(handler, record, reply, call.method, trickle)
        except OSError:  # the client went away (its own timeout); Go would just log it
            handler.close_connection = True
            self._finish(record)

    def _answer(
        self,
        handler: _RequestHandler,
        record: RecordedRequest,
        reply: _Reply,
        method: str,
        trickle: float | None = None,
    ) -> None:
        with self._cond:
            record.status = reply.status  # before writing: the client may look right after
        try:
            handler.write_reply(
                reply, head_only=method == "HEAD", trickle=trickle, stopping=self._stopping
            )
        finally:
            self._finish(record)

    def _drop(self, handler: _RequestHandler, record: RecordedRequest) -> None:
        handler.close_connection = True  # nothing was written: the socket just closes
        with self._cond:
            record.dropped = True
        self._finish(record)

    def _finish(self, record: RecordedRequest) -> None:
        with self._cond:
            record.finished = True
            self._cond.notify_all()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for m, pattern, queue in self._faults:
            if queue and _matches(m, pattern, method, path):
                return queue.popleft()
        return None

    def _route(self, call: _Call) -> _Reply:
        """gin's router and the /api/v0 middleware chain (ref §2.1)."""
        found = self._find_route(call.method, call.path)
        if found is None:
            return self._no_route(call)
        route, call.params = found
        if route.needs_init and not self.initialized:
            return _error(403, NOT_INITIALIZED)
        if route.access != "public" and self.mode == "enterprise":
            # verifyUserAuthForAPIAccess: dev mode ignores the header entirely
            token = call.headers.get("authorization", "").removeprefix("Bearer ")
            if not token:
                return _error(401, MISSING_TOKEN)
            call.user = self.users.get(token)
            if call.user is None:
                return _error(401, INVALID_TOKEN)
            if route.access == "admin" and call.user.role != "admin":
                return _error(403, NOT_ADMIN)
        if route.enterprise_only and self.mode != "enterprise":
            return _error(403, ENTERPRISE_ONLY)
        if route.handler is None:
            return _error(
                501, f"not implemented by the fake MCPJungle: {route.method} {route.pattern}"
            )
        return route.handler(self, call)

    def _find_route(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in _ROUTES:
            if route.when == "dev" and self.mode != "development":
                continue  # ref §2.11: the dashboard is not registered in enterprise mode
            if route.when == "otel" and not self.otel_enabled:
                continue
            if route.method in ("*", method) and (m := _compile(route.pattern).fullmatch(path)):
                return route, m.groupdict()
        return None

    def _no_route(self, call: _Call) -> _Reply:
        """gin's 404, after RedirectTrailingSlash (on by default in gin; not in the reference):
        ``/api/v0/servers/`` redirects to ``/api/v0/servers`` when that route exists for the
        method, 301 for GET and 307 otherwise, like http.Redirect."""
        path = call.path
        if path != "/" and path.endswith("/") and self._find_route(call.method, path[:-1]):
            target = urllib.parse.quote(path[:-1])
            if call.query:
                target += "?" + urllib.parse.urlencode(call.query, doseq=True)
            if call.method == "GET":
                body = f'<a href="{target}">Moved Permanently</a>.\n\n'.encode()
                return _Reply(301, body, "text/html; charset=utf-8", [("Location", target)])
            return _Reply(307, b"", None, [("Location", target)])
        return _Reply(404, GIN_404, "text/plain")

    # ---- state helpers

    def _next_id(self, table: str) -> int:
        self._ids[table] += 1
        return self._ids[table]

    def _upstream_for(self, name: str) -> Upstream | None:
        return self.upstreams.get(name, self.default_upstream)

    def _new_server(self, inp: RegisterInput, session_mode: str) -> ServerRecord:
        record = ServerRecord(
            self._next_id("servers"), inp.name, inp.transport, inp.description, True, session_mode
        )
        if inp.transport == "stdio":
            record.command = inp.command
            record.args = inp.args or None  # stored config drops empty lists (ref §10.4)
            record.env = inp.env or None
        else:
            record.url, record.bearer_token = inp.url, inp.bearer_token
            if inp.transport == "streamable_http":
                record.headers = inp.headers or None  # dropped for sse (ref §3)
        self.servers[inp.name] = record
        return record

    def _new_tool(self, server: str, spec: UpstreamTool) -> ToolRecord:
        tool = ToolRecord(
            self._next_id("tools"),
            server,
            spec.name,
            True,
            spec.description,
            json.loads(json.dumps(spec.input_schema)),
            json.loads(json.dumps(spec.annotations)),
        )
        self.tools[tool.canonical_name] = tool
        return tool

    def _deregister(self, name: str) -> None:
        """DeregisterMcpServer: hard delete of the server, its tools, pending sessions."""
        del self.servers[name]
        for key in [k for k, t in self.tools.items() if t.server == name]:
            del self.tools[key]
        for key in [k for k, s in self.oauth_sessions.items() if s.request.name == name]:
            del self.oauth_sessions[key]

    def _set_tools_enabled(self, server: str, enabled: bool) -> list[str] | None:
        """Flip every tool of ``server``; the names that changed, or None (Go's nil slice)."""
        changed: list[str] = []
        for tool in self.tools.values():
            if tool.server == server and tool.enabled != enabled:
                tool.enabled = enabled
                tool.updated_at = datetime.now(UTC)
                changed.append(tool.canonical_name)
        return changed or None

    # ---- views (field order = Go struct order)

    @staticmethod
    def _server_view(record: ServerRecord) -> dict[str, Any]:
        """types.McpServer as GET /api/v0/servers builds it from the stored config."""
        return {
            "name": record.name,
            "transport": record.transport,
            "enabled": record.enabled,
            "description": record.description,
            "url": record.url,
            "command": record.command,
            "args": record.args,
            "env": _sorted(record.env),
            "session_mode": record.session_mode,
        }

    @staticmethod
    def _config_view(record: ServerRecord) -> dict[str, Any]:
        """types.RegisterServerInput for /server_configs: omitempty on all but name,
        transport and description (the Go struct's tags), secrets included (ref §2.4)."""
        view: dict[str, Any] = {
            "name": record.name,
            "transport": record.transport,
            "description": record.description,
        }
        optional: list[tuple[str, Any]] = [
            ("url", record.url),
            ("bearer_token", record.bearer_token),
            ("headers", _sorted(record.headers)),
            ("command", record.command),
            ("args", record.args),
            ("env", _sorted(record.env)),
            ("session_mode", record.session_mode),
        ]
        if record.oauth is not None:
            optional += [
                ("oauth_redirect_uri", record.oauth.redirect_uri),
                ("oauth_client_id", record.oauth.client_id),
                ("oauth_client_secret", record.oauth.client_secret),
                ("oauth_scopes", record.oauth.scopes),
            ]
        view.update((key, value) for key, value in optional if value)
        return view

    @staticmethod
    def _tool_view(tool: ToolRecord) -> dict[str, Any]:
        """model.Tool serialized directly: gorm.Model's untagged fields first (ref §2.1)."""
        return {
            "ID": tool.id,
            "CreatedAt": _go_time(tool.created_at),
            "UpdatedAt": _go_time(tool.updated_at),
            "DeletedAt": None,
            "name": tool.canonical_name,
            "enabled": tool.enabled,
            "description": tool.description,
            "input_schema": tool.input_schema,
            "annotations": tool.annotations,
        }

    # ---- handlers: system (ref §2.2)

    def _health(self, call: _Call) -> _Reply:
        return _json(200, {"status": "ok"})

    def _metadata(self, call: _Call) -> _Reply:
        return _json(200, {"version": self.version})

    def _metrics(self, call: _Call) -> _Reply:
        return _Reply(
            200, b"# fake MCPJungle: no metrics\n", "text/plain; version=0.0.4; charset=utf-8"
        )

    def _init(self, call: _Call) -> _Reply:
        # internal/api/server_config.go: bind (required,oneof) first, then "already initialized"
        anonymous = (
            'struct { Mode model.ServerMode "json:\\"mode\\" binding:\\"required,'
            'oneof=development enterprise production\\"" }'
        )
        try:
            mode = _bind(call.body, {"mode": (str, "model.ServerMode")}, "", anonymous)["mode"]
        except _BindError as exc:
            return _error(400, f"Invalid request body: {exc}")
        if not mode or mode not in ("development", "enterprise", "production"):
            tag = "oneof" if mode else "required"
            return _error(
                400,
                "Invalid request body: Key: 'Mode' Error:Field validation "
                f"for 'Mode' failed on the '{tag}' tag",
            )
        if self.initialized:
            return _error(400, "Server is already initialized")
        self.initialized = True
        if mode == "development":
            self.mode = "development"
            return _json(200, {"status": "Server initialized successfully in development mode"})
        self.mode = "enterprise"  # "production" is a deprecated alias (ref §2.2)
        self.users[self.admin_token] = User("admin", "admin")
        # gin.H is a map: Go sorts its keys
        return _json(
            200,
            {"admin_access_token": self.admin_token, "status": "Server initialized successfully"},
        )

    # ---- handlers: servers (ref §2.4)

    def _register(self, call: _Call) -> _Reply:
        raw_force = call.q("force")  # ref §10.3: checked before the body; "" means false
        force = _parse_bool(raw_force) if raw_force else False
        if force is None:
            return _error(
                400,
                "invalid force query parameter: strconv.ParseBool: parsing "
                f"{_go_quote(raw_force)}: invalid syntax",
            )
        try:
            inp = RegisterInput(
                **_bind(
                    call.body, _REGISTER_FIELDS, "RegisterServerInput", "types.RegisterServerInput"
                )
            )
        except _BindError as exc:
            return _error(400, str(exc))
        # step 1: transport, session mode, the transport's mandatory field
        if inp.transport == "":
            return _error(400, f"transport is required {_TRANSPORT_HINT}")
        if inp.transport not in TRANSPORTS:
            return _error(400, f"unsupported transport type: {inp.transport} {_TRANSPORT_HINT}")
        session_mode = inp.session_mode or "stateless"
        if session_mode not in ("stateless", "stateful"):
            return _error(
                400,
                f"unsupported session mode: {session_mode} "
                "(acceptable values: 'stateless', 'stateful')",
            )
        if inp.transport == "streamable_http" and not inp.url:
            return _error(
                400,
                "error creating streamable http server: "
                "url is required for streamable HTTP transport",
            )
        if inp.transport == "stdio" and not inp.command:
            return _error(
                400, "error creating stdio server: command is required for stdio transport"
            )
        if inp.transport == "sse" and not inp.url:
            return _error(400, "error creating SSE server: url is required for SSE transport")
        # step 2: force deregisters first; not atomic, later failures leave the name free
        if force and inp.name in self.servers:
            self._deregister(inp.name)
        # steps 3 and 4: name and URL
        if problem := _server_name_problem(inp.name):
            return _error(400, _invalid_name(inp.name, problem))
        if inp.transport != "stdio" and not _valid_url(inp.url):
            return _error(
                400,
                f"invalid url: '{inp.url}' must be a valid http or https url: invalid user input",
            )
        # step 5: connect to the upstream
        upstream = self._upstream_for(inp.name)
        if upstream is None or upstream.connect_error is not None:
            detail = (
                upstream.connect_error
                if upstream is not None
                else f"connection refused (the fake has no upstream for '{inp.name}')"
            )
            prefix = (
                "failed to start SSE transport for MCP server"
                if inp.transport == "sse"
                else "failed to initialize connection with MCP server"
            )  # ref §10.1
            return _error(500, f"{prefix}: {detail}")
        if upstream.requires_oauth or not self._token_accepted(upstream, inp):
            return self._oauth_required(inp, session_mode)
        # steps 6 and 7
        return self._store_server(inp, session_mode, upstream, oauth=None, echo_request=True)

    @staticmethod
    def _token_accepted(upstream: Upstream, inp: RegisterInput) -> bool:
        """A static token the upstream does not accept is a 401 too (ref §2.4 step 5); a custom
        Authorization header wins over bearer_token (ref §3); stdio sends none."""
        if upstream.bearer_token is None or inp.transport == "stdio":
            return True
        sent = inp.bearer_token
        headers = inp.headers if inp.transport == "streamable_http" else None
        for key, value in (headers or {}).items():
            if key.lower() == "authorization":
                sent = value.removeprefix("Bearer ")
        return sent == upstream.bearer_token

    def _oauth_required(self, inp: RegisterInput, session_mode: str) -> _Reply:
        if not inp.oauth_redirect_uri:
            # ref §10.2: errors.Join gives the embedded newline
            return _error(
                400,
                "upstream server requires OAuth authorization, but "
                "oauth_redirect_uri was not provided: invalid user input\n"
                "upstream OAuth authorization required",
                OAUTH_REQUIRED_CODE,
            )
        session_id, state = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": inp.oauth_client_id or "mcpjungle",
                "redirect_uri": inp.oauth_redirect_uri,
                "state": state,
            }
        )
        origin = urllib.parse.urlsplit(inp.url or "http://upstream.test")
        session = OAuthSession(
            session_id,
            state,
            f"{origin.scheme}://{origin.netloc}/authorize?{query}",
            datetime.now(UTC) + timedelta(minutes=10),
            inp,
            session_mode,
        )
        self.oauth_sessions[session_id] = session
        return _json(
            202,
            {
                "authorization_required": {
                    "session_id": session.id,
                    "authorization_url": session.authorization_url,
                    "expires_at": _go_time(session.expires_at),
                }
            },
        )

    def _complete_oauth(self, call: _Call) -> _Reply:
        try:
            body = _bind(
                call.body,
                {"code": (str, "string"), "state": (str, "string")},
                "CompleteUpstreamOAuthSessionInput",
                "types.CompleteUpstreamOAuthSessionInput",
            )
        except _BindError as exc:
            return _error(400, str(exc))
        if not call.params["id"] or not body["code"] or not body["state"]:
            return _error(400, "session_id, code and state are required")
        session = self.oauth_sessions.pop(call.params["id"], None)
        if session is None:
            return _error(404, "upstream OAuth session not found")
        # The reference does not say what a wrong state answers; the fake accepts any.
        inp = session.request
        oauth = OAuthConfig(
            inp.oauth_redirect_uri,
            inp.oauth_client_id,
            inp.oauth_client_secret,
            inp.oauth_scopes or None,
        )
        upstream = self._upstream_for(inp.name) or Upstream()
        return self._store_server(inp, session.session_mode, upstream, oauth, echo_request=False)

    def _store_server(
        self,
        inp: RegisterInput,
        session_mode: str,
        upstream: Upstream,
        oauth: OAuthConfig | None,
        *,
        echo_request: bool,
    ) -> _Reply:
        if inp.name in self.servers:
            # ref §10.10: no pre-check; the unique index fails only after a good connection
            return _error(500, DUPLICATE_SERVER)
        record = self._new_server(inp, session_mode)
        record.oauth = oauth
        if upstream.list_tools_error is not None:  # step 7: the row stays, with no tools
            return _error(
                500,
                f"failed to register tools for MCP server {inp.name}: {upstream.list_tools_error}",
            )
        for spec in upstream.tool_list():
            self._new_tool(inp.name, spec)
        if not echo_request:
            # completeUpstreamOAuthSessionHandler builds the answer from the stored config
            return _json(201, {"server": self._server_view(record)})
        # ref §10.4: the register answer echoes url/command/args/env as sent
        return _json(
            201,
            {
                "server": {
                    "name": inp.name,
                    "transport": inp.transport,
                    "enabled": True,
                    "description": inp.description,
                    "url": inp.url,
                    "command": inp.command,
                    "args": inp.args,
                    "env": _sorted(inp.env),
                    "session_mode": session_mode,
                }
            },
        )

    def _list_servers(self, call: _Call) -> _Reply:
        return _json(200, [self._server_view(s) for s in self.servers.values()])

    def _server_configs(self, call: _Call) -> _Reply:
        return _json(200, [self._config_view(s) for s in self.servers.values()])

    def _delete_server(self, call: _Call) -> _Reply:
        name = call.params["name"]
        if name not in self.servers:
            return _error(404, f"failed to get MCP server {name} from DB: {_not_found(name)}")
        self._deregister(name)
        return _Reply(204, b"", None)

    def _toggle_server(self, call: _Call, enabled: bool) -> _Reply:
        name = call.params["name"]
        if problem := _server_name_problem(name):
            return _error(400, _invalid_name(name, problem))
        record = self.servers.get(name)
        if record is None:
            # Not quoted by the reference; EnableMcpServer -> setMcpServerEnabled wraps
            # GetMcpServer's error like this in the Go code it describes.
            verb = "enabled" if enabled else "disabled"
            return _error(404, f"failed to mark server {name} {verb}: {_not_found(name)}")
        record.enabled = enabled
        return _json(
            200,
            {
                "name": name,
                "tools_affected": self._set_tools_enabled(name, enabled),  # ref §10.6: changed only
                "prompts_affected": None,  # the fake's upstreams have no prompts
            },
        )

    # ---- handlers: tools (ref §2.5), prompt and resource lists

    def _check_server_filter(self, server: str) -> _Reply | None:
        if problem := _server_name_problem(server):
            return _error(400, _invalid_name(server, problem))
        if server not in self.servers:
            return _error(404, f"failed to get MCP server {server} from DB: {_not_found(server)}")
        return None

    def _list_tools(self, call: _Call) -> _Reply:
        server = call.q("server")
        if server and (problem := self._check_server_filter(server)):
            return problem
        tools = sorted(self.tools.values(), key=lambda t: t.id)
        return _json(200, [self._tool_view(t) for t in tools if not server or t.server == server])

    def _empty_list(self, call: _Call) -> _Reply:
        """Prompts and resources: the fake's upstreams have none, the server filter still
        answers 400/404 like the tools list (ref §2.6, §2.7)."""
        server = call.q("server")
        if server and (problem := self._check_server_filter(server)):
            return problem
        return _json(200, [])

    def _get_tool(self, call: _Call) -> _Reply:
        name = call.q("name")
        if not name:
            return _error(400, "missing 'name' query parameter")
        server, sep, _ = name.partition("__")  # split on the first "__" (ref §3)
        if not sep:
            return _error(400, "tool name does not contain a __ separator: invalid user input")
        if server not in self.servers:
            return _error(404, f"failed to get MCP server {server} from DB: {_not_found(server)}")
        tool = self.tools.get(name)
        if tool is None:
            return _error(404, f"tool {name} not found: not found")
        return _json(200, self._tool_view(tool))

    def _toggle_tools(self, call: _Call, enabled: bool) -> _Reply:
        entity = call.q("entity")
        if not entity:
            return _error(400, "missing 'entity' query parameter")
        server, sep, _ = entity.partition("__")
        if server not in self.servers:
            return _error(404, f"failed to get MCP server {server}: {_not_found(server)}")
        if not sep:  # a server name: only the tools whose flag changed (ref §10.6)
            return _json(200, self._set_tools_enabled(server, enabled))
        tool = self.tools.get(entity)
        if tool is None:
            return _error(404, f"tool {entity} not found: not found")
        if tool.enabled != enabled:
            tool.enabled = enabled
            tool.updated_at = datetime.now(UTC)
        return _json(200, [entity])  # ref §10.6: the name even when nothing changed

    def _whoami(self, call: _Call) -> _Reply:
        assert call.user is not None  # enterprise-only route: auth ran
        return _json(200, {"username": call.user.username, "role": call.user.role})


# --------------------------------------------------------------------------- routes


def _stub(
    method: str,
    pattern: str,
    access: Literal["public", "user", "admin"] = "user",
    enterprise_only: bool = False,
) -> _Route:
    return _Route(method, pattern, None, access, enterprise_only)


_F = FakeMCPJungle
_V0 = "/api/v0"
_ROUTES: tuple[_Route, ...] = (
    # system, no init needed (ref §2.2)
    _Route("GET", "/health", _F._health, "public", needs_init=False),
    _Route("GET", "/metadata", _F._metadata, "public", needs_init=False),
    _Route("POST", "/init", _F._init, "public", needs_init=False),
    _Route("GET", "/metrics", _F._metrics, "public", needs_init=False, when="otel"),
    # servers (ref §2.4): no GET-one, no PUT/PATCH -> gin's plain 404
    _Route("POST", f"{_V0}/servers", _F._register, "admin"),
    _Route("GET", f"{_V0}/servers", _F._list_servers),
    _Route("DELETE", f"{_V0}/servers/:name", _F._delete_server, "admin"),
    _Route("POST", f"{_V0}/servers/:name/enable", lambda f, c: f._toggle_server(c, True), "admin"),
    _Route(
        "POST", f"{_V0}/servers/:name/disable", lambda f, c: f._toggle_server(c, False), "admin"
    ),
    _Route("GET", f"{_V0}/server_configs", _F._server_configs, "admin"),
    # who may complete an OAuth session is not in the reference; registration is admin-only
    _Route("POST", f"{_V0}/upstream_oauth/sessions/:id/complete", _F._complete_oauth, "admin"),
    # tools (ref §2.5)
    _Route("GET", f"{_V0}/tools", _F._list_tools),
    _Route("GET", f"{_V0}/tool", _F._get_tool),
    _stub("POST", f"{_V0}/tools/invoke"),
    _Route("POST", f"{_V0}/tools/enable", lambda f, c: f._toggle_tools(c, True), "admin"),
    _Route("POST", f"{_V0}/tools/disable", lambda f, c: f._toggle_tools(c, False), "admin"),
    # prompts and resources (ref §2.6, §2.7)
    _Route("GET", f"{_V0}/prompts", _F._empty_list),
    _stub("GET", f"{_V0}/prompt"),
    _stub("POST", f"{_V0}/prompts/render"),
    _stub("POST", f"{_V0}/prompts/enable", "admin"),
    _stub("POST", f"{_V0}/prompts/disable", "admin"),
    _Route("GET", f"{_V0}/resources", _F._empty_list),
    _stub("POST", f"{_V0}/resources/get"),
    _stub("POST", f"{_V0}/resources/read"),
    # tool groups: admin in both modes (ref §2.8)
    _stub("POST", f"{_V0}/tool-groups", "admin"),
    _stub("GET", f"{_V0}/tool-groups", "admin"),
    _stub("GET", f"{_V0}/tool-groups/:name", "admin"),
    _stub("GET", f"{_V0}/tool-groups/:name/effective-tools", "admin"),
    _stub("PUT", f"{_V0}/tool-groups/:name", "admin"),
    _stub("DELETE", f"{_V0}/tool-groups/:name", "admin"),
    # MCP clients and users: admin and enterprise only, except whoami (ref §2.9, §2.10)
    _stub("GET", f"{_V0}/clients", "admin", True),
    _stub("POST", f"{_V0}/clients", "admin", True),
    _stub("PUT", f"{_V0}/clients/:name", "admin", True),
    _stub("DELETE", f"{_V0}/clients/:name", "admin", True),
    _Route("GET", f"{_V0}/users/whoami", _F._whoami, "user", enterprise_only=True),
    _stub("GET", f"{_V0}/users", "admin", True),
    _stub("POST", f"{_V0}/users", "admin", True),
    _stub("PUT", f"{_V0}/users/:username", "admin", True),
    _stub("DELETE", f"{_V0}/users/:username", "admin", True),
    # MCP proxy (ref §2.3): needs init; its MCP-client tokens are not faked
    *(
        _Route("*", p, None, "public")
        for p in (
            "/mcp",
            "/sse",
            "/message",
            "/v0/groups/:name/mcp",
            "/v0/groups/:name/sse",
            "/v0/groups/:name/message",
        )
    ),
    # dashboard, development mode only (ref §2.11)
    *(_Route("GET", p, None, "public", when="dev") for p in ("/", "/index.html", "/assets/*")),
    _Route("*", "/api/dashboard/*", None, "public", when="dev"),
)


def _matches(method: str, pattern: str, req_method: str, path: str) -> bool:
    return method.upper() in ("*", req_method) and _compile(pattern).fullmatch(path) is not None


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class _RequestHandler(BaseHTTPRequestHandler):
    """Reads requests and writes replies; everything else is ``FakeMCPJungle._serve``."""

    protocol_version = "HTTP/1.1"  # keep-alive, like Go's net/http
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server: _HTTPServer

    def _handle(self) -> None:
        self.server.fake._serve(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def read_call(self) -> _Call:
        split = urllib.parse.urlsplit(self.path)
        return _Call(
            method=self.command,
            path=urllib.parse.unquote(split.path),  # gin routes the decoded path
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in reversed(self.headers.items())},
            body=self._read_body(),
        )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def write_reply(
        self,
        reply: _Reply,
        *,
        head_only: bool,
        trickle: float | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.send_response_only(reply.status)  # no "Server:" header, Go sends none
        self.send_header("Date", self.date_time_string())
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        if reply.status != 204:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if not head_only and reply.status != 204:
            if trickle is None:
                self.wfile.write(reply.body)
                return
            for i in range(len(reply.body)):  # a byte at a time, until done or stopped
                self.wfile.write(reply.body[i : i + 1])
                self.wfile.flush()
                if stopping is not None and stopping.wait(trickle):
                    return

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the fake's own, not stderr


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so that stop() can close them and join every thread."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeMCPJungle) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads idling on keep-alive reads; they then close their sockets."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its thread
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer; fake bugs land in FakeMCPJungle.errors
