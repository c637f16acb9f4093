"""``reconcile service``: the systemd user unit and the launchd agent that run the daemon."""

from __future__ import annotations

import plistlib
import shlex
import sys
from pathlib import Path

import pytest

from reconciler.app import service
from reconciler.core.errors import UsageError
from tests.conftest import Workspace


def spec(tmp_path: Path, *args: str) -> service.ServiceSpec:
    return service.ServiceSpec(
        desired=tmp_path / "my repo" / "desired",
        state_dir=tmp_path / "state",
        watch_args=args,
        python="/opt/py 3/bin/python",
    )


def test_systemd_unit_runs_the_daemon_with_absolute_quoted_paths(tmp_path: Path) -> None:
    unit = service.render(spec(tmp_path, "--metrics", "9100"), "linux", tmp_path)
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    words = shlex.split(exec_start.removeprefix("ExecStart="))
    assert words == [
        "/opt/py 3/bin/python",
        "-m",
        "reconciler",
        "watch",
        "--desired",
        str(tmp_path / "my repo" / "desired"),
        "--state-dir",
        str(tmp_path / "state"),
        "--metrics",
        "9100",
    ]
    assert "RestartPreventExitStatus=2" in unit and "WantedBy=default.target" in unit


def test_systemd_specifiers_and_variables_are_escaped() -> None:
    assert service._systemd_quote("50%") == "50%%"
    assert service._systemd_quote("$HOME") == "$$HOME"
    assert service._systemd_quote('a "b"') == '"a \\"b\\""'


def test_launchd_agent_is_a_valid_plist(tmp_path: Path) -> None:
    text = service.render(spec(tmp_path, "--pull"), "darwin", tmp_path)
    plist = plistlib.loads(text.encode())
    assert plist["Label"] == service.AGENT_LABEL
    assert plist["ProgramArguments"][:4] == ["/opt/py 3/bin/python", "-m", "reconciler", "watch"]
    assert plist["ProgramArguments"][-1] == "--pull"
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}


def test_unit_locations(tmp_path: Path) -> None:
    assert service.unit_path("linux", tmp_path, {}) == (
        tmp_path / ".config/systemd/user/mcp-reconciler.app.service"
    )
    assert service.unit_path("linux", tmp_path, {"XDG_CONFIG_HOME": "/x"}) == Path(
        "/x/systemd/user/mcp-reconciler.app.service"
    )
    assert service.unit_path("darwin", tmp_path, {}) == (
        tmp_path / f"Library/LaunchAgents/{service.AGENT_LABEL}.plist"
    )
    with pytest.raises(UsageError):
        service.unit_path("win32", tmp_path, {})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="writes the Linux unit")
def test_install_print_uninstall_under_the_temp_home(workspace: Workspace) -> None:
    printed = workspace.run("service", "print", "--interval", "60", "--pull")
    assert printed.exit_code == 0
    assert "--interval 60" in printed.stdout and "--pull" in printed.stdout
    assert f"--desired {workspace.desired}" in printed.stdout

    installed = workspace.run("service", "install", "--interval", "60", "--pull")
    assert installed.exit_code == 0
    unit = workspace.home / ".config/systemd/user/mcp-reconciler.app.service"
    assert unit.read_text() == printed.stdout
    assert "systemctl --user enable --now mcp-reconciler.app.service" in installed.stdout
    assert unit.stat().st_mode & 0o777 == 0o644

    removed = workspace.run("service", "uninstall", "--no-disable")
    assert removed.exit_code == 0 and not unit.exists()
    again = workspace.run("service", "uninstall", "--no-disable")
    assert again.exit_code == 0 and "nothing to remove" in again.stdout
