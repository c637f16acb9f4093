"""The libyaml fast path reads every document exactly as ruamel's round-trip loader does."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from reconciler.store import yamlio
from reconciler.store.yamlio import Loc, Located

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [
    "a: yes\nb: on\nc: 'true'\nd: true\ne: 1.10\nf: 007\ng: 0x1f\nh: 0o17\ni: ~\nj:\nk: -.inf\n",
    "servers:\n  x:\n    args: [a, 'b', \"c\", 1, 2.5, null]\n    env: {A: '1', B: \"2\"}\n",
    "list:\n- a\n-   b: 1\n    c: [x,\n      y]\n- |\n  block\n  text\n- >\n  folded\n",
    "key: &anchor {a: 1}\nother: *anchor\n",
    "empty: {}\nnone: []\nquoted: ''\nunicode: \"h\\u00e9\"\n",
]


def both(text: str) -> tuple[Any, Any]:
    fast_locs: tuple[dict[Loc, Located], dict[Loc, Located]] = ({}, {})
    exact_locs: tuple[dict[Loc, Located], dict[Loc, Located]] = ({}, {})
    fast = yamlio._compose_fast(text, "f", *fast_locs)
    exact = yamlio._load_exact(text, "f", *exact_locs, problems=[])
    assert fast is not yamlio._SLOW_PATH
    return (fast, fast_locs), (exact, exact_locs)


def positions(locs: tuple[dict[Loc, Located], dict[Loc, Located]], data: Any) -> Any:
    """Both position maps, without empty values: ruamel places those at the next token,
    libyaml right after the key (the better of the two for an error message)."""
    keys, values = locs
    empty = {loc for loc in values if _value_at(data, loc) is None}
    return keys, {loc: v for loc, v in values.items() if loc not in empty}


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def normalized(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


@pytest.mark.parametrize("text", SAMPLES)
def test_fast_and_exact_loaders_agree_on_values_types_and_positions(text: str) -> None:
    (fast, fast_locs), (exact, exact_locs) = both(text)
    assert normalized(fast) == normalized(exact)
    assert repr(normalized(fast)) == repr(normalized(exact)), "same types, not only equal"
    assert positions(fast_locs, fast) == positions(exact_locs, exact)


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in ROOT.glob("**/*.y*ml")
        if ".cache" not in p.parts
        and p.suffix in (".yaml", ".yml")
        and "!" not in p.read_text()
        and "<<" not in p.read_text()
    ),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_agree_on_every_yaml_file_in_the_repository(path: Path) -> None:
    text = path.read_text()
    try:
        fast = yamlio._compose_fast(text, "f", {}, {})
    except yamlio._TooLarge:  # the alias bomb: the exact loader refuses it too
        with pytest.raises(yamlio._TooLarge):
            yamlio._load_exact(text, "f", {}, {}, problems=[])
        return
    if fast is yamlio._SLOW_PATH:  # a syntax error or a duplicate key: ruamel reports it
        return
    (fast, fast_locs), (exact, exact_locs) = both(text)
    assert normalized(fast) == normalized(exact)
    assert positions(fast_locs, fast) == positions(exact_locs, exact)


def test_unusual_documents_take_the_exact_path() -> None:
    for text in ("a: !!str 1\n", "a: 1\na: 2\n", "base: &b {x: 1}\nc:\n  <<: *b\n", "a: [\n"):
        assert yamlio._compose_fast(text, "f", {}, {}) is yamlio._SLOW_PATH
