"""What the real MCP client CLIs read and write, pinned down by running them.

Why: the reconciler's target adapters must write files that Claude Code, Codex, Gemini CLI and
opencode actually read, in the shape the clients themselves would write. These tests are the
executable record of that behaviour, for the versions pinned in ``.ci/install-clients``:

* *read direction*: a config file written by hand in a temp HOME, then the client's own listing
  command (through ``tests/realclients.py``) says what the client sees;
* *write direction*: the client's own ``mcp add`` command in a temp HOME, then the exact file and
  JSON/TOML shape it produced.

A failing test here after a version bump means a client changed its format: update the adapter
and this record together. Every test skips with a visible reason when its client is not
installed (run ``.ci/install-clients``). Nothing is written outside pytest's temp dirs (HOME,
XDG dirs, CODEX_HOME and TMPDIR all point there) and no traffic leaves loopback: stdio servers
name a command that does not exist (so health checks spawn nothing) and remote servers a closed
loopback port.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import realclients as rc

# Each client call costs 0.2-5 s (Gemini's Node start-up is the slowest, worse on a loaded
# machine), and some tests make six of them: more room than the suite's default timeout.
pytestmark = [pytest.mark.realclient, pytest.mark.timeout(300)]

# A stdio command that is on no PATH: Claude Code and Gemini CLI health-check stdio servers by
# spawning them, and this makes that check fail at once without running anything.
NO_SUCH_COMMAND = "mcp-harness-no-such-server"


@dataclass
class Sandbox:
    """A temp HOME plus a project directory inside the same temp tree."""

    home: Path
    project: Path
    base_url: str  # http://127.0.0.1:<closed port>

    def write_json(self, path: Path, data: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    def read_json(self, path: Path) -> Any:
        return json.loads(path.read_text())


def _closed_loopback_port() -> int:
    # Bind, read the port, close: nothing listens there afterwards, so a client's connection
    # attempt is refused at once (and never leaves the machine).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    # resolve(): clients key project paths by their real path (matters where /tmp is a symlink).
    root = tmp_path.resolve()
    home = root / "home"
    project = root / "project"
    home.mkdir()
    project.mkdir()
    yield Sandbox(
        home=home, project=project, base_url=f"http://127.0.0.1:{_closed_loopback_port()}"
    )


# ============================================================================================
# Helper sanity: binaries, skip reasons, parsers (no client needed)


def test_client_binary_names_and_skip_reason() -> None:
    for name in rc.CLIENTS:
        binary = rc.client_binary(name)
        reason = rc.missing_reason(name)
        if binary is None:
            assert reason is not None and ".ci/install-clients" in reason
            assert rc.PACKAGES[name] in reason
        else:
            assert reason is None
            assert binary.parent == rc.NPM_BIN
    with pytest.raises(ValueError):
        rc.client_binary("vscode")


def test_parse_claude_list_and_get_on_recorded_output() -> None:
    # Recorded from Claude Code 2.1.329, so the parser is pinned even where claude is absent.
    listing = (
        "Checking MCP server health\u2026\n\n"
        "fs: npx -y srv /tmp - \u2718 Failed to connect \u2014 ENOENT: Executable not found\n"
        "api: http://127.0.0.1:9/mcp (HTTP) - \u2713 Connected\n"
        "p: false  - \u23f8 Pending approval (run `claude` to approve)\n\n"
        "MCP config diagnostics \u26a0\n\nLocation: /h/.claude.json\n"
    )
    servers, diagnostics = rc.parse_claude_list(listing)
    assert servers == {
        "fs": {
            "status": "\u2718 Failed to connect",
            "issue": "ENOENT: Executable not found",
            "transport": "stdio",
            "command_line": "npx -y srv /tmp",
        },
        "api": {
            "status": "\u2713 Connected",
            "issue": None,
            "transport": "http",
            "url": "http://127.0.0.1:9/mcp",
        },
        "p": {
            "status": "\u23f8 Pending approval (run `claude` to approve)",
            "issue": None,
            "transport": "stdio",
            "command_line": "false",
        },
    }
    assert diagnostics.startswith("MCP config diagnostics") and "/h/.claude.json" in diagnostics

    get = (
        "api:\n  Scope: Local config (private to you in this project)\n"
        "  Status: \u2718 Failed to connect\n  Issue: ECONNREFUSED: Unable to connect.\n"
        "  Type: http\n  URL: http://127.0.0.1:9/mcp\n  Headers:\n"
        "    Authorization: Bearer x: y\n\n"
        "To remove this server, run: claude mcp remove api -s local\n"
    )
    assert rc.parse_claude_get(get) == {
        "name": "api",
        "scope": "local",
        "scope_text": "Local config (private to you in this project)",
        "status": "\u2718 Failed to connect",
        "issue": "ECONNREFUSED: Unable to connect.",
        "type": "http",
        "url": "http://127.0.0.1:9/mcp",
        "headers": {"Authorization": "Bearer x: y"},
        "env": None,
    }


def test_parse_gemini_list_on_recorded_output() -> None:
    listing = (
        "Warning: MCP servers are configured but disabled because this folder is untrusted.\n"
        "Configured MCP servers:\n\n"
        "\u25cb fs: node s.js --x a b (stdio) - Disabled\n"
        "\u25cb web (from ext1): http://127.0.0.1:9/mcp (http) - Disabled\n"
        "\u25cb bare: false  (stdio) - Disabled\n"
    )
    servers, trusted = rc.parse_gemini_list(listing)
    assert trusted is False
    assert servers == {
        "fs": {
            "transport": "stdio",
            "status": "Disabled",
            "extension": None,
            "command": "node",
            "args": "s.js --x a b",
        },
        "web": {
            "transport": "http",
            "status": "Disabled",
            "extension": "ext1",
            "url": "http://127.0.0.1:9/mcp",
        },
        "bare": {
            "transport": "stdio",
            "status": "Disabled",
            "extension": None,
            "command": "false",
            "args": "",
        },
    }


def test_client_env_is_built_from_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own client locations must never reach a sandboxed client.
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/real/claude")
    monkeypatch.setenv("CODEX_HOME", "/real/codex")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    env = rc.client_env(tmp_path, {"EXTRA": "1"})
    assert "CLAUDE_CONFIG_DIR" not in env and "CODEX_HOME" not in env
    assert "OPENAI_API_KEY" not in env
    assert env["HOME"] == str(tmp_path) and env["EXTRA"] == "1"
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "TMPDIR"):
        assert env[var].startswith(str(tmp_path))


# ============================================================================================
# Codex CLI


def test_codex_reads_hand_written_config(sandbox: Sandbox) -> None:
    rc.require_client("codex")
    codex_home = sandbox.home / ".codex"
    codex_home.mkdir()
    url = sandbox.base_url
    (codex_home / "config.toml").write_text(
        f"""\
[mcp_servers.files]
command = "{NO_SUCH_COMMAND}"
args = ["--root", "/srv/data", "two words"]
env = {{ LOG_LEVEL = "debug" }}
env_vars = ["PASS_THROUGH"]
cwd = "/tmp"
startup_timeout_sec = 5

[mcp_servers.api]
url = "{url}/mcp"
http_headers = {{ "X-Api-Key" = "literal-key" }}
env_http_headers = {{ "X-Token" = "API_TOKEN_VAR" }}
bearer_token_env_var = "BEARER_VAR"
enabled = false

# Codex has no SSE transport: "type" is not a Codex key and is ignored.
[mcp_servers.events]
type = "sse"
url = "{url}/sse"
"""
    )
    servers = rc.codex_list(sandbox.home, cwd=sandbox.project)
    assert set(servers) == {"files", "api", "events"}
    assert servers["files"] == {
        "name": "files",
        "enabled": True,
        "disabled_reason": None,
        "transport": "stdio",
        "command": NO_SUCH_COMMAND,
        "args": ["--root", "/srv/data", "two words"],
        "env": {"LOG_LEVEL": "debug"},
        "env_vars": ["PASS_THROUGH"],
        "cwd": "/tmp",
        "startup_timeout_sec": 5.0,
        "tool_timeout_sec": None,
        "auth_status": "unsupported",
    }
    api = servers["api"]
    assert api["transport"] == "streamable_http"
    assert api["enabled"] is False  # `enabled = false` is the only off switch
    assert api["url"] == f"{url}/mcp"
    assert api["http_headers"] == {"X-Api-Key": "literal-key"}
    assert api["env_http_headers"] == {"X-Token": "API_TOKEN_VAR"}
    assert api["bearer_token_env_var"] == "BEARER_VAR"
    assert servers["events"]["transport"] == "streamable_http"


def test_codex_project_config_only_when_trusted(sandbox: Sandbox) -> None:
    rc.require_client("codex")
    codex_home = sandbox.home / ".codex"
    codex_home.mkdir()
    user_toml = codex_home / "config.toml"
    user_toml.write_text('[mcp_servers.shared]\ncommand = "user-cmd"\n')
    (sandbox.project / ".codex").mkdir()
    (sandbox.project / ".codex" / "config.toml").write_text(
        '[mcp_servers.shared]\ncommand = "project-cmd"\n\n[mcp_servers.proj]\ncommand = "p"\n'
    )
    untrusted = rc.codex_list(sandbox.home, cwd=sandbox.project)
    assert set(untrusted) == {"shared"} and untrusted["shared"]["command"] == "user-cmd"

    user_toml.write_text(
        user_toml.read_text() + f'\n[projects."{sandbox.project}"]\ntrust_level = "trusted"\n'
    )
    trusted = rc.codex_list(sandbox.home, cwd=sandbox.project)
    assert set(trusted) == {"shared", "proj"}
    assert trusted["shared"]["command"] == "project-cmd"  # project replaces user, whole entry


def test_codex_rejects_command_plus_url(sandbox: Sandbox) -> None:
    rc.require_client("codex")
    codex_home = sandbox.home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        f'[mcp_servers.bad]\ncommand = "x"\nurl = "{sandbox.base_url}/"\n'
    )
    with pytest.raises(rc.ClientError) as excinfo:
        rc.codex_list(sandbox.home)
    assert excinfo.value.returncode == 1
    assert "url is not supported for stdio" in excinfo.value.stderr


def test_codex_mcp_add_writes_config_toml(sandbox: Sandbox) -> None:
    rc.require_client("codex")
    codex_home = sandbox.home / ".codex"
    codex_home.mkdir()
    toml_path = codex_home / "config.toml"
    toml_path.write_text('# kept\nmodel = "o3"\n')
    env = {"CODEX_HOME": str(codex_home)}
    url = sandbox.base_url

    def codex(*args: str) -> str:
        return rc.run_client("codex", args, home=sandbox.home, env=env).stdout

    assert "Added global MCP server 'files'" in codex(
        "mcp",
        "add",
        "files",
        "--env",
        "B=2",
        "--env",
        "A=1",
        "--",
        NO_SUCH_COMMAND,
        "--root",
        "two words",
    )
    codex("mcp", "add", "api", "--url", f"{url}/mcp", "--bearer-token-env-var", "TOKEN_VAR")
    codex("mcp", "add", "plain", "--url", f"{url}/plain")

    text = toml_path.read_text()
    # Always $CODEX_HOME/config.toml ("global"), even from a trusted project; created 0600;
    # comments above the mcp_servers tables survive; env goes in a sub-table, keys sorted.
    assert text.startswith('# kept\nmodel = "o3"\n')
    assert (
        "[mcp_servers.files]\n"
        f'command = "{NO_SUCH_COMMAND}"\n'
        'args = ["--root", "two words"]\n\n'
        "[mcp_servers.files.env]\n"
        'A = "1"\nB = "2"\n'
    ) in text
    assert tomllib.loads(text)["mcp_servers"] == {
        "files": {
            "command": NO_SUCH_COMMAND,
            "args": ["--root", "two words"],
            "env": {"A": "1", "B": "2"},
        },
        "api": {"url": f"{url}/mcp", "bearer_token_env_var": "TOKEN_VAR"},
        "plain": {"url": f"{url}/plain"},
    }
    assert toml_path.stat().st_mode & 0o777 == 0o600

    # Adding an existing name replaces the entry (no error, no merge).
    codex("mcp", "add", "files", "--", "other")
    assert tomllib.loads(toml_path.read_text())["mcp_servers"]["files"] == {"command": "other"}


# ============================================================================================
# Claude Code


def _claude_json(sandbox: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = sandbox.read_json(sandbox.home / ".claude.json")
    return data


def test_claude_reads_user_local_and_project_scopes(sandbox: Sandbox) -> None:
    rc.require_client("claude")
    url = sandbox.base_url
    sandbox.write_json(
        sandbox.home / ".claude.json",
        {
            "mcpServers": {
                "files": {
                    "type": "stdio",
                    "command": NO_SUCH_COMMAND,
                    "args": ["--root", "/srv/data"],
                    "env": {"LOG_LEVEL": "debug", "TOKEN": "${MY_TOKEN}"},
                },
            },
            "projects": {
                str(sandbox.project): {
                    "mcpServers": {
                        "api": {
                            "type": "http",
                            "url": f"{url}/mcp",
                            "headers": {"Authorization": "Bearer ${API_KEY}"},
                        },
                    }
                }
            },
        },
    )
    sandbox.write_json(
        sandbox.project / ".mcp.json",
        {
            "mcpServers": {
                "events": {"type": "sse", "url": f"{url}/sse", "headers": {"X-Key": "v"}},
            }
        },
    )
    servers = rc.claude_servers(sandbox.home, sandbox.project)
    assert set(servers) == {"files", "api", "events"}

    files = servers["files"]
    assert (files["scope"], files["type"], files["command"]) == ("user", "stdio", NO_SUCH_COMMAND)
    assert files["args"] == "--root /srv/data"  # printed space-joined
    assert files["env"] == {"LOG_LEVEL": "debug", "TOKEN": "${MY_TOKEN}"}  # shown unexpanded
    assert files["status"] == "\u2718 Failed to connect"  # it tried to spawn the command
    assert "ENOENT" in files["issue"]

    api = servers["api"]
    assert (api["scope"], api["type"], api["url"]) == ("local", "http", f"{url}/mcp")
    assert api["headers"] == {"Authorization": "Bearer ${API_KEY}"}
    assert "ECONNREFUSED" in api["issue"]  # the health check connected to the URL

    events = servers["events"]
    assert (events["scope"], events["type"], events["url"]) == ("project", "sse", f"{url}/sse")
    assert events["headers"] == {"X-Key": "v"}
    # Unapproved .mcp.json servers are listed but never contacted.
    assert events["status"].startswith("\u23f8 Pending approval")

    # Running claude rewrites ~/.claude.json (2-space JSON, own state keys added) but keeps ours.
    data = _claude_json(sandbox)
    assert data["mcpServers"]["files"]["args"] == ["--root", "/srv/data"]
    assert "firstStartTime" in data


def test_claude_scope_precedence_approval_and_disable(sandbox: Sandbox) -> None:
    rc.require_client("claude")
    claude_json = sandbox.home / ".claude.json"
    sandbox.write_json(
        claude_json,
        {
            "mcpServers": {
                "dup": {"command": "user-cmd"},
                "off": {"command": NO_SUCH_COMMAND},
                "flagged": {"command": NO_SUCH_COMMAND, "disabled": True},
                "typeless": {"url": f"{sandbox.base_url}/x"},
            },
            "projects": {
                str(sandbox.project): {
                    "mcpServers": {"dup": {"command": "local-cmd"}},
                    "disabledMcpServers": ["off"],
                }
            },
        },
    )
    sandbox.write_json(
        sandbox.project / ".mcp.json",
        {
            "mcpServers": {
                "dup": {"command": "project-cmd"},
                "proj": {"command": NO_SUCH_COMMAND},
            }
        },
    )
    servers, diagnostics = rc.claude_list(sandbox.home, sandbox.project)
    # local > project > user for one name; a "Conflicting scopes" diagnostic says so.
    assert servers["dup"]["command_line"] == "local-cmd"
    assert 'Server "dup" is defined in multiple scopes' in diagnostics
    # projects.<path>.disabledMcpServers is the off switch; "disabled": true is ignored.
    assert servers["off"]["status"].startswith("\u2298 Disabled for this project")
    assert servers["flagged"]["status"] == "\u2718 Failed to connect"
    # A url without "type" is skipped, with a diagnostic naming the file.
    assert "typeless" not in servers
    assert 'has a "url" but no "type"' in diagnostics and str(claude_json) in diagnostics
    assert servers["proj"]["status"].startswith("\u23f8 Pending approval")

    # Approval from the project's own settings counts only once the folder is trusted.
    sandbox.write_json(
        sandbox.project / ".claude" / "settings.local.json", {"enabledMcpjsonServers": ["proj"]}
    )
    servers, _ = rc.claude_list(sandbox.home, sandbox.project)
    assert servers["proj"]["status"].startswith("\u23f8 Pending approval")
    data = _claude_json(sandbox)
    data["projects"][str(sandbox.project)]["hasTrustDialogAccepted"] = True
    sandbox.write_json(claude_json, data)
    servers, _ = rc.claude_list(sandbox.home, sandbox.project)
    assert servers["proj"]["status"] == "\u2718 Failed to connect"  # approved: health-checked

    # Rejected (disabledMcpjsonServers) servers vanish from the list; `get` still shows them.
    sandbox.write_json(
        sandbox.project / ".claude" / "settings.local.json", {"disabledMcpjsonServers": ["proj"]}
    )
    servers, _ = rc.claude_list(sandbox.home, sandbox.project)
    assert "proj" not in servers
    got = rc.claude_get(sandbox.home, sandbox.project, "proj")
    assert got is not None and got["status"].startswith("\u2718 Rejected")

    # User-level settings approve every project server without any trust.
    (sandbox.project / ".claude" / "settings.local.json").unlink()
    data = _claude_json(sandbox)
    data["projects"][str(sandbox.project)]["hasTrustDialogAccepted"] = False
    sandbox.write_json(claude_json, data)
    sandbox.write_json(
        sandbox.home / ".claude" / "settings.json", {"enableAllProjectMcpServers": True}
    )
    servers, _ = rc.claude_list(sandbox.home, sandbox.project)
    assert servers["proj"]["status"] == "\u2718 Failed to connect"
    assert rc.claude_get(sandbox.home, sandbox.project, "nope") is None


def test_claude_config_dir_moves_claude_json(sandbox: Sandbox) -> None:
    rc.require_client("claude")
    config_dir = sandbox.home / "elsewhere"
    sandbox.write_json(
        config_dir / ".claude.json", {"mcpServers": {"moved": {"command": NO_SUCH_COMMAND}}}
    )
    sandbox.write_json(
        sandbox.home / ".claude.json", {"mcpServers": {"ignored": {"command": NO_SUCH_COMMAND}}}
    )
    servers, _ = rc.claude_list(sandbox.home, sandbox.project, config_dir=config_dir)
    assert set(servers) == {"moved"}


def test_claude_mcp_add_json_writes_each_scope(sandbox: Sandbox) -> None:
    rc.require_client("claude")
    url = sandbox.base_url

    def add_json(scope: str, name: str, config: dict[str, Any]) -> str:
        proc = rc.run_client(
            "claude",
            ["mcp", "add-json", "-s", scope, name, json.dumps(config)],
            home=sandbox.home,
            cwd=sandbox.project,
        )
        return proc.stdout

    stdio = {
        "type": "stdio",
        "command": NO_SUCH_COMMAND,
        "args": ["--root", "two words"],
        "env": {"B": "2", "A": "1"},
    }
    http = {"type": "http", "url": f"{url}/mcp", "headers": {"Authorization": "Bearer ${KEY}"}}
    sse = {"type": "sse", "url": f"{url}/sse", "headers": {"X-Key": "v"}}
    assert add_json("user", "files", stdio) == "Added stdio MCP server files to user config\n"
    assert add_json("local", "api", http) == "Added http MCP server api to local config\n"
    assert add_json("project", "events", sse) == "Added sse MCP server events to project config\n"
    # Parsed through Claude's schema: unknown keys dropped, "args": [] added for stdio,
    # no "type" added where none was given; key order as given.
    add_json("user", "bare", {"command": NO_SUCH_COMMAND, "bogus": 1})

    data = _claude_json(sandbox)
    assert data["mcpServers"] == {"files": stdio, "bare": {"command": NO_SUCH_COMMAND, "args": []}}
    assert list(data["mcpServers"]["files"]["env"]) == ["B", "A"]
    local = data["projects"][str(sandbox.project)]
    assert local["mcpServers"] == {"api": http}
    # The project entry Claude creates around it:
    assert local["enabledMcpjsonServers"] == [] and local["disabledMcpjsonServers"] == []
    assert local["hasTrustDialogAccepted"] is False
    # Project scope: <cwd>/.mcp.json, 2-space indented, nothing else in it.
    mcp_json = sandbox.project / ".mcp.json"
    assert sandbox.read_json(mcp_json) == {"mcpServers": {"events": sse}}
    assert mcp_json.read_text() == json.dumps({"mcpServers": {"events": sse}}, indent=2)

    # Same name in the same scope is refused (exit 1), not replaced.
    proc = rc.run_client(
        "claude",
        ["mcp", "add-json", "-s", "user", "files", json.dumps({"command": "other"})],
        home=sandbox.home,
        cwd=sandbox.project,
        check=False,
    )
    assert proc.returncode == 1
    assert "MCP server files already exists in user config" in proc.stdout + proc.stderr
    # Validation comes first: an entry with neither command nor type+url is refused.
    proc = rc.run_client(
        "claude",
        ["mcp", "add-json", "-s", "user", "x", '{"type": "http"}'],
        home=sandbox.home,
        cwd=sandbox.project,
        check=False,
    )
    assert proc.returncode == 1 and "Invalid configuration" in proc.stdout + proc.stderr


def test_claude_mcp_add_flags_write_same_shapes(sandbox: Sandbox) -> None:
    rc.require_client("claude")
    url = sandbox.base_url

    def claude(*args: str) -> None:
        rc.run_client("claude", args, home=sandbox.home, cwd=sandbox.project)

    # -e and -H take several values: the name must come before them (or they swallow it).
    claude("mcp", "add", "-s", "user", "files", "-e", "K=V", "--", NO_SUCH_COMMAND, "--x", "a b")
    claude(
        "mcp",
        "add",
        "-s",
        "user",
        "--transport",
        "http",
        "api",
        f"{url}/mcp",
        "-H",
        "Authorization: Bearer x",
    )
    claude("mcp", "add", "-s", "user", "--transport", "sse", "events", f"{url}/sse")
    assert _claude_json(sandbox)["mcpServers"] == {
        "files": {
            "type": "stdio",
            "command": NO_SUCH_COMMAND,
            "args": ["--x", "a b"],
            "env": {"K": "V"},
        },
        "api": {"type": "http", "url": f"{url}/mcp", "headers": {"Authorization": "Bearer x"}},
        "events": {"type": "sse", "url": f"{url}/sse"},
    }


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_claude_local_scope_is_keyed_by_git_root(sandbox: Sandbox) -> None:
    rc.require_client("claude")
    subprocess.run(["git", "init", "-q", str(sandbox.project)], check=True)
    sub = sandbox.project / "sub"
    sub.mkdir()
    for scope, name in (("local", "loc"), ("project", "proj")):
        rc.run_client(
            "claude",
            ["mcp", "add-json", "-s", scope, name, json.dumps({"command": NO_SUCH_COMMAND})],
            home=sandbox.home,
            cwd=sub,
        )
    projects = _claude_json(sandbox)["projects"]
    assert "loc" in projects[str(sandbox.project)]["mcpServers"]  # git root, not cwd
    assert str(sub) not in projects
    assert (sub / ".mcp.json").exists()  # but .mcp.json goes to cwd...
    assert not (sandbox.project / ".mcp.json").exists()
    # ...and .mcp.json files are read from cwd upwards, so the root does not see sub's.
    servers, _ = rc.claude_list(sandbox.home, sandbox.project)
    assert set(servers) == {"loc"}
    servers, _ = rc.claude_list(sandbox.home, sub)
    assert set(servers) == {"loc", "proj"}


# ============================================================================================
# Gemini CLI


def test_gemini_reads_user_and_project_settings(sandbox: Sandbox) -> None:
    rc.require_client("gemini")
    url = sandbox.base_url
    user_settings = sandbox.home / ".gemini" / "settings.json"
    user_settings.parent.mkdir(parents=True)
    # JSON with comments is accepted.
    user_settings.write_text(
        "// user settings\n"
        + json.dumps(
            {
                "mcpServers": {
                    "files": {
                        "command": NO_SUCH_COMMAND,
                        "args": ["--root", "$DATA_DIR"],
                        "env": {"LOG_LEVEL": "debug"},
                    },
                    "api": {
                        "type": "http",
                        "url": f"{url}/mcp",
                        "headers": {"Authorization": "Bearer x"},
                    },
                    "events": {"type": "sse", "url": f"{url}/sse"},
                    "legacy": {"httpUrl": f"{url}/legacy"},
                    "typeless": {"url": f"{url}/typeless/${{SEGMENT}}"},
                    "dup": {"command": "user-cmd"},
                }
            },
            indent=2,
        )
    )
    sandbox.write_json(
        sandbox.project / ".gemini" / "settings.json",
        {"mcpServers": {"dup": {"command": "project-cmd"}}},
    )
    servers, trusted = rc.gemini_list(
        sandbox.home, sandbox.project, env={"DATA_DIR": "/srv/data", "SEGMENT": "seg"}
    )
    assert trusted is True
    assert servers == {
        # $VAR / ${VAR} are expanded in every string; the listing shows the result.
        "files": {
            "transport": "stdio",
            "status": "Disconnected",
            "extension": None,
            "command": NO_SUCH_COMMAND,
            "args": "--root /srv/data",
        },
        "api": {
            "transport": "http",
            "status": "Disconnected",
            "extension": None,
            "url": f"{url}/mcp",
        },
        "events": {
            "transport": "sse",
            "status": "Disconnected",
            "extension": None,
            "url": f"{url}/sse",
        },
        # httpUrl (deprecated) is streamable HTTP; a url without type lists as http too
        # (the session then falls back to SSE if HTTP fails).
        "legacy": {
            "transport": "http",
            "status": "Disconnected",
            "extension": None,
            "url": f"{url}/legacy",
        },
        "typeless": {
            "transport": "http",
            "status": "Disconnected",
            "extension": None,
            "url": f"{url}/typeless/seg",
        },
        # Project settings win on a name clash.
        "dup": {
            "transport": "stdio",
            "status": "Disconnected",
            "extension": None,
            "command": "project-cmd",
            "args": "",
        },
    }


def test_gemini_folder_trust(sandbox: Sandbox) -> None:
    rc.require_client("gemini")
    sandbox.write_json(
        sandbox.home / ".gemini" / "settings.json",
        {"mcpServers": {"files": {"command": NO_SUCH_COMMAND}}},
    )
    # Nothing says trusted: folder trust is on by default, everything is Disabled.
    servers, trusted = rc.gemini_list(sandbox.home, sandbox.project, trusted=None)
    assert trusted is False and servers["files"]["status"] == "Disabled"
    # trustedFolders.json, as written by the trust dialog.
    rules = rc.gemini_trust_folder(sandbox.home, sandbox.project)
    assert rules == sandbox.home / ".gemini" / "trustedFolders.json"
    assert sandbox.read_json(rules) == {str(sandbox.project): "TRUST_FOLDER"}
    servers, trusted = rc.gemini_list(sandbox.home, sandbox.project, trusted=None)
    assert trusted is True and servers["files"]["status"] == "Disconnected"
    # The env var overrides the file either way.
    servers, trusted = rc.gemini_list(sandbox.home, sandbox.project, trusted=False)
    assert trusted is False and servers["files"]["status"] == "Disabled"
    rules.unlink()
    # Turning the feature off in user settings trusts every folder.
    sandbox.write_json(
        sandbox.home / ".gemini" / "settings.json",
        {
            "security": {"folderTrust": {"enabled": False}},
            "mcpServers": {"files": {"command": NO_SUCH_COMMAND}},
        },
    )
    servers, trusted = rc.gemini_list(sandbox.home, sandbox.project, trusted=None)
    assert trusted is True and servers["files"]["status"] == "Disconnected"


def test_gemini_off_switches(sandbox: Sandbox) -> None:
    rc.require_client("gemini")
    sandbox.write_json(
        sandbox.home / ".gemini" / "settings.json",
        {
            "mcp": {"excluded": ["blocked"]},
            "mcpServers": {
                "blocked": {"command": NO_SUCH_COMMAND},
                "off": {"command": NO_SUCH_COMMAND},
            },
        },
    )
    sandbox.write_json(
        sandbox.home / ".gemini" / "mcp-server-enablement.json", {"off": {"enabled": False}}
    )
    servers, _ = rc.gemini_list(sandbox.home, sandbox.project)
    assert servers["blocked"]["status"] == "Blocked"
    assert servers["off"]["status"] == "Disabled"


def test_gemini_mcp_add_writes_settings_json(sandbox: Sandbox) -> None:
    rc.require_client("gemini")
    url = sandbox.base_url

    def gemini(*args: str) -> str:
        proc = rc.run_client(
            "gemini",
            args,
            home=sandbox.home,
            cwd=sandbox.project,
            env={"GEMINI_CLI_TRUST_WORKSPACE": "true"},
        )
        return proc.stdout + proc.stderr

    assert 'MCP server "files" added to user settings. (stdio)' in gemini(
        "mcp",
        "add",
        "-s",
        "user",
        "files",
        "-e",
        "B=2",
        "-e",
        "A=1",
        NO_SUCH_COMMAND,
        "--root",
        "two words",
    )
    gemini(
        "mcp",
        "add",
        "-s",
        "user",
        "-t",
        "http",
        "-H",
        "Authorization: Bearer x",
        "-H",
        "X-Key: v",
        "api",
        f"{url}/mcp",
    )
    gemini("mcp", "add", "-s", "user", "-t", "sse", "events", f"{url}/sse")
    # Default scope is project: <cwd>/.gemini/settings.json.
    # (Array options such as --include-tools swallow the positionals after them, so another
    # option has to follow.)
    assert "added to project settings" in gemini(
        "mcp",
        "add",
        "--include-tools",
        "a,b",
        "--timeout",
        "5000",
        "--trust",
        "proj",
        NO_SUCH_COMMAND,
    )

    assert sandbox.read_json(sandbox.home / ".gemini" / "settings.json") == {
        "mcpServers": {
            "files": {
                "command": NO_SUCH_COMMAND,
                "args": ["--root", "two words"],
                "env": {"B": "2", "A": "1"},
            },
            # Current shape: "url" plus "type" (not the older "httpUrl").
            "api": {
                "url": f"{url}/mcp",
                "type": "http",
                "headers": {"Authorization": "Bearer x", "X-Key": "v"},
            },
            "events": {"url": f"{url}/sse", "type": "sse"},
        }
    }
    assert sandbox.read_json(sandbox.project / ".gemini" / "settings.json") == {
        "mcpServers": {
            # "args": [] always written; --include-tools is not split on commas.
            "proj": {
                "command": NO_SUCH_COMMAND,
                "args": [],
                "timeout": 5000,
                "trust": True,
                "includeTools": ["a,b"],
            },
        }
    }
    # Adding an existing name replaces the entry.
    assert 'MCP server "events" updated in user settings.' in gemini(
        "mcp", "add", "-s", "user", "-t", "http", "events", f"{url}/v2"
    )
    user = sandbox.read_json(sandbox.home / ".gemini" / "settings.json")
    assert user["mcpServers"]["events"] == {"url": f"{url}/v2", "type": "http"}


# ============================================================================================
# opencode


def test_opencode_reads_global_and_project_config(sandbox: Sandbox) -> None:
    rc.require_client("opencode")
    url = sandbox.base_url
    global_json = sandbox.home / ".config" / "opencode" / "opencode.json"
    sandbox.write_json(
        global_json,
        {
            "$schema": "https://opencode.ai/config.json",
            "mcp": {
                "files": {
                    "type": "local",
                    "command": [NO_SUCH_COMMAND, "--root", "two words"],
                    "environment": {"LOG_LEVEL": "{env:LEVEL}", "API_KEY": "k"},
                    "enabled": True,
                },
                "api": {
                    "type": "remote",
                    "url": f"{url}/mcp",
                    "headers": {"Authorization": "Bearer {env:TOKEN}"},
                    "enabled": False,
                    "oauth": False,
                    "timeout": 3000,
                },
                "dup": {"type": "local", "command": ["user-cmd"]},
            },
        },
    )
    # Project file: JSONC, found from a subdirectory, wins on a name clash.
    (sandbox.project / "opencode.jsonc").write_text(
        '{\n  // project\n  "mcp": {"dup": {"type": "local", "command": ["project-cmd"]},},\n}\n'
    )
    sub = sandbox.project / "sub"
    sub.mkdir()
    mcp = rc.opencode_mcp(sandbox.home, sub, env={"LEVEL": "debug", "TOKEN": "t"})
    assert mcp == {
        "files": {
            "type": "local",
            "command": [NO_SUCH_COMMAND, "--root", "two words"],
            # {env:VAR} substituted; values of secret-looking keys redacted.
            "environment": {"LOG_LEVEL": "debug", "API_KEY": "***"},
            "enabled": True,
        },
        # Every header value is redacted by `debug config`; names survive.
        "api": {
            "type": "remote",
            "url": f"{url}/mcp",
            "headers": {"Authorization": "***"},
            "enabled": False,
            "oauth": False,
            "timeout": 3000,
        },
        "dup": {"type": "local", "command": ["project-cmd"]},
    }
    # Side effect: opencode inserts "$schema" into a config file that lacks it.
    assert '"$schema"' in (sandbox.project / "opencode.jsonc").read_text()


def test_opencode_rejects_unknown_type(sandbox: Sandbox) -> None:
    rc.require_client("opencode")
    sandbox.write_json(
        sandbox.home / ".config" / "opencode" / "opencode.json",
        {"mcp": {"bad": {"type": "stdio", "command": ["x"]}}},
    )
    with pytest.raises(rc.ClientError) as excinfo:
        rc.opencode_config(sandbox.home, sandbox.project)
    assert "Configuration is invalid" in excinfo.value.stderr + excinfo.value.stdout


def test_opencode_mcp_add_writes_global_config(sandbox: Sandbox) -> None:
    rc.require_client("opencode")
    url = sandbox.base_url

    def opencode(*args: str) -> None:
        rc.run_client("opencode", args, home=sandbox.home, cwd=sandbox.project)

    config_dir = sandbox.home / ".config" / "opencode"
    # Non-interactive when name and --url / command are given; always the global config, even
    # from inside a project. With no global config yet, opencode creates opencode.jsonc
    # (holding only "$schema") and adds to that.
    opencode("mcp", "add", "api", "--url", f"{url}/mcp", "--header", "X-Key=v")
    opencode("mcp", "add", "files", "--env", "A=1", "--", NO_SUCH_COMMAND, "--root")
    assert not (config_dir / "opencode.json").exists()
    assert sandbox.read_json(config_dir / "opencode.jsonc") == {
        "$schema": "https://opencode.ai/config.json",
        "mcp": {
            "api": {"type": "remote", "url": f"{url}/mcp", "headers": {"X-Key": "v"}},
            "files": {
                "type": "local",
                "command": [NO_SUCH_COMMAND, "--root"],
                "environment": {"A": "1"},
            },
        },
    }
    # An existing opencode.json is preferred, and edited in place (other text kept).
    (config_dir / "opencode.json").write_text(
        '{"mcp": {"keep": {"type": "local", "command": ["k"]}}}'
    )
    opencode("mcp", "add", "more", "--url", f"{url}/more")
    assert sandbox.read_json(config_dir / "opencode.json")["mcp"] == {
        "keep": {"type": "local", "command": ["k"]},
        "more": {"type": "remote", "url": f"{url}/more"},
    }
    assert "more" not in sandbox.read_json(config_dir / "opencode.jsonc")["mcp"]
