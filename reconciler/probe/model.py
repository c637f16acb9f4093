"""What a probe is asked (ProbeSpec) and what it found (ProbeResult).

These are plain frozen dataclasses with no third-party imports (the tool classes come from
the pure core), so the rest of the reconciler
(reports, metrics, the tool lock, the CLI) can build, compare and print probe results without
loading the `mcp` SDK, which only the probing itself needs.

Every text in a ProbeResult that can hold a secret (errors, the stderr tail, the command
line, URLs, and what the server said about itself and its tools) has already been through the
caller's redactor when the result is built: a result can be printed or written as it is.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.core.tools import ToolClass, classify

Transport = Literal["stdio", "http", "sse"]
TRANSPORTS: tuple[str, ...] = ("stdio", "http", "sse")


class Phase(enum.StrEnum):
    """Where a probe failed, in the order a client goes through them.

    - ``spawn``: the stdio command could not be started (missing, not executable, bad cwd).
    - ``connect``: the HTTP/SSE endpoint could not be reached or refused the request at the
      HTTP layer (connection refused, DNS, TLS, 401/403/404/5xx before any MCP answer).
    - ``initialize``: the connection exists but the protocol handshake did not complete: the
      ``server/discover`` probe of the stateless revision or the legacy ``initialize``. A
      stdio server that exits at start, hangs, or writes only garbage on stdout fails here,
      because for stdio the spawn *is* the connection: it succeeded, and what is missing is
      the server's answer to the handshake.
    - ``list_tools``: the handshake worked, listing (tools, then prompt and resource counts)
      failed or ran past the timeout.
    """

    SPAWN = "spawn"
    CONNECT = "connect"
    INITIALIZE = "initialize"
    LIST_TOOLS = "list_tools"


@dataclass(frozen=True)
class ProbeSpec:
    """One server to probe, with every secret already resolved by the caller.

    ``transport`` is ``stdio`` (``command``, ``args``, ``env``, ``cwd``), ``http`` (streamable
    HTTP: ``url``, ``headers``) or ``sse`` (the deprecated HTTP+SSE transport: ``url``,
    ``headers``). ``target`` names the target whose live entry this is, or None for the
    desired definition. ``required`` is carried into the result untouched: whether a failure
    fails the run is the caller's decision.
    """

    server: str
    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    target: str | None = None
    required: bool = False


@dataclass(frozen=True)
class ToolInfo:
    """A tool as the server listed it, as plain JSON data.

    ``annotations`` keeps the wire's alias keys (``readOnlyHint``, ``destructiveHint``...),
    with only the hints the server sent; None when the tool has no annotations at all, which
    the governance rules read as "destructive" (see DESIGN.md 6B).
    """

    name: str
    description: str | None
    input_schema: dict[str, Any] = field(hash=False)
    annotations: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def tool_class(self) -> ToolClass:
        return classify(self.annotations)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
            "annotations": dict(self.annotations) if self.annotations is not None else None,
            "class": self.tool_class.value,
        }


@dataclass(frozen=True)
class ProbeContext:
    """What helps a person fix a failed server; every text in it is redacted.

    ``exit_status`` is the stdio server's own exit status when it exited by itself (None
    when the probe had to kill it, or it was never started). ``stderr_tail`` is the last
    lines of its stderr (about 20 lines / 4 KB). ``stdout_noise`` is the first lines it wrote
    on stdout that were not JSON-RPC. ``deprecated`` flags the HTTP+SSE transport, which the
    spec deprecates in favour of streamable HTTP. ``unsupported`` says why a server could not
    be probed at all.
    """

    command: str | None = None
    url: str | None = None
    exit_status: int | None = None
    stderr_tail: str | None = None
    stdout_noise: str | None = None
    http_status: int | None = None
    deprecated: bool = False
    unsupported: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "url": self.url,
            "exit_status": self.exit_status,
            "stderr_tail": self.stderr_tail,
            "stdout_noise": self.stdout_noise,
            "http_status": self.http_status,
            "deprecated": self.deprecated,
            "unsupported": self.unsupported,
        }


@dataclass(frozen=True)
class ProbeResult:
    """What probing one server found: its inventory when it worked, the failure when not.

    ``ok`` is true when the handshake and the tool listing completed. ``phase``, ``error``
    (one line) and ``recoverable`` are set when it did not. ``recoverable`` means a later
    attempt may succeed without anyone changing the configuration (a timeout, a refused
    connection, a 5xx); a missing command, a crash at start, or a 401 need a person.
    ``latency_ms`` is the wall time from starting the probe to the end of the listing.
    """

    server: str
    target: str | None
    ok: bool
    transport: str
    required: bool = False
    protocol_version: str | None = None
    server_name: str | None = None
    server_version: str | None = None
    tools: tuple[ToolInfo, ...] = ()
    prompts: int | None = None
    resources: int | None = None
    latency_ms: float | None = None
    phase: Phase | None = None
    error: str | None = None
    recoverable: bool | None = None
    context: ProbeContext = field(default_factory=ProbeContext)

    @property
    def status(self) -> Literal["up", "down", "unsupported"]:
        if self.ok:
            return "up"
        return "unsupported" if self.context.unsupported is not None else "down"

    def tool_classes(self) -> dict[str, int]:
        """Tool counts by class (read-only, mutating, destructive: every class present)."""
        counts = {c.value: 0 for c in ToolClass}
        for tool in self.tools:
            counts[tool.tool_class.value] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (str, int, float, bool, None, list, dict) for ``--json`` output."""
        return {
            "server": self.server,
            "target": self.target,
            "required": self.required,
            "transport": self.transport,
            "status": self.status,
            "ok": self.ok,
            "protocol_version": self.protocol_version,
            "server_name": self.server_name,
            "server_version": self.server_version,
            "tool_count": len(self.tools) if self.ok else None,
            "tool_classes": self.tool_classes() if self.ok else None,
            "tools": [t.to_json() for t in self.tools],
            "prompts": self.prompts,
            "resources": self.resources,
            "latency_ms": self.latency_ms,
            "phase": self.phase.value if self.phase is not None else None,
            "error": self.error,
            "recoverable": self.recoverable,
            "context": self.context.to_json(),
        }
