"""``reconcile service``: run the daemon at login, as a systemd user unit or a launchd agent.

The unit runs the same interpreter that runs this command (``python -m reconciler watch``),
with absolute paths for the desired and state directories, so it works from a virtualenv
and does not depend on the service manager's working directory. Its environment comes from
an environment file next to the unit (mode 0600, ``mcp-reconciler.env``): the variables that
desired state references (``${env:NAME}``) and the PATH the secret resolvers are found on,
as this shell has them when ``install`` runs. Exit code 2 means
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
from typing import Any

from reconciler.core.errors import UsageError
from reconciler.secrets import ENV, find_references
from reconciler.store import fsutil

UNIT_NAME = "mcp-reconciler.service"
AGENT_LABEL = "io.github.mcp-reconciler.watch"
ENV_FILE_NAME = "mcp-reconciler.env"
ENV_FILE_MODE = 0o600  # it holds secret values


@dataclass(frozen=True)
class ServiceSpec:
    """What the service runs: the daemon's own command line, fully resolved."""

    desired: Path
    state_dir: Path
    watch_args: tuple[str, ...] = ()  # --interval, --debounce, --pull, --metrics, --log-format
    python: str = sys.executable
    env_file: Path | None = None  # the environment file the unit reads, if any

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


def env_file_path(platform: str, home: Path, environ: Mapping[str, str]) -> Path:
    """The environment file: next to the unit (or agent)."""
    return unit_path(platform, home, environ).parent / ENV_FILE_NAME


def referenced_variables(data: Any) -> list[str]:
    """Every ``${env:NAME}`` that a piece of desired state (plain data) references, sorted."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str):
            names.update(r.name for r in find_references(node) if r.scheme == ENV)
        elif isinstance(node, Mapping):
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk(data)
    return sorted(names)


def _env_quote(value: str) -> str:
    """One value as systemd's EnvironmentFile and POSIX sh both read it."""
    return "'" + value.replace("'", "'\\''") + "'"


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#") and name.strip():
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1].replace("'\\''", "'")
            out[name.strip()] = value
    return out


def render_env_file(
    names: Sequence[str], environ: Mapping[str, str], kept: Mapping[str, str]
) -> str:
    """PATH and each referenced variable, from this shell (or kept from the file before)."""
    lines = [
        "# Written by `reconcile service install` (mode 0600: it holds secret values).",
        "# The variables desired state references, and the PATH its secret resolvers need.",
        "# Edit a value here, or export it and run `reconcile service install` again.",
        f"PATH={_env_quote(environ.get('PATH', os.defpath))}",
    ]
    for name in names:
        value = environ.get(name, kept.get(name))
        if value is None:
            lines.append(f"# {name}=   (not set when this file was written: set it here)")
        else:
            lines.append(f"{name}={_env_quote(value)}")
    return "\n".join(lines) + "\n"


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
            + (
                "# the variables desired state references, and PATH (0600)\n"
                f"EnvironmentFile=-{_systemd_quote(str(spec.env_file))}\n"
                if spec.env_file is not None
                else ""
            )
            + "Environment=PYTHONUNBUFFERED=1\n"
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
    argv = spec.argv
    if spec.env_file is not None:  # launchd reads no env file: a shell loads it first
        loader = 'set -a; [ -r "$0" ] && . "$0"; set +a; exec "$@"'
        argv = ["/bin/sh", "-c", loader, str(spec.env_file), *argv]
    plist = {
        "Label": AGENT_LABEL,
        "ProgramArguments": argv,
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


def install(
    spec: ServiceSpec,
    platform: str,
    home: Path,
    environ: Mapping[str, str],
    variables: Sequence[str] = (),
) -> Path:
    """Write the unit and, when ``spec.env_file`` is set, its environment file (0600)."""
    path = unit_path(platform, home, environ)
    if spec.env_file is not None:
        kept = _read_env_file(spec.env_file)
        text = render_env_file(variables, environ, kept)
        fsutil.atomic_write(spec.env_file, text.encode(), mode=ENV_FILE_MODE)
    fsutil.atomic_write(path, render(spec, platform, home).encode(), mode=0o644)
    return path


def uninstall(platform: str, home: Path, environ: Mapping[str, str]) -> Path | None:
    path = unit_path(platform, home, environ)
    env_file_path(platform, home, environ).unlink(missing_ok=True)
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
