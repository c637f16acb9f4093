"""Start a stdio MCP server as a child process, and make sure nothing of it survives.

A probe runs commands taken from desired state, many at once, some of which hang or fork
helpers. So each server is started in a process group of its own (a new session on POSIX)
and, whatever happened, the whole group is terminated and then killed when the probe ends:
a hung server, a server that ignores SIGTERM, and a grandchild that outlives its parent are
all gone before ``probe_all`` returns. (A descendant that calls setsid() itself leaves the
group on purpose; nothing short of a container can follow it.)

The child gets the declared env over a minimal base (``base_environment``), never the
reconciler's whole environment, which holds the secrets of every other server.

Only the standard library at import time (anyio is imported inside the functions): this
module is imported with ``reconciler.probe``, before anyone knows whether a probe will run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anyio
    import anyio.abc

# The variables a server needs to find its interpreter, its home, its locale and a temp dir.
# Anything else (tokens, cloud credentials, the reconciler's own settings) stays out unless
# the server's definition declares it.
BASE_ENV_VARS: tuple[str, ...] = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
)
# Windows has no TMPDIR/HOME; these are the same roles there, and SYSTEMROOT is needed by
# almost every program (Winsock fails without it).
WINDOWS_ENV_VARS: tuple[str, ...] = ("SYSTEMROOT", "PATHEXT", "TEMP", "TMP", "USERPROFILE")

# After the last message, a polite server exits when its stdin closes (the spec's shutdown).
STDIN_GRACE = 1.0
# Then SIGTERM to the group; whoever is left after this gets SIGKILL.
TERM_GRACE = 1.0
# SIGKILL cannot be refused; this only bounds how long we watch for it to land.
KILL_GRACE = 1.0
_POLL = 0.01

STDERR_LINES = 20
STDERR_BYTES = 4096
# Raw bytes kept while reading, so redaction sees whole secrets before the tail is cut.
_STDERR_WINDOW = 4 * STDERR_BYTES

_POSIX = sys.platform != "win32"


def base_environment(
    declared: Mapping[str, str], base_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: the minimal base from ``base_env`` (default os.environ),
    then the declared variables over it."""
    source = os.environ if base_env is None else base_env
    names = BASE_ENV_VARS if _POSIX else BASE_ENV_VARS + WINDOWS_ENV_VARS
    env = {name: source[name] for name in names if name in source}
    env.update(declared)
    return env


def command_line(command: str, args: Sequence[str]) -> str:
    """How the command is shown in a report (redact it before it leaves the probe)."""
    return shlex.join([command, *args])


def spawn_problem(command: str, cwd: str | None, env: Mapping[str, str]) -> str | None:
    """Why ``command`` cannot be started, found before trying, or None.

    The OS error for a missing command and for a missing working directory is the same
    ENOENT; checking first lets the report say which one it is.
    """
    if cwd is not None and not os.path.isdir(cwd):
        return f"working directory does not exist: {cwd}"
    if os.sep in command or (os.altsep is not None and os.altsep in command):
        # A relative path is run from the child's working directory, not ours.
        path = os.path.join(cwd, command) if cwd is not None else command
        if not os.path.exists(path):
            return f"command not found: {command}"
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            return f"command is not executable: {command}"
        return None
    # The child's PATH decides, not ours: that is the one the OS searches.
    if shutil.which(command, path=env.get("PATH", os.defpath)) is None:
        return f"command not found on PATH: {command}"
    return None


async def spawn(
    command: str, args: Sequence[str], env: Mapping[str, str], cwd: str | None
) -> anyio.abc.Process:
    """Start the server with piped stdio in a process group of its own."""
    import anyio

    if _POSIX:
        return await anyio.open_process(
            [command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    return await anyio.open_process(  # pragma: no cover - Windows
        [command, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
    )


class StderrTail:
    """The last lines a child wrote on stderr (~20 lines / 4 KB), kept while it runs.

    It is drained continuously (a child blocked on a full stderr pipe would look hung) and
    redacted as a whole before it is cut to size, so a secret split by the cut is still
    recognised.
    """

    def __init__(self) -> None:
        import anyio

        self._buffer = bytearray()
        self._trimmed = False
        self.closed = anyio.Event()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        if len(self._buffer) > _STDERR_WINDOW:
            del self._buffer[: len(self._buffer) - _STDERR_WINDOW]
            self._trimmed = True

    async def drain(self, stream: anyio.abc.ByteReceiveStream | None) -> None:
        import anyio

        try:
            if stream is not None:
                with suppress(
                    anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError
                ):
                    async for chunk in stream:
                        self.feed(chunk)
        finally:
            self.closed.set()

    def text(self, redact: Callable[[str], str]) -> str | None:
        lines = self._buffer.decode("utf-8", "replace").splitlines()
        if self._trimmed and len(lines) > 1:
            # Cut mid-line: it may start with the end of a secret. (A single line longer
            # than the window is cut again below, far from where this cut fell.)
            lines = lines[1:]
        lines = redact("\n".join(lines)).rstrip().splitlines()[-STDERR_LINES:]
        while len(lines) > 1 and sum(len(line) + 1 for line in lines) > STDERR_BYTES:
            lines.pop(0)
        text = "\n".join(lines)
        return text[-STDERR_BYTES:] if text else None


async def stop(process: anyio.abc.Process, *, graceful: bool) -> int | None:
    """End the server and everything in its process group; return its own exit status.

    ``graceful``: close stdin and give it STDIN_GRACE to exit on its own, as the spec's
    shutdown asks; a timed-out server gets no such grace. In every case the group is then
    terminated and killed, because a leader that exits cleanly can still leave children.
    The exit status is returned only when the server exited by itself (not by our signal).
    Runs shielded: a cancelled probe must still reap what it started.
    """
    import anyio

    status = process.returncode
    with anyio.CancelScope(shield=True):
        if status is None and graceful:
            if process.stdin is not None:
                with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await process.stdin.aclose()
            status = await _wait_exit(process, STDIN_GRACE)
        await _end_group(process)
        await _wait_exit(process, KILL_GRACE)
    return status


async def _wait_exit(process: anyio.abc.Process, timeout: float) -> int | None:
    # Not process.wait(): on asyncio it also waits for the pipes to close, and a surviving
    # grandchild holding them would make an exited server look hung.
    import anyio

    with anyio.move_on_after(timeout):
        while process.returncode is None:
            await anyio.sleep(_POLL)
    return process.returncode


async def _end_group(process: anyio.abc.Process) -> None:
    import anyio

    if not _POSIX:  # pragma: no cover - Windows: no process groups to signal
        with suppress(ProcessLookupError, OSError):
            process.kill()
        return
    # start_new_session made the leader's pid the group id. Never getpgid(): it fails once
    # the leader is reaped, while members may live on.
    pgid = process.pid
    for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, KILL_GRACE)):
        if not group_alive(pgid):
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        with anyio.move_on_after(grace):
            while group_alive(pgid):
                await anyio.sleep(_POLL)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies do not count).

    killpg(0) alone counts zombies, and an orphaned grandchild stays a zombie for as long
    as whoever adopted it (PID 1 in a container) does not reap it: on Linux, /proc tells
    the living from the dead.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # some member is not ours to signal: it may still be alive
    if sys.platform.startswith("linux"):
        return any(state not in "ZX" for state in _linux_group_states(pgid))
    return True  # pragma: no cover - no /proc: assume alive and let the bound end the wait


def _linux_group_states(pgid: int) -> list[str]:
    states = []
    try:
        entries = os.listdir("/proc")
    except OSError:  # pragma: no cover
        return ["?"]
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid:
            states.append(fields[0].decode())
    return states
