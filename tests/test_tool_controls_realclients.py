"""The real clients honour the tool controls the reconciler writes (DESIGN.md 6B).

``block: mutating`` on the probe test server (``tests/servers/tools_server.py``: one
read-only tool, one that says read-only and destructive at once, three that are not
read-only) is probed, then applied with ``reconcile`` in a temp HOME; each client's own
command must then show those three tools denied: ``codex mcp get NAME --json`` lists them
in ``disabled_tools``, ``opencode debug config`` shows them as ``permission: deny``, a
``claude -p`` run against a closed loopback model endpoint offers only the two others in its
``system/init`` event (it starts the server to list them; the model call then fails), and a
``gemini -p`` run declares only those two to a loopback recorder standing in for the model
API. No network: reference/TOOLCONTROLS.md "Offline check".
"""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests import realclients as rc
from tests.conftest import Workspace
from tests.servers import DIR

pytestmark = pytest.mark.realclient

BLOCKED = ["delete_thing", "not_destructive_only", "unannotated"]
OFFERED = ["contradictory", "read_thing"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def governed(ws: Workspace, target: str) -> None:
    """Desired state with the governed server on ``target``, probed, then applied.

    One page of tools: Gemini CLI 0.61 reads only the first page of a listing."""
    ws.write(
        "servers.yaml",
        f"""
        servers:
          things:
            command: {sys.executable}
            args: [{json.dumps(str(DIR / "tools_server.py"))}]
            env: {{PAGE_SIZE: "100"}}
            tools: {{block: mutating}}
        """,
    )
    ws.write("targets.yaml", f"targets:\n  client: {{{target}, servers: [things]}}\n")
    probed = ws.run("probe", "--timeout", "30")
    assert probed.exit_code == 0, probed.stdout + probed.stderr
    applied = ws.run()
    assert applied.exit_code == 0, applied.stdout + applied.stderr


def test_codex_lists_the_disabled_tools(workspace: Workspace) -> None:
    rc.require_client("codex")
    governed(workspace, "kind: codex")
    codex_home = workspace.home / ".codex"
    proc = rc.run_client(
        "codex",
        ["mcp", "get", "things", "--json"],
        home=workspace.home,
        env={"CODEX_HOME": str(codex_home)},
    )
    shown: dict[str, Any] = json.loads(proc.stdout)
    assert sorted(shown["disabled_tools"]) == BLOCKED
    assert shown["enabled"] is True


def test_opencode_shows_the_tools_denied(workspace: Workspace) -> None:
    rc.require_client("opencode")
    governed(workspace, "kind: opencode")
    config = rc.opencode_config(workspace.home)
    permission = config.get("permission", {})
    denied = sorted(k for k, v in permission.items() if v == "deny")
    assert denied == [f"things_{t}" for t in BLOCKED]
    assert not any(k.startswith("things_") and k.endswith(tuple(OFFERED)) for k in permission)


def claude_init(home: Path) -> dict[str, Any]:
    """The ``system/init`` event of a ``claude -p`` run whose model call cannot succeed."""
    proc = rc.run_client(
        "claude",
        ["-p", "--output-format", "stream-json", "--verbose", "hi"],
        home=home,
        env={
            "ANTHROPIC_API_KEY": "sk-ant-fake",
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{closed_port()}",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            # Wait for the servers before the init event (else they are still "pending").
            "MCP_CONNECTION_NONBLOCKING": "false",
            "MCP_TIMEOUT": "30000",  # the SDK server's start on a loaded machine
        },
        check=False,
        timeout=120,
    )
    for line in proc.stdout.splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("type") == "system" and event.get("subtype") == "init":
            return event
    raise AssertionError(f"no system/init event:\n{proc.stdout}\n{proc.stderr}")


def test_claude_offers_only_the_allowed_tools(workspace: Workspace) -> None:
    rc.require_client("claude")
    settings = workspace.home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"permissions": {"deny": ["Bash(rm:*)"]}}), encoding="utf-8")
    governed(workspace, "kind: claude-code")
    init = claude_init(workspace.home)
    servers = {s["name"]: s["status"] for s in init["mcp_servers"]}
    assert servers == {"things": "connected"}
    offered = sorted(t.removeprefix("mcp__things__") for t in init["tools"] if "things" in t)
    assert offered == OFFERED
    deny = json.loads(settings.read_text(encoding="utf-8"))["permissions"]["deny"]
    assert deny == ["Bash(rm:*)", *(f"mcp__things__{t}" for t in BLOCKED)]


class _ModelRecorder(http.server.BaseHTTPRequestHandler):
    """Stands in for the Gemini API on loopback: keeps each request body, answers "ok"."""

    bodies: ClassVar[list[dict[str, Any]]] = []
    REPLY: ClassVar[dict[str, Any]] = {
        "candidates": [
            {"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}
        ]
    }

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
        data = json.dumps(self.REPLY).encode()
        if "alt=sse" in self.path:
            data = b"data: " + data + b"\r\n\r\n"
        self.send_response(200)
        kind = "text/event-stream" if "alt=sse" in self.path else "application/json"
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


def test_gemini_declares_only_the_allowed_tools(workspace: Workspace) -> None:
    rc.require_client("gemini")
    settings = workspace.home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True)
    auth = {"security": {"auth": {"selectedType": "gemini-api-key"}}}  # kept by the pass
    settings.write_text(json.dumps(auth), encoding="utf-8")
    governed(workspace, "kind: gemini")
    _ModelRecorder.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModelRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rc.run_client(
            "gemini",
            ["-p", "hi", "--approval-mode", "yolo"],  # yolo: every server's tools offered
            home=workspace.home,
            env={
                "GEMINI_API_KEY": "fake-key",
                "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}",
                "GEMINI_CLI_TRUST_WORKSPACE": "true",
            },
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    declared = {
        f["name"]
        for body in _ModelRecorder.bodies
        for tools in body.get("tools", [])
        for f in tools.get("functionDeclarations", [])
    }
    assert sorted(n.removeprefix("mcp_things_") for n in declared if "things" in n) == OFFERED
