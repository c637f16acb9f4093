"""MCPJungle as a target: a gateway's registry, read and changed over its HTTP API (0.4.5).

The contract is /work/shared/reference/MCPJUNGLE.md; its quirks shape this module:

- Reading costs two requests whatever the number of servers: ``GET /api/v0/server_configs``
  (full configs, secrets included, admin only) and ``GET /api/v0/tools`` (each tool's enabled
  flag). The configs do not say whether a server is enabled; the tools do (disabling a server
  disables all its tools), except for a server with no enabled tool, and only then a third
  read, ``GET /api/v0/servers``, settles it. A token without admin rights reads
  ``/api/v0/servers`` instead, which has no headers or bearer tokens: those fields are then
  reported as blind and never compared.
- There is no update endpoint. A change is a replace (``POST /api/v0/servers?force=true``:
  deregister, then register), which is not atomic and resets every enabled flag. So the
  previous config (from ``server_configs``, secrets included) is kept before a replace and
  registered again if the new one fails; enabled flags and governed tools are set again after
  every replace, create and enable. A server older than ``force`` (it ignores the parameter
  and answers 500 for the duplicate name) gets a delete and a register instead.
- Mapping to the essence: ``streamable_http`` is ``http``; ``bearer_token: X`` is the header
  ``Authorization: Bearer X``; other headers exist for ``streamable_http`` only (MCPJungle
  drops them for ``sse``); ``cwd`` does not exist. ``description``, ``session_mode`` and the
  upstream OAuth settings are not managed: a replace carries them over.

Only reads (GET) are retried, with backoff: a repeated register or toggle could do harm.
Instead, a write whose answer is an error, garbled or lost is read back (the server's
config, its flag, a tool's flag): MCPJungle may have acted before its answer went wrong,
and the report states what the read-back found. A connection that never opened is not
read back (nothing was sent).
Errors say what to do (start the server, ``mcpjungle init-server``, the token to set), and
never carry a secret. The ``token:`` option is resolved by the pass's resolver
(``Context.resolve``); the token, and the bearer tokens, OAuth secrets, header values and
secret-looking env values of every registration seen or sent, are registered with the
pass's redactor (``Context.redactor``), which also scrubs every text taken from an answer
(with the env values sent besides, since an answer may quote the config).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from reconciler.core.enforce import Governed
from reconciler.core.errors import PartialApply, TargetError
from reconciler.core.essence import REMOTE_FIELDS, STDIO_FIELDS, Capability, Essence, normalize
from reconciler.core.model import TargetSpec
from reconciler.core.plan import TOOL_ACTIONS, Action
from reconciler.core.tools import ToolClass, classify
from reconciler.secrets import detect, might_reference
from reconciler.store import fsutil
from reconciler.store.state import StateStore
from reconciler.targets.base import Context, Entries, Observation, Write

if TYPE_CHECKING:
    import httpx

# Two imports a gateway pass paid for without using them (measured here, with the
# collector off as in a pass):
# - httpx imports its own command-line client, ``httpx._main`` (rich, pygments), whenever
#   those are installed, as they are here (rich draws the probe's progress): ``import
#   httpx`` took about 500 ms, and 70 ms without it;
# - httpcore (under httpx; httpcore2 under the probe's httpx2 alike) imports trio whenever
#   it is installed, to serve callers that run under trio: about 120 ms. Nothing here runs
#   under trio; the probe's async code runs on asyncio.
# A None entry in sys.modules makes just that import fail (the import system's rule), and
# both libraries carry on without it. Set before any import of them, by the module every
# pass imports; an entry already there (a caller that uses one) is left alone.
for _unused in ("httpx._main", "trio"):
    sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]

KIND = "mcpjungle"  # the gateway: reached over the network, its passes run concurrently

log = logging.getLogger("reconciler.mcpjungle")

# Above MCPJungle's own upstream initialization timeout (MCP_SERVER_INIT_REQ_TIMEOUT_SEC,
# 30 s): registration is synchronous, so a register may legitimately take that long.
DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
API = "/api/v0"
SEPARATOR = "__"  # canonical tool names are <server>__<tool>, split on the first "__"

# The only texts of MCPJungle this module acts on (ref §2.1).
NOT_INITIALIZED = "server is not initialized"
MISSING_TOKEN = "missing access token"
INVALID_TOKEN = "invalid access token"
NOT_ADMIN = "user is not authorized"
DUPLICATE = "failed to register mcp server"
OAUTH_REQUIRED = "upstream_oauth_required"

_TO_ESSENCE = {"streamable_http": "http", "stdio": "stdio", "sse": "sse"}
_TO_JUNGLE = {"http": "streamable_http", "stdio": "stdio", "sse": "sse"}
# Fields a replace carries over from the previous registration: not managed by desired state.
_CARRIED = (
    "description",
    "session_mode",
    "oauth_redirect_uri",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scopes",
)
# What a token without admin rights cannot read (``/api/v0/servers`` has no headers, no
# bearer token).
BLIND_WITHOUT_ADMIN = frozenset({"headers"})


# -- mapping ------------------------------------------------------------------------------


def config_to_essence(config: Mapping[str, Any], enabled: bool) -> Essence:
    """A registration (``RegisterServerInput`` or ``McpServer``) as an essence."""
    transport = str(config.get("transport") or "")
    raw: dict[str, Any] = {"transport": _TO_ESSENCE.get(transport, transport), "enabled": enabled}
    if transport == "stdio":
        raw["command"] = config.get("command")
        raw["args"] = list(config.get("args") or [])
        raw["env"] = dict(config.get("env") or {})
    else:
        raw["url"] = config.get("url")
        headers = dict(config.get("headers") or {}) if transport == "streamable_http" else {}
        bearer = config.get("bearer_token")
        # A custom Authorization header wins over bearer_token (ref §3).
        if bearer and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {bearer}"
        raw["headers"] = headers
    return normalize(raw)


def essence_to_config(
    name: str, essence: Essence, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``RegisterServerInput`` body for an essence; unmanaged fields kept from
    ``previous``. Raises TargetError for what MCPJungle cannot hold."""
    transport = _TO_JUNGLE.get(essence.get("transport", ""), "")
    if not transport:
        raise TargetError(
            f"server '{name}': MCPJungle has no transport {essence.get('transport')!r}",
            recoverable=False,
        )
    body: dict[str, Any] = {"name": name, "transport": transport}
    for key in _CARRIED:
        if previous is not None and previous.get(key):
            body[key] = previous[key]
    if transport == "stdio":
        body["command"] = essence.get("command", "")
        if essence.get("args"):
            body["args"] = list(essence["args"])
        if essence.get("env"):
            body["env"] = dict(essence["env"])
        return body
    body["url"] = essence.get("url", "")
    headers = dict(essence.get("headers") or {})
    auth_key = next((k for k in headers if k.lower() == "authorization"), None)
    if auth_key is not None and headers[auth_key].startswith("Bearer "):
        body["bearer_token"] = headers.pop(auth_key)[len("Bearer ") :]
    if headers:
        if transport == "sse":
            raise TargetError(
                f"server '{name}': MCPJungle keeps no headers for sse servers, only a bearer "
                f"token (Authorization: Bearer ...); cannot register header(s) "
                f"{', '.join(sorted(headers))}: use transport http or drop them",
                recoverable=False,
            )
        body["headers"] = headers
    return body


def _secret_values(config: Mapping[str, Any] | None) -> list[str]:
    """The values of a registration that must never be shown: its bearer token, OAuth client
    secret and header values, and the env values that look like secrets (an env map also
    holds plain paths and names, which scrubbing would only mangle)."""
    if not config:
        return []

    values = [str(config.get("bearer_token") or ""), str(config.get("oauth_client_secret") or "")]
    values += [str(v) for v in (config.get("headers") or {}).values()]
    values += [
        str(v) for k, v in (config.get("env") or {}).items() if detect(str(v), str(k)) is not None
    ]
    return [v for v in values if len(v) >= 4]


def _tool_class(tool: Mapping[str, Any]) -> ToolClass:
    """A listed tool's class from its ``annotations`` (null on rows registered before
    MCPJungle kept them: then destructive, as any unannotated tool)."""
    annotations = tool.get("annotations")
    return classify(annotations if isinstance(annotations, Mapping) and annotations else None)


# -- reading answers ----------------------------------------------------------------------


class HostileAnswer(ValueError):
    """An answer body no parser should be trusted with; its text says why, in a few words."""


def parse_answer(content: bytes) -> Any:
    """The JSON of an answer body (already bounded by ``_within_timeout``), checked first for
    what would crash or mislead a parser: bytes that are not UTF-8, nesting deeper than any
    reader accepts, lone surrogate escapes, integers too long to convert."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HostileAnswer(f"with bytes that are not UTF-8 text (byte {e.start})") from e
    parsed = fsutil.checked_json(text)
    if parsed is not None:
        return parsed[0]  # what the checks and the parse below return, without their scan
    deep = fsutil.too_deep(text)
    if deep is not None:
        raise HostileAnswer(f"with JSON nested deeper than {fsutil.MAX_DEPTH} levels")
    if fsutil.lone_surrogate(text) is not None:
        raise HostileAnswer("with a lone UTF-16 surrogate escape")
    try:
        return json.loads(text)
    except RecursionError as e:
        raise HostileAnswer(f"with JSON nested deeper than {fsutil.MAX_DEPTH} levels") from e
    except ValueError as e:
        if fsutil.huge_integer(text) is not None:
            raise HostileAnswer("with an integer too large") from e
        raise HostileAnswer(
            "with something that is not JSON: is the url an MCPJungle server?"
        ) from e


# The fields read from each item of a list answer, by the type they must have when present
# (``name`` must be present). ``strings``: a list of strings; ``string map``: an object of
# strings.
_SERVER_SHAPE: Mapping[str, str] = {
    "name": "string",
    "transport": "string",
    "command": "string",
    "url": "string",
    "bearer_token": "string",
    "args": "strings",
    "env": "string map",
    "headers": "string map",
    "enabled": "bool",
}
_TOOL_SHAPE: Mapping[str, str] = {"name": "string", "enabled": "bool"}
_SHAPE_TEXT = {
    "string": "a string",
    "strings": "a list of strings",
    "string map": "an object of strings",
    "bool": "true or false",
}


def _has_shape(value: Any, expected: str) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "strings":
        return isinstance(value, list) and all(isinstance(x, str) for x in value)
    if expected == "string map":
        return isinstance(value, dict) and all(isinstance(x, str) for x in value.values())
    return isinstance(value, bool)


def _shape_problem(item: Mapping[str, Any], shape: Mapping[str, str]) -> str | None:
    """What in ``item`` does not have the shape, in a few words, or None."""
    if not isinstance(item.get("name"), str) or not item["name"]:
        return "has no name (a non-empty string)"
    for key, expected in shape.items():
        value = item.get(key)
        if value is not None and not _has_shape(value, expected):
            return f"({item['name']!r}): {key!r} is not {_SHAPE_TEXT[expected]}"
    return None


# -- the snapshot -------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistrySnapshot:
    """What ``observe`` saw, for ``apply``: the raw configs (secrets included, never shown),
    the enabled flags and every tool's flag. ``full`` is False when the configs came from
    ``/api/v0/servers`` (no admin rights): they cannot be registered again then."""

    configs: Mapping[str, Mapping[str, Any]] = field(repr=False)
    enabled: Mapping[str, bool]
    tools: Mapping[str, Mapping[str, bool]]
    full: bool = True
    classes: Mapping[str, Mapping[str, ToolClass]] = field(default_factory=dict)


# -- the target ---------------------------------------------------------------------------


class MCPJungleTarget:
    """One MCPJungle registry (``kind: mcpjungle``), reached at ``url``."""

    kind = KIND
    entry_kind = Entries.SERVERS
    capability = Capability(
        frozenset({"stdio", "http", "sse"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"enabled"},
        True,
        replace_only=True,
        tool_switch=True,
    )
    scopes: tuple[str, ...] = ()
    tool_control: str | None = "tools/disable"  # POST /api/v0/tools/disable?entity=s__t
    # Reads only: (delay before the 2nd attempt, before the 3rd); class-level for tests.
    retry_delays: tuple[float, ...] = (0.2, 0.5)

    def __init__(
        self,
        name: str,
        spec: TargetSpec,
        context: Context,
    ) -> None:
        self.name = name
        self.spec = spec
        self.context = context
        self.url = (spec.url or "").rstrip("/")
        self.timeout = spec.timeout or DEFAULT_TIMEOUT
        self._client: httpx.Client | None = None
        self._sent_env: list[str] = []  # env values sent: hidden from MCPJungle's answers
        self.version: str | None = None
        # Tool flags a replace must put back (MCPJungle forgets them on deregistration),
        # kept in the state directory until they are set: a pass that fails between the
        # registration and the flags leaves them for the next pass (``_finish_flags``).
        self._writable = context.lock_dir is not None
        self._flags_file = (
            StateStore(context.state_dir).cache_file(f"mcpjungle-flags--{name}")
            if context.state_dir is not None
            else None
        )
        self.pending_flags = self._load_flags()

    # -- Target protocol ---------------------------------------------------------------

    def describe(self) -> str:
        return self.url

    def watch_paths(self) -> tuple[Path, ...]:
        return ()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def observe(self) -> Observation:
        notes: list[str] = []
        blind: frozenset[str] = frozenset()
        response = self._call("GET", f"{API}/server_configs")
        full = response.status_code == 200
        if full:
            configs = self._list(response, "server_configs")
            listed: list[dict[str, Any]] | None = None
        elif response.status_code == 403 and NOT_ADMIN in _error_text(response):
            listed = self._list(self._expect(self._call("GET", f"{API}/servers"), 200), "servers")
            configs = listed
            blind = BLIND_WITHOUT_ADMIN
            notes.append(
                "the token has no admin rights: read /api/v0/servers instead of "
                "/api/v0/server_configs, so headers and bearer tokens could not be compared "
                "(and nothing can be changed without the admin token)"
            )
        else:
            raise self._failure(response, "read the registered servers")
        tool_list = self._list(self._expect(self._call("GET", f"{API}/tools"), 200), "tools")
        tools: dict[str, dict[str, bool]] = {}
        classes: dict[str, dict[str, ToolClass]] = {}
        for tool in tool_list:
            server, sep, short = str(tool.get("name", "")).partition(SEPARATOR)
            if sep:
                tools.setdefault(server, {})[short] = bool(tool.get("enabled", True))
                classes.setdefault(server, {})[short] = _tool_class(tool)
        by_name = {str(c.get("name")): c for c in configs}
        enabled: dict[str, bool] = {}
        if listed is not None:
            enabled = {n: bool(c.get("enabled", True)) for n, c in by_name.items()}
        else:
            # Disabling a server disables its tools, so one enabled tool means enabled; a
            # server without an enabled tool needs the server list to tell.
            unsure = [n for n in by_name if not any(tools.get(n, {}).values())]
            enabled = {n: True for n in by_name if n not in unsure}
            if unsure:
                servers = self._list(
                    self._expect(self._call("GET", f"{API}/servers"), 200), "servers"
                )
                flags = {str(s.get("name")): bool(s.get("enabled", True)) for s in servers}
                enabled.update({n: flags.get(n, True) for n in unsure})
        for config in configs:
            self._remember_secrets(config)
        notes += self._finish_flags(tools, enabled)
        entries = {n: config_to_essence(c, enabled[n]) for n, c in by_name.items()}
        snapshot = RegistrySnapshot(by_name, enabled, tools, full, classes)
        return Observation(
            entries, snapshot, blind, tuple(notes), tools=tools, tool_classes=classes
        )

    def apply(self, observation: Observation, writes: Sequence[Write]) -> None:
        snapshot = observation.snapshot
        if not isinstance(snapshot, RegistrySnapshot):
            raise TargetError("internal: apply without an MCPJungle observation")
        if not snapshot.full:
            raise TargetError(
                f"cannot change MCPJungle at {self.url}: the token has no admin rights; "
                "use the admin token (printed by `mcpjungle init-server`)",
                recoverable=False,
            )
        groups: dict[str, list[Write]] = {}
        for write in writes:
            groups.setdefault(write.entry, []).append(write)
        # Check every body first: nothing is changed when one cannot be registered.
        bodies: dict[str, dict[str, Any]] = {}
        for entry, group in groups.items():
            essence = next((w.essence for w in group if w.essence is not None), None)
            if essence is not None:
                bodies[entry] = essence_to_config(entry, essence, snapshot.configs.get(entry))
                self._remember_secrets(bodies[entry], sent=True)
        self.version = self._version()
        failures: dict[str, TargetError] = {}
        done: set[str] = set()
        flags_left: set[str] = set()
        for entry, group in groups.items():  # one failing server does not block the others
            try:
                self._apply_entry(entry, group, bodies.get(entry), snapshot)
            except _FlagsFailed as e:  # registered as planned; only its flags are left
                failures[entry] = e
                done.add(entry)
                flags_left.add(entry)
            except TargetError as e:
                failures[entry] = e
            else:
                done.add(entry)
                self._flags_set(entry)
        if failures:
            raise PartialApply(
                "; ".join(str(e) for e in failures.values())
                + f" ({len(done)} of {len(groups)} server(s) changed as planned)",
                frozenset(done),
                recoverable=all(e.recoverable for e in failures.values()),
                failed={entry: str(e) for entry, e in failures.items()},
                flags_left=frozenset(flags_left),
            )

    # -- applying one server -------------------------------------------------------------

    def _apply_entry(
        self,
        entry: str,
        group: list[Write],
        body: dict[str, Any] | None,
        snapshot: RegistrySnapshot,
    ) -> None:
        actions = {w.action for w in group}
        policy = next((w.tools for w in group if w.tools is not None), None)
        if Action.DELETE in actions or body is None:
            self._delete(entry)
            return
        essence = next(w.essence for w in group if w.essence is not None)
        want_enabled = bool(essence.get("enabled", True))
        reset = ""  # what set every enabled flag of the server and its tools back to true
        creating = Action.CREATE in actions or entry not in snapshot.configs
        # A disabled server's tools are all off by MCPJungle's cascade, not by anyone's
        # choice: those flags are not the ones to put back after an enable or a register.
        disabled = not snapshot.enabled.get(entry, True)
        before = ({} if disabled else snapshot.tools.get(entry)) or self.pending_flags.get(
            entry, {}
        )
        # The flags to put back after a reset: as they were, but a tool this tool had
        # disabled under a policy now gone is released (planned as a tool-enable).
        released = {t for w in group if w.action is Action.TOOL_ENABLE for t in w.tool_names}
        restore = {**before, **dict.fromkeys(released, True)} if policy is None else before
        if policy is None and before and (creating or actions & {Action.REPLACE, Action.UPDATE}):
            self._note_flags(entry, restore)  # before the flags are lost by a reset
        if creating:
            self._register(entry, body, force=False)
            reset = "registered"
        elif actions & {Action.REPLACE, Action.UPDATE}:
            self._replace(entry, body, snapshot)
            reset = "registered"
        elif want_enabled and disabled:
            self._toggle_server(entry, enable=True)  # cascades: every tool enabled
            reset = "enabled"
        try:
            self._set_flags(
                entry, group, policy, want_enabled, bool(reset), before, restore, snapshot
            )
        except TargetError as e:
            if not reset:
                raise
            raise _FlagsFailed(
                f"server '{entry}' was {reset} as planned, but setting its tool flags"
                f" failed: {e}; the next pass sets them",
                recoverable=e.recoverable,
            ) from e

    def _set_flags(
        self,
        entry: str,
        group: list[Write],
        policy: Governed | None,
        want_enabled: bool,
        reset: bool,
        before: Mapping[str, bool],
        restore: Mapping[str, bool],
        snapshot: RegistrySnapshot,
    ) -> None:
        actions = {w.action for w in group}
        if not want_enabled:
            if reset or snapshot.enabled.get(entry, True):
                self._toggle_server(entry, enable=False)
            return
        if reset or actions & TOOL_ACTIONS:
            # Without a reset, only the planned tools (a tool-enable left to
            # ``on_drift: report`` is not carried out along with another one).
            only = None
            if not reset:
                only = {t for w in group if w.action in TOOL_ACTIONS for t in w.tool_names}
            current = None if reset else before
            self._govern_tools(
                entry,
                policy,
                current,
                restore=restore,
                only=only,
                classes=snapshot.classes.get(entry, {}),
            )

    def _govern_tools(
        self,
        entry: str,
        policy: Governed | None,
        current: Mapping[str, bool] | None,
        *,
        restore: Mapping[str, bool],
        only: set[str] | None = None,
        classes: Mapping[str, ToolClass] | None = None,
    ) -> None:
        """Set each tool's flag: by policy when there is one (classes from MCPJungle's own
        annotations); without one, a reset server gets back the flags its tools had (a
        replace must not undo a hand-made disable)."""
        if current is None:  # after a reset: the tool list may have changed too
            response = self._call("GET", f"{API}/tools", params={"server": entry})
            listed = self._list(self._expect(response, 200), "tools")
            short = {id(t): str(t.get("name", "")).partition(SEPARATOR)[2] for t in listed}
            current = {short[id(t)]: bool(t.get("enabled", True)) for t in listed}
            classes = {short[id(t)]: _tool_class(t) for t in listed}
        if policy is not None:
            off = policy.disabled(current, classes)
            want = {tool: tool not in off for tool in current}
        else:
            want = {tool: restore.get(tool, True) for tool in current}
        for tool in sorted(current):
            if current[tool] != want[tool] and (only is None or tool in only):
                self._toggle_tool(entry, tool, enable=want[tool])

    def _register(
        self, entry: str, body: Mapping[str, Any], *, force: bool, read_back: bool = True
    ) -> None:
        """Register ``body``; a failure whose read-back shows it registered as sent is a
        success (``read_back=False``: the caller reads back itself)."""
        params = {"force": "true"} if force else None
        made = partial(self._registered, entry, body) if read_back else partial(bool, False)
        try:
            response = self._call("POST", f"{API}/servers", params=params, json=dict(body))
        except TargetError as e:
            self._unless_made(e, made)
            return
        if response.status_code == 201:
            return
        if response.status_code == 202:
            raise TargetError(
                f"MCPJungle at {self.url} needs OAuth authorization for server '{entry}' "
                f"({self._oauth_hint(response)}): finish the OAuth flow in MCPJungle "
                "(its dashboard, or `mcpjungle register` by hand), then run reconcile again",
                recoverable=False,
            )
        self._unless_made(self._failure(response, f"register server '{entry}'"), made)

    def _replace(self, entry: str, body: Mapping[str, Any], snapshot: RegistrySnapshot) -> None:
        """Register ``body`` over ``entry``; on failure, register the previous config again."""
        previous = snapshot.configs[entry]
        try:
            try:
                self._register(entry, body, force=True)
            except _Duplicate:
                # A server from before ``force`` ignores it: deregister, then register.
                self._delete(entry)
                self._register(entry, body, force=False)
        except TargetError as e:
            cause = str(e)
            try:
                # A failed restore reads back what MCPJungle holds, and says it (below).
                self._register(entry, previous, force=True, read_back=False)
            except TargetError as again:
                raise TargetError(
                    f"replace of server '{entry}' failed: {cause}; registering its previous "
                    f"config again failed too: {again}; {self._read_back(entry, previous)}:"
                    " fix the cause and run reconcile again",
                    recoverable=False,
                ) from e
            try:
                if not snapshot.enabled.get(entry, True):
                    self._toggle_server(entry, enable=False)
                else:
                    before = snapshot.tools.get(entry, {})
                    self._govern_tools(entry, None, None, restore=before)
            except TargetError as again:
                raise TargetError(
                    f"replace of server '{entry}' failed: {cause}; the previous registration "
                    f"was restored, but setting its flags again failed: {again}; the next "
                    "pass sets them",
                    recoverable=True,
                ) from e
            raise TargetError(
                f"replace of server '{entry}' failed: {cause}; the previous registration was "
                "restored (MCPJungle has no update: a replace deregisters and registers)",
                recoverable=e.recoverable,
            ) from e

    def _read_back(self, entry: str, previous: Mapping[str, Any]) -> str:
        """What MCPJungle holds for ``entry`` now, as read back (a report states only that)."""
        try:
            response = self._expect(self._call("GET", f"{API}/server_configs"), 200)
            configs = {str(c.get("name")): c for c in self._list(response, "server_configs")}
        except TargetError:
            return f"whether '{entry}' is still registered in MCPJungle could not be read back"
        if entry not in configs:
            return f"'{entry}' is no longer registered in MCPJungle"
        if configs[entry] == previous:
            return f"'{entry}' is still registered in MCPJungle, unchanged"
        return f"'{entry}' is registered in MCPJungle, but not as before nor as planned"

    # -- tool flags a failed pass left to set -------------------------------------------

    def _load_flags(self) -> dict[str, dict[str, bool]]:
        if self._flags_file is None:
            return {}
        try:
            data = json.loads(fsutil.read_bounded(self._flags_file) or b"{}")
        except (TargetError, ValueError, RecursionError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(server): {str(t): f for t, f in flags.items() if isinstance(f, bool)}
            for server, flags in data.items()
            if isinstance(flags, dict)
        }

    def _save_flags(self) -> None:
        if self._flags_file is None or not self._writable:
            return
        if self.pending_flags:
            data = json.dumps(self.pending_flags, indent=2, sort_keys=True) + "\n"
            fsutil.atomic_write(self._flags_file, data.encode())
        elif self._flags_file.exists():
            self._flags_file.unlink()

    def _note_flags(self, entry: str, flags: Mapping[str, bool]) -> None:
        self.pending_flags[entry] = dict(flags)
        self._save_flags()

    def _flags_set(self, entry: str) -> None:
        if self.pending_flags.pop(entry, None) is not None:
            self._save_flags()

    def _finish_flags(
        self, tools: dict[str, dict[str, bool]], enabled: Mapping[str, bool]
    ) -> list[str]:
        """Set the tool flags a failed pass left (writable passes only); notes of what."""
        if not self._writable or not self.pending_flags:
            return []
        notes: list[str] = []
        for entry in sorted(set(self.pending_flags) & set(enabled)):
            if not enabled[entry]:
                continue
            live = tools.get(entry, {})
            try:
                for tool, want in sorted(self.pending_flags[entry].items()):
                    if live.get(tool, want) != want:
                        verb = "enable" if want else "disable"
                        name = f"{entry}{SEPARATOR}{tool}"
                        response = self._call(
                            "POST", f"{API}/tools/{verb}", params={"entity": name}
                        )
                        self._expect(response, 200, f"{verb} tool {name}")
                        live[tool] = want
                        notes.append(f"{name}: {verb}d again, as before a failed pass reset it")
            except TargetError as e:
                notes.append(f"{entry}: its tool flags are still to be set again: {e}")
                continue
            del self.pending_flags[entry]
        self._save_flags()
        return notes

    def _delete(self, entry: str) -> None:
        gone = partial(self._deregistered, entry)
        try:
            response = self._call("DELETE", f"{API}/servers/{quote(entry, safe='')}")
        except TargetError as e:
            self._unless_made(e, gone)
            return
        if response.status_code == 204:
            return
        if response.status_code == 404 and _is_json(response):
            return  # already gone
        self._unless_made(self._failure(response, f"deregister server '{entry}'"), gone)

    def _toggle_server(self, entry: str, *, enable: bool) -> None:
        verb = "enable" if enable else "disable"
        try:
            response = self._call("POST", f"{API}/servers/{quote(entry, safe='')}/{verb}")
            self._expect(response, 200, f"{verb} server '{entry}'")
        except TargetError as e:
            self._unless_made(e, partial(self._server_is, entry, enable))

    def _toggle_tool(self, entry: str, tool: str, *, enable: bool) -> None:
        verb = "enable" if enable else "disable"
        name = f"{entry}{SEPARATOR}{tool}"
        try:
            response = self._call("POST", f"{API}/tools/{verb}", params={"entity": name})
            self._expect(response, 200, f"{verb} tool {name}")
        except TargetError as e:
            self._unless_made(e, partial(self._tool_is, entry, tool, enable))

    # -- read-backs after a failed write -------------------------------------------------

    def _unless_made(self, error: TargetError, made: Callable[[], bool]) -> None:
        """Raise ``error`` unless a read-back shows the change made all the same: MCPJungle
        acted, then its answer was lost or garbled. A report states what was read back."""
        if isinstance(error, _Unreached):
            raise error  # the request never left: nothing to read back (and no time lost)
        try:
            held = made()
        except TargetError:
            held = False
        if not held:
            raise error
        log.info("%s: %s; read back: made as planned", self.name, error)

    def _configs(self) -> dict[str, dict[str, Any]]:
        response = self._expect(self._call("GET", f"{API}/server_configs"), 200)
        return {str(c.get("name")): c for c in self._list(response, "server_configs")}

    def _registered(self, entry: str, body: Mapping[str, Any]) -> bool:
        held = self._configs().get(entry)
        return held is not None and config_to_essence(held, True) == config_to_essence(body, True)

    def _deregistered(self, entry: str) -> bool:
        return entry not in self._configs()

    def _server_is(self, entry: str, enabled: bool) -> bool:
        response = self._expect(self._call("GET", f"{API}/servers"), 200)
        listed = {str(s.get("name")): s.get("enabled") for s in self._list(response, "servers")}
        return listed.get(entry) is enabled

    def _tool_is(self, entry: str, tool: str, enabled: bool) -> bool:
        response = self._call("GET", f"{API}/tools", params={"server": entry})
        listed = self._list(self._expect(response, 200), "tools")
        name = f"{entry}{SEPARATOR}{tool}"
        return any(t.get("name") == name and t.get("enabled", True) is enabled for t in listed)

    # -- HTTP --------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        import httpx  # heavy: only a pass with an MCPJungle target pays for it

        if self._client is None:
            headers = {"Accept": "application/json"}
            token = self._token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            parts = urlsplit(self.url)
            host = (parts.hostname or "").lower()
            loopback = host in ("localhost", "::1") or host.startswith("127.")
            self._client = httpx.Client(
                base_url=self.url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT)),
                trust_env=not loopback,  # a proxy never reaches a gateway on this machine
                follow_redirects=False,
                # Plain http has no certificates to check: skip loading the CA bundle (0.1 s).
                verify=parts.scheme != "http",
            )
        return self._client

    def _token(self) -> str | None:
        reference = self.spec.token
        if not reference:
            return None
        resolve = self.context.resolve  # None: references are left as written
        try:
            token = reference if resolve is None else resolve(reference)
        except TargetError as e:
            raise TargetError(
                f"the token of target '{self.name}' ({reference}) cannot be resolved: {e}; "
                "set it to the MCPJungle admin access token (printed by "
                "`mcpjungle init-server`, kept as access_token in ~/.mcpjungle.conf)",
                recoverable=False,
            ) from e
        if might_reference(token):
            raise TargetError(
                f"the token of target '{self.name}' ({reference}) cannot be resolved",
                recoverable=False,
            )
        self.context.redactor.add(token)
        return token

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One request; reads are retried with backoff on network errors and 502/503/504."""
        import httpx

        client = self._http()
        attempts = 1 + (len(self.retry_delays) if method == "GET" else 0)
        for attempt in range(attempts):
            try:
                response = self._within_timeout(client, method, path, params, json)
            except httpx.TimeoutException as e:
                error: TargetError = TargetError(
                    f"MCPJungle at {self.url} did not answer {method} {path} within "
                    f"{self.timeout:g} s ({type(e).__name__}); it may be busy connecting to an "
                    "upstream server: raise the target's timeout, or check the server"
                )
            except httpx.ConnectError as e:
                error = _Unreached(
                    f"cannot connect to MCPJungle at {self.url} ({self._scrub(str(e))}): is it "
                    "running (`mcpjungle start`) and is the target's url right?"
                )
            except httpx.TransportError as e:
                error = TargetError(
                    f"the connection to MCPJungle at {self.url} failed during {method} {path} "
                    f"({type(e).__name__}: {self._scrub(str(e))})"
                )
            else:
                last = attempt + 1 == attempts
                if last or method != "GET" or response.status_code not in (502, 503, 504):
                    return response  # a final 5xx is explained by the caller
                error = TargetError(f"{method} {path}: {response.status_code}")
            if attempt + 1 < attempts:
                log.info("%s: %s; retrying", self.name, error)
                time.sleep(self.retry_delays[attempt])
        raise error

    def _within_timeout(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
    ) -> httpx.Response:
        """One request whose whole answer must arrive within the timeout: httpx's own
        timeout is per read, so an answer trickling a byte at a time would never end."""
        import httpx

        deadline = time.monotonic() + self.timeout
        with client.stream(method, path, params=params, json=json) as streamed:
            body = bytearray()
            for chunk in streamed.iter_raw():
                body += chunk
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the answer did not end in time", request=None)
                if len(body) > fsutil.MAX_FILE_BYTES:
                    raise TargetError(
                        f"MCPJungle at {self.url} answered {method} {path} with more than"
                        f" {fsutil.MAX_FILE_BYTES} bytes"
                    )
        return httpx.Response(
            streamed.status_code,
            headers=streamed.headers,
            content=bytes(body),
            request=streamed.request,
        )

    def _expect(self, response: httpx.Response, status: int, what: str = "") -> httpx.Response:
        if response.status_code != status:
            request = response.request
            raise self._failure(response, what or f"{request.method} {request.url.path}")
        return response

    def _list(self, response: httpx.Response, what: str) -> list[dict[str, Any]]:
        """The list an answer holds, every item checked against the shape this module reads:
        a hostile answer is one located error, never a crash or a wrong registration."""
        try:
            data = parse_answer(response.content)
        except HostileAnswer as e:
            raise TargetError(f"MCPJungle at {self.url} answered /api/v0/{what} {e}") from e
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise TargetError(f"MCPJungle at {self.url}: /api/v0/{what} is not a list of objects")
        for index, item in enumerate(data):
            problem = _shape_problem(item, _TOOL_SHAPE if what == "tools" else _SERVER_SHAPE)
            if problem is not None:
                raise TargetError(
                    f"MCPJungle at {self.url}: /api/v0/{what} item {index + 1} {problem}:"
                    " is the url an MCPJungle 0.4 server?"
                )
        return data

    def _version(self) -> str | None:
        try:
            response = self._call("GET", "/metadata")
            metadata = parse_answer(response.content) if response.status_code == 200 else None
            version = metadata.get("version") if isinstance(metadata, dict) else None
        except (TargetError, HostileAnswer):
            return None
        return str(version) if version else None

    def _ready(self) -> str:
        """``/health`` and ``/metadata`` in a few words, to explain an odd answer."""
        import httpx

        try:
            health = self._within_timeout(self._http(), "GET", "/health", None, None)
            answer = parse_answer(health.content) if health.status_code == 200 else None
            status = answer.get("status") if isinstance(answer, dict) else None
        except (httpx.HTTPError, TargetError, HostileAnswer):
            return "its /health does not answer like MCPJungle's"
        version = self._version() or "unknown version"
        return f"MCPJungle {version}, health {status or 'not ok'}"

    # -- errors ------------------------------------------------------------------------

    def _failure(self, response: httpx.Response, what: str) -> TargetError:
        """A TargetError for an unexpected answer: what was tried, and what to do about it."""
        status = response.status_code
        text = self._scrub(_error_text(response))
        where = (
            f"MCPJungle {self.version} at {self.url}"
            if self.version
            else f"MCPJungle at {self.url}"
        )
        if status == 403 and NOT_INITIALIZED in text:
            return TargetError(
                f"{where} is not initialized: run `mcpjungle init-server` (enterprise mode), "
                f"then give this target the admin token it prints as token: "
                f"${{env:MCPJUNGLE_ADMIN_TOKEN}}",
                recoverable=False,
            )
        if status == 401 and MISSING_TOKEN in text:
            return TargetError(
                f"{where} runs in enterprise mode and needs an access token: add "
                f"`token: ${{env:MCPJUNGLE_ADMIN_TOKEN}}` to target '{self.name}' and export "
                "the admin token (printed by `mcpjungle init-server`)",
                recoverable=False,
            )
        if status == 401:
            return TargetError(
                f"{where} rejected the token of target '{self.name}' ({self.spec.token}): "
                f"{text}; set it to a valid admin access token (printed by "
                "`mcpjungle init-server`, kept as access_token in ~/.mcpjungle.conf)",
                recoverable=False,
            )
        if status == 403 and NOT_ADMIN in text:
            return TargetError(
                f"{where}: the token of target '{self.name}' belongs to a user without admin "
                f"rights, so it cannot {what}; use the admin token",
                recoverable=False,
            )
        if status == 404 and not _is_json(response):
            return TargetError(
                f"{where} has no route for {response.request.method} "
                f"{response.request.url.path} (plain-text 404: {text}) while trying to {what}; "
                f"is the url an MCPJungle 0.4 server? ({self._ready()})",
                recoverable=False,
            )
        if status == 400 and _code(response) == OAUTH_REQUIRED:
            return TargetError(
                f"{where} could not {what}: the upstream server demands OAuth or rejected the "
                f"bearer token ({text.splitlines()[0] if text else 'no detail'}); check the "
                "token in the server's headers, or finish OAuth for it in MCPJungle",
                recoverable=False,
            )
        if status == 500 and DUPLICATE in text:
            return _Duplicate(f"{where} could not {what}: {text}")
        if status >= 500 and response.request.method == "GET":
            return TargetError(f"{where} could not {what}: {status} {text} ({self._ready()})")
        if status >= 500 and what.startswith("register"):
            return TargetError(
                f"{where} could not {what}: {status} {text or response.reason_phrase} (for a "
                "registration this usually means MCPJungle could not connect to the upstream "
                "server: check its command or url from where MCPJungle runs)"
            )
        return TargetError(
            f"{where} could not {what}: {status} {text or response.reason_phrase}",
            recoverable=status not in (400, 404),
        )

    def _oauth_hint(self, response: httpx.Response) -> str:
        try:
            answer = parse_answer(response.content)
        except HostileAnswer:
            return "no detail"
        pending = answer.get("authorization_required") if isinstance(answer, dict) else None
        if not isinstance(pending, dict):
            return "no detail"
        # Texts from the answer: strings only, bounded, scrubbed (a URL may carry a secret).
        expires = _answer_text(pending.get("expires_at")) or "?"
        url = _answer_text(pending.get("authorization_url"))
        hint = f"open {url} before {expires}" if url else f"pending until {expires}"
        return self._scrub(hint)

    def _remember_secrets(self, config: Mapping[str, Any], *, sent: bool = False) -> None:
        """Teach the redactor the secret values of a registration; for a body we send, keep
        its env values too, to hide them from MCPJungle's answers (they may quote it)."""
        for value in _secret_values(config):
            self.context.redactor.add(value)
        if sent:
            self._sent_env.extend(str(v) for v in (config.get("env") or {}).values())

    def _scrub(self, text: str) -> str:
        """A text taken from an answer, every secret in it shown as the redactor shows it."""
        return self.context.redactor.scoped(self._sent_env).scrub(text)


class _FlagsFailed(TargetError):
    """The server is registered as planned; only setting its flags afterwards failed."""


class _Unreached(TargetError):
    """MCPJungle could not be connected to: a request that never left changed nothing."""


class _Duplicate(TargetError):
    """Registering an existing name without a working ``force`` (500 from the unique index)."""


# How much of a text from an answer a report quotes (an error, an authorization url).
ANSWER_TEXT_CHARS = 300


def _answer_text(value: Any) -> str:
    """A string field of an answer, cut to ``ANSWER_TEXT_CHARS``; "" for anything else."""
    return value[:ANSWER_TEXT_CHARS] if isinstance(value, str) else ""


def _error_text(response: httpx.Response) -> str:
    """The ``error`` of a JSON answer, else the body's text (gin's plain-text 404)."""
    try:
        data = parse_answer(response.content)
    except HostileAnswer:
        return response.content[:ANSWER_TEXT_CHARS].decode("utf-8", "replace").strip()
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return _answer_text(data["error"])
    return response.content[:ANSWER_TEXT_CHARS].decode("utf-8", "replace").strip()


def _code(response: httpx.Response) -> str | None:
    try:
        data = parse_answer(response.content)
    except HostileAnswer:
        return None
    return str(data.get("code")) if isinstance(data, dict) and data.get("code") else None


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "")


def build(name: str, spec: TargetSpec, context: Context) -> MCPJungleTarget:
    return MCPJungleTarget(name, spec, context)


__all__: Sequence[str] = (
    "DEFAULT_TIMEOUT",
    "MCPJungleTarget",
    "RegistrySnapshot",
    "build",
    "config_to_essence",
    "essence_to_config",
)


# The kinds this family declares (read by the registry in ``targets/__init__``).
KIND_CLASSES: tuple[type[MCPJungleTarget], ...] = (MCPJungleTarget,)
