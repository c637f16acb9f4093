"""The walking skeleton's acceptance scenarios on a real Claude Desktop file in a temp HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Workspace, snapshot_tree
from tests.jsonschema1 import assert_report_schema

SERVERS = """
servers:
  time:
    command: uvx
    args: [mcp-server-time, --local-timezone=UTC]
    env: {TZ: UTC}
  fetch:
    command: uvx
    args: [mcp-server-fetch]
  filesystem:
    command: npx
    args: [-y, "@modelcontextprotocol/server-filesystem", /srv/data]
"""

TARGET = """
targets:
  desktop:
    kind: claude-desktop
    on_drift: {on_drift}
    prune: {prune}
"""

EXISTING = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {"keep-me": {"command": "keep", "args": ["--x"], "alwaysAllow": ["a"]}},
    "preferences": {"theme": "dark"},
}


def setup(ws: Workspace, *, on_drift: str = "sync", prune: bool = True) -> Path:
    ws.write("servers.yaml", SERVERS)
    ws.write("targets.yaml", TARGET.format(on_drift=on_drift, prune=str(prune).lower()))
    config = ws.desktop_config
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(EXISTING, indent=4) + "\n")
    return config


def servers_in(config: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(config.read_text())["mcpServers"]
    return data


def test_dry_run_lists_creates_and_writes_nothing(workspace: Workspace) -> None:
    config = setup(workspace)
    before = snapshot_tree(workspace.home)

    result = workspace.run("--dry-run")

    assert result.exit_code == 1
    assert result.stdout.count("create, origin new") == 3
    assert snapshot_tree(workspace.home) == before
    assert not workspace.state_dir.exists()
    report = workspace.run("--dry-run", "--json").json
    assert_report_schema(report)
    assert report["exit_code"] == 1 and report["dry_run"] is True
    (target,) = report["targets"]
    assert target["status"] == "drifted"
    assert [(c["server"], c["action"], c["origin"]) for c in target["changes"]] == [
        ("time", "create", "new"),
        ("fetch", "create", "new"),
        ("filesystem", "create", "new"),
    ]
    assert target["unmanaged"] == ["keep-me"]
    assert config.read_bytes() == before[str(config.relative_to(workspace.home))][0]


def test_apply_merges_and_keeps_everything_else(workspace: Workspace) -> None:
    config = setup(workspace)

    result = workspace.run("--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert_report_schema(result.json)
    data = json.loads(config.read_text())
    assert list(data) == ["globalShortcut", "mcpServers", "preferences"]
    assert data["globalShortcut"] == EXISTING["globalShortcut"]
    assert data["preferences"] == EXISTING["preferences"]
    assert list(data["mcpServers"]) == ["keep-me", "time", "fetch", "filesystem"]
    assert data["mcpServers"]["keep-me"] == EXISTING["mcpServers"]["keep-me"]
    assert data["mcpServers"]["time"] == {
        "command": "uvx",
        "args": ["mcp-server-time", "--local-timezone=UTC"],
        "env": {"TZ": "UTC"},
    }
    assert config.read_text().startswith('{\n    "globalShortcut"'), "indentation kept"
    assert config.read_text().endswith("}\n")


def test_second_pass_is_a_noop_and_does_not_rewrite(workspace: Workspace) -> None:
    config = setup(workspace)
    assert workspace.run().exit_code == 0
    mtime = config.stat().st_mtime_ns
    content = config.read_bytes()

    second = workspace.run("--json")

    assert second.exit_code == 0
    assert second.json["targets"][0]["changes"] == []
    assert second.json["targets"][0]["status"] == "in_sync"
    assert config.stat().st_mtime_ns == mtime
    assert config.read_bytes() == content
    assert workspace.run("--dry-run").exit_code == 0


def hand_edit_args(config: Path) -> None:
    data = json.loads(config.read_text())
    data["mcpServers"]["fetch"]["args"] = ["mcp-server-fetch", "--ignore-robots-txt"]
    config.write_text(json.dumps(data, indent=4) + "\n")


def test_hand_edit_is_live_drift_and_sync_reverts_it(workspace: Workspace) -> None:
    config = setup(workspace)
    assert workspace.run().exit_code == 0
    hand_edit_args(config)

    dry = workspace.run("--dry-run", "--json")
    assert dry.exit_code == 1
    assert_report_schema(dry.json)
    (change,) = dry.json["targets"][0]["changes"]
    assert (change["server"], change["action"], change["origin"]) == ("fetch", "update", "live")
    assert change["paths"] == ["/args/1"]
    text = workspace.run("--dry-run").stdout
    assert '~ /args/1: "--ignore-robots-txt" -> (absent)' in text

    assert workspace.run().exit_code == 0
    assert servers_in(config)["fetch"]["args"] == ["mcp-server-fetch"]


def test_hand_edit_with_on_drift_report_is_left_and_exits_1(workspace: Workspace) -> None:
    config = setup(workspace, on_drift="report")
    assert workspace.run().exit_code == 0
    hand_edit_args(config)
    edited = config.read_bytes()

    result = workspace.run("--json")

    assert result.exit_code == 1
    assert_report_schema(result.json)
    (change,) = result.json["targets"][0]["changes"]
    assert change["origin"] == "live" and change["applied"] is False
    assert config.read_bytes() == edited
    assert workspace.run().exit_code == 1, "still drift on the next pass"


def test_desired_change_is_applied_even_under_report(workspace: Workspace) -> None:
    config = setup(workspace, on_drift="report")
    assert workspace.run().exit_code == 0
    workspace.write("servers.yaml", SERVERS.replace("mcp-server-fetch]", "mcp-server-fetch, -v]"))

    dry = workspace.run("--dry-run", "--json").json
    assert [c["origin"] for c in dry["targets"][0]["changes"]] == ["desired"]
    assert workspace.run().exit_code == 0
    assert servers_in(config)["fetch"]["args"] == ["mcp-server-fetch", "-v"]


@pytest.mark.parametrize("prune", [True, False])
def test_server_removed_from_desired(workspace: Workspace, prune: bool) -> None:
    config = setup(workspace, prune=prune)
    assert workspace.run().exit_code == 0
    workspace.write("servers.yaml", SERVERS.split("  filesystem:")[0])

    result = workspace.run("--json")

    assert_report_schema(result.json)
    target = result.json["targets"][0]
    if prune:
        assert result.exit_code == 0
        assert [(c["server"], c["action"]) for c in target["changes"]] == [("filesystem", "delete")]
        assert "filesystem" not in servers_in(config)
    else:
        assert result.exit_code == 0
        assert target["changes"] == []
        assert target["orphaned"] == ["filesystem"]
        assert "filesystem" in servers_in(config)
        assert "set prune: true to delete" in workspace.run().stdout
    assert "keep-me" in servers_in(config), "unmanaged entries are never pruned"


def test_exclusive_target_deletes_unmanaged_entries(workspace: Workspace) -> None:
    config = setup(workspace)
    workspace.write(
        "targets.yaml", TARGET.format(on_drift="sync", prune="true") + "    exclusive: true\n"
    )
    dry = workspace.run("--dry-run", "--json").json
    assert ("keep-me", "delete", "live") in [
        (c["server"], c["action"], c["origin"]) for c in dry["targets"][0]["changes"]
    ]
    assert workspace.run().exit_code == 0
    assert sorted(servers_in(config)) == ["fetch", "filesystem", "time"]


def test_disabled_server_is_absent_from_a_client_without_a_switch(workspace: Workspace) -> None:
    config = setup(workspace)
    assert workspace.run().exit_code == 0
    workspace.write(
        "servers.yaml",
        SERVERS.replace(
            "    args: [mcp-server-fetch]", "    args: [mcp-server-fetch]\n    enabled: false"
        ),
    )
    dry = workspace.run("--dry-run", "--json").json
    assert [(c["server"], c["action"]) for c in dry["targets"][0]["changes"]] == [
        ("fetch", "disable")
    ]
    assert workspace.run().exit_code == 0
    assert "fetch" not in servers_in(config)
    assert workspace.run("--dry-run").exit_code == 0


def test_selection_by_target_and_server(workspace: Workspace) -> None:
    setup(workspace)
    result = workspace.run("--dry-run", "--json", "--server", "time")
    assert [c["server"] for c in result.json["targets"][0]["changes"]] == ["time"]
    assert result.json["targets"][0]["unmanaged"] == []
    unknown = workspace.run("--dry-run", "--target", "nope")
    assert unknown.exit_code == 2
    assert "unknown target: nope" in unknown.stderr


def test_new_file_is_created_private(workspace: Workspace) -> None:
    workspace.write("servers.yaml", SERVERS)
    workspace.write("targets.yaml", TARGET.format(on_drift="sync", prune="false"))
    assert workspace.run().exit_code == 0
    assert workspace.desktop_config.stat().st_mode & 0o777 == 0o600
    assert sorted(servers_in(workspace.desktop_config)) == ["fetch", "filesystem", "time"]


def test_symlinked_config_is_written_through(workspace: Workspace, tmp_path: Path) -> None:
    setup(workspace)
    real = tmp_path / "dotfiles" / "claude.json"
    real.parent.mkdir()
    workspace.desktop_config.rename(real)
    workspace.desktop_config.symlink_to(real)
    real.chmod(0o640)

    assert workspace.run().exit_code == 0

    assert workspace.desktop_config.is_symlink()
    assert "time" in servers_in(real)
    assert real.stat().st_mode & 0o777 == 0o640


def test_status_shows_matrix_and_last_pass(workspace: Workspace) -> None:
    setup(workspace)
    before = workspace.run("status")
    assert before.exit_code == 1
    assert "missing" in before.stdout and "last applying pass: none recorded" in before.stdout
    assert not workspace.state_dir.exists(), "status writes nothing"
    workspace.run()
    after = workspace.run("status", "--json")
    assert after.exit_code == 0
    assert after.json["servers"]["time"] == {"desktop": "in_sync"}
    assert after.json["unmanaged"] == {"desktop": ["keep-me"]}
    assert after.json["last_pass"]["exit_code"] == 0


def test_optional_target_failure_is_a_warning(workspace: Workspace) -> None:
    config = setup(workspace)
    config.write_text("{broken")
    workspace.write(
        "targets.yaml", TARGET.format(on_drift="sync", prune="true") + "    optional: true\n"
    )
    result = workspace.run("--json")
    assert result.exit_code == 0
    assert_report_schema(result.json)
    (degraded,) = result.json["degraded"]
    assert degraded["required"] is False and degraded["phase"] == "observe"
    assert config.read_text() == "{broken"


@pytest.mark.parametrize(
    ("create", "dry_status", "dry_note", "applied_note", "exists"),
    [
        ("", "drifted", "would create ", "created ", True),
        ("create: true", "drifted", "would create ", "created ", True),
        ("create: false", "absent", "skipped (create: false)", "skipped (create: false)", False),
    ],
)
def test_a_missing_client_file_is_created_and_said_or_skipped_as_absent(
    workspace: Workspace,
    create: str,
    dry_status: str,
    dry_note: str,
    applied_note: str,
    exists: bool,
) -> None:
    workspace.write(
        "desired.yaml",
        f"""
        servers:
          time: {{command: uvx}}
        targets:
          desktop:
            kind: claude-desktop
            {create}
        """,
    )
    assert not workspace.desktop_config.exists()
    dry = workspace.run("--dry-run", "--json")
    (target,) = dry.json["targets"]
    assert target["status"] == dry_status
    assert any(dry_note in n for n in target["notes"]), target["notes"]
    applied = workspace.run()
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    assert applied_note in applied.stdout
    if exists:
        assert f"created {workspace.desktop_config}" in applied.stdout
    assert workspace.desktop_config.exists() is exists
    if not exists:
        assert "absent" in applied.stdout
