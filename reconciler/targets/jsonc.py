"""JSON with comments (JSONC): read it, and change it without losing a comment.

VS Code's ``mcp.json``, Gemini CLI's ``settings.json`` and opencode's ``opencode.json``
accept ``//`` and ``/* */`` comments and trailing commas. ``json`` cannot read them and
re-serializing would drop them, so a JSONC document is edited as text instead: the old and
the new document are compared key by key and only the values that changed are spliced
into the original text. Everything else (comments, blank lines, layout) stays byte for
byte. Where a changed span itself holds a comment (a comment inside an ``args`` list that
must be rewritten, or inside an entry that is removed), the edit is refused with the line
of that comment rather than dropping it.

The result is parsed again and must equal the new document, so an edit is never written
unless it means exactly what was asked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, NoReturn

MAX_DEPTH = 256
DUPLICATE = "the client keeps only one of them; the file is not rewritten until one is removed"

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<line>//[^\n]*)
  | (?P<block>/\*.*?\*/)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\.)*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<word>true|false|null)
  | (?P<punct>[{}\[\]:,])
    """,
    re.VERBOSE | re.DOTALL,
)


class JsoncError(ValueError):
    """The text is not JSONC, or an edit would drop a comment; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}" if self.line else self.message


@dataclass
class Member:
    key: str
    key_start: int
    value: Node
    comma: int | None = None  # offset of the comma after the value, if any


@dataclass
class Node:
    kind: str  # object, array, scalar
    start: int
    end: int
    value: Any = None
    members: list[Member] = field(default_factory=list)


@dataclass
class JsoncDocument:
    """A parsed JSONC text: its value, its syntax tree and where its comments are."""

    text: str
    root: Node
    comments: list[tuple[int, int]]
    trailing_commas: bool

    @property
    def value(self) -> Any:
        return self.root.value

    @property
    def plain(self) -> bool:
        """True when the text is strict JSON (no comment, no trailing comma)."""
        return not self.comments and not self.trailing_commas


def position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, int, int]] = []
        self.comments: list[tuple[int, int]] = []
        self.trailing_commas = False
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                self.fail(pos, f"unexpected character {text[pos]!r}")
            kind = match.lastgroup or ""
            if kind in ("line", "block"):
                self.comments.append((match.start(), match.end()))
            elif kind != "ws":
                self.tokens.append((kind, match.start(), match.end()))
            pos = match.end()
        self.index = 0

    def fail(self, offset: int, message: str) -> NoReturn:
        line, column = position(self.text, offset)
        raise JsoncError(message, line, column)

    def peek(self) -> tuple[str, int, int]:
        if self.index >= len(self.tokens):
            return ("eof", len(self.text), len(self.text))
        return self.tokens[self.index]

    def take(self) -> tuple[str, int, int]:
        token = self.peek()
        self.index += 1
        return token

    def punct(self, token: tuple[str, int, int]) -> str:
        return self.text[token[1] : token[2]] if token[0] == "punct" else ""

    def document(self) -> JsoncDocument:
        root = self.value(0)
        token = self.peek()
        if token[0] != "eof":
            self.fail(token[1], "unexpected content after the end of the document")
        return JsoncDocument(self.text, root, self.comments, self.trailing_commas)

    def value(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            self.fail(self.peek()[1], "nested too deeply")
        kind, start, end = self.take()
        if kind == "eof":
            self.fail(start, "unexpected end of the document")
        raw = self.text[start:end]
        if kind == "string":
            return Node("scalar", start, end, json.loads(raw))
        if kind == "number":
            return Node("scalar", start, end, json.loads(raw))
        if kind == "word":
            return Node("scalar", start, end, {"true": True, "false": False, "null": None}[raw])
        if raw == "{":
            return self.object(start, depth)
        if raw == "[":
            return self.array(start, depth)
        self.fail(start, f"unexpected {raw!r}")

    def object(self, start: int, depth: int) -> Node:
        node = Node("object", start, start, {})
        while True:
            token = self.take()
            if self.punct(token) == "}":
                if node.members and node.members[-1].comma is not None:
                    self.trailing_commas = True
                node.end = token[2]
                return node
            if node.members and node.members[-1].comma is None:
                self.fail(token[1], "expected ',' or '}'")
            if token[0] != "string":
                self.fail(token[1], "expected a string key")
            key = json.loads(self.text[token[1] : token[2]])
            if key in node.value:  # a parser keeps one of them: never merge one away
                self.fail(token[1], f"duplicate key {key!r} ({DUPLICATE})")
            colon = self.take()
            if self.punct(colon) != ":":
                self.fail(colon[1], "expected ':'")
            value = self.value(depth + 1)
            member = Member(key, token[1], value)
            if self.punct(self.peek()) == ",":
                member.comma = self.take()[1]
            node.members.append(member)
            node.value[key] = value.value

    def array(self, start: int, depth: int) -> Node:
        node = Node("array", start, start, [])
        expect_value = True
        while True:
            token = self.peek()
            if self.punct(token) == "]":
                self.take()
                if node.value and expect_value:
                    self.trailing_commas = True
                node.end = token[2]
                return node
            if not expect_value:
                self.fail(token[1], "expected ',' or ']'")
            item = self.value(depth + 1)
            node.value.append(item.value)
            expect_value = self.punct(self.peek()) == ","
            if expect_value:
                self.take()


def parse(text: str) -> JsoncDocument:
    """Parse JSONC text; JsoncError with line and column if it is not valid."""
    return _Parser(text).document()


# -- editing -------------------------------------------------------------------------------


class _Editor:
    def __init__(self, doc: JsoncDocument, unit: str) -> None:
        self.doc = doc
        self.text = doc.text
        self.unit = unit
        self.edits: list[tuple[int, int, str]] = []

    def refuse_comments(self, start: int, end: int, what: str) -> None:
        for c_start, _ in self.doc.comments:
            if start <= c_start < end:
                line, column = position(self.text, c_start)
                raise JsoncError(
                    f"{what} would drop the comment at line {line}; "
                    "move the comment out of it or make this change by hand",
                    line,
                    column,
                )

    def line_indent(self, offset: int) -> str:
        start = self.text.rfind("\n", 0, offset) + 1
        stop = start
        while stop < len(self.text) and self.text[stop] in " \t":
            stop += 1
        return self.text[start:stop]

    def starts_line(self, offset: int) -> bool:
        start = self.text.rfind("\n", 0, offset) + 1
        return not self.text[start:offset].strip(" \t")

    def line_start(self, member: Member) -> int:
        start = self.text.rfind("\n", 0, member.key_start) + 1
        return start if self.starts_line(member.key_start) else member.key_start

    def tail(self, member: Member) -> int:
        """After the member's comma (or value) and, if only blanks follow, its line break."""
        end = member.comma + 1 if member.comma is not None else member.value.end
        scan = end
        while scan < len(self.text) and self.text[scan] in " \t\r":
            scan += 1
        if scan < len(self.text) and self.text[scan] == "\n":
            return scan + 1
        return end

    def render(self, value: Any, indent: str, *, inline: bool = False) -> str:
        if inline:
            return json.dumps(value, ensure_ascii=False)
        text = json.dumps(value, indent=self.unit, ensure_ascii=False)
        return text.replace("\n", "\n" + indent)

    def member_text(self, key: str, value: Any, indent: str, *, inline: bool) -> str:
        return (
            json.dumps(key, ensure_ascii=False) + ": " + self.render(value, indent, inline=inline)
        )

    def edit(self, node: Node, old: Any, new: Any, indent: str, where: str) -> None:
        if old == new:
            return
        if node.kind == "object" and isinstance(new, dict):
            self.edit_object(node, new, where)
            return
        self.refuse_comments(node.start, node.end, f"rewriting '{where}'")
        # A value written on one line (``"args": ["a", "b"]``) stays on one line.
        inline = "\n" not in self.text[node.start : node.end] and node.kind != "object"
        self.edits.append((node.start, node.end, self.render(new, indent, inline=inline)))

    def edit_object(self, node: Node, new: dict[str, Any], where: str) -> None:
        members = node.members
        keys = [m.key for m in members]
        if len(set(keys)) != len(keys):
            raise JsoncError(f"{where} has a key twice; fix the file by hand", *self.pos(node))
        old: dict[str, Any] = node.value
        for member in members:
            if member.key in new:
                self.edit(
                    member.value,
                    old[member.key],
                    new[member.key],
                    self.line_indent(member.key_start),
                    f"{where}.{member.key}" if where else member.key,
                )
        survivors = [i for i, m in enumerate(members) if m.key in new]
        added = [(k, v) for k, v in new.items() if k not in old]
        deleted = [i for i, m in enumerate(members) if m.key not in new]
        if not deleted and not added:
            return
        open_at, close_at = node.start + 1, node.end - 1
        parent_indent = self.line_indent(node.start)
        if not survivors:
            interior_has_comments = any(open_at <= c < close_at for c, _ in self.doc.comments)
            if not interior_has_comments:
                if not added:
                    self.edits.append((open_at, close_at, ""))
                    return
                indent = parent_indent + self.unit
                body = (",\n" + indent).join(
                    self.member_text(k, v, indent, inline=False) for k, v in added
                )
                self.edits.append((open_at, close_at, "\n" + indent + body + "\n" + parent_indent))
                return
            for i in deleted:
                self.remove(members[i], where)
            if added:
                indent = parent_indent + self.unit
                body = (",\n" + indent).join(
                    self.member_text(k, v, indent, inline=False) for k, v in added
                )
                self.edits.append((open_at, open_at, "\n" + indent + body))
            return
        last = survivors[-1]
        anchor = members[last]
        for i in deleted:
            if i < last:
                self.remove(members[i], where)
        trailing = [i for i in deleted if i > last]
        final = members[-1]
        # Deleted members after the anchor take the anchor's comma with them, unless the
        # object ends with a trailing comma, which then stays after the anchor.
        anchor_has_comma = (final.comma if trailing else anchor.comma) is not None
        inline = not self.starts_line(anchor.key_start)
        indent = self.line_indent(anchor.key_start) if not inline else ""
        pieces = [self.member_text(k, v, indent, inline=inline) for k, v in added]
        if trailing and final.comma is not None:
            for i in trailing:
                self.remove(members[i], where)
        if anchor_has_comma:
            if not pieces:
                return
            at = self.tail(anchor)
            if inline:
                self.edits.append((at, at, " " + ", ".join(pieces) + ","))
            elif at > 0 and self.text[at - 1] == "\n":
                self.edits.append((at, at, "".join(indent + p + ",\n" for p in pieces)))
            else:
                self.edits.append((at, at, "".join("\n" + indent + p + "," for p in pieces)))
            return
        separator = ", " if inline else ",\n" + indent
        insert = "".join(separator + p for p in pieces)
        if trailing:  # removes the anchor's comma and every deleted member after it
            start, end = anchor.value.end, final.value.end
            self.refuse_comments(start, end, f"removing '{final.key}' from {where or 'the file'}")
            self.edits.append((start, end, insert))
        elif insert:
            self.edits.append((anchor.value.end, anchor.value.end, insert))

    def remove(self, member: Member, where: str) -> None:
        """Remove a member and its comma; its whole line when nothing else is on it."""
        start, end = self.line_start(member), self.tail(member)
        if start != member.key_start and end > 0 and self.text[end - 1] != "\n":
            # A comment follows on the same line: it stays, where the member was.
            start = member.key_start
            while end < len(self.text) and self.text[end] in " \t":
                end += 1
        self.refuse_comments(start, end, f"removing '{member.key}' from {where or 'the file'}")
        self.edits.append((start, end, ""))

    def pos(self, node: Node) -> tuple[int, int]:
        return position(self.text, node.start)

    def result(self) -> str:
        edits = sorted(self.edits)
        for (_, end, _), (start, _, _) in pairwise(edits):
            if end > start:
                raise JsoncError("overlapping edits; make this change by hand")
        text = self.text
        for start, end, replacement in reversed(edits):
            text = text[:start] + replacement + text[end:]
        return text


def edit(doc: JsoncDocument, new: Any, unit: str) -> str:
    """The text of ``doc`` changed to hold ``new``, keeping every comment and all layout.

    ``unit`` is one indentation step for new lines. JsoncError when the change would drop
    a comment; the caller reports it and writes nothing.
    """
    editor = _Editor(doc, unit)
    editor.edit(doc.root, doc.value, new, "", "")
    text = editor.result()
    if parse(text).value != new:  # never write an edit that does not mean what was asked
        raise JsoncError("could not edit the file without changing its meaning; edit it by hand")
    return text
