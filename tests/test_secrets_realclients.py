"""Secrets against the real clients: the file holds a reference, the client resolves it itself.

``${env:MCP_CANARY}`` in desired state is written in each client's own syntax; the client,
started with ``MCP_CANARY`` in its environment, must see the value (Claude Code hands it to the
server process it spawns for its health check; opencode substitutes it in its resolved config),
while the file never holds it. Skipped, with the reason, when a client is not installed
(``.ci/install-clients``).
"""

from __future__ import annotations

import json
import secrets
import sys
import textwrap
from pathlib import Path

import pytest

from tests import realclients as rc
from tests.conftest import Workspace

pytestmark = pytest.mark.realclient


def canary() -> str:
    return "mcpcanary" + secrets.token_hex(12)


def declare(workspace: Workspace, kind: str, command: list[str]) -> None:
    workspace.write(
        "servers.yaml",
        f"""
        servers:
          probe:
            command: {json.dumps(command[0])}
            args: {json.dumps(command[1:])}
            env: {{MCP_CANARY: "${{env:MCP_CANARY}}"}}
        """,
    )
    scope = "scope: user" if kind == "claude-code" else ""
    workspace.write(
        "targets.yaml",
        f"""
        targets:
          client:
            kind: {kind}
            {scope}
        """,
    )


def test_claude_code_expands_the_reference_for_the_server_it_starts(
    workspace: Workspace, tmp_path: Path
) -> None:
    rc.require_client("claude")
    value = canary()
    seen = tmp_path / "seen"
    server = tmp_path / "server.py"
    server.write_text(
        textwrap.dedent(
            f"""
            import os
            with open({str(seen)!r}, "w") as f:
                f.write(os.environ.get("MCP_CANARY", "<unset>"))
            """
        )
    )
    declare(workspace, "claude-code", [sys.executable, str(server)])
    result = workspace.run(env={"MCP_CANARY": value})
    assert result.exit_code == 0, result.stdout + result.stderr
    text = (workspace.home / ".claude.json").read_text()
    assert value not in text and "${MCP_CANARY}" in text
    servers, _ = rc.claude_list(workspace.home, workspace.home, env={"MCP_CANARY": value})
    assert "probe" in servers
    assert seen.read_text() == value  # Claude Code resolved ${MCP_CANARY} at its run time


def test_opencode_substitutes_the_reference_in_its_resolved_config(
    workspace: Workspace,
) -> None:
    rc.require_client("opencode")
    value = canary()
    declare(workspace, "opencode", ["/nonexistent/mcp-canary-server"])
    result = workspace.run(env={"MCP_CANARY": value})
    assert result.exit_code == 0, result.stdout + result.stderr
    (path,) = (workspace.home / ".config" / "opencode").glob("opencode.json*")
    assert value not in path.read_text() and "{env:MCP_CANARY}" in path.read_text()
    mcp = rc.opencode_mcp(workspace.home, env={"MCP_CANARY": value})
    assert mcp["probe"]["environment"]["MCP_CANARY"] == value


def test_codex_passes_the_variable_by_name(workspace: Workspace) -> None:
    rc.require_client("codex")
    value = canary()
    declare(workspace, "codex", ["/nonexistent/mcp-canary-server"])
    result = workspace.run(env={"MCP_CANARY": value})
    assert result.exit_code == 0, result.stdout + result.stderr
    text = (workspace.home / ".codex" / "config.toml").read_text()
    assert value not in text
    listed = rc.codex_list(workspace.home, env={"MCP_CANARY": value})
    names = [v if isinstance(v, str) else v.get("name") for v in listed["probe"]["env_vars"]]
    assert names == ["MCP_CANARY"] and not listed["probe"].get("env")
