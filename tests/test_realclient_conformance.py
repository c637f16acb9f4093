"""The real clients read what the reconciler writes, and we read what they write.

Forward: a desired set with stdio and http servers (and sse where the client has it), args,
env and headers, some of them environment references, is applied with ``reconcile`` in a
temp HOME; then the client's own listing command (``tests/realclients.py``) must report
exactly the declared servers with the declared fields. Reverse: servers added with the
clients' own commands (``claude mcp add-json``, ``codex mcp add``, ``gemini mcp add``) are
observed as unmanaged entries, or as live drift of a managed one, with the right essence.

Continue has no CLI command that reads its config offline: its own config parser
(``@continuedev/config-yaml``, which its CLI and IDE extensions load ``config.yaml`` with)
stands in for it.

Skipped with a visible reason where a client is not installed (``.ci/install-clients``).
Nothing leaves loopback: stdio servers name a command that does not exist and remote
servers a closed loopback port, so the clients' health checks fail at once.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler import targets
from reconciler.engine import load_desired
from reconciler.targets import Context
from tests import realclients as rc
from tests.conftest import Workspace

pytestmark = pytest.mark.realclient

NO_SUCH_COMMAND = "mcp-conformance-no-such-server"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Applied:
    """A desired set applied to one client target in the workspace's temp HOME."""

    def __init__(self, ws: Workspace, target: str, *, sse: bool = True) -> None:
        self.ws = ws
        self.project = ws.root / "proj"
        self.project.mkdir(exist_ok=True)
        base = f"http://127.0.0.1:{closed_port()}"
        self.remote_url = f"{base}/mcp"
        self.sse_url = f"{base}/sse"
        names = ["local-tool", "remote", "events"] if sse else ["local-tool", "remote"]
        ws.write(
            "desired.yaml",
            f"""
            servers:
              local-tool:
                command: {NO_SUCH_COMMAND}
                args: [--level, debug, --root=/srv]
                env: {{LEVEL: debug, API_TOKEN: "${{env:API_TOKEN}}"}}
              remote:
                url: {self.remote_url}
                headers: {{X-Team: platform, Authorization: "Bearer ${{env:REMOTE_TOKEN}}"}}
              events:
                url: {self.sse_url}
                transport: sse
            targets:
              t: {{{target}, servers: {names}}}
            """,
        )
        self.names = set(names)
        result = ws.run()
        assert result.exit_code == 0, result.stdout + result.stderr

    def observe(self) -> dict[str, Any]:
        state = load_desired(self.ws.desired)
        context = Context(self.ws.home, sys.platform, self.ws.root, None, {})
        return dict(targets.build("t", state.targets["t"], context).observe().entries)

    def dry_run(self) -> dict[str, Any]:
        report: dict[str, Any] = self.ws.run("--dry-run", "--json").json["targets"][0]
        return report


# -- Codex ----------------------------------------------------------------------------------


def test_codex_lists_exactly_what_was_declared(workspace: Workspace) -> None:
    rc.require_client("codex")
    applied = Applied(workspace, "kind: codex", sse=False)

    listed = rc.codex_list(workspace.home)

    assert set(listed) == applied.names
    local = listed["local-tool"]
    assert local["transport"] == "stdio"
    assert local["enabled"] is True
    assert (local["command"], local["args"]) == (
        NO_SUCH_COMMAND,
        ["--level", "debug", "--root=/srv"],
    )
    assert local["env"] == {"LEVEL": "debug"}
    assert local["env_vars"] == ["API_TOKEN"], "a same-name reference passes through by name"
    assert local["cwd"] is None
    remote = listed["remote"]
    assert remote["transport"] == "streamable_http"
    assert remote["url"] == applied.remote_url
    assert remote["bearer_token_env_var"] == "REMOTE_TOKEN"
    assert remote["http_headers"] == {"X-Team": "platform"}
    assert remote["env_http_headers"] is None


def test_codex_project_scope_and_disabled_switch(workspace: Workspace) -> None:
    rc.require_client("codex")
    project = workspace.root / "proj"
    project.mkdir()
    codex_home = workspace.home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        f'# trusted by hand\n[projects."{project.resolve()}"]\ntrust_level = "trusted"\n'
    )
    workspace.write(
        "desired.yaml",
        f"""
        servers:
          on: {{command: {NO_SUCH_COMMAND}}}
          off: {{command: {NO_SUCH_COMMAND}, enabled: false}}
        targets:
          t: {{kind: codex, scope: project, project: proj}}
        """,
    )
    assert workspace.run().exit_code == 0

    listed = rc.codex_list(workspace.home, cwd=project)

    assert {n: s["enabled"] for n, s in listed.items()} == {"on": True, "off": False}
    assert "# trusted by hand" in (codex_home / "config.toml").read_text()


def test_codex_mcp_add_is_observed(workspace: Workspace) -> None:
    rc.require_client("codex")
    applied = Applied(workspace, "kind: codex", sse=False)
    codex_home = {"CODEX_HOME": str(workspace.home / ".codex")}
    rc.run_client(
        "codex",
        ["mcp", "add", "extra", "--env", "K=V", "--", "extra-server", "--x"],
        home=workspace.home,
        env=codex_home,
    )
    rc.run_client(
        "codex",
        ["mcp", "add", "remote", "--url", applied.remote_url, "--bearer-token-env-var", "OTHER"],
        home=workspace.home,
        env=codex_home,
    )

    live = applied.observe()
    report = applied.dry_run()

    assert live["extra"] == {
        "transport": "stdio",
        "command": "extra-server",
        "args": ["--x"],
        "env": {"K": "V"},
        "enabled": True,
    }
    assert live["remote"]["headers"] == {"Authorization": "Bearer ${env:OTHER}"}
    assert report["unmanaged"] == ["extra"]
    (change,) = report["changes"]
    assert (change["server"], change["action"], change["origin"]) == ("remote", "update", "live")
    assert sorted(change["paths"]) == ["/headers/Authorization", "/headers/X-Team"]


# -- Claude Code ----------------------------------------------------------------------------


def claude_expect(applied: Applied, scope: str) -> dict[str, dict[str, Any]]:
    return {
        "local-tool": {
            "scope": scope,
            "type": "stdio",
            "command": NO_SUCH_COMMAND,
            "args": "--level debug --root=/srv",
            "env": {"API_TOKEN": "${API_TOKEN}", "LEVEL": "debug"},
        },
        "remote": {
            "scope": scope,
            "type": "http",
            "url": applied.remote_url,
            "headers": {"Authorization": "Bearer ${REMOTE_TOKEN}", "X-Team": "platform"},
        },
        "events": {"scope": scope, "type": "sse", "url": applied.sse_url},
    }


@pytest.mark.parametrize(
    ("target", "scope"),
    [
        ("kind: claude-code", "user"),
        ("kind: claude-code, scope: local, project: proj", "local"),
        ("kind: claude-code, scope: project, project: proj", "project"),
    ],
    ids=["user", "local", "project"],
)
def test_claude_code_gets_exactly_what_was_declared(
    workspace: Workspace, target: str, scope: str
) -> None:
    rc.require_client("claude")
    applied = Applied(workspace, target)

    servers = rc.claude_servers(workspace.home, applied.project)

    assert set(servers) == applied.names
    for name, expected in claude_expect(applied, scope).items():
        got = {k: servers[name].get(k) for k in expected}
        assert got == expected, name


def test_claude_mcp_add_json_is_observed(workspace: Workspace) -> None:
    rc.require_client("claude")
    applied = Applied(workspace, "kind: claude-code")
    home, cwd = workspace.home, applied.project
    extra = {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"X-Key": "${KEY}"}}
    add = ["mcp", "add-json", "-s", "user"]
    rc.run_client("claude", [*add, "extra", json.dumps(extra)], home=home, cwd=cwd)
    rc.run_client("claude", ["mcp", "remove", "-s", "user", "local-tool"], home=home, cwd=cwd)
    changed = {"type": "stdio", "command": NO_SUCH_COMMAND, "args": ["--level", "info"]}
    rc.run_client("claude", [*add, "local-tool", json.dumps(changed)], home=home, cwd=cwd)

    live = applied.observe()
    report = applied.dry_run()

    assert live["extra"] == {
        "transport": "http",
        "url": "http://127.0.0.1:9/mcp",
        "headers": {"X-Key": "${env:KEY}"},
    }
    assert report["unmanaged"] == ["extra"]
    (change,) = report["changes"]
    assert (change["server"], change["origin"]) == ("local-tool", "live")
    assert change["paths"] == ["/args/1", "/args/2", "/env"]
    assert workspace.run().exit_code == 0, "sync reverts the live edit"
    reverted = rc.claude_get(home, cwd, "local-tool")
    assert reverted is not None and reverted["args"] == "--level debug --root=/srv"
    assert rc.claude_get(home, cwd, "extra") is not None, "the unmanaged entry stays"


# -- Gemini CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["kind: gemini", "kind: gemini, scope: project, project: proj"],
    ids=["user", "project"],
)
def test_gemini_lists_exactly_what_was_declared(workspace: Workspace, target: str) -> None:
    rc.require_client("gemini")
    applied = Applied(workspace, target)

    servers, trusted = rc.gemini_list(workspace.home, applied.project, trusted=True)

    assert trusted
    assert set(servers) == applied.names
    assert servers["local-tool"]["transport"] == "stdio"
    assert servers["local-tool"]["command"] == NO_SUCH_COMMAND
    assert servers["local-tool"]["args"] == "--level debug --root=/srv"
    assert (servers["remote"]["transport"], servers["remote"]["url"]) == (
        "http",
        applied.remote_url,
    )
    assert (servers["events"]["transport"], servers["events"]["url"]) == ("sse", applied.sse_url)


def test_gemini_mcp_add_is_observed(workspace: Workspace) -> None:
    rc.require_client("gemini")
    applied = Applied(workspace, "kind: gemini")
    home, cwd = workspace.home, applied.project
    add = ["mcp", "add", "-s", "user"]
    rc.run_client("gemini", [*add, "-e", "K=$VALUE", "extra", "extra-cmd", "a"], home=home, cwd=cwd)
    sse = [*add, "-t", "sse", "-H", "X-Team: platform", "remote", applied.sse_url]
    rc.run_client("gemini", sse, home=home, cwd=cwd)

    live = applied.observe()
    report = applied.dry_run()

    assert live["extra"] == {
        "transport": "stdio",
        "command": "extra-cmd",
        "args": ["a"],
        "env": {"K": "${env:VALUE}"},
    }
    assert live["remote"] == {
        "transport": "sse",
        "url": applied.sse_url,
        "headers": {"X-Team": "platform"},
    }
    assert report["unmanaged"] == ["extra"]
    (change,) = report["changes"]
    assert (change["server"], change["origin"]) == ("remote", "live")
    assert workspace.run().exit_code == 0
    servers, _ = rc.gemini_list(home, cwd, trusted=True)
    assert (servers["remote"]["transport"], servers["remote"]["url"]) == (
        "http",
        applied.remote_url,
    )


# -- opencode -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["kind: opencode", "kind: opencode, scope: project, project: proj"],
    ids=["user", "project"],
)
def test_opencode_resolves_exactly_what_was_declared(workspace: Workspace, target: str) -> None:
    rc.require_client("opencode")
    applied = Applied(workspace, target, sse=False)

    mcp = rc.opencode_mcp(workspace.home, applied.project, env={"API_TOKEN": "t0ken"})

    assert set(mcp) == applied.names
    local = mcp["local-tool"]
    assert local["type"] == "local"
    assert local["command"] == [NO_SUCH_COMMAND, "--level", "debug", "--root=/srv"]
    assert local["environment"]["LEVEL"] == "debug"
    assert local["enabled"] is True
    remote = mcp["remote"]
    assert (remote["type"], remote["url"], remote["enabled"]) == (
        "remote",
        applied.remote_url,
        True,
    )
    assert sorted(remote["headers"]) == ["Authorization", "X-Team"]


@pytest.mark.parametrize(
    "target",
    ["kind: continue", "kind: continue, scope: project, project: proj"],
    ids=["user", "project-block"],
)
def test_continue_parses_exactly_what_was_declared(workspace: Workspace, target: str) -> None:
    rc.require_continue_parser()
    applied = Applied(workspace, target)
    state = load_desired(workspace.desired)
    context = Context(workspace.home, sys.platform, workspace.root, None, {})
    path = targets.build("t", state.targets["t"], context).describe()

    config = rc.continue_config(workspace.home, Path(path))

    servers = {s["name"]: s for s in config["mcpServers"]}
    assert set(servers) == applied.names
    assert servers["local-tool"] == {
        "name": "local-tool",
        "type": "stdio",
        "command": NO_SUCH_COMMAND,
        "args": ["--level", "debug", "--root=/srv"],
        "env": {"LEVEL": "debug", "API_TOKEN": "${{ secrets.API_TOKEN }}"},
    }
    assert servers["remote"] == {
        "name": "remote",
        "type": "streamable-http",
        "url": applied.remote_url,
        "requestOptions": {
            "headers": {"X-Team": "platform", "Authorization": "Bearer ${{ secrets.REMOTE_TOKEN }}"}
        },
    }
    assert servers["events"] == {"name": "events", "type": "sse", "url": applied.sse_url}
    assert applied.dry_run()["changes"] == []  # and it reads back as declared
