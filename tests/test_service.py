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
        tmp_path / ".config/systemd/user/mcp-reconciler.service"
    )
    assert service.unit_path("linux", tmp_path, {"XDG_CONFIG_HOME": "/x"}) == Path(
        "/x/systemd/user/mcp-reconciler.service"
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
    unit = workspace.home / ".config/systemd/user/mcp-reconciler.service"
    assert unit.read_text() == printed.stdout
    assert "systemctl --user enable --now mcp-reconciler.service" in installed.stdout
    assert unit.stat().st_mode & 0o777 == 0o644

    removed = workspace.run("service", "uninstall", "--no-disable")
    assert removed.exit_code == 0 and not unit.exists()
    again = workspace.run("service", "uninstall", "--no-disable")
    assert again.exit_code == 0 and "nothing to remove" in again.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="writes the Linux unit")
def test_install_writes_an_environment_file_with_the_referenced_variables_and_path(
    workspace: Workspace,
) -> None:
    workspace.write(
        "desired.yaml",
        """
        servers:
          github:
            command: npx
            env: {GITHUB_TOKEN: "${env:GH_TOKEN}", ZONE: "${TZ_NAME}"}
        targets:
          jungle: {kind: mcpjungle, url: "http://127.0.0.1:1", token: "${env:JUNGLE_TOKEN}"}
        """,
    )
    env = {"GH_TOKEN": "ghp_" + "Zq8x" * 9, "PATH": "/opt/infisical/bin:/usr/bin"}
    printed = workspace.run("service", "print", env=env)
    env_file = workspace.home / ".config/systemd/user/mcp-reconciler.env"
    assert f"EnvironmentFile=-{env_file}" in printed.stdout
    assert f"# environment file: {env_file} (0600; PATH, GH_TOKEN, JUNGLE_TOKEN, TZ_NAME)" in (
        printed.stderr
    )
    installed = workspace.run("service", "install", env=env)
    assert installed.exit_code == 0, installed.stderr
    assert f"wrote {env_file} (0600: PATH and 3 referenced variables)" in installed.stdout
    assert "JUNGLE_TOKEN, TZ_NAME" in installed.stdout  # not set: said
    assert env_file.stat().st_mode & 0o777 == 0o600
    lines = env_file.read_text().splitlines()
    assert "PATH='/opt/infisical/bin:/usr/bin'" in lines
    assert f"GH_TOKEN='{env['GH_TOKEN']}'" in lines
    assert any(line.startswith("# JUNGLE_TOKEN=") for line in lines)
    # a value set in the file by hand is kept when the shell lacks it
    env_file.write_text(env_file.read_text() + "JUNGLE_TOKEN='by-hand'\n")
    assert workspace.run("service", "install", env=env).exit_code == 0
    assert "JUNGLE_TOKEN='by-hand'" in env_file.read_text().splitlines()
    assert workspace.run("service", "uninstall", "--no-disable").exit_code == 0
    assert not env_file.exists()


def test_launchd_agent_loads_the_environment_file_through_a_shell(tmp_path: Path) -> None:
    env_file = tmp_path / "mcp-reconciler.env"
    text = service.render(
        service.ServiceSpec(tmp_path / "d", tmp_path / "s", env_file=env_file), "darwin", tmp_path
    )
    argv = plistlib.loads(text.encode())["ProgramArguments"]
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3] == str(env_file)
    assert argv[4:7] == [sys.executable, "-m", "reconciler"]
