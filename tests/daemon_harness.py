"""Run ``python -m reconciler watch`` as a real subprocess and observe it through its files.

Used by the daemon acceptance tests and by ``bench/``. Nothing here sleeps a fixed time:
every wait polls a condition until a deadline and fails with the daemon's log tail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import reconciler

REPO_ROOT = Path(reconciler.__file__).resolve().parent.parent
LOCATION_VARS = (
    "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "APPDATA",
    "LOCALAPPDATA", "CODEX_HOME", "CLAUDE_CONFIG_DIR", "RECONCILER_DESIRED",
    "RECONCILER_STATE_DIR", "GEMINI_CLI_HOME", "OPENCODE_CONFIG",
)  # fmt: skip

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float = 20.0,
    interval: float = 0.005,
    what: str = "condition",
    on_timeout: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{on_timeout()}")
        time.sleep(interval)


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LOCATION_VARS}
    env["HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class DaemonProcess:
    """One daemon subprocess with a JSON log file; a context manager that never leaks it."""

    def __init__(
        self,
        desired: Path,
        state_dir: Path,
        home: Path,
        log_path: Path,
        args: Sequence[str] = (),
        *,
        launcher: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.state_dir = state_dir
        program = [str(launcher)] if launcher else ["-m", "reconciler"]
        self.argv = [
            sys.executable,
            *program,
            "watch",
            "--desired",
            str(desired),
            "--state-dir",
            str(state_dir),
            "--log-format",
            "json",
            *args,
        ]
        self.env = child_env(home, **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=self.state_dir.parent,
            )
        return self

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def passes(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == "pass"]

    def tail(self, lines: int = 40) -> str:
        return "daemon log tail:\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for(self, condition: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
        def check() -> T | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) while waiting for {what}\n"
                    + self.tail()
                )
            return condition()

        return wait_until(check, timeout=timeout, what=what, on_timeout=self.tail)

    def wait_for_passes(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            passes = self.passes()
            return passes if len(passes) >= count else None

        return self.wait_for(enough, f"{count} pass(es)", timeout)

    def wait_quiet(self, quiet: float, timeout: float = 30.0) -> int:
        """Wait until no pass was logged for ``quiet`` seconds; a loop never gets there."""
        seen = len(self.passes())
        since = time.monotonic()

        def settled() -> bool:
            nonlocal seen, since
            now = len(self.passes())
            if now != seen:
                seen, since = now, time.monotonic()
            return time.monotonic() - since >= quiet

        self.wait_for(settled, f"{quiet:g}s without a pass (passes keep coming: a loop?)", timeout)
        return seen

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)
