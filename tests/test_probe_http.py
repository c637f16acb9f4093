"""Probe over HTTP: streamable HTTP and the deprecated HTTP+SSE, on 127.0.0.1 only.

The servers are tests/servers/tools_server.py (SDK) run with --http/--sse, some behind a
bearer token (an expired or wrong token answers 401).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.probe import Phase, ProbeResult, ProbeSpec, probe_all
from tests.servers import free_port, http_servers

pytestmark = pytest.mark.probe

TOKEN = "bearer-8e1f0c3a77d2"


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    variants = {
        "http": ("--http",),
        "sse": ("--sse",),
        "guarded": ("--http", "--token", TOKEN),
        "guarded_sse": ("--sse", "--token", TOKEN),
    }
    with http_servers(*variants.values()) as ports:
        yield dict(zip(variants, ports, strict=True))


@pytest.fixture(scope="module")
def results(ports: dict[str, int]) -> dict[str, ProbeResult]:
    def url(name: str, path: str = "/mcp") -> str:
        return f"http://127.0.0.1:{ports[name]}{path}"

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    specs = [
        ProbeSpec("http", "http", url=url("http")),
        ProbeSpec("sse", "sse", url=url("sse", "/sse")),
        ProbeSpec("token", "http", url=url("guarded"), headers=bearer),
        ProbeSpec("no-token", "http", url=url("guarded"), required=True),
        ProbeSpec("wrong-token", "http", url=url("guarded"), headers={"Authorization": "Bearer x"}),
        ProbeSpec("sse-token", "sse", url=url("guarded_sse", "/sse"), headers=bearer),
        ProbeSpec("sse-no-token", "sse", url=url("guarded_sse", "/sse")),
        ProbeSpec("refused", "http", url=f"http://127.0.0.1:{free_port()}/mcp"),
        ProbeSpec("not-found", "http", url=url("http", "/nothing-here")),
    ]
    found = probe_all(specs, timeout=10, redact=lambda s: s.replace(TOKEN, "‹secret›"))
    return {r.server: r for r in found}


def test_streamable_http_lists_everything(results: dict[str, ProbeResult]) -> None:
    r = results["http"]
    assert r.ok, r.error
    assert (r.transport, r.protocol_version, len(r.tools), r.prompts, r.resources) == (
        "http",
        "2026-07-28",
        5,
        3,
        4,
    )
    assert r.context.deprecated is False
    assert r.context.url == r.to_json()["context"]["url"]


def test_sse_is_probed_but_flagged_deprecated(results: dict[str, ProbeResult]) -> None:
    r = results["sse"]
    assert r.ok, r.error
    assert len(r.tools) == 5
    assert r.context.deprecated is True
    assert r.to_json()["context"]["deprecated"] is True


def test_headers_reach_the_server(results: dict[str, ProbeResult]) -> None:
    assert results["token"].ok, results["token"].error
    assert results["sse-token"].ok, results["sse-token"].error


@pytest.mark.parametrize("name", ["no-token", "wrong-token", "sse-no-token"])
def test_401_says_authentication_is_needed(results: dict[str, ProbeResult], name: str) -> None:
    r = results[name]
    assert (r.ok, r.phase, r.recoverable, r.context.http_status) == (
        False,
        Phase.CONNECT,
        False,
        401,
    )
    assert (r.error or "").startswith("authentication needed: ")
    assert "HTTP 401 Unauthorized (Bearer)" in (r.error or "")


def test_a_refused_connection_fails_in_connect_and_is_recoverable(
    results: dict[str, ProbeResult],
) -> None:
    r = results["refused"]
    assert (r.ok, r.phase, r.recoverable, r.context.http_status) == (
        False,
        Phase.CONNECT,
        True,
        None,
    )
    assert (r.error or "").startswith("cannot connect to http://127.0.0.1:")


def test_a_wrong_path_is_a_404_in_connect(results: dict[str, ProbeResult]) -> None:
    r = results["not-found"]
    assert (r.phase, r.recoverable, r.context.http_status) == (Phase.CONNECT, False, 404)
    assert "no MCP endpoint" in (r.error or "")
