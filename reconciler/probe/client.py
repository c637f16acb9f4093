"""The MCP client side of a probe, through the official `mcp` SDK.

The SDK costs about 600 ms to import (~580 modules), so this module imports it, and its
HTTP client httpx2, only inside the functions that probe (``load_sdk`` does it up front):
importing ``reconciler.probe`` stays cheap. Everything that knows SDK types lives here: the
client (with a short ``server/discover``), the stdio/HTTP/SSE transports, the listing, and
the reading of the SDK's exceptions into a phase and a one-line error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from reconciler.probe.model import Phase, ToolInfo

if TYPE_CHECKING:
    import anyio
    import anyio.abc
    import httpx2
    import mcp_types
    from mcp import Client, ClientSession
    from mcp.shared.message import SessionMessage

    Streams = tuple[
        anyio.abc.ObjectReceiveStream[SessionMessage | Exception],
        anyio.abc.ObjectSendStream[SessionMessage],
    ]

Redact = Callable[[str], str]
TransportFactory = Callable[[], AbstractAsyncContextManager[Any]]

# A paginator that never ends must not hang a probe (the timeout would end it, but with a
# misleading "timed out"): after this many pages the listing fails with its own error.
MAX_PAGES = 1000
NOISE_LINES = 3
NOISE_CHARS = 200

_T = TypeVar("_T")


def load_sdk() -> None:
    """Import the SDK now, so that its import is not charged to the first probe's timeout."""
    _probe_client_class()


@cache
def _client_info() -> mcp_types.Implementation:
    import importlib.metadata

    import mcp_types

    try:
        version = importlib.metadata.version("mcp-reconciler")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        version = "0"
    return mcp_types.Implementation(name="mcp-reconciler-probe", version=version)


@cache
def _probe_client_class() -> type[Client]:
    """The SDK's ``Client`` with a bounded discover, defined once the SDK is imported."""
    import anyio
    import mcp_types
    from mcp import Client, MCPError

    class ProbeClient(Client):
        """The SDK's Client, with the ``server/discover`` probe bounded by ``discover_timeout``.

        ``mode='auto'`` sends ``server/discover`` first (the 2026-07-28 revision is stateless
        and has no initialize) and falls back to ``initialize`` on any JSON-RPC error. The SDK
        waits a fixed 10 s for that discover answer; a server of an older revision that simply
        ignores the unknown method would then cost 10 s before its initialize is even sent,
        more than the whole probe timeout. Here the discover gives up after
        ``discover_timeout`` with the same REQUEST_TIMEOUT error the SDK's own wait raises, so
        the SDK's fallback (initialize, and its re-probe when a slow modern server answers
        that with -32022) proceeds as designed, within the probe's own timeout.

        The hook is the SDK's ``_build_session`` (private; pinned by ``mcp>=2.3,<3`` and
        exercised by every probe test).
        """

        discover_timeout: float = 10.0

        async def _build_session(self, exit_stack: AsyncExitStack) -> ClientSession:
            session = await super()._build_session(exit_stack)
            send_discover = session.send_discover
            limit = self.discover_timeout

            async def short_discover(version: str) -> dict[str, Any]:
                with anyio.move_on_after(limit) as scope:
                    return await send_discover(version)
                assert scope.cancelled_caught
                raise MCPError(
                    mcp_types.REQUEST_TIMEOUT, f"server/discover timed out after {limit:g}s"
                )

            session.send_discover = short_discover  # type: ignore[method-assign]
            return session

    return ProbeClient


@dataclass
class Progress:
    """How far one probe got; read when it fails, to name the phase.

    ``found`` is set as soon as the listing is complete, before the connection closes: a
    server that then hangs or errors while closing has still answered everything a client
    needs, so the probe reports what it found.
    """

    phase: Phase = Phase.INITIALIZE
    listed_at: float | None = None
    found: Inventory | None = None


@dataclass(frozen=True)
class Inventory:
    protocol_version: str
    server_name: str | None
    server_version: str | None
    tools: tuple[ToolInfo, ...]
    prompts: int | None
    resources: int | None


async def inventory(
    transport: TransportFactory,
    *,
    discover_timeout: float,
    progress: Progress,
    redact: Redact,
) -> Inventory:
    """Connect through ``transport``, negotiate, list everything, close."""
    import anyio

    client = _probe_client_class()(
        transport(),
        mode="auto",
        # A probe wants what the server says now, not a cached listing.
        cache=None,
        client_info=_client_info(),
    )
    client.discover_timeout = discover_timeout  # type: ignore[attr-defined]
    progress.phase = Phase.INITIALIZE
    async with client:
        progress.phase = Phase.LIST_TOOLS
        capabilities = client.server_capabilities
        info = client.server_info
        tools = await _all_pages(lambda c: client.list_tools(cursor=c), lambda r: r.tools, "tools")
        prompts = resources = None
        # Counted only where offered: asking a server for a capability it did not
        # advertise is a protocol error, and the count is informational.
        if capabilities.prompts is not None:
            prompts = await _count(
                lambda c: client.list_prompts(cursor=c), lambda r: r.prompts, "prompts"
            )
        if capabilities.resources is not None:
            resources = await _count(
                lambda c: client.list_resources(cursor=c), lambda r: r.resources, "resources"
            )
        progress.listed_at = anyio.current_time()
        progress.found = Inventory(
            protocol_version=client.protocol_version,
            server_name=redact(info.name) if info is not None else None,
            server_version=redact(info.version) if info is not None and info.version else None,
            tools=tuple(_tool_info(tool, redact) for tool in tools),
            prompts=prompts,
            resources=resources,
        )
    return progress.found


class _ListingError(Exception):
    """A listing the server got wrong (a cursor loop, no end)."""


async def _all_pages(
    fetch: Callable[[str | None], Awaitable[Any]],
    items: Callable[[Any], Sequence[_T]],
    what: str,
) -> list[_T]:
    found: list[_T] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = await fetch(cursor)
        found.extend(items(page))
        cursor = page.next_cursor
        if cursor is None:
            return found
        if cursor in seen:
            raise _ListingError(f"{what}/list returned a cursor it had already returned")
        seen.add(cursor)
    raise _ListingError(f"{what}/list did not end after {MAX_PAGES} pages")


async def _count(
    fetch: Callable[[str | None], Awaitable[Any]],
    items: Callable[[Any], Sequence[Any]],
    what: str,
) -> int | None:
    """How many prompts or resources; None when the server fails to say.

    The counts are informational: a server whose prompt listing errors still serves its
    tools, so that is not a failed probe. A timeout still ends the probe (it is not caught).
    """
    from mcp import MCPError

    try:
        return len(await _all_pages(fetch, items, what))
    except (MCPError, ValidationError, _ListingError):
        return None


def _tool_info(tool: mcp_types.Tool, redact: Redact) -> ToolInfo:
    data = tool.model_dump(by_alias=True, mode="json", exclude_none=True)
    # The server's own texts pass the redactor too: a server may echo a token it was given
    # into a description, and these end up in reports and in the tool lock.
    data = _scrub(data, redact)
    annotations = data.get("annotations")
    return ToolInfo(
        name=str(data.get("name", "")),
        description=data.get("description"),
        input_schema=dict(data.get("inputSchema") or {}),
        annotations=dict(annotations) if isinstance(annotations, dict) else None,
    )


def _scrub(data: Any, redact: Redact) -> Any:
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact(k) if isinstance(k, str) else k: _scrub(v, redact) for k, v in data.items()}
    if isinstance(data, list):
        return [_scrub(v, redact) for v in data]
    return data


# -- transports -----------------------------------------------------------------------------


class StdoutNoise:
    """Lines a stdio server wrote on stdout that are not JSON-RPC.

    The spec says a server MUST NOT write anything else there. Real clients skip such lines
    and carry on (a banner printed at start is a common mistake), so the probe does too, and
    reports the first few in the context when the server then fails.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.count = 0

    def add(self, line: bytes) -> None:
        self.count += 1
        if len(self.lines) < NOISE_LINES:
            text = line.decode("utf-8", "replace").strip()
            self.lines.append(text if len(text) <= NOISE_CHARS else text[:NOISE_CHARS] + "…")

    def text(self, redact: Redact) -> str | None:
        return redact("\n".join(self.lines)) if self.lines else None


@asynccontextmanager
async def stdio_streams(process: anyio.abc.Process, noise: StdoutNoise) -> AsyncIterator[Streams]:
    """Newline-delimited JSON-RPC over the child's stdin/stdout.

    The SDK's own ``stdio_client`` spawns the process itself and hides it, so the probe
    could neither read its stderr, nor know its pid to kill its process group. The process
    is started and stopped by ``reconciler.probe.process``; this only moves messages.
    When stdout ends (the server exited or closed it), the read stream closes and the
    session sees "Connection closed".
    """
    import anyio
    import mcp_types
    from mcp.shared.message import SessionMessage

    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)
    stdout, stdin = process.stdout, process.stdin
    assert stdout is not None and stdin is not None

    async def read_stdout() -> None:
        buffer = b""
        async with read_send:
            try:
                async for chunk in stdout:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            message = mcp_types.jsonrpc_message_adapter.validate_json(
                                line, by_name=False
                            )
                        except ValueError:
                            noise.add(line)
                            continue
                        await read_send.send(SessionMessage(message))
            except (
                anyio.ClosedResourceError,
                anyio.BrokenResourceError,
                anyio.EndOfStream,
                OSError,
            ):
                pass  # the session or the process is gone; closing read_send says so

    async def write_stdin() -> None:
        try:
            async with write_recv:
                async for item in write_recv:
                    data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await stdin.send((data + "\n").encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            # The server stopped reading (it exited): end the session instead of letting
            # a request wait for an answer that cannot come.
            await read_send.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(write_stdin)
        try:
            yield read_recv, write_send
        finally:
            tg.cancel_scope.cancel()


@dataclass
class HttpLog:
    """The HTTP statuses the endpoint answered, recorded by an httpx2 response hook.

    The SDK turns a 4xx/5xx into a generic JSON-RPC error ("Server returned an error
    response"); the status itself is what tells "authentication needed" from "wrong URL".
    """

    statuses: list[int] = field(default_factory=list)
    authenticate: str | None = None

    async def hook(self, response: httpx2.Response) -> None:
        status = response.status_code
        if status == 401:
            self.authenticate = response.headers.get("www-authenticate")
        # A server of an older revision may refuse the discover probe with a 4xx and a
        # JSON-RPC error, then initialize fine: that refusal is no failure to blame later.
        discover = response.request.headers.get("mcp-method") == "server/discover"
        if not discover or status in (401, 403):
            self.statuses.append(status)

    def failure_status(self) -> int | None:
        """The status to blame: a 401/403 anywhere, else the last status if it was an error."""
        for status in self.statuses:
            if status in (401, 403):
                return status
        if self.statuses and self.statuses[-1] >= 400:
            return self.statuses[-1]
        return None


def _http_client(headers: dict[str, str], timeout: float, log: HttpLog) -> httpx2.AsyncClient:
    import httpx2

    return httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(timeout),
        event_hooks={"response": [log.hook]},
    )


def http_transport(
    url: str, headers: dict[str, str], timeout: float, log: HttpLog
) -> TransportFactory:
    """Streamable HTTP: the headers go on the httpx2 client (the SDK takes no headers)."""

    @asynccontextmanager
    async def transport() -> AsyncIterator[Any]:
        from mcp.client.streamable_http import streamable_http_client

        async with (
            _http_client(headers, timeout, log) as http,
            streamable_http_client(url, http_client=http) as streams,
        ):
            yield streams

    return transport


def sse_transport(
    url: str, headers: dict[str, str], timeout: float, log: HttpLog
) -> TransportFactory:
    """The HTTP+SSE transport of the 2024-11-05 revision, deprecated since 2025-03-26."""

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        import httpx2

        return httpx2.AsyncClient(
            headers=headers, timeout=timeout, auth=auth, event_hooks={"response": [log.hook]}
        )

    def transport() -> AbstractAsyncContextManager[Any]:
        from mcp.client.sse import sse_client

        return sse_client(
            url,
            headers=headers,
            timeout=timeout,
            sse_read_timeout=timeout,
            httpx_client_factory=factory,
        )

    return transport


# -- reading failures -----------------------------------------------------------------------


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, the SDK's usual wrapping."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


@dataclass(frozen=True)
class Diagnosis:
    phase: Phase
    error: str
    recoverable: bool
    http_status: int | None = None


def _primary(exc: BaseException) -> BaseException:
    """The most telling leaf: a transport or protocol error beats teardown noise."""
    import httpx2
    from mcp import MCPError

    found = leaves(exc)
    for kind in (httpx2.HTTPStatusError, httpx2.TransportError, MCPError, OSError, ValidationError):
        for leaf in found:
            if isinstance(leaf, kind):
                return leaf
    return found[0]


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _what(phase: Phase) -> str:
    return "the handshake" if phase is Phase.INITIALIZE else "the tool listing"


def _describe(leaf: BaseException) -> str:
    from mcp import MCPError

    if isinstance(leaf, MCPError):
        return f"{leaf.message} (code {leaf.code})"
    if isinstance(leaf, ValidationError):
        first = leaf.errors()[0] if leaf.errors() else {"msg": str(leaf)}
        return f"invalid answer from the server: {first.get('msg')}"
    text = str(leaf)
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__


def diagnose_stdio(
    exc: BaseException,
    progress: Progress,
    *,
    exit_status: int | None,
    last_stderr: str | None,
) -> Diagnosis:
    """A stdio failure after a successful spawn (phase initialize or list_tools)."""
    import anyio
    import mcp_types
    from mcp import MCPError

    phase = progress.phase
    leaf = _primary(exc)
    closed = (
        isinstance(leaf, MCPError) and leaf.code == mcp_types.CONNECTION_CLOSED
    ) or isinstance(leaf, anyio.BrokenResourceError | anyio.ClosedResourceError | anyio.EndOfStream)
    if closed:
        how = (
            f"exited with status {exit_status}" if exit_status is not None else "closed its stdout"
        )
        error = f"server {how} during {_what(phase)}"
        recoverable = False
    elif isinstance(leaf, _ListingError):
        error, recoverable = str(leaf), False
    else:
        error, recoverable = f"{_what(phase)} failed: {_describe(leaf)}", False
    if last_stderr and closed:
        error += f": {last_stderr}"
    return Diagnosis(phase, _one_line(error), recoverable)


def diagnose_http(exc: BaseException, progress: Progress, log: HttpLog, url: str) -> Diagnosis:
    """An HTTP/SSE failure: the HTTP status first, then the transport, then the protocol."""
    import httpx2
    import mcp_types
    from mcp import MCPError

    leaf = _primary(exc)
    status = log.failure_status()
    if status is None and isinstance(leaf, httpx2.HTTPStatusError):
        status = leaf.response.status_code
    if status is not None and (progress.phase is Phase.INITIALIZE or status in (401, 403)):
        return Diagnosis(
            Phase.CONNECT,
            _http_status_error(status, log, url),
            status >= 500 or status == 429,
            status,
        )
    if isinstance(leaf, httpx2.ConnectError | httpx2.ConnectTimeout):
        reason = str(leaf) or type(leaf).__name__
        return Diagnosis(Phase.CONNECT, _one_line(f"cannot connect to {url}: {reason}"), True)
    if isinstance(leaf, httpx2.TransportError):
        return Diagnosis(
            progress.phase, _one_line(f"{_what(progress.phase)} failed: {_describe(leaf)}"), True
        )
    if isinstance(leaf, _ListingError):
        return Diagnosis(progress.phase, _one_line(str(leaf)), False, status)
    if isinstance(leaf, MCPError) and leaf.code == mcp_types.CONNECTION_CLOSED:
        return Diagnosis(
            progress.phase, f"the server closed the connection during {_what(progress.phase)}", True
        )
    return Diagnosis(
        progress.phase,
        _one_line(f"{_what(progress.phase)} failed: {_describe(leaf)}"),
        False,
        status,
    )


def _http_status_error(status: int, log: HttpLog, url: str) -> str:
    if status == 401:
        scheme = (log.authenticate or "").split(" ", 1)[0]
        how = f" ({scheme})" if scheme else ""
        return f"authentication needed: {url} answered HTTP 401 Unauthorized{how}"
    if status == 403:
        return f"access denied: {url} answered HTTP 403 Forbidden"
    if status == 404:
        return f"no MCP endpoint at {url}: HTTP 404 Not Found"
    return f"{url} answered HTTP {status}"
