"""The daemon's Linux file watcher: inotify read after a blocking wait.

Why: the daemon runs all day, and its watcher used to wake 50 times a second to look for
changes (issue 14: idle CPU ~0). These tests hold that a change in a watched folder is
reported with its path, that nothing outside the watched folders is, that ``wake`` ends the
wait, and that the waiting thread does not wake while nothing happens.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from reconciler.store import inotify

pytestmark = pytest.mark.skipif(not inotify.available(), reason="inotify is Linux only")


def test_a_write_a_rename_and_a_removal_are_reported_by_path(tmp_path: Path) -> None:
    watched, other = tmp_path / "watched", tmp_path / "other"
    watched.mkdir()
    other.mkdir()
    watch = inotify.FolderWatch([watched])
    try:
        batches = watch.batches()
        (other / "ignored.json").write_text("{}")  # not a watched folder
        (watched / "a.json").write_text("{}")
        assert next(batches) == {watched / "a.json"}
        (watched / ".a.json.tmp").write_text("{}")
        os.replace(watched / ".a.json.tmp", watched / "b.json")
        (watched / "a.json").unlink()
        found: set[Path] = set()
        while found != {watched / ".a.json.tmp", watched / "b.json", watched / "a.json"}:
            found |= next(batches)
        watch.wake()
        assert list(batches) == []  # the wake-up ends the wait
    finally:
        watch.release()


def test_a_removed_folder_is_reported_as_itself(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    watch = inotify.FolderWatch([watched])
    try:
        watched.rmdir()
        assert watched in next(watch.batches())
    finally:
        watch.release()


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot watch"):
        inotify.FolderWatch([tmp_path / "missing"])


def _switches(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/status") as handle:
        return sum(int(line.split()[1]) for line in handle if "ctxt_switches:" in line)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_the_waiting_thread_does_not_wake_while_nothing_changes(tmp_path: Path) -> None:
    watch = inotify.FolderWatch([tmp_path])
    started = threading.Event()
    tids: list[int] = []

    def wait() -> None:
        tids.append(threading.get_native_id())
        started.set()
        for _ in watch.batches():
            pass

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    try:
        started.wait(5)
        threading.Event().wait(0.3)  # let it reach poll()
        before = _switches(tids[0])
        threading.Event().wait(1.0)  # the idle window measured, not a synchronisation
        assert _switches(tids[0]) - before == 0
    finally:
        watch.wake()
        thread.join(5)
        watch.release()
    assert not thread.is_alive()
