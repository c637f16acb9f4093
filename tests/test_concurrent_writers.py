"""Concurrent writers (docs/RELIABILITY.md): a client that saves without taking any lock,
right between our last read and our rename, loses nothing (the file's identity is checked
once more after our temp file is synced, and the pass is retried); and two ``reconcile``
processes on one state directory never run their applying passes at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.core.errors import ConcurrentChange
from reconciler.engine import Engine, PassOptions
from reconciler.store import fsutil
from tests.conftest import Workspace, environ_without_locations

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent


def renames(path: Path, data: bytes) -> None:
    """A client saving by atomic rename, taking no lock."""
    tmp = path.with_name(path.name + ".client-save")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def truncates(path: Path, data: bytes) -> None:
    """A client saving in place: truncate, then write."""
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(data)


def same_size_in_place(path: Path, data: bytes) -> None:
    """A save in place that keeps the size (only the times tell)."""
    with path.open("r+b") as handle:
        handle.write(data[: path.stat().st_size].ljust(path.stat().st_size))


WRITERS = [renames, truncates, same_size_in_place]


def save_at_our_rename(
    monkeypatch: pytest.MonkeyPatch, path: Path, save: Callable[[Path], None], times: int = 1
) -> list[int]:
    """Make a writer save ``path`` at the last moment before our rename, ``times`` times."""
    calls: list[int] = []

    def point(name: str) -> None:
        if name.endswith(f"/{path.name}:before-rename") and len(calls) < times:
            calls.append(1)
            save(path)

    monkeypatch.setattr(fsutil, "crash_point", point)
    return calls


@pytest.mark.parametrize("writer", WRITERS)
def test_a_save_between_our_read_and_our_rename_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: Callable[[Path, bytes], None]
) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'{"a": 1}\n')
    seen = fsutil.read_snapshot(path)
    theirs = b'{"a": 2}\n'
    save_at_our_rename(monkeypatch, path, lambda p: writer(p, theirs))

    with pytest.raises(ConcurrentChange):
        fsutil.compare_and_swap(seen, b'{"ours": true}\n')

    assert path.read_bytes()[: len(theirs)] == theirs[: path.stat().st_size]
    assert b"ours" not in path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # our temp file is gone


@pytest.mark.parametrize("writer", [renames, truncates])
def test_a_pass_retries_and_keeps_the_lockless_writers_update(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, writer: Callable[[Path, bytes], None]
) -> None:
    client = workspace.home / "c.json"
    client.write_text(json.dumps({"theme": "dark", "mcpServers": {}}, indent=2) + "\n")
    workspace.write(
        "a.yaml",
        f"""
        servers:
          time: {{command: uvx, args: [mcp-server-time]}}
        targets:
          c: {{kind: claude-desktop, path: "{client}"}}
        """,
    )
    update = {"theme": "light", "recentFiles": ["a"], "mcpServers": {}}
    calls = save_at_our_rename(
        monkeypatch, client, lambda p: writer(p, json.dumps(update, indent=2).encode()), times=2
    )

    report = Engine(workspace.desired, workspace.state_dir, home=workspace.home).run(PassOptions())

    assert len(calls) == 2  # two attempts lost the race, the third wrote
    assert report.exit_code == 0
    final = json.loads(client.read_text())
    assert final["theme"] == "light" and final["recentFiles"] == ["a"]  # their update
    assert set(final["mcpServers"]) == {"time"}  # and ours


# -- two reconcile processes ---------------------------------------------------------------


def reconcile(workspace: Workspace, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "--desired",
            str(workspace.desired),
            "--state-dir",
            str(workspace.state_dir),
        ],
        env=environ_without_locations()
        | {"HOME": str(workspace.home), "PYTHONPATH": str(ROOT)}
        | env,
        cwd=workspace.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def desired_of(workspace: Workspace, count: int) -> list[Path]:
    files = [workspace.home / f"t{i}.json" for i in range(count)]
    targets = "".join(
        f'  t{i}: {{kind: claude-desktop, path: "{path}"}}\n' for i, path in enumerate(files)
    )
    workspace.write(
        "a.yaml",
        "servers:\n  time: {command: uvx, args: [mcp-server-time]}\ntargets:\n" + targets,
    )
    return files


def test_a_second_pass_refuses_clearly_while_one_holds_the_state_directory(
    workspace: Workspace,
) -> None:
    files = desired_of(workspace, 1)
    engine = Engine(workspace.desired, workspace.state_dir, home=workspace.home)
    with engine._exclusive(PassOptions()):  # a first pass, applying
        second = reconcile(workspace, RECONCILER_PASS_LOCK_WAIT="0.3")
        out, err = second.communicate(timeout=60)

    assert second.returncode == 3
    assert "another reconcile pass is applying" in err and "Traceback" not in out + err
    assert "RECONCILER_PASS_LOCK_WAIT" in err
    assert not files[0].exists()  # the second pass wrote nothing


def test_two_passes_at_once_both_converge_on_one_consistent_state(workspace: Workspace) -> None:
    files = desired_of(workspace, 6)
    first, second = reconcile(workspace), reconcile(workspace)
    results = [p.communicate(timeout=90) for p in (first, second)]

    assert (first.returncode, second.returncode) == (0, 0), results
    for path in files:
        assert set(json.loads(path.read_text())["mcpServers"]) == {"time"}
    for i in range(6):
        record = json.loads((workspace.state_dir / "last-applied" / f"t{i}.json").read_text())
        assert record["entries"]["time"]["created"] is True  # ownership from the first pass
    assert not list((workspace.state_dir / "intents").glob("*.json"))
