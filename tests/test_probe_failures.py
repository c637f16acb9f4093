"""Probe: each way a stdio server fails is reported in its own phase, with its context.

One probe_all over every failing server at once, so the module costs about one timeout.
The timeout (10 s) is long enough for an SDK server to start on a loaded machine: the
servers that must get past the handshake (crash, slow listing, banner) start reliably
within it, and those that must time out (hang, slow listing, endless garbage) do so.
HOME for the children is a temp dir, passed as the probe's base environment.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from reconciler.probe import Phase, ProbeResult, ProbeSpec, probe_all
from tests.servers import command

pytestmark = [
    pytest.mark.probe,
    pytest.mark.skipif(sys.platform == "win32", reason="stdio probing is tested on POSIX"),
]

TIMEOUT = 10.0
TOKEN = "tok-5f2e9c1d8b7a"  # masked by the redactor below


def mask(text: str) -> str:
    return text.replace(TOKEN, "‹secret›")


def spec(name: str, server: str, **env: str) -> ProbeSpec:
    cmd, args = command(server)
    return ProbeSpec(name, "stdio", command=cmd, args=args, env=env)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ProbeResult]:
    home = tmp_path_factory.mktemp("home")
    not_executable = home / "server.sh"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(stat.S_IRUSR | stat.S_IWUSR)
    specs = [
        ProbeSpec("missing", "stdio", command="no-such-mcp-server-1f3a", required=True),
        ProbeSpec("missing-path", "stdio", command=str(home / "nope" / "server")),
        ProbeSpec("not-executable", "stdio", command=str(not_executable)),
        ProbeSpec("bad-cwd", "stdio", command=sys.executable, cwd=str(home / "no-such-dir")),
        spec("crash", "crash_on_start", API_TOKEN=TOKEN),
        spec("hang", "hang"),
        spec("slow", "slow_list_tools"),
        spec("garbage", "garbage_stdout"),
        spec("garbage-exit", "garbage_stdout", GARBAGE_EXIT="1"),
        spec("banner", "tools_server", BANNER="1"),
    ]
    base_env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C.UTF-8"}
    found = probe_all(specs, timeout=TIMEOUT, redact=mask, base_env=base_env)
    assert [r.server for r in found] == [s.server for s in specs]
    return {r.server: r for r in found}


def test_a_missing_command_fails_in_spawn_and_is_not_recoverable(
    results: dict[str, ProbeResult],
) -> None:
    r = results["missing"]
    assert (r.ok, r.phase, r.recoverable, r.status) == (False, Phase.SPAWN, False, "down")
    assert r.error == "command not found on PATH: no-such-mcp-server-1f3a"
    assert r.context.command == "no-such-mcp-server-1f3a"
    assert r.required is True
    assert results["missing-path"].phase is Phase.SPAWN
    assert "command not found" in (results["missing-path"].error or "")


def test_a_command_that_cannot_run_fails_in_spawn(results: dict[str, ProbeResult]) -> None:
    r = results["not-executable"]
    assert (r.phase, r.recoverable) == (Phase.SPAWN, False)
    assert "not executable" in (r.error or "")
    r = results["bad-cwd"]
    assert (r.phase, r.recoverable) == (Phase.SPAWN, False)
    assert "working directory does not exist" in (r.error or "")


def test_a_crash_on_start_fails_in_initialize_with_exit_status_and_masked_stderr(
    results: dict[str, ProbeResult],
) -> None:
    r = results["crash"]
    assert (r.ok, r.phase, r.recoverable) == (False, Phase.INITIALIZE, False)
    assert r.context.exit_status == 3
    tail = r.context.stderr_tail or ""
    lines = tail.splitlines()
    assert len(lines) <= 20 and len(tail) <= 4096
    assert lines[-1] == "fatal: the upstream API rejected token ‹secret›"
    assert "loading plugin 0\n" not in tail  # the head of 31 lines was cut
    # The one-line error names the exit and the last stderr line, masked.
    assert r.error == (
        "server exited with status 3 during the handshake: "
        "fatal: the upstream API rejected token ‹secret›"
    )
    assert TOKEN not in str(r.to_json())


def test_a_hung_server_times_out_in_initialize_and_is_recoverable(
    results: dict[str, ProbeResult],
) -> None:
    r = results["hang"]
    assert (r.ok, r.phase, r.recoverable) == (False, Phase.INITIALIZE, True)
    assert r.error == "timed out after 10s waiting for the server to answer the handshake"
    assert r.context.exit_status is None  # it was killed, it did not exit
    assert r.latency_ms is not None and TIMEOUT * 1000 <= r.latency_ms < (TIMEOUT + 1) * 1000


def test_a_slow_tool_listing_fails_in_list_tools(results: dict[str, ProbeResult]) -> None:
    r = results["slow"]
    assert (r.ok, r.phase, r.recoverable) == (False, Phase.LIST_TOOLS, True)
    assert r.error == "timed out after 10s waiting for the server to finish the tool listing"


def test_garbage_on_stdout_fails_in_initialize_and_is_quoted(
    results: dict[str, ProbeResult],
) -> None:
    r = results["garbage"]
    assert (r.ok, r.phase, r.recoverable) == (False, Phase.INITIALIZE, True)
    assert (r.error or "").startswith("timed out after 10s")
    assert "on stdout that are not JSON-RPC" in (r.error or "")
    assert (r.context.stdout_noise or "").startswith("Welcome to garbage 1.0")
    r = results["garbage-exit"]
    assert (r.ok, r.phase, r.recoverable) == (False, Phase.INITIALIZE, False)
    assert r.context.exit_status == 0
    assert (r.error or "").startswith("server exited with status 0 during the handshake")
    assert r.context.stdout_noise == "Welcome to garbage 1.0\nunknown command #0; type 'help'"


def test_a_banner_on_stdout_is_tolerated_like_real_clients_do(
    results: dict[str, ProbeResult],
) -> None:
    r = results["banner"]
    assert r.ok, r.error
    assert len(r.tools) == 5
    assert r.context.stdout_noise == "Starting the test server... (this line is not JSON-RPC)"


def test_the_degraded_fields_are_in_the_json(results: dict[str, ProbeResult]) -> None:
    data = results["crash"].to_json()
    assert {k: data[k] for k in ("server", "target", "phase", "required", "recoverable")} == {
        "server": "crash",
        "target": None,
        "phase": "initialize",
        "required": False,
        "recoverable": False,
    }
    assert data["context"]["exit_status"] == 3
    assert data["status"] == "down" and data["tool_count"] is None


def test_spawn_problem_paths(tmp_path: Path) -> None:
    """A directory given as the command is reported, not run."""
    [r] = probe_all(
        [ProbeSpec("dir", "stdio", command=str(tmp_path))], timeout=TIMEOUT, redact=mask
    )
    assert r.phase is Phase.SPAWN and "not executable" in (r.error or "")
