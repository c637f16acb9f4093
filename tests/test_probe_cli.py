"""``reconcile probe`` as a user runs it: exit codes by requiredness, live entries, JSON.

The servers are the small SDK servers in tests/servers and the real ``mcp-server-time``;
the probe package's own behaviour (phases, bounds, reaping) is tested in test_probe_*.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import Workspace

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mcp_server_time") is None,
    reason="mcp-server-time is not installed: run .ci/install-servers",
)

PY = sys.executable


def _desired(ws: Workspace, *, required: bool, marker: Path) -> None:
    ws.write(
        "servers.yaml",
        f"""
        servers:
          time:
            command: {PY}
            args: [-m, mcp_server_time, --local-timezone=UTC]
          broken:
            command: {PY}
            args: [-c, "open({str(marker)!r}, 'w').close(); raise SystemExit(4)"]
            required: {"true" if required else "false"}
        targets:
          desk:
            kind: claude-desktop
            path: {ws.home}/desk.json
        """,
    )


@pytest.mark.parametrize(("required", "code"), [(True, 3), (False, 0)])
def test_a_failing_server_fails_the_run_only_when_required(
    workspace: Workspace, tmp_path: Path, required: bool, code: int
) -> None:
    _desired(workspace, required=required, marker=tmp_path / "started")
    result = workspace.run("probe", "--timeout", "20")
    assert result.exit_code == code, result.stdout + result.stderr
    assert ("error: broken" if required else "warning: broken") in result.stdout
    assert "time " in result.stdout and " up " in result.stdout

    data = workspace.run("probe", "--timeout", "20", "--json").json
    assert data["exit_code"] == code
    (degraded,) = data["degraded"]
    assert degraded["server"] == "broken" and degraded["required"] is required
    assert degraded["phase"] in ("spawn", "connect", "initialize")
    (up,) = [s for s in data["servers"] if s["server"] == "time"]
    assert up["status"] == "up" and up["tool_count"] == 2


def test_probing_happens_only_when_asked(workspace: Workspace, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    _desired(workspace, required=True, marker=marker)
    for args in (("validate",), ("--dry-run",), ("status",)):
        workspace.run(*args)
    assert not marker.exists(), "validate, a dry run and status never start a server"
    workspace.run("probe", "--server", "broken", "--timeout", "20")
    assert marker.exists()


def test_target_probes_the_live_entry(workspace: Workspace, tmp_path: Path) -> None:
    _desired(workspace, required=False, marker=tmp_path / "started")
    missing = workspace.run("probe", "--target", "desk", "--server", "time", "--json").json
    assert missing["degraded"][0]["target"] == "desk"
    assert "holds no entry" in missing["degraded"][0]["error"]
    assert workspace.run().exit_code == 0  # sync: the desktop file now holds both servers
    live = workspace.run("probe", "--target", "desk", "--server", "time", "--json").json
    (found,) = live["servers"]
    assert (found["server"], found["target"], found["status"]) == ("time", "desk", "up")


def test_unknown_server_is_an_invalid_invocation(workspace: Workspace, tmp_path: Path) -> None:
    _desired(workspace, required=False, marker=tmp_path / "started")
    result = workspace.run("probe", "--server", "nope")
    assert result.exit_code == 2
    assert "unknown server: nope" in result.stderr
