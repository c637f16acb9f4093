"""Probe: what a working server offers, as the probe reports it.

The test server (tests/servers/tools_server.py, written with the SDK) has tools with every
kind of annotation, a paginated listing, prompts and resources.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from reconciler.probe import ProbeResult, ProbeSpec, ToolInfo, probe_all
from tests.servers import command

pytestmark = [
    pytest.mark.probe,
    pytest.mark.skipif(sys.platform == "win32", reason="stdio probing is tested on POSIX"),
]


def probe(server: str, home: Path, timeout: float = 10, **env: str) -> ProbeResult:
    cmd, args = command(server)
    [result] = probe_all(
        [ProbeSpec(server, "stdio", command=cmd, args=args, env=env)],
        timeout=timeout,
        redact=str,
    )
    return result


def by_name(tools: tuple[ToolInfo, ...]) -> dict[str, ToolInfo]:
    return {t.name: t for t in tools}


def test_every_tool_is_listed_through_all_pages(home: Path) -> None:
    r = probe("tools_server", home, EXTRA_TOOLS="7", PAGE_SIZE="2")
    assert r.ok, r.error
    # 12 tools at 2 a page: six pages, in the server's order.
    assert [t.name for t in r.tools] == [
        "read_thing",
        "unannotated",
        "contradictory",
        "not_destructive_only",
        "delete_thing",
        *(f"extra_{i}" for i in range(7)),
    ]
    assert (r.prompts, r.resources) == (3, 4)  # paginated too


def test_the_stateless_revision_is_negotiated_and_reported(home: Path) -> None:
    r = probe("tools_server", home)
    assert r.protocol_version == "2026-07-28"
    assert (r.server_name, r.server_version) == ("tools-server", "1.0.0")
    assert r.transport == "stdio" and r.status == "up"
    assert r.latency_ms is not None and r.latency_ms > 0
    assert r.context.exit_status == 0  # it exited by itself when its stdin closed


def test_an_older_server_is_initialized_instead(home: Path) -> None:
    """minimal.py answers server/discover with "method not found", like a 2025 server."""
    r = probe("minimal", home)
    assert r.ok, r.error
    assert r.protocol_version == "2025-11-25"
    assert (r.server_name, r.server_version) == ("minimal", "0.1")
    # It offers neither prompts nor resources: they are not counted, not zero.
    assert (r.prompts, r.resources) == (None, None)


def test_a_server_that_ignores_discover_is_initialized_within_the_timeout(home: Path) -> None:
    """The SDK waits 10 s for a discover answer; the probe gives it half its timeout, so a
    server that drops unknown methods is still initialized in time."""
    r = probe("minimal", home, timeout=4, IGNORE_UNKNOWN="1")
    assert r.ok, r.error
    assert r.protocol_version == "2025-11-25"
    assert r.latency_ms is not None and 2000 <= r.latency_ms < 4000


def test_a_modern_server_slower_than_the_discover_limit_still_negotiates(home: Path) -> None:
    """It answers the discover too late, and the initialize sent meanwhile with -32022:
    the SDK re-probes, and the stateless revision is still what is negotiated."""
    r = probe("tools_server", home, timeout=12, STARTUP_DELAY="6.5")
    assert r.ok, r.error
    assert r.protocol_version == "2026-07-28"
    assert r.latency_ms is not None and r.latency_ms >= 6000


def test_annotations_are_kept_as_the_server_sent_them(home: Path) -> None:
    tools = by_name(probe("tools_server", home).tools)
    assert tools["read_thing"].annotations == {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
    }
    assert tools["unannotated"].annotations is None
    assert tools["contradictory"].annotations == {"readOnlyHint": True, "destructiveHint": True}
    assert tools["not_destructive_only"].annotations == {"destructiveHint": False}
    assert tools["delete_thing"].input_schema == {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "What to act on"}},
        "required": ["path"],
    }


def test_a_changed_description_upstream_is_seen(home: Path) -> None:
    before = by_name(probe("tools_server", home).tools)["read_thing"]
    after = by_name(probe("tools_server", home, TOOL_DESCRIPTION="Now also writes").tools)
    assert before.description == "Read a thing without changing it"
    assert after["read_thing"].description == "Now also writes"
    assert after["read_thing"].annotations == before.annotations


def test_to_json_is_plain_json(home: Path) -> None:
    data = probe("tools_server", home).to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["tool_count"] == 5
    assert data["tools"][1] == {
        "name": "unannotated",
        "description": "Says nothing about itself",
        "input_schema": data["tools"][0]["input_schema"],
        "annotations": None,
        "class": "destructive",  # unannotated: the spec's defaults
    }
    assert data["tool_classes"] == {"read-only": 2, "mutating": 1, "destructive": 2}
    assert data["phase"] is None and data["error"] is None
