"""Probe bounds: total time near one timeout, bounded concurrency, and no orphan process.

The wall-clock measurements here are acceptance bounds, not synchronisation: each test
waits for probe_all to return and then checks how long it took.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from reconciler.probe import Phase, ProbeResult, ProbeSpec, probe_all
from reconciler.probe.client import load_sdk
from tests.servers import alive, command, live_group_members

pytestmark = [
    pytest.mark.probe,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks processes in /proc"),
]


def spec(name: str, server: str, **env: str) -> ProbeSpec:
    cmd, args = command(server)
    return ProbeSpec(name, "stdio", command=cmd, args=args, env=env)


def test_twenty_servers_five_hanging_finish_within_the_timeout_plus_two_seconds(
    home: Path,
) -> None:
    timeout = 3.0
    # Every fourth server hangs (an SDK server whose startup never completes); the others
    # are minimal.py, which starts in milliseconds, so the bound measures the probe.
    specs = [
        spec(f"hang-{i}", "hang") if i % 4 == 0 else spec(f"ok-{i}", "minimal") for i in range(20)
    ]
    done: list[str] = []
    # Load the SDK first: its one-time import is not what this bound is about.
    load_sdk()

    started = time.monotonic()
    results = probe_all(specs, timeout=timeout, redact=str, on_done=lambda r: done.append(r.server))
    elapsed = time.monotonic() - started

    assert elapsed < timeout + 2, f"20 servers (5 hanging) took {elapsed:.2f}s"
    assert [r.server for r in results] == [s.server for s in specs]  # input order
    assert sorted(done) == sorted(s.server for s in specs)  # each reported once
    hung = [r for r in results if r.server.startswith("hang")]
    assert len(hung) == 5
    assert all((r.ok, r.phase, r.recoverable) == (False, Phase.INITIALIZE, True) for r in hung)
    assert all(r.ok for r in results if r.server.startswith("ok")), [
        r.error for r in results if not r.ok and r.server.startswith("ok")
    ]
    # The hung ones finished last: on_done reports in completion order.
    assert all(name.startswith("hang") for name in done[-5:])


def test_concurrency_is_bounded_and_every_probe_shares_the_runs_deadline(home: Path) -> None:
    """Four hanging servers, two at a time: the first two hold both slots until the run's
    deadline and are killed there; the other two never start. One timeout, not two."""
    timeout = 1.0
    load_sdk()

    started = time.monotonic()
    results = probe_all(
        [ProbeSpec(f"sleep-{i}", "stdio", command="sleep", args=("60",)) for i in range(4)],
        timeout=timeout,
        concurrency=2,
        redact=str,
    )
    elapsed = time.monotonic() - started
    assert timeout <= elapsed < timeout + 2
    ran, queued = results[:2], results[2:]
    assert all(r.phase is Phase.INITIALIZE and r.recoverable for r in ran)
    assert all(
        r.error == "timed out after 1s waiting for the server to answer the handshake" for r in ran
    )
    assert all(r.phase is Phase.SPAWN and r.recoverable and not r.ok for r in queued)
    assert all(
        r.error == "not started: the probe run's 1s timeout passed while the servers ahead held "
        "every slot (--concurrency 2)"
        for r in queued
    ), [r.error for r in queued]


def test_a_server_whose_turn_comes_late_gets_what_is_left_of_the_run(home: Path) -> None:
    """One slot: a server that hangs for half the timeout, then one that hangs for good.
    The second is killed at the run's deadline, and says it started late."""
    timeout = 2.0
    load_sdk()

    first = ProbeSpec("short", "stdio", command="sh", args=("-c", "sleep 1; exit 1"))
    second = ProbeSpec("hang", "stdio", command="sleep", args=("60",))
    started = time.monotonic()
    _, late = probe_all([first, second], timeout=timeout, concurrency=1, redact=str)
    elapsed = time.monotonic() - started
    assert elapsed < timeout + 1.5
    assert late.phase is Phase.INITIALIZE and late.error is not None
    assert late.error.startswith("timed out at the probe run's 2s deadline ("), late.error


def pids(path: Path) -> dict[str, int]:
    data: dict[str, int] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("mode", ["hang", "serve"])
def test_no_process_of_the_server_survives(home: Path, tmp_path: Path, mode: str) -> None:
    """grandchild.py forks a grandchild that ignores SIGTERM and holds the server's pipes.

    hang: the server times out and is killed. serve: it works and exits by itself when its
    stdin closes, which alone would leave the grandchild running. In both, the probe ends
    the whole process group.
    """
    pid_file = tmp_path / "pids.json"
    [r] = probe_all(
        [spec("grandchild", "grandchild", PID_FILE=str(pid_file), GRANDCHILD_MODE=mode)],
        # serve: time for the SDK server to start on a loaded machine
        timeout=3 if mode == "hang" else 10,
        redact=str,
    )
    assert r.ok is (mode == "serve"), r.error
    found = pids(pid_file)
    assert found["grandchild"] != found["leader"]
    assert not alive(found["leader"])
    assert not alive(found["grandchild"])
    # The leader's pid is its group's id: nothing of the group runs any more.
    assert live_group_members(found["leader"]) == []


def test_the_children_of_many_failed_probes_are_all_gone(home: Path, tmp_path: Path) -> None:
    specs = [
        spec(f"g{i}", "grandchild", PID_FILE=str(tmp_path / f"{i}.json"), GRANDCHILD_MODE="hang")
        for i in range(4)
    ] + [
        spec("crash", "crash_on_start"),
        ProbeSpec("sleep", "stdio", command="sleep", args=("60",)),
    ]
    results: list[ProbeResult] = probe_all(specs, timeout=2, redact=str)
    assert not any(r.ok for r in results)
    for i in range(4):
        found = pids(tmp_path / f"{i}.json")
        assert live_group_members(found["leader"]) == []
        assert not alive(found["grandchild"])
