"""Reliability guarantees that the hostile corpus does not show by itself (docs/RELIABILITY.md):
names never leave the state directory, bounded reads never block, a client file caught
mid-save is never rewritten, and a malformed state file fails only its own target."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from reconciler.core.errors import ReconcilerError, TargetError
from reconciler.store import fsutil
from reconciler.store.state import Inventory, StateStore
from tests.conftest import Workspace

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(60)]

FOREIGN = {"theme": "dark", "mcpServers": {"mine": {"command": "npx", "args": ["-y", "x"]}}}


def desired(workspace: Workspace, *targets: str) -> None:
    lines = ["servers:", "  time: {command: uvx, args: [mcp-server-time]}", "targets:"]
    for name in targets:
        path = workspace.home / f"{name}.json"
        lines.append(f'  {name}: {{kind: claude-desktop, path: "{path}"}}')
    workspace.write("a.yaml", "\n".join(lines) + "\n")


# -- names that reach paths ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../x", "../../../../tmp/evil", "/abs", "a/b", "a\\b", ".hidden", "..", "a\0b", ""]
)
def test_the_state_store_never_builds_a_path_outside_its_root(tmp_path: Path, name: str) -> None:
    store = StateStore(tmp_path / "state")
    with pytest.raises(ReconcilerError, match="refused state file name"):
        store.save_inventory(name, Inventory())
    with pytest.raises(ReconcilerError, match="refused state file name"):
        store.inventory(name)
    with pytest.raises(ReconcilerError, match="refused state file name"):
        store.cache_file(name)
    assert not any((tmp_path).rglob("*.json"))


def test_a_plain_name_is_stored_inside_the_root(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.save_inventory("desk.top-1_a", Inventory({"time": {"command": "uvx"}}))
    assert (tmp_path / "state" / "last-applied" / "desk.top-1_a.json").is_file()


@pytest.mark.parametrize("name", ["../escape", "/etc/x", "a/b", ".dot", "a\\x00b"])
def test_validate_refuses_a_target_name_that_would_be_a_path(
    workspace: Workspace, name: str
) -> None:
    workspace.write(
        "a.yaml",
        f'servers:\n  time: {{command: uvx}}\ntargets:\n  "{name}": {{kind: claude-desktop}}\n',
    )
    result = workspace.run("validate")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "a.yaml:4:3: invalid target name" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_refuses_a_mirror_name_that_would_be_a_path(workspace: Workspace) -> None:
    workspace.write("a.yaml", 'mirrors:\n  "../m": {source: src, copies: [copy]}\n')
    result = workspace.run("validate")
    assert result.exit_code == 2
    assert "a.yaml:2:3: invalid mirror name '../m'" in result.stderr


# -- bounded readers ------------------------------------------------------------------------


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(fsutil.UnsafeFile, match="is a FIFO"):
        fsutil.read_bounded(fifo)
    assert time.monotonic() - started < 1


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 101)
    assert fsutil.read_bounded(path, limit=101) == b"x" * 101
    with pytest.raises(fsutil.UnsafeFile, match="more than the 100"):
        fsutil.read_bounded(path, limit=100)


def test_an_endless_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(fsutil.UnsafeFile, match="is a device"):
        fsutil.read_bounded(Path("/dev/zero"))


def test_an_absent_file_reads_as_none(tmp_path: Path) -> None:
    assert fsutil.read_bounded(tmp_path / "nothing") is None


@pytest.mark.parametrize("make", ["fifo", "dir"])
def test_a_non_regular_file_is_never_replaced_by_a_write(tmp_path: Path, make: str) -> None:
    path = tmp_path / "target.json"
    os.mkfifo(path) if make == "fifo" else path.mkdir()
    link = tmp_path / "link.json"
    link.symlink_to(path)
    for where in (path, link):
        with pytest.raises(fsutil.UnsafeFile, match="refusing to replace it"):
            fsutil.atomic_write(where, b"{}")
    assert not path.is_file() and (path.is_dir() or path.is_fifo())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "target.json"]


@pytest.mark.parametrize(
    ("text", "where"),
    [("[" * 201, (1, 201)), ('"[[[[" ' * 100 + "[]", None), ("[" * 200 + "]" * 200, None)],
)
def test_nesting_is_measured_outside_strings(text: str, where: tuple[int, int] | None) -> None:
    assert fsutil.too_deep(text) == where


# -- a client file caught mid-save ---------------------------------------------------------


@pytest.mark.parametrize(
    "caught",
    [b"", b"\n", json.dumps(FOREIGN, indent=2).encode()[:40], b'{"theme": "dark", "mcpS'],
    ids=["empty", "newline", "cut-in-the-middle", "cut-in-a-key"],
)
def test_a_client_file_caught_mid_save_is_left_alone_and_the_next_pass_converges(
    workspace: Workspace, caught: bytes
) -> None:
    desired(workspace, "desk")
    client = workspace.home / "desk.json"
    client.write_bytes(caught)

    result = workspace.run("--json")

    assert result.exit_code == 3
    report = result.json
    assert report["targets"][0]["status"] == "error"
    assert report["degraded"][0]["recoverable"] is True  # the next pass retries
    assert client.read_bytes() == caught  # never taken for an empty config
    assert not (workspace.state_dir / "last-applied" / "desk.json").exists()

    client.write_text(json.dumps(FOREIGN, indent=2) + "\n")  # the client's save completes
    assert workspace.run().exit_code == 0
    written = json.loads(client.read_text())
    assert written["theme"] == "dark"
    assert set(written["mcpServers"]) == {"mine", "time"}


def test_an_absent_client_file_is_still_created(workspace: Workspace) -> None:
    desired(workspace, "desk")
    assert workspace.run().exit_code == 0
    assert set(json.loads((workspace.home / "desk.json").read_text())["mcpServers"]) == {"time"}


def test_a_file_emptied_between_observe_and_apply_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"a": 1}')
    seen = fsutil.read_snapshot(path)
    path.write_bytes(b"")
    with pytest.raises(TargetError, match="changed since it was read"):
        fsutil.compare_and_swap(seen, b"{}")
    assert path.read_bytes() == b""


# -- malformed state files ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"format": 1, "entries": {"time": {"ess', b"", b"[]", b'{"entries": {"time": 1}}'],
    ids=["truncated", "empty", "array", "entry-not-object"],
)
def test_a_malformed_last_applied_fails_its_target_only(
    workspace: Workspace, content: bytes
) -> None:
    desired(workspace, "broken", "fine")
    (workspace.state_dir / "last-applied").mkdir(parents=True)
    (workspace.state_dir / "last-applied" / "broken.json").write_bytes(content)

    result = workspace.run()
    output = result.stdout + result.stderr

    assert result.exit_code == 3
    assert "Traceback" not in output
    lines = [x for x in output.splitlines() if "last-applied/broken.json" in x]
    assert lines and all("fix or delete this file" in x for x in lines), output
    assert not (workspace.home / "broken.json").exists()
    assert set(json.loads((workspace.home / "fine.json").read_text())["mcpServers"]) == {"time"}


@pytest.mark.parametrize("content", [b"", b"short", b"x" * 31])
def test_a_short_fingerprint_key_is_one_line_naming_the_file(
    workspace: Workspace, content: bytes
) -> None:
    desired(workspace, "desk")
    workspace.state_dir.mkdir()
    (workspace.state_dir / "fingerprint.key").write_bytes(content)
    for mode in (["--dry-run"], []):
        result = workspace.run(*mode)
        output = result.stdout + result.stderr
        assert result.exit_code == 3
        assert "Traceback" not in output
        assert f"fingerprint.key: the fingerprint key is {len(content)} bytes" in output
        assert "delete it and run again" in output
    assert (workspace.state_dir / "fingerprint.key").read_bytes() == content
    assert not (workspace.home / "desk.json").exists()


def test_a_reader_of_a_fifo_secret_does_not_hang(workspace: Workspace) -> None:
    fifo = workspace.home / "token"
    os.mkfifo(fifo)
    workspace.write(
        "a.yaml",
        "servers:\n  time:\n    command: uvx\n"
        f'    env: {{TOKEN: "${{file:{fifo}}}"}}\n'
        f'targets:\n  desk: {{kind: claude-desktop, path: "{workspace.home / "d.json"}"}}\n',
    )
    done = threading.Event()
    outcome: list[int] = []

    def run() -> None:
        outcome.append(workspace.run().exit_code)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(20), "a FIFO behind ${file:} blocks the pass"
    assert outcome == [3]
    assert not (workspace.home / "d.json").exists()


@pytest.mark.parametrize(
    ("text", "lone"),
    [
        (r'{"a": "\ud800"}', True),
        (r'{"a": "\udc00x"}', True),
        (r'{"a": "\\\ud800"}', True),
        (r'{"a": "\ud83d\ude00"}', False),  # a pair: one emoji
        (r'{"a": "C:\\ud800"}', False),  # an escaped backslash, then text
    ],
)
def test_a_lone_surrogate_escape_is_told_from_a_pair_and_from_text(text: str, lone: bool) -> None:
    assert (fsutil.lone_surrogate(text) is not None) is lone
