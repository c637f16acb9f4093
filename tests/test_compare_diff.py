"""``core.compare.diff``: equality decides, deepdiff explains, in the essence's field order.

Paths are JSON Pointers; lists compare position by position (as clients read ``args``); an
added or removed key is one change with None on the absent side; a key absent on one side
and null on the other is no change.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.compare import FieldChange, diff

CASES: list[
    tuple[str, dict[str, Any] | None, dict[str, Any] | None, list[tuple[str, Any, Any]]]
] = [
    ("equal", {"a": 1}, {"a": 1}, []),
    ("nothing on either side", None, None, []),
    ("a value", {"url": "a"}, {"url": "b"}, [("/url", "a", "b")]),
    ("an added key", {}, {"env": {"A": "1"}}, [("/env", None, {"A": "1"})]),
    (
        "a removed nested key",
        {"env": {"A": "1", "B": "2"}},
        {"env": {"A": "1"}},
        [("/env/B", "2", None)],
    ),
    (
        "a shorter list, by position",
        {"args": ["a", "b", "c"]},
        {"args": ["a", "c"]},
        [("/args/1", "b", "c"), ("/args/2", "c", None)],
    ),
    ("a longer list", {"args": ["a"]}, {"args": ["a", "b"]}, [("/args/1", None, "b")]),
    ("a type change", {"enabled": "true"}, {"enabled": True}, [("/enabled", "true", True)]),
    ("null and absent are the same", {}, {"cwd": None}, []),
    (
        "a key with a slash",
        {"headers": {"a/b": "1"}},
        {"headers": {"a/b": "2"}},
        [("/headers/a~1b", "1", "2")],
    ),
    (
        "live's keys first, then keys only desired has",
        {"command": "x", "args": ["1"], "env": {"Z": "1"}},
        {"transport": "stdio", "command": "y", "env": {"Z": "2"}, "args": ["2"]},
        [
            ("/command", "x", "y"),
            ("/args/0", "1", "2"),
            ("/env/Z", "1", "2"),
            ("/transport", None, "stdio"),
        ],
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), CASES, ids=[c[0] for c in CASES])
def test_diff(name: str, old: Any, new: Any, expected: list[tuple[str, Any, Any]]) -> None:
    assert diff(old, new) == tuple(FieldChange(*e) for e in expected)
