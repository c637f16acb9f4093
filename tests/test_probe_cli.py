"""``reconcile probe`` as a user runs it: exit codes by requiredness, live entries, JSON.

The servers are the small SDK servers in tests/servers and the real ``mcp-server-time``;
the probe package's own behaviour (phases, bounds, reaping) is tested in test_probe_*.py.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

from reconciler.app.probe import LiveProgress, progress_wanted
from reconciler.probe import ProbeResult
from tests.conftest import Workspace
from tests.jsonschema1 import assert_report_schema

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


# -- reconcile --probe: probing what a pass holds ---------------------------------------------


@pytest.mark.parametrize(("required", "code"), [(True, 3), (False, 0)])
def test_a_pass_with_probe_adds_the_failures_to_its_degraded_list(
    workspace: Workspace, tmp_path: Path, required: bool, code: int
) -> None:
    marker = tmp_path / "started"
    _desired(workspace, required=required, marker=marker)
    result = workspace.run("--probe", "--json")
    assert result.exit_code == code, result.stdout + result.stderr
    assert marker.exists()
    assert_report_schema(result.json)
    (degraded,) = result.json["degraded"]
    assert degraded["server"] == "broken" and degraded["required"] is required
    assert degraded["target"] is None and degraded["phase"] in ("spawn", "connect", "initialize")
    probed = {s["server"]: s["status"] for s in result.json["probe"]["servers"]}
    assert probed == {"time": "up", "broken": "down"}
    status = json.loads((workspace.state_dir / "status.json").read_text())
    assert status["exit_code"] == code  # the pass's status file holds what the probe found
    assert [d["server"] for d in status["degraded"]] == ["broken"]
    text = workspace.run("--probe")
    assert text.exit_code == code
    level = "error" if required else "warning"
    assert f"{level}: probe of broken: " in text.stdout
    assert "time " in text.stdout and " up " in text.stdout  # the probe table


def test_probe_is_never_done_in_a_dry_run(workspace: Workspace, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    _desired(workspace, required=True, marker=marker)
    result = workspace.run("--dry-run", "--probe")
    assert result.exit_code == 2
    assert "never done in a dry run" in result.stderr
    assert not marker.exists()


def test_probe_skips_servers_the_pass_does_not_hold(workspace: Workspace, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    _desired(workspace, required=True, marker=marker)
    result = workspace.run("--probe", "--server", "time", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert [s["server"] for s in result.json["probe"]["servers"]] == ["time"]
    assert not marker.exists()


# -- live progress: when it is shown ----------------------------------------------------------


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "json", "quiet", "shown"),
    [
        (True, False, False, True),
        (False, False, False, False),  # piped: no progress
        (True, True, False, False),  # --json
        (True, False, True, False),  # -q
    ],
)
def test_live_progress_only_for_a_person_at_a_terminal(
    tty: bool, json: bool, quiet: bool, shown: bool
) -> None:
    assert progress_wanted(json=json, quiet=quiet, stdout=_Stream(tty)) is shown


def test_live_progress_counts_and_prints_nothing_when_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with LiveProgress(False, 2) as progress:
        progress(ProbeResult("a[bold]", None, True, "stdio"))
        progress(ProbeResult("b", None, False, "stdio"))
    assert progress.done == 2
    assert capsys.readouterr() == ("", "")


def test_live_progress_keeps_markup_in_names_as_text() -> None:
    with LiveProgress(True) as progress:
        progress.start(1)
        bar = progress._bar
        progress(ProbeResult("x[red]y", None, True, "stdio"))
        (task,) = bar.tasks
        assert task.total == 1 and task.completed == 1
        assert task.fields["last"] == "x[red]y up"
        assert bar.console._markup is False
