"""JSONC reading and comment-keeping edits (VS Code, Gemini CLI and opencode files).

The edit either produces text that means exactly the new document and still holds every
comment of the old one, or refuses with the line of the comment it would have dropped.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.targets import jsonc


def test_reads_comments_and_trailing_commas() -> None:
    doc = jsonc.parse('// top\n{"a": [1, 2,], /* mid */ "b": {"c": "//not a comment"},}\n')
    assert doc.value == {"a": [1, 2], "b": {"c": "//not a comment"}}
    assert not doc.plain
    assert jsonc.parse('{"a": 1}').plain


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": 1,,}', (1, 9)),
        ('{\n  "a": tru\n}', (2, 8)),
        ('{"a" 1}', (1, 6)),
        ('{"a": 1} x', (1, 10)),
        ('{"a": [1 2]}', (1, 10)),
        ("{'a': 1}", (1, 2)),
    ],
)
def test_errors_carry_line_and_column(text: str, where: tuple[int, int]) -> None:
    with pytest.raises(jsonc.JsoncError) as raised:
        jsonc.parse(text)
    assert (raised.value.line, raised.value.column) == where


def test_nesting_is_bounded() -> None:
    with pytest.raises(jsonc.JsoncError, match="nested too deeply"):
        jsonc.parse("[" * 1000 + "]" * 1000)


SOURCE = """{
  // servers
  "servers": {
    "mine": {"command": "x"}, // trailing note
    "a": {
      "command": "old", // runner
      "args": ["1", "2"]
    },
    "b": {
      "url": "u"
    }
  }
}
"""


def edited(change: Any) -> str:
    doc = jsonc.parse(SOURCE)
    new = copy.deepcopy(doc.value)
    change(new["servers"])
    return jsonc.edit(doc, new, "  ")


def test_a_changed_value_is_spliced_in_place() -> None:
    text = edited(lambda s: s["a"].update(command="new"))
    assert text == SOURCE.replace('"old"', '"new"')


def test_removing_the_last_member_takes_the_comma_before_it() -> None:
    text = edited(lambda s: s.pop("b"))
    assert text == SOURCE.replace(',\n    "b": {\n      "url": "u"\n    }', "")


def test_a_trailing_comment_stays_where_its_member_was() -> None:
    text = edited(lambda s: s.pop("mine"))
    assert "    // trailing note\n" in text
    assert json.dumps(jsonc.parse(text).value["servers"], sort_keys=True) == json.dumps(
        {"a": {"args": ["1", "2"], "command": "old"}, "b": {"url": "u"}}, sort_keys=True
    )


def test_new_members_follow_the_indentation() -> None:
    text = edited(lambda s: s.update(c={"command": "c", "args": ["z"]}))
    assert '    },\n    "c": {\n      "command": "c",\n      "args": [\n        "z"\n' in text


def test_an_edit_that_would_drop_a_comment_is_refused() -> None:
    with pytest.raises(jsonc.JsoncError, match="comment at line 6") as raised:
        edited(lambda s: s.pop("a"))
    assert raised.value.line == 6


# -- properties ---------------------------------------------------------------------------

keys = st.sampled_from(["a", "b", "c", "d", "servers", "x-y", "ünï"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text('ab/*"\\', max_size=4))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)
documents = st.dictionaries(keys, values, max_size=4)


def with_comments(document: dict[str, Any], marks: list[bool], trailing: bool) -> str:
    """Pretty JSON with ``// cN`` after some lines and optional trailing commas."""
    lines = json.dumps(document, indent=2, ensure_ascii=False).split("\n")
    out = []
    for i, line in enumerate(lines):
        closes_next = i + 1 < len(lines) and lines[i + 1].strip() in ("}", "]", "},", "],")
        if trailing and closes_next and not line.rstrip().endswith(("{", "[", ",")):
            line += ","
        if marks[i % len(marks)]:
            line += f" // c{i}"
        out.append(line)
    return "\n".join(out) + "\n"


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(document)
    for _ in range(draw(st.integers(0, 4))):
        node: Any = new
        while isinstance(node, dict) and node and draw(st.booleans()):
            child = node[draw(st.sampled_from(sorted(node)))]
            if not isinstance(child, dict):
                break
            node = child
        action = draw(st.sampled_from(["add", "remove", "change"]))
        if action == "add" or not node:
            node[draw(keys)] = draw(values)
        elif action == "remove":
            node.pop(draw(st.sampled_from(sorted(node))))
        else:
            node[draw(st.sampled_from(sorted(node)))] = draw(values)
    return new


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_edit_means_the_new_document_and_keeps_every_comment(data: st.DataObject) -> None:
    old = data.draw(documents)
    marks = data.draw(st.lists(st.booleans(), min_size=1, max_size=5))
    text = with_comments(old, marks, data.draw(st.booleans()))
    doc = jsonc.parse(text)
    assert doc.value == old
    new = data.draw(mutated(old))
    try:
        result = jsonc.edit(doc, new, "  ")
    except jsonc.JsoncError as e:
        assert "comment" in e.message
        return
    assert jsonc.parse(result).value == new
    assert sorted(re.findall(r"// c\d+", result)) == sorted(re.findall(r"// c\d+", text))


@settings(max_examples=100, deadline=None)
@given(documents, documents)
def test_plain_json_edits_never_refuse(old: dict[str, Any], new: dict[str, Any]) -> None:
    doc = jsonc.parse(json.dumps(old, indent=2))
    assert jsonc.parse(jsonc.edit(doc, new, "  ")).value == new
