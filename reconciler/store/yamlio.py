"""The one YAML module: plain data with positions for reading, the round-trip editor for writing.

Reading (``read``): desired files are read on every pass, so the common case goes through
libyaml (PyYAML's C composer), about 30x faster than ruamel's pure-Python round-trip parser,
with scalars resolved by YAML 1.2 rules; anything unusual (tags, merge keys, duplicate keys,
a syntax error) goes to ruamel, which decides with its exact semantics and messages. Both
record where each key and value sits, for file:line:column errors. Alias expansion is
bounded (no "billion laughs").

Writing (``YamlDocument``): ``adopt`` and ``import`` edit files people wrote, in ruamel's
round-trip mode, keeping comments, key order and the file's own indentation (read off the
file with ruamel's ``load_yaml_guess_indent`` for sequences, and by its mapping layout).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.errors import Problem
from reconciler.store import fsutil

Loc = tuple[str | int, ...]
MAX_NODES = 200_000  # bounds alias expansion (a "billion laughs" document)


@dataclass(frozen=True)
class Located:
    """Where a key or value of desired state was written: file, 1-based line and column."""

    file: str
    line: int
    column: int


def make_yaml() -> Any:
    """The one YAML factory: round-trip (positions, comments), YAML 1.2, no duplicate keys."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.allow_duplicate_keys = False
    return yaml


@dataclass(frozen=True)
class Positioned:
    """A document as plain data, and where each key and value of it was written."""

    data: Any
    keys: dict[Loc, Located]
    values: dict[Loc, Located]


def read(text: str, shown: str, problems: list[Problem]) -> Positioned | None:
    """``text`` as plain data with positions; None (and a located problem) if it is not
    valid YAML or expands to too many nodes."""
    keylocs: dict[Loc, Located] = {}
    vallocs: dict[Loc, Located] = {}
    # Checked before any parser runs: libyaml crashes on deep nesting, and a lone surrogate
    # or a huge integer would only fail far from here.
    for where, message, hint in (
        (fsutil.too_deep(text, yaml=True), f"nested deeper than {fsutil.MAX_DEPTH} levels", ""),
        (fsutil.lone_surrogate(text), "a lone UTF-16 surrogate escape", "no text can hold it"),
        (fsutil.huge_integer(text), "a number too long", "quote it if it is text"),
    ):
        if where is not None:
            problems.append(Problem(shown, where[0], where[1], message, hint))
            return None
    try:
        fast = _compose_fast(text, shown, keylocs, vallocs)
        if fast is not _SLOW_PATH:
            plain = fast
        else:
            keylocs.clear()
            vallocs.clear()
            plain = _load_exact(text, shown, keylocs, vallocs, problems)
            if plain is _INVALID:
                return None
    except (RecursionError, ValueError) as e:
        why = "nested too deep (a recursive alias?)" if isinstance(e, RecursionError) else str(e)
        problems.append(Problem(shown, 1, 1, f"cannot read this YAML: {why.splitlines()[0]}"))
        return None
    except _TooLarge:
        problems.append(
            Problem(
                shown,
                1,
                1,
                "document expands to too many nodes",
                "aliases are expanded; a recursive or exploding alias is refused",
            )
        )
        return None
    bad = _surrogate_at(plain, ())
    if bad is not None:  # "\ud83d\ude00": YAML's escapes do not pair up as JSON's do
        at = vallocs.get(bad) or keylocs.get(bad) or Located(shown, 1, 1)
        problems.append(
            Problem(
                at.file,
                at.line,
                at.column,
                "a UTF-16 surrogate escape: no text can hold it",
                "YAML does not pair \\u escapes: write the character itself, or \\UXXXXXXXX",
            )
        )
        return None
    return Positioned(plain, keylocs, vallocs)


def _surrogate_at(data: Any, loc: Loc) -> Loc | None:
    """Where a string (key or value) holds a UTF-16 surrogate, or None."""
    if isinstance(data, str):
        return loc if any("\ud800" <= c <= "\udfff" for c in data) else None
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and _surrogate_at(key, loc) is not None:
                return (*loc, key)
            found = _surrogate_at(value, (*loc, key))
            if found is not None:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = _surrogate_at(value, (*loc, i))
            if found is not None:
                return found
    return None


_SLOW_PATH = object()
_INVALID = object()


def _load_exact(
    text: str,
    shown: str,
    keylocs: dict[Loc, Located],
    vallocs: dict[Loc, Located],
    problems: list[Problem],
) -> Any:
    """ruamel's round-trip loader: exact YAML 1.2 and the error messages people see."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        document = make_yaml().load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = (e.problem or e.context or "invalid YAML").strip()
        hint = ""
        if "duplicate key" in message or "found duplicate key" in str(e):
            message, hint = _duplicate_key_message(e)
        problems.append(Problem(shown, line, col, message, hint))
        return _INVALID
    except YAMLError as e:
        problems.append(Problem(shown, 0, 0, f"invalid YAML: {e}"))
        return _INVALID
    if document is None:
        return None
    return _plain(document, (), shown, keylocs, vallocs, [0])


# YAML 1.2 core schema for plain scalars (``yes``/``on`` stay strings, unlike YAML 1.1).
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
    r"|\.(?:nan|NaN|NAN))$"
)


def _compose_fast(
    text: str, shown: str, keylocs: dict[Loc, Located], vallocs: dict[Loc, Located]
) -> Any:
    """The common case at C speed: libyaml composes, this resolves scalars per YAML 1.2.

    ruamel's pure-Python round-trip parser costs about 1 ms per server; libyaml about 30x
    less. Anything unusual (tags, merge keys, duplicate keys, a syntax error, no libyaml)
    returns ``_SLOW_PATH`` so that ruamel decides, with its exact semantics and messages.
    """
    if "!" in text or "<<" in text or any(c in text for c in "\x85\u2028\u2029"):
        return _SLOW_PATH  # libyaml reads NEL, LS and PS as line breaks (YAML 1.1); 1.2 does not
    try:
        import yaml

        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):
        return _SLOW_PATH
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return _SLOW_PATH
    if node is None:
        return None
    budget = [0]

    def walk(node: Any, loc: Loc) -> Any:
        budget[0] += 1
        if budget[0] > MAX_NODES:
            raise _TooLarge
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = walk(key_node, loc)
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise _Unusual  # a null, boolean or float key: left to the exact loader
                if key in out:
                    raise _Unusual  # a duplicate key: ruamel reports it
                here = (*loc, key)
                km, vm = key_node.start_mark, value_node.start_mark
                keylocs[here] = Located(shown, km.line + 1, km.column + 1)
                vallocs[here] = Located(shown, vm.line + 1, vm.column + 1)
                out[key] = walk(value_node, here)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                here = (*loc, i)
                m = item.start_mark
                keylocs[here] = vallocs[here] = Located(shown, m.line + 1, m.column + 1)
                items.append(walk(item, here))
            return items
        value: str = node.value
        if node.style:  # quoted or block scalar: always text
            return value
        if _NULL.match(value):
            return None
        if value in _BOOL:
            return _BOOL[value]
        if _INT.match(value):
            return int(value, 0) if value[:2] in ("0o", "0x") else int(value)
        if _FLOAT.match(value):
            lowered = value.lower()
            if "inf" in lowered:
                return float(lowered.replace(".", ""))
            return float("nan") if "nan" in lowered else float(value)
        return value

    try:
        return walk(node, ())
    except _Unusual:
        return _SLOW_PATH


class _Unusual(Exception):
    """The fast path met something only the exact loader should judge."""


def _duplicate_key_message(e: Exception) -> tuple[str, str]:
    text = str(e)
    key = ""
    marker = 'found duplicate key "'
    if marker in text:
        key = text.split(marker, 1)[1].split('"', 1)[0]
    return f"duplicate key '{key}'", "a key may appear once per mapping; merge the two"


class _TooLarge(Exception):
    pass


def _plain(
    node: Any,
    loc: Loc,
    file: str,
    keylocs: dict[Loc, Located],
    vallocs: dict[Loc, Located],
    budget: list[int],
) -> Any:
    """Round-trip YAML to plain data, recording where each key and value sits."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    budget[0] += 1
    if budget[0] > MAX_NODES:
        raise _TooLarge
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            here = (*loc, key)
            with contextlib.suppress(KeyError, IndexError, AttributeError, TypeError):
                kl, kc = node.lc.key(key)
                keylocs[here] = Located(file, kl + 1, kc + 1)
                vl, vc = node.lc.value(key)
                vallocs[here] = Located(file, vl + 1, vc + 1)
            plain_key = key if isinstance(key, (str, int, float, bool)) or key is None else str(key)
            out[plain_key] = _plain(value, here, file, keylocs, vallocs, budget)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            here = (*loc, i)
            with contextlib.suppress(KeyError, IndexError, AttributeError, TypeError):
                il, ic = node.lc.item(i)
                vallocs[here] = keylocs[here] = Located(file, il + 1, ic + 1)
            items.append(_plain(value, here, file, keylocs, vallocs, budget))
        return items
    if isinstance(node, dict):
        return {k: _plain(v, (*loc, k), file, keylocs, vallocs, budget) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, (*loc, i), file, keylocs, vallocs, budget) for i, v in enumerate(node)]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if node is None:
        return None
    # Tagged scalars and other round-trip types: kept inert as text, and rejected by the schema.
    return str(node) if not hasattr(node, "value") else node.value


# -- the round-trip editor ------------------------------------------------------------


@dataclass
class YamlDocument:
    """One desired-state file loaded for a minimal edit."""

    path: Path
    original: bytes | None
    data: Any
    indent: tuple[int, int, int] = (2, 4, 2)
    touched: bool = field(default=False)

    def dump(self) -> bytes:
        yaml = make_yaml()
        mapping, sequence, offset = self.indent
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        out = io.StringIO()
        yaml.dump(self.data, out)
        return out.getvalue().encode("utf-8")


def dump_plain(data: Any, header: str = "") -> bytes:
    """A generated file (the tool lock) from plain data, with a comment ``header``: the one
    factory's layout, so the file reads like the ones people write."""
    out = io.StringIO()
    out.write(header)
    make_yaml().dump(data, out)
    return out.getvalue().encode("utf-8")


def guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as ruamel wants them, read off the file's own layout.

    Block sequences are measured by ruamel's own ``load_yaml_guess_indent``; it reports one
    indent, that of sequences, so the mapping indent is read here from the first nested key.
    """
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.util import load_yaml_guess_indent

    mapping = None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for before, line in itertools.pairwise(lines):
        outer = len(before) - len(before.lstrip())
        inner = len(line) - len(line.lstrip())
        if before.rstrip().endswith(":") and inner > outer and not line.lstrip().startswith("-"):
            mapping = inner - outer
            break
    sequence, offset = 4, 2
    with contextlib.suppress(YAMLError, ValueError, TypeError):
        _, indent, block_sequence = load_yaml_guess_indent(text)
        if block_sequence is not None and indent is not None:
            sequence, offset = int(indent), int(block_sequence)
    return mapping or 2, sequence, offset


def load_document(path: Path) -> YamlDocument:
    snapshot = fsutil.read_snapshot(path)
    if snapshot.content is None:
        from ruamel.yaml.comments import CommentedMap

        return YamlDocument(path, None, CommentedMap())
    text = snapshot.content.decode("utf-8")
    data = make_yaml().load(text)
    if data is None:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    return YamlDocument(path, snapshot.content, data, guess_indent(text))
