"""Probe against real servers nobody here wrote: mcp-server-time (PyPI) over stdio, and
@modelcontextprotocol/server-everything (npm) over stdio and streamable HTTP on 127.0.0.1.

.ci/install-servers installs both; a test whose server is absent skips and says why.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from reconciler.probe import ProbeResult, ProbeSpec, probe_all
from tests.servers import EVERYTHING, everything_http

pytestmark = pytest.mark.probe

needs_time = pytest.mark.skipif(
    importlib.util.find_spec("mcp_server_time") is None,
    reason="mcp-server-time is not installed (run .ci/install-servers)",
)
needs_everything = pytest.mark.skipif(
    not EVERYTHING.is_file() or shutil.which("node") is None,
    reason=f"server-everything is not installed at {EVERYTHING} (run .ci/install-servers)",
)

EVERYTHING_TOOLS = 13


def probe(spec: ProbeSpec) -> ProbeResult:
    [result] = probe_all([spec], timeout=15, redact=str)
    assert result.ok, f"{result.phase}: {result.error}\n{result.context.stderr_tail}"
    return result


@needs_time
def test_mcp_server_time_over_stdio(home: Path) -> None:
    r = probe(
        ProbeSpec(
            "time",
            "stdio",
            command=sys.executable,
            args=("-m", "mcp_server_time", "--local-timezone=UTC"),
        )
    )
    assert r.protocol_version == "2026-07-28"
    assert r.server_name == "mcp-time"
    tools = {t.name: t for t in r.tools}
    assert set(tools) == {"get_current_time", "convert_time"}
    assert tools["get_current_time"].annotations == {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    assert tools["convert_time"].input_schema["type"] == "object"


def check_everything(r: ProbeResult) -> None:
    assert r.protocol_version == "2025-11-25"
    assert r.server_name == "mcp-servers/everything"
    assert len(r.tools) == EVERYTHING_TOOLS
    assert all(t.annotations is not None for t in r.tools)
    gzip = next(t for t in r.tools if t.name == "gzip-file-as-resource")
    assert gzip.annotations is not None
    assert (gzip.annotations["readOnlyHint"], gzip.annotations["openWorldHint"]) == (False, True)
    assert r.prompts is not None and r.prompts > 0
    assert r.resources is not None and r.resources > 0


@needs_everything
def test_server_everything_over_stdio(home: Path) -> None:
    r = probe(ProbeSpec("everything", "stdio", command="node", args=(str(EVERYTHING),)))
    check_everything(r)
    assert r.transport == "stdio"


@needs_everything
def test_server_everything_over_streamable_http(home: Path) -> None:
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home)}
    with everything_http(env) as port:
        r = probe(ProbeSpec("everything", "http", url=f"http://127.0.0.1:{port}/mcp"))
    check_everything(r)
    assert r.transport == "http"


@needs_everything
def test_stdio_and_http_inventories_agree(home: Path) -> None:
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home)}
    with everything_http(env) as port:
        stdio, http = probe_all(
            [
                ProbeSpec("stdio", "stdio", command="node", args=(str(EVERYTHING),)),
                ProbeSpec("http", "http", url=f"http://127.0.0.1:{port}/mcp"),
            ],
            timeout=15,
            redact=str,
        )
    assert stdio.ok and http.ok
    assert stdio.tools == http.tools
