"""Small MCP servers written with the `mcp` SDK, one per way a server can fail a probe,
and the helpers the probe tests use to run them.

Each server is a script run as a child process (``command(name)`` gives its argv). They
share ``_common.py``: the tool set, and serving over stdio, streamable HTTP or SSE
(optionally behind a bearer token) on a free port of 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

DIR = Path(__file__).resolve().parent
REPO = DIR.parent.parent
EVERYTHING = REPO / ".cache/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"


def command(name: str, *args: str) -> tuple[str, tuple[str, ...]]:
    """(command, args) that runs the server script ``name`` with this interpreter."""
    return sys.executable, (str(DIR / f"{name}.py"), *args)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def http_servers(*variants: tuple[str, ...]) -> Iterator[list[int]]:
    """Run ``tools_server.py`` once per ``variants`` entry (its arguments: ``--http`` or
    ``--sse``, optionally ``--token T``), all starting at once; yield their ports.

    Each server binds port 0 and prints ``PORT <n>`` once its socket listens: reading that
    line is the synchronisation, no waiting for a port to open.
    """
    processes = []
    try:
        for args in variants:
            cmd, argv = command("tools_server", *args)
            processes.append(subprocess.Popen([cmd, *argv], stdout=subprocess.PIPE))
        ports = []
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline().decode()
            if not line.startswith("PORT "):
                raise RuntimeError(f"test server did not start: {line!r}")
            ports.append(int(line.split()[1]))
        yield ports
    finally:
        for process in processes:
            _stop(process)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll until 127.0.0.1:port accepts a connection (or the process died, or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {process.returncode} before listening"
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout}s"
                ) from None
            time.sleep(0.05)  # a polling interval, not a synchronisation


@contextmanager
def everything_http(env: Mapping[str, str]) -> Iterator[int]:
    """Run server-everything's streamable HTTP server on a free port; yield the port."""
    port = free_port()
    process = subprocess.Popen(
        ["node", str(EVERYTHING), "streamableHttp"],
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        _stop(process)


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].decode().split()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped by PID 1 is dead)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in "ZX"


def live_group_members(pgid: int) -> list[int]:
    """Every running process of process group ``pgid``, found by scanning /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[2]) == pgid and fields[0] not in "ZX":
                found.append(int(entry))
    return found
