"""Acceptance of ``reconcile watch`` as a real subprocess in a temp HOME.

Every observation goes through files (the client config, the JSON log, the status file) and
every wait polls with a deadline; no test sleeps a fixed time. The "no loop" checks wait for
a quiet period, which a feedback loop never reaches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Workspace
from tests.daemon_harness import DaemonProcess, child_env, wait_until

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

SERVERS = """
servers:
  time:
    command: uvx
    args: [mcp-server-time]
  fetch:
    command: uvx
    args: [mcp-server-fetch]
"""

TARGETS = """
targets:
  desktop:
    kind: claude-desktop
    on_drift: sync
"""


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    workspace.write("servers.yaml", SERVERS)
    workspace.write("targets.yaml", TARGETS)
    return workspace


def daemon(ws: Workspace, *args: str, **kwargs: Any) -> DaemonProcess:
    return DaemonProcess(
        ws.desired, ws.state_dir, ws.home, ws.root.parent / "daemon.log", args, **kwargs
    )


def servers_in(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    servers: dict[str, Any] = data.get("mcpServers", {})
    return servers


def atomic_save(path: Path, text: str) -> None:
    """Save the way editors do: write a temp file beside it, then rename over it."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def running(ws: Workspace) -> Iterator[DaemonProcess]:
    with daemon(ws, "--debounce", "50") as proc:
        proc.wait_for(lambda: servers_in(ws.desktop_config), "the first pass to write the target")
        yield proc


def test_editing_desired_updates_the_target_and_a_hand_edit_is_reverted(
    ws: Workspace, running: DaemonProcess
) -> None:
    assert servers_in(ws.desktop_config) == {
        "time": {"command": "uvx", "args": ["mcp-server-time"]},
        "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
    }
    atomic_save(
        ws.desired / "servers.yaml",
        textwrap.dedent(SERVERS).replace("[mcp-server-time]", "[mcp-server-time, --v2]"),
    )
    running.wait_for(
        lambda: (s := servers_in(ws.desktop_config)) and s["time"]["args"][-1] == "--v2",
        "the desired change to reach the target",
    )
    running.wait_for_passes(2)  # a person edits after the save, not within its pass
    data = json.loads(ws.desktop_config.read_text())
    data["mcpServers"]["fetch"]["args"] = ["hand-edited"]
    data["theme"] = "dark"  # a key the client owns: kept
    ws.desktop_config.write_text(json.dumps(data, indent=2))
    running.wait_for(
        lambda: (s := servers_in(ws.desktop_config)) and s["fetch"]["args"] == ["mcp-server-fetch"],
        "the hand edit to be reverted",
    )
    assert json.loads(ws.desktop_config.read_text())["theme"] == "dark"
    triggers = [p["trigger"] for p in running.wait_for_passes(3)]
    assert triggers[:3] == ["start", "desired", "target"]
    status = json.loads((ws.state_dir / "daemon.json").read_text())
    assert status["running"] is True and status["last_pass"]["result"] == "converged"
    assert running.terminate() == 0


def test_500_rapid_saves_cause_a_bounded_number_of_passes(ws: Workspace) -> None:
    with daemon(ws) as proc:  # default debounce, 200 ms
        proc.wait_for(lambda: servers_in(ws.desktop_config), "the first pass")
        path = ws.desired / "servers.yaml"
        text = textwrap.dedent(SERVERS)
        for i in range(500):
            atomic_save(path, text.replace("[mcp-server-time]", f"[mcp-server-time, --n={i}]"))
        proc.wait_for(
            lambda: (s := servers_in(ws.desktop_config)) and s["time"]["args"][-1] == "--n=499",
            "the last save to reach the target",
        )
        proc.wait_quiet(1.0)
        desired_passes = [p for p in proc.passes() if p["trigger"] == "desired"]
        assert 1 <= len(desired_passes) <= 10, desired_passes
        assert servers_in(ws.desktop_config)["time"]["args"] == [  # type: ignore[index]
            "mcp-server-time",
            "--n=499",
        ]
        assert proc.terminate() == 0


CLIENT = """
import json, os, sys, time
from pathlib import Path

path, counter, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
written, rewrites = None, 0
deadline = time.monotonic() + 60
while not stop.exists() and time.monotonic() < deadline:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        content = None
    if content is not None and content != written:
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        if data is not None:
            # what some clients do on every change: re-serialize in their own style and
            # update their own bookkeeping, keeping the server entries as they are
            rewrites += 1
            data["clientState"] = {"rewrites": rewrites}
            written = (json.dumps(data, indent=4, sort_keys=True) + "\\n").encode()
            tmp = path.with_name(path.name + ".client")
            tmp.write_bytes(written)
            os.replace(tmp, path)
            counter.write_text(str(rewrites))
    time.sleep(0.002)
"""


def test_a_client_that_rewrites_its_file_on_every_change_does_not_cause_a_loop(
    ws: Workspace, running: DaemonProcess, tmp_path: Path
) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    counter, stop = tmp_path / "rewrites", tmp_path / "stop-client"
    client = subprocess.Popen(
        [sys.executable, str(script), str(ws.desktop_config), str(counter), str(stop)],
        env=child_env(ws.home),
    )
    try:
        wait_until(lambda: counter.exists(), what="the client's first rewrite")
        atomic_save(
            ws.desired / "servers.yaml",
            textwrap.dedent(SERVERS).replace("[mcp-server-fetch]", "[mcp-server-fetch, --raw]"),
        )
        running.wait_for(
            lambda: (
                (s := servers_in(ws.desktop_config))
                and s["fetch"]["args"][-1] == "--raw"
                and "clientState" in json.loads(ws.desktop_config.read_text())
            ),
            "our write, and the client's rewrite of it",
        )
        passes = running.wait_quiet(1.5)  # with --debounce 50 a loop would pass every ~60 ms
        rewrites = int(counter.read_text())
        assert passes <= 8, running.tail()
        assert rewrites <= 4
        stop.touch()
        assert client.wait(timeout=10) == 0
    finally:
        stop.touch()
        if client.poll() is None:
            client.kill()
        client.wait(timeout=10)


LAUNCHER = """
import os, sys, time
from pathlib import Path

marker, go = Path(os.environ["TEST_APPLY_MARKER"]), Path(os.environ["TEST_APPLY_GO"])
real_replace = os.replace

def held_replace(src, dst, *args, **kwargs):
    # hold the client-file write with its temp file on disk until the test says go
    if Path(dst).name == "claude_desktop_config.json" and not go.exists():
        marker.write_text(str(src))
        deadline = time.monotonic() + 30
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.002)
    return real_replace(src, dst, *args, **kwargs)

os.replace = held_replace
from reconciler.cli.main import main
sys.argv[0] = "reconcile"
main()
"""


def test_sigterm_during_a_pass_lets_it_complete_then_exits_zero(
    ws: Workspace, tmp_path: Path
) -> None:
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    marker, go = tmp_path / "in-apply", tmp_path / "go"
    env = {"TEST_APPLY_MARKER": str(marker), "TEST_APPLY_GO": str(go)}
    with daemon(ws, launcher=launcher, env=env) as proc:
        proc.wait_for(marker.exists, "the first pass to reach its write")
        assert Path(marker.read_text()).exists()  # the temp file is there, mid-write
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        go.touch()
        assert proc.proc.wait(timeout=10) == 0, proc.tail()
    assert servers_in(ws.desktop_config) is not None and set(
        servers_in(ws.desktop_config) or {}
    ) == {"time", "fetch"}
    assert temp_files(ws.desktop_config.parent) == []
    assert temp_files(ws.state_dir) == []
    stops = [r for r in proc.records() if r.get("event") == "stop"]
    assert stops and stops[0]["signal"] == "SIGTERM" and stops[0]["during_pass"] is True
    assert proc.passes()[-1]["result"] == "converged"
    status = json.loads((ws.state_dir / "daemon.json").read_text())
    assert status["running"] is False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_idle_daemon_exits_zero_within_a_second_of_a_signal(
    ws: Workspace, running: DaemonProcess, sig: int
) -> None:
    assert running.proc is not None
    started = time.monotonic()
    running.proc.send_signal(sig)
    code = running.proc.wait(timeout=10)
    elapsed = time.monotonic() - started
    assert code == 0 and elapsed < 1.0, (code, elapsed)


def test_a_second_daemon_on_the_same_state_directory_exits_2(
    ws: Workspace, running: DaemonProcess
) -> None:
    second = subprocess.run(
        running.argv, env=running.env, capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 2
    assert "already running" in second.stderr and str(running.pid) in second.stderr
    assert running.proc is not None and running.proc.poll() is None  # the first one goes on


def test_a_missing_desired_directory_is_an_invalid_invocation(ws: Workspace) -> None:
    proc = daemon(ws)
    argv = [a if a != str(ws.desired) else str(ws.root / "nowhere") for a in proc.argv]
    done = subprocess.run(argv, env=proc.env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_invalid_desired_state_mid_watch_is_logged_and_touches_nothing(
    ws: Workspace, running: DaemonProcess
) -> None:
    before = ws.desktop_config.read_bytes()
    atomic_save(ws.desired / "servers.yaml", "servers:\n  time: {command: uvx, bogus: 1}\n")
    running.wait_for(
        lambda: any(r.get("event") == "invalid" for r in running.records()),
        "the invalid desired state to be logged",
    )
    invalid = next(r for r in running.records() if r.get("event") == "invalid")
    assert any("servers.yaml:2" in e for e in invalid["errors"])
    assert ws.desktop_config.read_bytes() == before
    atomic_save(
        ws.desired / "servers.yaml",
        textwrap.dedent(SERVERS).replace("[mcp-server-time]", "[mcp-server-time, --fixed]"),
    )
    running.wait_for(
        lambda: (s := servers_in(ws.desktop_config)) and s["time"]["args"][-1] == "--fixed",
        "recovery once desired state is fixed",
    )


def test_metrics_and_healthz_are_served_on_loopback(ws: Workspace) -> None:
    with daemon(ws, "--metrics", "0") as proc:
        url = proc.wait_for(
            lambda: (
                json.loads(s.read_text()).get("metrics")
                if (s := ws.state_dir / "daemon.json").exists()
                else None
            ),
            "the metrics address in the status file",
        )
        assert url.startswith("http://127.0.0.1:")
        proc.wait_for_passes(1)
        with httpx.Client(base_url=url, trust_env=False, timeout=5) as client:
            assert client.get("/healthz").status_code == 200
            text = client.get("/metrics").text
        assert 'reconciler_passes_total{result="converged"} 1' in text
        assert 'reconciler_target_drift{target="desktop"} 0' in text
        assert proc.terminate() == 0
