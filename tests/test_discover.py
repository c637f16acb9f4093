"""Every MCP config on the machine: ``reconcile discover`` and the machine-wide ``audit``.

A sandbox HOME holds six clients with servers (Claude Desktop, Claude Code, Cursor, Gemini
CLI, Windsurf, Codex) plus the project files of the current git repository (Claude Code's
``.mcp.json``, VS Code's ``.vscode/mcp.json``). Only two clients are declared as targets.
Inline secrets of each kind sit in the undeclared ones (and one in a declared one); each is a
fresh canary that must appear in no output.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import targets
from reconciler.app.audit import AuditFinding, AuditReport, render_text
from reconciler.core.model import TargetSpec
from reconciler.core.plan import Action
from reconciler.targets import Context, Write
from reconciler.targets.files import FileTarget
from tests.conftest import Result, Workspace, snapshot_tree
from tests.gitrepo import commit_all, git, isolate_git


def _alnum(n: int) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass
class Machine:
    ws: Workspace
    canaries: dict[str, str]  # where -> the secret value planted there
    paths: dict[str, Path]

    def run(self, *args: str) -> Result:
        return self.ws.run(*args)

    def assert_no_canary(self, *results: Result) -> None:
        for result in results:
            for where, value in self.canaries.items():
                assert value not in result.stdout, where
                assert value not in result.stderr, where


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def machine(workspace: Workspace) -> Machine:
    subprocess.run(["git", "init", "-q", str(workspace.root)], check=True)
    home = workspace.home
    c = {
        "desktop": "ghp_" + _alnum(36),
        "cursor": "ghp_" + _alnum(36),
        "gemini": _alnum(24),  # random-looking only: found by its query key's name
        "windsurf": _alnum(32),
        "codex": "sk-ant-" + _alnum(30),
        "project": _alnum(20),  # a URL password
        "claude": "glpat-" + _alnum(24),
    }
    p = {
        "desktop": home / ".config" / "Claude" / "claude_desktop_config.json",
        "claude": home / ".claude.json",
        "cursor": home / ".cursor" / "mcp.json",
        "gemini": home / ".gemini" / "settings.json",
        "windsurf": home / ".codeium" / "windsurf" / "mcp_config.json",
        "codex": home / ".codex" / "config.toml",
        "project": workspace.root / ".mcp.json",
        "vscode": workspace.root / ".vscode" / "mcp.json",
    }

    def servers(entries: dict[str, object]) -> str:
        return json.dumps({"mcpServers": entries}, indent=2)

    _write(
        p["desktop"],
        servers(
            {
                "time": {"command": "uvx", "args": ["mcp-server-time"]},
                "pasted": {"command": "gh-mcp", "env": {"GITHUB_TOKEN": c["desktop"]}},
            }
        ),
    )
    _write(
        p["claude"],
        servers({"gitlab": {"type": "stdio", "command": "gl", "env": {"TOKEN": c["claude"]}}}),
    )
    _write(
        p["cursor"],
        servers({"github": {"command": "gh-mcp", "env": {"GITHUB_TOKEN": c["cursor"]}}}),
    )
    _write(
        p["gemini"],
        servers({"search": {"httpUrl": f"https://search.example/mcp?api_key={c['gemini']}"}}),
    )
    _write(
        p["windsurf"],
        servers(
            {
                "docs": {
                    "serverUrl": "https://docs.example/mcp",
                    "headers": {"Authorization": f"Bearer {c['windsurf']}"},
                }
            }
        ),
    )
    _write(
        p["codex"],
        f'[mcp_servers.claude]\ncommand = "cl"\n\n[mcp_servers.claude.env]\n'
        f'ANTHROPIC_API_KEY = "{c["codex"]}"\n',
    )
    _write(
        p["project"],
        servers({"db": {"command": "pg-mcp", "args": [f"postgres://app:{c['project']}@db/app"]}}),
    )
    _write(
        p["vscode"],
        json.dumps({"servers": {"clean": {"type": "stdio", "command": "clean-mcp"}}}),
    )
    workspace.write(
        "servers.yaml",
        """
        servers:
          time:
            command: uvx
            args: [mcp-server-time]
        """,
    )
    workspace.write(
        "targets.yaml",
        """
        targets:
          desktop:
            kind: claude-desktop
          code:
            kind: claude-code
            servers: [time]
        """,
    )
    return Machine(workspace, c, p)


# -- discover --------------------------------------------------------------------------------


def test_discover_lists_every_config_with_its_servers_and_declaring_target(
    machine: Machine,
) -> None:
    before = snapshot_tree(machine.ws.home), snapshot_tree(machine.ws.root)
    result = machine.run("discover", "--json")
    assert result.exit_code == 0, result.stderr
    configs = {(c["kind"], c["scope"]): c for c in result.json["configs"]}
    assert set(configs) == {
        ("claude-desktop", None),
        ("claude-code", "user"),
        ("claude-code", "project"),
        ("cursor", "user"),
        ("gemini", "user"),
        ("windsurf", "user"),
        ("codex", "user"),
        ("vscode", "project"),
    }
    p = machine.paths
    assert configs[("claude-desktop", None)]["path"] == str(p["desktop"])
    assert configs[("claude-desktop", None)]["servers"] == ["pasted", "time"]
    assert configs[("claude-desktop", None)]["declared"] == "desktop"
    assert configs[("claude-code", "user")]["declared"] == "code"
    assert configs[("claude-code", "user")]["servers"] == ["gitlab"]
    assert configs[("claude-code", "project")]["path"] == str(p["project"])
    assert configs[("claude-code", "project")]["declared"] is None
    assert configs[("claude-code", "project")]["project"] == str(machine.ws.root)
    assert configs[("cursor", "user")]["servers"] == ["github"]
    assert configs[("cursor", "user")]["name"] == f"cursor:{p['cursor']}"
    assert configs[("gemini", "user")]["servers"] == ["search"]
    assert configs[("windsurf", "user")]["servers"] == ["docs"]
    assert configs[("codex", "user")]["servers"] == ["claude"]
    assert configs[("vscode", "project")]["servers"] == ["clean"]
    undeclared = [c for c in configs.values() if c["declared"] is None]
    assert len(undeclared) == 6
    # Read only: nothing created or touched, not even the state directory.
    assert (snapshot_tree(machine.ws.home), snapshot_tree(machine.ws.root)) == before
    assert not machine.ws.state_dir.exists()
    machine.assert_no_canary(result)


def test_discover_text_and_a_declared_target_with_a_moved_path(machine: Machine) -> None:
    moved = _write(machine.ws.home / "elsewhere" / "cursor.json", '{"mcpServers": {}}')
    machine.ws.write(
        "more.yaml",
        f"""
        targets:
          work-cursor:
            kind: cursor
            path: {machine.paths["cursor"]}
          other:
            kind: cursor
            path: {moved}
        """,
    )
    result = machine.run("discover")
    assert result.exit_code == 0, result.stderr
    line = next(row for row in result.stdout.splitlines() if row.startswith("cursor "))
    assert str(machine.paths["cursor"]) in line and "github" in line
    assert line.rstrip().endswith("work-cursor")
    assert str(moved) not in result.stdout  # not a client's own location
    assert "8 config(s), 5 not declared as a target" in result.stdout
    machine.assert_no_canary(result)


def test_discover_outside_a_git_repository_has_no_project_files(
    machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    result = machine.run("discover", "--json")
    scopes = {c["scope"] for c in result.json["configs"]}
    assert "project" not in scopes
    assert len(result.json["configs"]) == 6


def test_discover_finds_claude_code_local_scope_of_this_repository(machine: Machine) -> None:
    data = json.loads(machine.paths["claude"].read_text())
    data["projects"] = {str(machine.ws.root): {"mcpServers": {"local-one": {"command": "x"}}}}
    machine.paths["claude"].write_text(json.dumps(data))
    configs = machine.run("discover", "--json").json["configs"]
    local = [c for c in configs if c["scope"] == "local"]
    assert [c["servers"] for c in local] == [["local-one"]]
    assert local[0]["declared"] is None and local[0]["name"].endswith(f"#{machine.ws.root}")


def test_discover_reports_an_unreadable_config_and_goes_on(machine: Machine) -> None:
    machine.paths["cursor"].write_text("{ not json")
    result = machine.run("discover", "--json")
    assert result.exit_code == 0
    cursor = next(c for c in result.json["configs"] if c["kind"] == "cursor")
    assert "invalid JSON" in cursor["error"] and cursor["servers"] == []
    assert len(result.json["configs"]) == 8


# -- the machine-wide audit ----------------------------------------------------------------


def test_audit_finds_every_inline_secret_declared_or_not_and_prints_none(
    machine: Machine,
) -> None:
    before = snapshot_tree(machine.ws.home)
    text = machine.run("audit")
    data = machine.run("audit", "--json")
    assert text.exit_code == 1 and data.exit_code == 1, text.stdout + text.stderr
    p = machine.paths
    found = {(f["target"], f["server"], f["field"], f["kind"]) for f in data.json["findings"]}
    assert found == {
        ("desktop", "pasted", "/env/GITHUB_TOKEN", "github-token"),
        ("code", "gitlab", "/env/TOKEN", "gitlab-token"),
        (f"cursor:{p['cursor']}", "github", "/env/GITHUB_TOKEN", "github-token"),
        (f"gemini:{p['gemini']}", "search", "/url", "url-query-secret"),
        (f"windsurf:{p['windsurf']}", "docs", "/headers/Authorization", "bearer-token"),
        (f"codex:{p['codex']}", "claude", "/env/ANTHROPIC_API_KEY", "anthropic-key"),
        (f"claude-code:{p['project']}", "db", "/args/0", "url-password"),
    }
    assert all(f["fingerprint"].startswith("hmac-sha256:") for f in data.json["findings"])
    assert set(data.json["undeclared"]) == {
        f"{kind}:{p[key]}"
        for kind, key in (
            ("cursor", "cursor"),
            ("gemini", "gemini"),
            ("windsurf", "windsurf"),
            ("codex", "codex"),
            ("claude-code", "project"),
            ("vscode", "vscode"),
        )
    }
    assert f"cursor:{p['cursor']}" in text.stdout and f"gemini:{p['gemini']}" in text.stdout
    assert "7 inline secret(s) in 7 target(s)" in text.stdout
    assert "not declared as targets" in text.stdout
    assert "reconcile import --target desktop --server pasted" in text.stdout
    machine.assert_no_canary(text, data)
    assert snapshot_tree(machine.ws.home) == before


def test_audit_declared_keeps_to_the_declared_targets(machine: Machine) -> None:
    result = machine.run("audit", "--declared", "--json")
    assert result.exit_code == 1
    assert {f["target"] for f in result.json["findings"]} == {"desktop", "code"}
    assert result.json["undeclared"] == []
    assert result.json["audited"] == ["desktop", "code"]
    machine.assert_no_canary(result)


def test_audit_target_names_an_undeclared_kind_or_config(machine: Machine) -> None:
    by_kind = machine.run("audit", "--target", "gemini", "--json")
    assert by_kind.exit_code == 1, by_kind.stderr
    assert [f["target"] for f in by_kind.json["findings"]] == [f"gemini:{machine.paths['gemini']}"]
    by_path = machine.run("audit", "--target", f"cursor:{machine.paths['cursor']}")
    assert by_path.exit_code == 1 and "github-token" in by_path.stdout
    unknown = machine.run("audit", "--target", "nosuch")
    assert unknown.exit_code == 2 and "unknown target: nosuch" in unknown.stderr
    declared_only = machine.run("audit", "--declared", "--target", "gemini")
    assert declared_only.exit_code == 2
    machine.assert_no_canary(by_kind, by_path, unknown)


def test_audit_of_a_clean_machine_exits_0(workspace: Workspace) -> None:
    _write(
        workspace.home / ".cursor" / "mcp.json",
        json.dumps({"mcpServers": {"gh": {"command": "x", "env": {"T": "${env:GH}"}}}}),
    )
    _write(
        workspace.home / ".gemini" / "settings.json",
        json.dumps({"mcpServers": {"s": {"httpUrl": "https://h/mcp?api_key=$KEY&page=2"}}}),
    )
    result = workspace.run("audit")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "no inline secret found in 2 config(s) (2 not declared as targets)" in result.stdout


def test_audit_file_modes_are_the_checked_ones(machine: Machine) -> None:
    machine.paths["cursor"].chmod(0o644)
    machine.paths["gemini"].chmod(0o600)
    modes = machine.run("audit", "--json").json["file_modes"]
    assert modes[f"cursor:{machine.paths['cursor']}"] == "0644"
    assert modes[f"gemini:{machine.paths['gemini']}"] == "0600"


def _finding(target: str) -> AuditFinding:
    return AuditFinding(target, "github", "/env/TOKEN", "github-token", "hmac-sha256:ab12", True)


def test_audit_states_only_file_modes_it_checked() -> None:
    wide = AuditReport((_finding("desktop"),), audited=("desktop",), modes=(("desktop", 0o644),))
    text = render_text(wide)
    assert "file mode checked: desktop 0644 (readable by others)" in text
    assert "0600" not in text
    tight = render_text(
        AuditReport((_finding("desktop"),), audited=("desktop",), modes=(("desktop", 0o600),))
    )
    assert "file mode checked: desktop 0600" in tight and "readable" not in tight
    jungle = render_text(AuditReport((_finding("jungle"),), audited=("jungle",)))
    assert "file mode" not in jungle and "0600" not in jungle


# -- import --discover ---------------------------------------------------------------------


@pytest.fixture
def committed(machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    isolate_git(tmp_path, monkeypatch)
    commit_all(machine.ws.root)
    return machine


def test_import_discover_bootstraps_desired_state_without_a_secret(committed: Machine) -> None:
    m = committed
    # The same server in two clients: one declaration, the difference named.
    cursor = json.loads(m.paths["cursor"].read_text())
    windsurf = json.loads(m.paths["windsurf"].read_text())
    windsurf["mcpServers"]["github"] = {**cursor["mcpServers"]["github"], "args": ["--ro"]}
    m.paths["windsurf"].write_text(json.dumps(windsurf))
    result = m.run("import", "--discover", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    data = result.json
    # time is declared already; pasted is on the declared desktop target
    assert sorted(data["servers"]) == [
        "claude", "clean", "db", "docs", "github", "gitlab", "pasted", "search",
    ]  # fmt: skip
    assert any("'github' differs between" in n and "/args" in n for n in data["notes"])
    desired = m.ws.desired
    text = "\n".join(p.read_text() for p in sorted(desired.rglob("*.yaml")))
    assert text.count("  github:\n") == 1
    for kind in ("cursor", "gemini", "windsurf", "codex", "claude-code-project", "vscode-project"):
        assert f"  {kind}:\n" in text, kind
    assert "api_key=${env:SEARCH_API_KEY}" in text
    assert "postgres://app:${env:DB_PASSWORD}@db/app" in text
    history = git(m.ws.root, "log", "-p", "--all", "--", "desired")
    m.assert_no_canary(result)
    for where, value in m.canaries.items():
        assert value not in text, where
        assert value not in history, where
    assert m.run("validate").exit_code == 0
    # Every config is now declared; a second import has nothing new.
    configs = m.run("discover", "--json").json["configs"]
    assert all(c["declared"] is not None for c in configs), configs
    again = m.run("import", "--discover", "--json")
    assert again.exit_code == 0 and again.json["servers"] == [] and again.json["commit"] is None


def test_import_discover_refuses_other_options(committed: Machine) -> None:
    result = committed.run("import", "--discover", "--target", "cursor")
    assert result.exit_code == 2 and "--discover" in result.stderr
    assert committed.run("import").exit_code == 2


def test_discover_and_audit_need_no_desired_directory(machine: Machine) -> None:
    for path in machine.ws.desired.iterdir():
        path.unlink()
    machine.ws.desired.rmdir()
    found = machine.run("discover", "--json")
    assert found.exit_code == 0, found.stderr
    assert len(found.json["configs"]) == 8
    assert all(c["declared"] is None for c in found.json["configs"])
    audited = machine.run("audit", "--json")
    assert audited.exit_code == 1, audited.stderr
    assert len(audited.json["findings"]) == 7
    assert "reconcile import --discover" in machine.run("audit").stdout
    assert machine.run("audit", "--declared").exit_code == 2  # nothing is declared
    machine.assert_no_canary(found, audited)


# -- every client kind ----------------------------------------------------------------------

CLIENT_KINDS = sorted(set(targets.FAMILIES) - {targets.MCPJUNGLE, targets.MIRROR})
USER_FILES = [
    *({"kind": kind} for kind in CLIENT_KINDS),
    {"kind": "vscode", "profile": "-6f3a2b1c"},  # a profile's own file
]


@pytest.mark.parametrize("options", USER_FILES, ids=lambda o: "-".join(o.values()))
def test_discover_and_audit_know_every_client_kind(
    workspace: Workspace, options: dict[str, str]
) -> None:
    canary = "ghp_" + _alnum(36)
    spec = TargetSpec(**options, servers=())
    context = Context(workspace.home, sys.platform, workspace.root, workspace.root / "locks")
    target = targets.build("seed", spec, context)
    assert isinstance(target, FileTarget)
    pasted = {"transport": "stdio", "command": "gh-mcp", "env": {"GITHUB_TOKEN": canary}}
    if target.capability.enabled_switch:
        pasted["enabled"] = True
    target.apply(target.observe(), [Write("pasted", pasted, Action.CREATE, sensitive=True)])
    name = f"{options['kind']}:{target.path}"

    found = workspace.run("discover", "--json")
    audit = workspace.run("audit", "--json")

    assert found.exit_code == 0, found.stderr
    (config,) = [c for c in found.json["configs"] if c["name"] == name]
    assert config["servers"] == ["pasted"]
    assert (config["kind"], config["declared"], config["error"]) == (options["kind"], None, None)
    assert audit.exit_code == 1, audit.stdout + audit.stderr
    findings = {(f["target"], f["server"], f["field"]) for f in audit.json["findings"]}
    assert findings == {(name, "pasted", "/env/GITHUB_TOKEN")}
    assert name in audit.json["undeclared"]
    for result in (found, audit):
        assert canary not in result.stdout + result.stderr
