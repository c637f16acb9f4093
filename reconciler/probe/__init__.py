"""The MCP client side of the reconciler: connect to servers the way a client does.

A configuration in sync can still be broken: the command is not installed, the token has
expired, the server crashes on start. ``probe_all`` starts or connects to each server
(stdio, streamable HTTP, or the deprecated HTTP+SSE) through the official `mcp` SDK,
negotiates the protocol, lists every tool and counts prompts and resources, and returns a
``ProbeResult`` per server: its inventory, or the phase it failed in with a one-line error
and context. See DESIGN.md section 6A.

Importing this package is cheap: the SDK is loaded only when a probe runs.
"""

from reconciler.probe.model import (
    TRANSPORTS,
    Phase,
    ProbeContext,
    ProbeResult,
    ProbeSpec,
    ToolInfo,
    Transport,
)
from reconciler.probe.process import BASE_ENV_VARS, base_environment
from reconciler.probe.runner import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, probe_all, probe_all_async

__all__ = [
    "BASE_ENV_VARS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT",
    "TRANSPORTS",
    "Phase",
    "ProbeContext",
    "ProbeResult",
    "ProbeSpec",
    "ToolInfo",
    "Transport",
    "base_environment",
    "probe_all",
    "probe_all_async",
]
