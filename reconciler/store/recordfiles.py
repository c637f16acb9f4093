"""Divergence records on disk: ``desired/divergences/*.yaml``, read, validated and rendered.

The records themselves and their matching against drift are pure (``core.divergence``); this
module is the file side. Records are machine-written and loaded on every pass, so a record in
the exact layout ``render`` writes is read without a YAML parser; anything else (hand edits,
comments, other quoting) goes through the YAML module, which also locates problems.
"""

from __future__ import annotations

import difflib
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from reconciler.core.divergence import KEY, Record
from reconciler.core.errors import DesiredStateError, Problem, ReconcilerError
from reconciler.store import fsutil
from reconciler.store.desired import display_path
from reconciler.store.paths import repository_root
from reconciler.store.yamlio import make_yaml

DIRECTORY = "divergences"
_FIELDS = (
    "target",
    "server",
    "paths",
    "observed",
    "reason",
    "expires",
    "created",
    "created_by",
    "reviewed",
)
_REQUIRED = ("target", "server", "paths", "observed", "reason")
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def directory(desired_dir: Path) -> Path:
    return desired_dir / DIRECTORY


def record_id(target: str, server: str, taken: Iterable[str] = ()) -> str:
    """``<target>--<server>``, made file-safe, with a suffix when the pair already has one."""
    base = f"{_UNSAFE_ID.sub('_', target)}--{_UNSAFE_ID.sub('_', server)}"
    used = set(taken)
    if base not in used:
        return base
    n = 2
    while f"{base}-{n}" in used:
        n += 1
    return f"{base}-{n}"


def load(desired_dir: Path) -> tuple[Record, ...]:
    """Every record under ``desired/divergences``; DesiredStateError listing every problem."""
    folder = directory(desired_dir)
    if not folder.is_dir():
        return ()
    records: list[Record] = []
    problems: list[Problem] = []
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    yaml = _LazyYaml()  # one parser for every file, built only if a file needs it
    for path in files:
        record = _load_file(path, problems, yaml)
        if record is not None:
            records.append(record)
    if problems:
        raise DesiredStateError(problems)
    return tuple(records)


class _LazyYaml:
    """One round-trip parser for every record file, built only if a file needs it."""

    def __init__(self) -> None:
        self._yaml: Any = None

    def load(self, text: str) -> Any:
        if self._yaml is None:
            self._yaml = make_yaml()
        return self._yaml.load(text)


def _shown(path: Path) -> str:
    return display_path(path)


_PLAIN = re.compile(r"[A-Za-z0-9_/.~@+=(][^#'\"\[\]{},]*")
_NOT_TEXT = re.compile(
    r"(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|true|false|null|~|\.inf|\.nan)"
    r"|\d{4}-\d\d-\d\d.*",
    re.IGNORECASE,
)
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


def _fast_scalar(text: str) -> str | None:
    """A scalar exactly as ``render`` writes it (plain or single-quoted), else None."""
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        inner = text[1:-1]
        if "'" in inner.replace("''", ""):
            return None
        return inner.replace("''", "'")
    if _PLAIN.fullmatch(text) and ": " not in text and not text.endswith((":", " ")):
        if _NOT_TEXT.fullmatch(text):
            return None
        return text
    return None


def _fast_parse(text: str) -> dict[str, Any] | None:
    """Parse a record in the exact layout ``render`` writes, without a YAML parser.

    Records are machine-written and loaded on every pass; ruamel costs milliseconds per
    file. Anything else (hand edits, comments, other quoting) returns None and goes through
    the YAML parser, which also locates problems.
    """
    # Non-ASCII and control characters include YAML's own line breaks (NEL, LS, PS):
    # only the YAML parser reads those right.
    if not text.isascii() or any(c < " " and c != "\n" for c in text):
        return None
    lines = text.split("\n")
    if lines[0] != f"{KEY}:" or (lines[-1] != ""):
        return None
    body: dict[str, Any] = {}
    for line in lines[1:-1]:
        if not line.startswith("  ") or line.startswith("   "):
            return None
        key, sep, value = line[2:].partition(": ")
        if not sep or key not in _FIELDS or key in body:
            return None
        if key == "paths":
            if not (value.startswith("[") and value.endswith("]")):
                return None
            items = [v.strip() for v in value[1:-1].split(",")] if value != "[]" else []
            parsed = [_fast_scalar(v) for v in items]
            if any(p is None or not p.startswith("/") for p in parsed):
                return None
            body[key] = parsed
        elif key == "reviewed":
            if value not in ("true", "false"):
                return None
            body[key] = value == "true"
        elif key == "expires":
            if not _DATE.fullmatch(value):
                return None
            body[key] = value
        else:
            scalar = _fast_scalar(value)
            if scalar is None:
                return None
            body[key] = scalar
    return {KEY: body}


def _load_file(path: Path, problems: list[Problem], yaml: Any) -> Record | None:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    shown = _shown(path)
    try:
        text = fsutil.read_text(path)
    except (ReconcilerError, UnicodeDecodeError) as e:
        problems.append(Problem(shown, 0, 0, f"cannot read divergence record: {e}"))
        return None
    fast = _fast_parse(text)
    if fast is not None:
        scratch: list[Problem] = []
        record = parse(fast, path, shown, scratch)
        if record is not None:
            return record
    try:
        document = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problems.append(Problem(shown, line, col, (e.problem or "invalid YAML").strip()))
        return None
    except YAMLError as e:
        problems.append(Problem(shown, 0, 0, f"invalid divergence record: {e}"))
        return None
    return parse(document, path, shown, problems)


def parse(document: Any, path: Path, shown: str, problems: list[Problem]) -> Record | None:
    """Validate one loaded record document (plain or round-trip data)."""
    before = len(problems)

    def where(key: str | None = None) -> tuple[int, int]:
        node = document.get(KEY) if isinstance(document, dict) else None
        try:
            if key is not None and node is not None and hasattr(node, "lc"):
                line, col = node.lc.key(key)
                return line + 1, col + 1
            if hasattr(document, "lc"):
                line, col = document.lc.key(KEY)
                return line + 1, col + 1
        except (KeyError, TypeError, AttributeError):
            pass
        return 1, 1

    def problem(message: str, key: str | None = None, hint: str = "") -> None:
        line, col = where(key)
        problems.append(Problem(shown, line, col, message, hint))

    if not isinstance(document, dict) or set(document) != {KEY}:
        problem(
            "a divergence record is a mapping with the single key 'divergence'",
            hint="see DESIGN section 3 for the record format",
        )
        return None
    body = document[KEY]
    if not isinstance(body, dict):
        problem("'divergence' must be a mapping")
        return None
    for key in body:
        if key not in _FIELDS:
            close = difflib.get_close_matches(str(key), _FIELDS, n=1)
            problem(
                f"unknown key '{key}' in a divergence record",
                str(key),
                f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(_FIELDS)}",
            )
    for key in _REQUIRED:
        if key not in body:
            problem(f"missing required key '{key}' in a divergence record")
    for key in ("target", "server", "observed", "reason"):
        if key in body and (not isinstance(body[key], str) or not str(body[key]).strip()):
            problem(f"'{key}' must be a non-empty string", key)
    paths = body.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        problem("'paths' must be a list of JSON Pointers ([] means the whole entry)", "paths")
        paths = []
    for p in paths:
        if not str(p).startswith("/"):
            problem(f"'{p}' is not a JSON Pointer", "paths", "pointers start with '/'")
    observed = body.get("observed")
    if isinstance(observed, str) and not observed.startswith("hmac-sha256:"):
        problem(
            "'observed' must be a fingerprint (hmac-sha256:...)",
            "observed",
            "records are made by `reconcile allow`; never put a value here",
        )
    expires = _date(body.get("expires"))
    if body.get("expires") is not None and expires is None:
        problem("'expires' must be a date (YYYY-MM-DD)", "expires")
    reviewed = body.get("reviewed", False)
    if not isinstance(reviewed, bool):
        problem("'reviewed' must be true or false", "reviewed")
    if len(problems) > before:
        return None
    return Record(
        id=path.stem,
        file=path,
        target=str(body["target"]),
        server=str(body["server"]),
        paths=tuple(str(p) for p in paths),
        observed=str(observed),
        reason=str(body["reason"]),
        expires=expires,
        created=_text(body.get("created")),
        created_by=_text(body.get("created_by")),
        reviewed=bool(reviewed),
    )


def _date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def render(record: Record) -> str:
    """The record file's text. Machine-written, so always dumped fresh (PYTHON.md 1.2)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq  # heavy: only when writing

    paths = CommentedSeq(list(record.paths))
    paths.fa.set_flow_style()
    body = CommentedMap()
    body["target"] = record.target
    body["server"] = record.server
    body["paths"] = paths
    body["observed"] = record.observed
    body["reason"] = record.reason
    if record.expires is not None:
        body["expires"] = record.expires
    body["created"] = record.created
    body["created_by"] = record.created_by
    body["reviewed"] = record.reviewed
    out = io.StringIO()
    make_yaml().dump({KEY: body}, out)
    return out.getvalue()


def shown_paths(desired_dir: Path, records: Sequence[Record]) -> dict[str, str]:
    """Each record's file as reports show it: relative to the desired repository's root."""
    root = repository_root(desired_dir)
    shown = {}
    for record in records:
        try:
            shown[record.id] = record.file.resolve().relative_to(root).as_posix()
        except ValueError:
            shown[record.id] = str(record.file)
    return shown
