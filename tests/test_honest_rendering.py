"""Honest rendering: every value resolved into a client file is named, and the file is private.

A reference the client cannot express (``${infisical:...}`` anywhere, any reference on a
client without interpolation) is resolved into the file. The plan, ``status`` and
``audit`` name each such value (server, JSON Pointer, the references, why, and how to keep
it out of the file), never the value; the file is 0600, and a wider mode is drift that the
next pass fixes.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

import pytest

from reconciler.core.essence import bridge_mcp_remote, bridged_headers, from_server
from reconciler.core.model import Server
from reconciler.secrets import header_through_env
from tests import realclients as rc
from tests.conftest import Workspace

CANARY = "canary-value-" + "Zq7Xw2Vb9Nm4"


def _resolver(workspace: Workspace) -> Path:
    script = workspace.root / "vault.py"
    script.write_text(f"import sys\nprint({CANARY!r} + sys.argv[1])\n", encoding="utf-8")
    return script


def _declare(workspace: Workspace, kind: str, path: Path, extra: str = "") -> None:
    command = json.dumps([sys.executable, str(_resolver(workspace)), "{name}"])
    workspace.write(
        "servers.yaml",
        f"""
        secrets:
          infisical: {{command: {command}}}
        servers:
          gh:
            command: npx
            args: [-y, server-github]
            env: {{GITHUB_TOKEN: "${{infisical:GH}}", TZ: UTC{extra}}}
        """,
    )
    workspace.write(
        "targets.yaml",
        f"""
        targets:
          client: {{kind: {kind}, path: {path}}}
        """,
    )


def test_dry_run_into_claude_code_names_the_resolved_value(workspace: Workspace) -> None:
    path = workspace.home / ".claude.json"
    _declare(workspace, "claude-code", path)
    dry = workspace.run("--dry-run")
    assert dry.exit_code == 1, dry.stdout + dry.stderr
    assert (
        "note: gh /env/GITHUB_TOKEN: ${infisical:GH} is resolved into the file "
        "(claude-code cannot run the infisical resolver); to keep it out: write "
        "${env:GITHUB_TOKEN} in desired state and export GITHUB_TOKEN to claude-code's "
        "environment"
    ) in dry.stdout
    assert "/env/TZ" not in dry.stdout.split("note:", 1)[1]  # no reference, nothing to say
    as_json = workspace.run("--dry-run", "--json").json
    [resolved] = as_json["targets"][0]["resolved"]
    assert resolved == {
        "server": "gh",
        "path": "/env/GITHUB_TOKEN",
        "references": ["${infisical:GH}"],
        "why": "claude-code cannot run the infisical resolver",
        "avoid": "write ${env:GITHUB_TOKEN} in desired state and export GITHUB_TOKEN to "
        "claude-code's environment",
    }
    for out in (dry.stdout + dry.stderr, json.dumps(as_json)):
        assert CANARY not in out
    assert not path.exists()


@pytest.mark.parametrize("kind", ["claude-code", "claude-desktop", "cline", "lmstudio", "codex"])
def test_a_wider_mode_is_drift_and_the_next_pass_makes_it_private(
    workspace: Workspace, kind: str
) -> None:
    path = workspace.home / "client" / "config"
    path = path.with_suffix(".toml" if kind == "codex" else ".json")
    _declare(workspace, kind, path)
    first = workspace.run()
    assert first.exit_code == 0, first.stdout + first.stderr
    assert CANARY + "GH" in path.read_text()  # resolved, as the plan said...
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # ...into a private file
    assert workspace.run().exit_code == 0  # converged

    path.chmod(0o644)
    dry = workspace.run("--dry-run")
    assert dry.exit_code == 1, dry.stdout
    assert '/file-mode: "0644" -> "0600"' in dry.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a dry run changes nothing
    fixed = workspace.run()
    assert fixed.exit_code == 0, fixed.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = workspace.run("--dry-run")
    assert again.exit_code == 0, again.stdout
    assert "file-mode" not in again.stdout
    for result in (first, dry, fixed, again):
        assert CANARY not in result.stdout + result.stderr


def test_a_file_without_resolved_values_keeps_its_mode(workspace: Workspace) -> None:
    path = workspace.home / ".claude.json"
    workspace.write("servers.yaml", "servers:\n  time: {command: uvx, env: {TZ: UTC}}\n")
    workspace.write("targets.yaml", f"targets:\n  code: {{kind: claude-code, path: {path}}}\n")
    path.write_text("{}\n")
    path.chmod(0o644)
    assert workspace.run().exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert workspace.run("--dry-run").exit_code == 0


def test_status_and_audit_name_each_resolved_value(workspace: Workspace) -> None:
    path = workspace.home / "desktop.json"
    # DB_LABEL's value looks like nothing secret: found as resolved by its fingerprint alone.
    _declare(workspace, "claude-desktop", path, ', DB_LABEL: "${infisical:db}"')
    assert workspace.run().exit_code == 0
    status = workspace.run("status")
    assert (
        "resolved into client: gh /env/GITHUB_TOKEN: ${infisical:GH} is resolved into the file "
        "(claude-desktop cannot expand references)"
    ) in status.stdout
    audit = workspace.run("audit", "--declared")
    assert audit.exit_code == 0, audit.stdout  # resolved by this tool: listed, not counted
    assert re.search(r"client +gh +/env/GITHUB_TOKEN +\S+ +‹secret:\w+› +managed", audit.stdout)
    assert "client: gh /env/GITHUB_TOKEN: ${infisical:GH} is resolved into the file" in (
        audit.stdout
    )
    assert "file mode checked: client 0600" in audit.stdout
    strict = workspace.run("audit", "--declared", "--strict", "--json")
    assert strict.exit_code == 1
    assert re.search(r"client +gh +/env/DB_LABEL +resolved-reference +‹secret:\w+›", audit.stdout)
    findings = {f["field"]: f for f in strict.json["findings"]}
    assert set(findings) == {"/env/GITHUB_TOKEN", "/env/DB_LABEL"}
    assert findings["/env/GITHUB_TOKEN"]["resolved"]["references"] == ["${infisical:GH}"]
    assert findings["/env/DB_LABEL"]["resolved"]["references"] == ["${infisical:db}"]
    assert all(f["managed"] for f in findings.values())
    for out in (status.stdout, audit.stdout, strict.stdout):
        assert CANARY not in out


@pytest.mark.parametrize("kind", ["claude-code", "cursor", "windsurf", "claude-desktop"])
def test_a_field_the_kind_cannot_express_is_a_warning_and_a_note(
    workspace: Workspace, kind: str
) -> None:
    path = workspace.home / "client.json"
    workspace.write(
        "servers.yaml",
        """
        servers:
          tool:
            command: uvx
            cwd: /srv/tool
        """,
    )
    workspace.write("targets.yaml", f"targets:\n  client: {{kind: {kind}, path: {path}}}\n")
    checked = workspace.run("validate")
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    assert (
        f"warning: desired/servers.yaml:2:3: target 'client' ({kind}) cannot express cwd of "
        "server 'tool': not written there (kinds that carry it: "
    ) in checked.stderr
    assert (
        workspace.run("validate", "--json")
        .json["warnings"][0]
        .startswith("desired/servers.yaml:2:3: target 'client'")
    )
    dry = workspace.run("--dry-run", "--json").json
    assert (
        f"tool: {kind} cannot express cwd; it is not written to this target"
        in (dry["targets"][0]["notes"])
    )
    assert workspace.run().exit_code == 0
    assert "/srv/tool" not in path.read_text()  # as the note says
    assert workspace.run("--dry-run").exit_code == 0  # and nothing drifts for it


def test_a_kind_that_carries_cwd_gets_no_warning(workspace: Workspace) -> None:
    workspace.write("servers.yaml", "servers:\n  tool: {command: uvx, cwd: /srv/tool}\n")
    workspace.write("targets.yaml", "targets:\n  g: {kind: gemini, path: ~/g.json}\n")
    checked = workspace.run("validate")
    assert checked.exit_code == 0 and "warning" not in checked.stderr


@pytest.mark.parametrize(
    ("where", "value", "loc"),
    [
        ("args", '["$HOME/data"]', "servers.tool.args.0"),
        ("args", '["a$b"]', "servers.tool.args.0"),
        ("env", '{X: "a$b"}', "servers.tool.env.X"),
        ("env", '{X: "$1"}', "servers.tool.env.X"),
    ],
)
def test_gemini_refuses_a_literal_dollar_it_would_expand(
    workspace: Workspace, where: str, value: str, loc: str
) -> None:
    """Gemini CLI expands $NAME everywhere when NAME is set and has no escape (its bundle:
    envVarResolver.ts, envExpansion.ts): such a literal can never read back as written."""
    workspace.write("servers.yaml", f"servers:\n  tool:\n    command: uvx\n    {where}: {value}\n")
    workspace.write("targets.yaml", "targets:\n  g: {kind: gemini, path: ~/g.json}\n")
    checked = workspace.run("validate")
    assert checked.exit_code == 2, checked.stdout + checked.stderr
    out = checked.stdout + checked.stderr
    assert f"{loc}: cannot be written to target 'g' (gemini): Gemini CLI expands $NAME" in out
    assert "has no escape" in out
    assert "desired/servers.yaml:4:" in out  # located at the value


def test_gemini_round_trips_a_dollar_that_names_nothing(workspace: Workspace) -> None:
    path = workspace.home / "g.json"
    workspace.write(
        "servers.yaml",
        """
        servers:
          tool:
            command: uvx
            args: ["5$", "$-x", "$$", "${HOME}/data"]
            env: {PRICE: "10 $ each"}
        """,
    )
    workspace.write("targets.yaml", f"targets:\n  g: {{kind: gemini, path: {path}}}\n")
    assert workspace.run("validate").exit_code == 0
    first = workspace.run()
    assert first.exit_code == 0, first.stdout
    written = json.loads(path.read_text())["mcpServers"]["tool"]
    assert written["args"] == ["5$", "$-x", "$$", "${HOME}/data"]
    again = workspace.run()
    assert again.exit_code == 0, again.stdout
    assert "converged: 0 changed" in again.stdout


def test_other_kinds_take_a_literal_dollar(workspace: Workspace) -> None:
    path = workspace.home / "code.json"
    workspace.write("servers.yaml", 'servers:\n  tool: {command: uvx, args: ["$HOME", "a$b"]}\n')
    workspace.write("targets.yaml", f"targets:\n  c: {{kind: claude-code, path: {path}}}\n")
    assert workspace.run().exit_code == 0
    assert json.loads(path.read_text())["mcpServers"]["tool"]["args"] == ["$HOME", "a$b"]
    assert "converged: 0 changed" in workspace.run().stdout


@pytest.mark.parametrize(
    ("url", "allow_http"),
    [
        ("http://mcp.internal.example:8080/mcp", True),
        ("http://10.1.2.3/mcp", True),
        ("https://mcp.example.com/mcp", False),
        ("http://localhost:8080/mcp", False),
        ("http://127.0.0.1:8080/mcp", False),
        ("http://[::1]:8080/mcp", False),
    ],
)
def test_bridge_allows_plain_http_only_where_mcp_remote_requires_it(
    url: str, allow_http: bool
) -> None:
    bridged = bridge_mcp_remote(from_server(Server(url=url)), header_through_env)
    assert ("--allow-http" in bridged["args"]) is allow_http


def test_bridge_keeps_a_bearer_header_a_reference_through_env() -> None:
    server = Server(
        url="https://mcp.example.com/mcp",
        headers={"Authorization": "Bearer ${env:TOKEN}", "X-Key": "${infisical:team-key}"},
    )
    bridged = bridge_mcp_remote(from_server(server), header_through_env)
    assert bridged["args"] == [
        "-y", "mcp-remote", "https://mcp.example.com/mcp",
        "--header", "Authorization:Bearer ${TOKEN}",
        "--header", "X-Key:${TEAM_KEY}",
    ]  # fmt: skip
    assert bridged["env"] == {"TOKEN": "${env:TOKEN}", "TEAM_KEY": "${infisical:team-key}"}
    assert bridged_headers(bridged) == {"/args/4", "/args/6"}


@pytest.mark.parametrize("kind", ["claude-desktop", "codex"])
def test_bridged_bearer_token_never_sits_in_the_arguments(workspace: Workspace, kind: str) -> None:
    path = workspace.home / ("config.toml" if kind == "codex" else "desktop.json")
    workspace.write(
        "servers.yaml",
        """
        servers:
          docs:
            url: https://mcp.example.com/sse
            transport: sse
            headers: {Authorization: "Bearer ${env:DOCS_TOKEN}"}
        """,
    )
    workspace.write(
        "targets.yaml",
        f"targets:\n  client: {{kind: {kind}, path: {path}, bridge: mcp-remote}}\n",
    )
    env = {"DOCS_TOKEN": CANARY}
    first = workspace.run(env=env)
    assert first.exit_code == 0, first.stdout + first.stderr
    text = path.read_text()
    assert "Authorization:Bearer ${DOCS_TOKEN}" in text  # mcp-remote expands it itself
    if kind == "codex":
        assert CANARY not in text  # passed through by name: env_vars = ["DOCS_TOKEN"]
        assert "DOCS_TOKEN" in text.split("env_vars", 1)[1]
    else:
        entry = json.loads(text)["mcpServers"]["docs"]
        assert entry["env"] == {"DOCS_TOKEN": CANARY}  # in the env, out of the arguments
        assert all(CANARY not in arg for arg in entry["args"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = workspace.run(env=env)
    assert again.exit_code == 0 and "converged: 0 changed" in again.stdout, again.stdout
    for result in (first, again):
        assert CANARY not in result.stdout + result.stderr


def test_real_gemini_reads_the_dollars_kept_as_written_and_expands_the_refused_ones(
    workspace: Workspace,
) -> None:
    """The real Gemini CLI (0.61) lists the args it loaded: a ``$`` before no name stays as
    written; a literal ``$HOME`` becomes the home folder, which is why validate refuses it."""
    rc.require_client("gemini")
    workspace.write(
        "servers.yaml",
        """
        servers:
          tool:
            command: no-such-tool
            args: ["5$", "$-x", "$$"]
        """,
    )
    workspace.write("targets.yaml", "targets:\n  g: {kind: gemini}\n")
    assert workspace.run().exit_code == 0
    settings = workspace.home / ".gemini" / "settings.json"
    data = json.loads(settings.read_text())
    data["mcpServers"]["hand"] = {"command": "no-such-tool", "args": ["$HOME/data"]}
    settings.write_text(json.dumps(data))
    servers, trusted = rc.gemini_list(workspace.home, workspace.root, trusted=True)
    assert trusted
    assert servers["tool"]["args"] == "5$ $-x $$"
    assert servers["hand"]["args"] == f"{workspace.home}/data"
