"""Where each client kind's file is, per scope, platform and environment; scope validation.

Paths come from reference/CLIENTS.md and were checked against the real clients where one
runs here (``CLAUDE_CONFIG_DIR``, ``GEMINI_CLI_HOME``, ``CODEX_HOME``, opencode's XDG folder).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler import targets
from reconciler.core.model import TargetSpec
from reconciler.targets import Context
from reconciler.targets.files import FileTarget
from tests.conftest import Workspace, snapshot_tree

HOME = Path("/home/u")
ROOT = Path("/repo")
ROO = "/Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json"


def path_of(
    kind: str,
    *,
    platform: str = "linux",
    environ: dict[str, str] | None = None,
    **options: str,
) -> str:
    spec = TargetSpec(kind=kind, **options)
    context = Context(HOME, platform, ROOT, None, environ or {})
    target = targets.build("t", spec, context)
    assert isinstance(target, FileTarget)
    return str(target.path)


@pytest.mark.parametrize(
    ("kind", "options", "platform", "environ", "expected"),
    [
        ("claude-code", {}, "linux", {}, "/home/u/.claude.json"),
        ("claude-code", {"scope": "local", "project": "/src/app"}, "linux", {},
         "/home/u/.claude.json"),
        ("claude-code", {}, "linux", {"CLAUDE_CONFIG_DIR": "/cfg"}, "/cfg/.claude.json"),
        ("claude-code", {"scope": "project", "project": "app"}, "linux", {},
         "/repo/app/.mcp.json"),
        ("claude-code", {"scope": "project", "project": "~/src/app"}, "darwin", {},
         "/home/u/src/app/.mcp.json"),
        ("cursor", {}, "win32", {}, "/home/u/.cursor/mcp.json"),
        ("cursor", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.cursor/mcp.json"),
        ("vscode", {}, "linux", {}, "/home/u/.config/Code/User/mcp.json"),
        ("vscode", {}, "linux", {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/Code/User/mcp.json"),
        ("vscode", {}, "darwin", {},
         "/home/u/Library/Application Support/Code/User/mcp.json"),
        ("vscode", {}, "win32", {"APPDATA": "/appdata"}, "/appdata/Code/User/mcp.json"),
        ("vscode", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.vscode/mcp.json"),
        ("windsurf", {}, "linux", {}, "/home/u/.codeium/windsurf/mcp_config.json"),
        ("codex", {}, "linux", {}, "/home/u/.codex/config.toml"),
        ("codex", {}, "linux", {"CODEX_HOME": "/codex"}, "/codex/config.toml"),
        ("codex", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.codex/config.toml"),
        ("gemini", {}, "linux", {}, "/home/u/.gemini/settings.json"),
        ("gemini", {}, "linux", {"GEMINI_CLI_HOME": "/g"}, "/g/.gemini/settings.json"),
        ("gemini", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.gemini/settings.json"),
        ("opencode", {}, "linux", {}, "/home/u/.config/opencode/opencode.json"),
        ("opencode", {}, "darwin", {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/opencode/opencode.json"),
        ("opencode", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/opencode.json"),
        ("kiro", {}, "linux", {}, "/home/u/.kiro/settings/mcp.json"),
        ("kiro", {}, "darwin", {}, "/home/u/.kiro/settings/mcp.json"),
        ("kiro", {}, "win32", {}, "/home/u/.kiro/settings/mcp.json"),
        ("kiro", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.kiro/settings/mcp.json"),
        ("roo", {}, "linux", {}, f"/home/u/.config{ROO}"),
        ("roo", {}, "linux", {"XDG_CONFIG_HOME": "/xdg"}, f"/xdg{ROO}"),
        ("roo", {}, "darwin", {}, f"/home/u/Library/Application Support{ROO}"),
        ("roo", {}, "win32", {"APPDATA": "/appdata"}, f"/appdata{ROO}"),
        ("roo", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.roo/mcp.json"),
        ("cline", {}, "linux", {}, "/home/u/.cline/data/settings/cline_mcp_settings.json"),
        ("cline", {}, "darwin", {}, "/home/u/.cline/data/settings/cline_mcp_settings.json"),
        ("cline", {}, "win32", {}, "/home/u/.cline/data/settings/cline_mcp_settings.json"),
        ("lmstudio", {}, "linux", {}, "/home/u/.lmstudio/mcp.json"),
        ("lmstudio", {}, "darwin", {}, "/home/u/.lmstudio/mcp.json"),
        ("lmstudio", {}, "win32", {}, "/home/u/.lmstudio/mcp.json"),
        ("warp", {}, "linux", {}, "/home/u/.warp/.mcp.json"),
        ("warp", {}, "darwin", {}, "/home/u/.warp/.mcp.json"),
        ("warp", {}, "win32", {}, "/home/u/.warp/.mcp.json"),
        ("warp", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.warp/.mcp.json"),
        ("codex", {"path": "~/dotfiles/codex.toml"}, "linux", {"CODEX_HOME": "/codex"},
         "/home/u/dotfiles/codex.toml"),
        ("vscode", {"profile": "-6f3a2b1c"}, "linux", {},
         "/home/u/.config/Code/User/profiles/-6f3a2b1c/mcp.json"),
        ("vscode", {"profile": "-6f3a2b1c"}, "win32", {"APPDATA": "/appdata"},
         "/appdata/Code/User/profiles/-6f3a2b1c/mcp.json"),
        ("vscode-insiders", {}, "linux", {}, "/home/u/.config/Code - Insiders/User/mcp.json"),
        ("vscode-insiders", {}, "darwin", {},
         "/home/u/Library/Application Support/Code - Insiders/User/mcp.json"),
        ("vscode-insiders", {}, "win32", {"APPDATA": "/appdata"},
         "/appdata/Code - Insiders/User/mcp.json"),
        ("vscode-insiders", {"profile": "-1a2b"}, "linux", {},
         "/home/u/.config/Code - Insiders/User/profiles/-1a2b/mcp.json"),
        ("zed", {}, "linux", {}, "/home/u/.config/zed/settings.json"),
        ("zed", {}, "linux", {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/zed/settings.json"),
        ("zed", {}, "darwin", {}, "/home/u/.config/zed/settings.json"),
        ("zed", {}, "win32", {"APPDATA": "/appdata"}, "/appdata/Zed/settings.json"),
        ("zed", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.zed/settings.json"),
        ("crush", {}, "linux", {}, "/home/u/.config/crush/crush.json"),
        ("crush", {}, "darwin", {}, "/home/u/.config/crush/crush.json"),
        ("crush", {}, "win32", {"LOCALAPPDATA": "/local"}, "/local/crush/crush.json"),
        ("crush", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.crush.json"),
        ("goose", {}, "linux", {}, "/home/u/.config/goose/config.yaml"),
        ("goose", {}, "darwin", {}, "/home/u/.config/goose/config.yaml"),
        ("goose", {}, "win32", {"APPDATA": "/appdata"}, "/appdata/Block/goose/config/config.yaml"),
        ("continue", {}, "linux", {}, "/home/u/.continue/config.yaml"),
        ("continue", {}, "win32", {}, "/home/u/.continue/config.yaml"),
        ("continue", {}, "linux", {"CONTINUE_GLOBAL_DIR": "/c"}, "/c/config.yaml"),
        ("continue", {"scope": "project", "project": "/src/app"}, "linux", {},
         "/src/app/.continue/mcpServers/mcp-reconciler.yaml"),
    ],
)  # fmt: skip
def test_default_paths(
    kind: str, options: dict[str, str], platform: str, environ: dict[str, str], expected: str
) -> None:
    assert path_of(kind, platform=platform, environ=environ, **options) == expected


def test_opencode_writes_the_jsonc_file_when_that_is_the_one_there(tmp_path: Path) -> None:
    folder = tmp_path / ".config" / "opencode"
    folder.mkdir(parents=True)
    (folder / "opencode.jsonc").write_text("{}")
    spec = TargetSpec(kind="opencode")
    target = targets.build("t", spec, Context(tmp_path, "linux", ROOT, None, {}))
    assert isinstance(target, FileTarget)
    assert target.path == folder / "opencode.jsonc"


@pytest.mark.parametrize(
    ("options", "current", "legacy"),
    [
        ({}, ".kiro/settings/mcp.json", ".aws/amazonq/mcp.json"),
        ({"scope": "project", "project": "app"}, "app/.kiro/settings/mcp.json",
         "app/.amazonq/mcp.json"),
    ],
)  # fmt: skip
def test_kiro_edits_the_amazon_q_file_only_while_the_new_one_is_absent(
    tmp_path: Path, options: dict[str, str], current: str, legacy: str
) -> None:
    def path() -> Path:
        spec = TargetSpec(kind="kiro", **options)
        target = targets.build("t", spec, Context(tmp_path, "linux", tmp_path, None, {}))
        assert isinstance(target, FileTarget)
        return target.path

    assert path() == tmp_path / current  # neither exists: the new location
    (tmp_path / legacy).parent.mkdir(parents=True)
    (tmp_path / legacy).write_text("{}")
    assert path() == tmp_path / legacy  # Kiro reads the Amazon Q file: edit it there
    (tmp_path / current).parent.mkdir(parents=True)
    (tmp_path / current).write_text("{}")
    assert path() == tmp_path / current  # the new one wins in Kiro, so here too


def test_claude_code_local_scope_keys_the_resolved_project_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    spec = TargetSpec(kind="claude-code", scope="local", project=str(tmp_path / "link"))
    target = targets.build("t", spec, Context(tmp_path, "linux", ROOT, None, {}))
    assert f"[project {real}]" in target.describe()


def test_claude_code_local_scope_keys_the_git_root_around_the_project(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "sub").mkdir()
    spec = TargetSpec(kind="claude-code", scope="local", project=str(tmp_path / "repo/sub"))
    target = targets.build("t", spec, Context(tmp_path, "linux", ROOT, None, {}))
    assert target.describe().endswith(f"[project {(tmp_path / 'repo').resolve()}]")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{kind: windsurf, scope: project, project: /src}", "windsurf has no scope 'project'"),
        ("{kind: vscode, scope: local, project: /src}", "vscode has no scope 'local'"),
        ("{kind: claude-code, scope: local}", "scope 'local' needs 'project:'"),
        ("{kind: codex, scope: project}", "scope 'project' needs 'project:'"),
        ("{kind: gemini, project: /src}", "'project' applies to scope project or local"),
        ("{kind: claude-desktop, project: /src}", "Claude Desktop has one file and no projects"),
        ("{kind: codex, servers: [events]}", "(codex) cannot carry sse server 'events'"),
        ("{kind: opencode, servers: [events]}", "(opencode) cannot carry sse server 'events'"),
        ("{kind: kiro, servers: [events]}", "(kiro) cannot carry sse server 'events'"),
        ("{kind: cline, scope: project, project: /src}", "cline has no scope 'project'"),
        ("{kind: lmstudio, servers: [events]}", "(lmstudio) cannot carry sse server 'events'"),
        ("{kind: warp, servers: [events]}", "(warp) cannot carry sse server 'events'"),
        ("{kind: cline, secrets: reference}", "cannot reference environment variables"),
        ("{kind: lmstudio, secrets: reference}", "cannot reference environment variables"),
        ("{kind: zed, servers: [events]}", "(zed) cannot carry sse server 'events'"),
        ("{kind: zed, secrets: reference}", "cannot reference environment variables"),
        ("{kind: goose, servers: [events]}", "(goose) cannot carry sse server 'events'"),
        ("{kind: goose, scope: project, project: /src}", "goose has no scope 'project'"),
        ("{kind: goose, secrets: reference}", "cannot reference environment variables"),
        (
            "{kind: vscode-insiders, scope: project, project: /src}",
            "vscode-insiders has no scope 'project'",
        ),
        ("{kind: cursor, profile: work}", "cursor has no profiles"),
        (
            "{kind: vscode, scope: project, project: /src, profile: work}",
            "'profile' applies to scope user",
        ),
        ("{kind: vscode, profile: work, path: /x/mcp.json}", "set 'profile' or 'path', not both"),
        ("{kind: vscode, profile: ../../etc}", "is not a profile's id or name"),
        ("{kind: cursr}", "targets.t.kind: invalid value 'cursr' (did you mean 'cursor'?"),
    ],
)
def test_scope_and_transport_rules_fail_validation(
    workspace: Workspace, target: str, message: str
) -> None:
    workspace.write(
        "d.yaml",
        f"""
        servers:
          events: {{url: "http://127.0.0.1:9/sse", transport: sse}}
        targets:
          t: {target}
        """,
    )
    before = snapshot_tree(workspace.home)

    result = workspace.run("validate")

    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "d.yaml:" in result.stderr
    assert snapshot_tree(workspace.home) == before


def test_project_scope_with_an_explicit_path_needs_no_project(workspace: Workspace) -> None:
    workspace.write(
        "d.yaml",
        """
        servers:
          s: {command: x}
        targets:
          t: {kind: claude-code, scope: project, path: app/.mcp.json}
        """,
    )
    assert workspace.run().exit_code == 0
    assert json.loads((workspace.root / "app" / ".mcp.json").read_text()) == {
        "mcpServers": {"s": {"type": "stdio", "command": "x"}}
    }


@pytest.mark.parametrize(
    ("kind", "relative", "content", "error"),
    [
        ("vscode", ".config/Code/User/mcp.json", '{\n  "servers": {,}\n}', "mcp.json:2:15"),
        ("gemini", ".gemini/settings.json", "{\n  // ok\n  \"mcpServers\": [}", "settings.json:3:"),
        ("codex", ".codex/config.toml", '[mcp_servers.x]\ncommand = \n', "config.toml:2:"),
        ("claude-code", ".claude.json", '{\n  // no comments here\n}', ".claude.json:2:3"),
        ("opencode", ".config/opencode/opencode.json", '{"mcp": 1}', "'mcp' is not"),
    ],
)  # fmt: skip
def test_a_malformed_client_file_is_reported_and_never_written(
    workspace: Workspace, kind: str, relative: str, content: str, error: str
) -> None:
    workspace.write(
        "d.yaml",
        f"""
        servers:
          s: {{command: x}}
        targets:
          t: {{kind: {kind}}}
        """,
    )
    path = workspace.home / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    before = snapshot_tree(workspace.home)

    result = workspace.run()

    assert result.exit_code == 3, result.stdout + result.stderr
    assert error in result.stdout + result.stderr
    assert snapshot_tree(workspace.home) == before


def test_crush_edits_the_project_file_that_is_there(tmp_path: Path) -> None:
    def path() -> Path:
        spec = TargetSpec(kind="crush", scope="project", project=str(tmp_path))
        target = targets.build("t", spec, Context(tmp_path, "linux", tmp_path, None, {}))
        assert isinstance(target, FileTarget)
        return target.path

    assert path() == tmp_path / ".crush.json"  # none yet: the one Crush reads first
    (tmp_path / "crush.json").write_text("{}")
    assert path() == tmp_path / "crush.json"
    (tmp_path / ".crush.json").write_text("{}")
    assert path() == tmp_path / ".crush.json"  # both: the one Crush reads first


def test_vscode_profile_by_name_is_the_folder_vscode_lists_for_it(tmp_path: Path) -> None:
    user = tmp_path / ".config" / "Code" / "User"
    (user / "globalStorage").mkdir(parents=True)
    (user / "globalStorage" / "storage.json").write_text(
        json.dumps({"userDataProfiles": [{"location": "-5e1d9c", "name": "Work"}]})
    )
    context = Context(tmp_path, "linux", ROOT, None, {})
    by_name = targets.build("t", TargetSpec(kind="vscode", profile="Work"), context)
    by_id = targets.build("t", TargetSpec(kind="vscode", profile="-5e1d9c"), context)
    assert isinstance(by_name, FileTarget) and isinstance(by_id, FileTarget)
    assert by_name.path == by_id.path == user / "profiles" / "-5e1d9c" / "mcp.json"
