"""The one write path: atomic, mode-keeping, symlink-preserving, compare-and-swap."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.errors import ConcurrentChange
from reconciler.store import fsutil
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


# The depth check decides the common case in C (balanced brackets, at most MAX_DEPTH deep)
# and leaves every other text to the exact scan: both must give the exact scan's answer.
_D = 200  # fsutil.MAX_DEPTH


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (("[" * _D + "]" * _D) * 2, None),  # at the limit (more brackets than the limit)
        (("{" * _D + "}" * _D) * 2, None),
        (("[{" * (_D // 2) + "}]" * (_D // 2)) * 2, None),  # mixed, at the limit
        ("{[" * (_D // 2) + "1" + "]}" * (_D // 2) + "{[" * 101 + "]}" * 101, (1, 602)),
        ("[" * (_D + 1) + "]" * (_D + 1), (1, _D + 1)),  # one over
        ("[]" * 300 + "[" * (_D + 1) + "]" * (_D + 1), (1, 600 + _D + 1)),
        ('["' + "]" * 300 + '"]' + "[]" * 150, None),  # brackets inside a string
        ("'" + "[" * 300 + "'" + "[]" * 150, None),  # and inside a single-quoted one
        ('"unterminated [' + "\n" + "[" * _D + "]" * _D, (2, _D)),  # the quote ends at the line
        ('"unterminated' + "\n" + ("[" * _D + "]" * _D) * 2, None),
        ("]" * 300 + "[" * _D, None),  # stray closers never go below zero
        ("]" * 300 + "[" * (_D + 1), (1, 300 + _D + 1)),
        ('{"a": ["x\\"]", ' + "[" * 150 + "]" * 150 + "]}", None),  # an escaped quote
    ],
)
def test_the_fast_depth_check_agrees_with_the_exact_scan(
    text: str, where: tuple[int, int] | None
) -> None:
    assert fsutil.MAX_DEPTH == _D
    assert fsutil.too_deep(text) == where


def test_a_long_deep_text_costs_no_more_than_a_long_shallow_one() -> None:
    # One pass of the fast check per level cost length x depth: 0.55 s for 100,000 levels
    # (a hostile MCPJungle answer), against 0.03 s for a shallow text of the same length.
    # Ratios in one run (the machine is shared): the budget falls back to the exact scan.
    deep = '{"error": ' + "[" * 100_000 + "]" * 100_000 + "}"
    shallow = ("[" * 10 + "]" * 10) * 10_000
    wide = "[" + ("[" * 150 + "1" + "]" * 150 + ",") * 600 + "0]"  # 151 levels, many times

    def cost(text: str) -> float:
        started = time.perf_counter()
        fsutil.too_deep(text)
        return time.perf_counter() - started

    assert fsutil.too_deep(deep) == (1, 10 + _D)  # the "{" counts as one
    assert fsutil.too_deep(wide) is None
    base = min(cost(shallow) for _ in range(3))
    assert min(cost(deep) for _ in range(3)) < 6 * base
    assert min(cost(wide) for _ in range(3)) < 12 * base


# Valid JSON for the JSON readers' fast path (fsutil.checked_json): strings that hold every
# character the text scan treats specially, containers nested around the limit.
_JSON_STRING = st.text(alphabet=st.sampled_from("[]{}\"'\\\n/aé😀\u2028"), max_size=6)


def _nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


@settings(max_examples=300, deadline=None)
@given(
    depth=st.integers(min_value=_D - 3, max_value=_D + 2),
    strings=st.lists(_JSON_STRING, min_size=1, max_size=4),
    indent=st.sampled_from([None, 2]),
    ascii_only=st.booleans(),
)
def test_a_parsed_document_nests_as_deep_as_the_text_scan_says(
    depth: int, strings: list[str], indent: int | None, ascii_only: bool
) -> None:
    document = {"servers": strings, "deep": _nested(depth - 1, strings[0])}
    text = json.dumps(document, indent=indent, ensure_ascii=ascii_only)
    assert fsutil.nests_deeper(json.loads(text)) == (fsutil.too_deep(text) is not None)
    parsed = fsutil.checked_json(text)
    assert (parsed is None) == (depth > _D)
    if parsed is not None:
        assert parsed[0] == document


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "\\ud800"}',  # a lone surrogate escape: the checks name it
        '{"a": 1,}',  # not JSON (JSONC, or broken): the reader's own path decides
        '{"a": 1} x',
        "[" * 300 + "]" * 300,  # deeper than json takes within its limit, or than we do
        "[" * 5000 + "]" * 5000,
        '{"n": ' + "9" * 5000 + "}",  # an integer json refuses to convert
        '{"a": 1, "a": 2}',
    ],
)
def test_the_fast_json_path_leaves_every_text_the_checks_refuse_to_them(text: str) -> None:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)

    assert fsutil.checked_json(text, object_pairs_hook=unique) is None
