"""The one write path: atomic, mode-keeping, symlink-preserving, compare-and-swap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.core.errors import ConcurrentChange
from reconciler.store.fsutil import atomic_write, compare_and_swap, read_snapshot


def test_new_file_gets_0600_and_no_temp_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.json"
    atomic_write(path, b"{}\n")
    assert path.read_bytes() == b"{}\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(path.parent) == ["config.json"]


def test_existing_mode_is_kept_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("old")
    path.chmod(0o644)
    atomic_write(path, b"new")
    assert path.stat().st_mode & 0o777 == 0o644
    atomic_write(path, b"secret", mode=0o600)
    assert path.stat().st_mode & 0o777 == 0o600


def test_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "config.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "config.json"
    link.symlink_to(real)
    atomic_write(link, b"new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_compare_and_swap_refuses_a_file_changed_since_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("seen")
    snapshot = read_snapshot(path)
    path.write_text("someone else's edit")
    with pytest.raises(ConcurrentChange):
        compare_and_swap(snapshot, b"ours")
    assert path.read_text() == "someone else's edit"


def test_compare_and_swap_sees_a_file_created_since_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    snapshot = read_snapshot(path)
    assert not snapshot.exists
    path.write_text("created meanwhile")
    with pytest.raises(ConcurrentChange):
        compare_and_swap(snapshot, b"ours")
