"""``reconcile service``: run the daemon at login, as a systemd user unit or a launchd agent.

The unit runs the same interpreter that runs this command (``python -m reconciler watch``),
with absolute paths for the desired and state directories, so it works from a virtualenv
and does not depend on the service manager's working directory or PATH. Exit code 2 means
"invalid invocation or desired state" (or another daemon holds the state directory):
restarting would only fail again, so systemd is told not to.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.errors import UsageError
from reconciler.store import fsutil

UNIT_NAME = "mcp-reconciler.app.service"
AGENT_LABEL = "io.github.mcp-reconciler.app.watch"


@dataclass(frozen=True)
class ServiceSpec:
    """What the service runs: the daemon's own command line, fully resolved."""

    desired: Path
    state_dir: Path
    watch_args: tuple[str, ...] = ()  # --interval, --debounce, --pull, --metrics, --log-format
    python: str = sys.executable

    @property
    def argv(self) -> list[str]:
        return [
            self.python,
            "-m",
            "reconciler",
            "watch",
            "--desired",
            str(self.desired),
            "--state-dir",
            str(self.state_dir),
            *self.watch_args,
        ]

    @property
    def working_directory(self) -> Path:
        return self.desired.parent


def manager(platform: str) -> str:
    if platform.startswith("linux"):
        return "systemd"
    if platform == "darwin":
        return "launchd"
    raise UsageError(f"no service manager support for platform {platform!r} (linux, darwin)")


def unit_path(platform: str, home: Path, environ: Mapping[str, str]) -> Path:
    if manager(platform) == "systemd":
        config = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
        return Path(config) / "systemd" / "user" / UNIT_NAME
    return home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"


def _systemd_quote(arg: str) -> str:
    """One ExecStart word: specifiers (%) and variables ($) escaped, quoted when needed."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c in escaped for c in " \t\n\"'\\;"):
        return escaped
    inner = escaped.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{inner}"'


def render(spec: ServiceSpec, platform: str, home: Path) -> str:
    if manager(platform) == "systemd":
        exec_start = " ".join(_systemd_quote(a) for a in spec.argv)
        return (
            "# Written by `reconcile service install`; remove with `reconcile service uninstall`.\n"
            "[Unit]\n"
            "Description=mcp-reconciler: keep MCP client configs converged with desired state\n"
            "After=default.target\n"
            "\n"
            "[Service]\n"
            "Type=simple\n"
            f"ExecStart={exec_start}\n"
            f"WorkingDirectory={_systemd_quote(str(spec.working_directory))}\n"
            "Environment=PYTHONUNBUFFERED=1\n"
            "Restart=on-failure\n"
            "RestartSec=5\n"
            "# exit 2: invalid invocation or another daemon holds the state directory\n"
            "RestartPreventExitStatus=2\n"
            "KillSignal=SIGTERM\n"
            "TimeoutStopSec=30\n"
            "\n"
            "[Install]\n"
            "WantedBy=default.target\n"
        )
    logs = home / "Library" / "Logs" / "mcp-reconciler.log"
    plist = {
        "Label": AGENT_LABEL,
        "ProgramArguments": spec.argv,
        "WorkingDirectory": str(spec.working_directory),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "StandardOutPath": str(logs),
        "StandardErrorPath": str(logs),
        "ProcessType": "Background",
    }
    return plistlib.dumps(plist, sort_keys=False).decode()


def enable_commands(platform: str, path: Path) -> list[list[str]]:
    if manager(platform) == "systemd":
        return [
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", "--now", UNIT_NAME],
        ]
    return [["launchctl", "bootstrap", f"gui/{os.getuid()}", str(path)]]


def disable_commands(platform: str, path: Path) -> list[list[str]]:
    if manager(platform) == "systemd":
        return [["systemctl", "--user", "disable", "--now", UNIT_NAME]]
    return [["launchctl", "bootout", f"gui/{os.getuid()}", str(path)]]


def install(spec: ServiceSpec, platform: str, home: Path, environ: Mapping[str, str]) -> Path:
    path = unit_path(platform, home, environ)
    fsutil.atomic_write(path, render(spec, platform, home).encode(), mode=0o644)
    return path


def uninstall(platform: str, home: Path, environ: Mapping[str, str]) -> Path | None:
    path = unit_path(platform, home, environ)
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    return path


def run_commands(commands: Sequence[Sequence[str]]) -> list[str]:
    """Run the service manager's commands; return the failures as messages (none: success)."""
    failures = []
    for command in commands:
        try:
            done = subprocess.run(
                list(command), capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            failures.append(f"{' '.join(command)}: {e}")
            continue
        if done.returncode != 0:
            detail = done.stderr.strip() or f"exit {done.returncode}"
            failures.append(f"{' '.join(command)}: {detail}")
    return failures
