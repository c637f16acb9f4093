"""Probe API: cheap to import, plain data out, and the pieces that need no server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reconciler.probe import (
    BASE_ENV_VARS,
    Phase,
    ProbeContext,
    ProbeResult,
    ProbeSpec,
    ToolInfo,
    base_environment,
    probe_all,
)
from reconciler.probe.process import STDERR_BYTES, STDERR_LINES, StderrTail


def test_importing_the_package_does_not_load_the_sdk() -> None:
    code = (
        "import sys, reconciler.probe; "
        "print(sorted(m for m in ('mcp', 'mcp_types', 'httpx2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_base_environment_is_minimal() -> None:
    outer = {name: f"v-{name}" for name in BASE_ENV_VARS} | {
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "GITHUB_TOKEN": "t0k3n",
        "PYTHONPATH": "/x",
    }
    env = base_environment({"API_KEY": "mine", "LANG": "C"}, outer)
    assert env == {name: f"v-{name}" for name in BASE_ENV_VARS} | {"API_KEY": "mine", "LANG": "C"}
    assert base_environment({}, {}) == {}


def test_unsupported_servers_say_why_without_running_anything() -> None:
    specs = [
        ProbeSpec("ws", "websocket", url="ws://127.0.0.1:1"),  # type: ignore[arg-type]
        ProbeSpec("no-command", "stdio"),
        ProbeSpec("no-url", "http"),
        ProbeSpec("no-url-sse", "sse"),
    ]
    results = probe_all(specs, redact=str)
    assert [r.status for r in results] == ["unsupported"] * 4
    assert results[0].context.unsupported == (
        "transport 'websocket' is not one a probe speaks (stdio, http, sse)"
    )
    assert results[1].context.unsupported == "a stdio server without a command"
    assert results[3].context.deprecated is True
    assert all(r.phase is None and r.recoverable is False for r in results)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        probe_all([], timeout=0, redact=str)
    with pytest.raises(ValueError, match="concurrency"):
        probe_all([], concurrency=0, redact=str)
    assert probe_all([], redact=str) == []


def test_to_json_is_plain_data() -> None:
    result = ProbeResult(
        server="s",
        target="desktop",
        ok=True,
        transport="stdio",
        protocol_version="2026-07-28",
        tools=(ToolInfo("t", None, {"type": "object"}, {"readOnlyHint": True}),),
        latency_ms=12.5,
        context=ProbeContext(command="s --x"),
    )
    data = result.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["tools"] == [
        {
            "name": "t",
            "description": None,
            "input_schema": {"type": "object"},
            "annotations": {"readOnlyHint": True},
            "class": "read-only",
        }
    ]
    assert data["tool_classes"] == {"read-only": 1, "mutating": 0, "destructive": 0}
    assert (data["status"], data["tool_count"], data["target"]) == ("up", 1, "desktop")
    failed = ProbeResult("s", None, False, "http", phase=Phase.CONNECT, error="e", recoverable=True)
    assert failed.to_json()["phase"] == "connect"
    assert failed.to_json()["tool_classes"] is None


def test_the_stderr_tail_is_redacted_before_it_is_cut() -> None:
    secret = "S" * 40
    tail = StderrTail()
    # A secret on every line, and far more than the window: wherever the cut falls, no
    # piece of a secret may survive.
    for i in range(2000):
        tail.feed(f"line {i} token={secret}\n".encode())
    text = tail.text(lambda s: s.replace(secret, "‹secret›")) or ""
    assert "SSSS" not in text
    lines = text.splitlines()
    assert len(lines) == STDERR_LINES and len(text) <= STDERR_BYTES
    assert lines[-1] == "line 1999 token=‹secret›"


def test_a_single_huge_stderr_line_is_cut_to_the_byte_limit() -> None:
    tail = StderrTail()
    tail.feed(b"x" * 10000)
    text = tail.text(str) or ""
    assert len(text) <= STDERR_BYTES
    assert StderrTail().text(str) is None
