"""Normalization rules of the essence (reference/CLIENTS.md 4.3) and the capability mask."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from reconciler.core.essence import (
    bridge_mcp_remote,
    display,
    fingerprint_with,
    from_server,
    mask,
    normalize,
    normalize_url,
    seal,
)
from reconciler.core.model import Server
from reconciler.targets import CAPABILITIES


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://Example.COM:443/mcp", "https://example.com/mcp"),
        ("http://example.com:80/mcp/", "http://example.com/mcp/"),
        ("http://example.com:8080/mcp", "http://example.com:8080/mcp"),
        ("https://example.com/sse#name", "https://example.com/sse#name"),
        ("https://example.com/mcp?key=A", "https://example.com/mcp?key=A"),
        ("http://[::1]:9000/mcp", "http://[::1]:9000/mcp"),
    ],
)
def test_url_normalization_keeps_path_slash_query_and_fragment(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


def test_empty_equals_absent_and_defaults_fill_in() -> None:
    assert normalize({"command": "uvx", "args": [], "env": {}, "cwd": ""}) == {
        "transport": "stdio",
        "command": "uvx",
    }
    assert normalize({"url": "https://x/mcp"})["transport"] == "http"
    # Only empties go: a switch that is off stays, and so does a 0 a client wrote.
    assert normalize({"command": "uvx", "enabled": False})["enabled"] is False
    assert normalize({"command": "uvx", "cwd": 0})["cwd"] == 0
    assert "env" not in normalize({"command": "uvx", "env": MappingProxyType({})})


def test_env_is_a_map_and_args_keep_their_order() -> None:
    a = normalize({"command": "x", "args": ["b", "a"], "env": {"B": "2", "A": "1"}})
    b = normalize({"command": "x", "args": ["b", "a"], "env": {"A": "1", "B": "2"}})
    assert a == b
    assert a != normalize({"command": "x", "args": ["a", "b"], "env": {"A": "1", "B": "2"}})


def test_normalize_is_idempotent() -> None:
    once = normalize({"url": "HTTPS://X.example:443/a", "headers": {"b": "1", "a": "2"}})
    assert normalize(once) == once


def test_mask_drops_what_a_kind_cannot_express() -> None:
    server = Server(command="uvx", args=("a",), cwd="/srv", enabled=True)
    desktop = mask(from_server(server), CAPABILITIES["claude-desktop"])
    assert desktop == {"transport": "stdio", "command": "uvx", "args": ["a"]}


def test_bridge_renders_a_remote_server_through_mcp_remote() -> None:
    essence = from_server(Server(url="https://docs.example/mcp", transport="sse"))
    bridged = bridge_mcp_remote(essence)
    assert bridged == {
        "transport": "stdio",
        "command": "npx",
        "args": ["-y", "mcp-remote", "https://docs.example/mcp", "--transport", "sse-only"],
    }


def test_seal_hides_values_but_keeps_equality() -> None:
    fp = fingerprint_with(b"k" * 32)
    a = seal({"transport": "stdio", "command": "x", "env": {"TOKEN": "s3cr3t"}}, fp)
    b = seal({"transport": "stdio", "command": "x", "env": {"TOKEN": "s3cr3t"}}, fp)
    c = seal({"transport": "stdio", "command": "x", "env": {"TOKEN": "rotated"}}, fp)
    assert a == b and a != c
    assert "s3cr3t" not in repr(a)
    shown = display(a["env"]["TOKEN"])
    assert shown.startswith("‹secret:") and len(shown) == len("‹secret:123456›")
    other_key = seal(
        {"transport": "stdio", "command": "x", "env": {"TOKEN": "s3cr3t"}},
        fingerprint_with(b"j" * 32),
    )
    assert other_key != a, "fingerprints are keyed"
