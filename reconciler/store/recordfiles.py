"""Divergence records on disk: ``desired/divergences/*.yaml``, read, validated and rendered.

The records themselves and their matching against drift are pure (``core.divergence``); this
module is the file side. A record file is read like a desired-state file (``yamlio.read``:
plain data with the position of every key), validated by the pydantic model ``RecordFile``
(built on first use, like the desired-state schema: a pass without records never imports
pydantic), and its errors go through the desired loader's translator (``desired.translate``), so a
record gets the same ``file:line:column`` problems, "did you mean" included.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from reconciler.core.divergence import KEY, Record
from reconciler.core.errors import DesiredStateError, Problem, ReconcilerError
from reconciler.store import fsutil, yamlio
from reconciler.store.desired import display_path, translate
from reconciler.store.paths import repository_root
from reconciler.store.yamlio import Loc, make_yaml

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

DIRECTORY = "divergences"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")
FINGERPRINT = "hmac-sha256:"


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _fingerprint(value: str) -> str:
    if not value.startswith(FINGERPRINT):
        raise ValueError(
            f"must be a fingerprint ({FINGERPRINT}...): records are made by"
            " `reconcile allow`; never put a value here"
        )
    return value


def _pointers(value: list[str]) -> list[str]:
    for pointer in value:
        if not pointer.startswith("/"):
            raise ValueError(
                f"{pointer!r} is not a JSON Pointer (pointers start with '/';"
                " [] means the whole entry)"
            )
    return value


def _date(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date) or value is None:
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError("must be a date (YYYY-MM-DD)")


def _stamp(value: Any) -> Any:
    """``created``: text as written; a timestamp YAML typed is given back as ISO text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class _Models:
    file: type[BaseModel]  # RecordFile: the single key ``divergence``
    body: type[BaseModel]  # RecordBody: the fields under it
    error: type[ValidationError]


@functools.cache
def _models() -> _Models:
    import pydantic  # heavy: only a pass with record files pays for it
    from pydantic import AfterValidator, BeforeValidator, StrictBool, StrictStr

    text = Annotated[StrictStr, AfterValidator(_text)]
    config = pydantic.ConfigDict(extra="forbid", strict=True)

    class RecordBody(pydantic.BaseModel):
        """The fields under ``divergence:`` (DESIGN section 3). Strict and closed, like the
        desired-state schema: a typo in a reviewed record must fail, not be ignored."""

        model_config = config

        target: text
        server: text
        paths: Annotated[list[StrictStr], AfterValidator(_pointers)]
        observed: Annotated[text, AfterValidator(_fingerprint)]
        reason: text
        expires: Annotated[date | None, BeforeValidator(_date)] = None
        created: Annotated[StrictStr, BeforeValidator(_stamp)] = ""
        created_by: Annotated[StrictStr, BeforeValidator(_stamp)] = ""
        reviewed: StrictBool = False

    class RecordFile(pydantic.BaseModel):
        """A record file: the single key ``divergence``."""

        model_config = config

        divergence: RecordBody

    return _Models(RecordFile, RecordBody, pydantic.ValidationError)


def _keys_at(loc: Loc) -> list[str] | None:
    """The keys valid at ``loc`` (for "did you mean")."""
    models = _models()
    found = {0: models.file, 1: models.body}.get(len(loc))
    return None if found is None else list(found.model_fields)


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
    for path in files:
        record = _load_file(path, problems)
        if record is not None:
            records.append(record)
    if problems:
        raise DesiredStateError(problems)
    return tuple(records)


def _load_file(path: Path, problems: list[Problem]) -> Record | None:
    shown = display_path(path)
    try:
        text = fsutil.read_text(path)
    except (ReconcilerError, UnicodeDecodeError) as e:
        problems.append(Problem(shown, 0, 0, f"cannot read divergence record: {e}"))
        return None
    found = yamlio.read(text, shown, problems)
    if found is None:
        return None
    if not isinstance(found.data, dict) or KEY not in found.data:
        problems.append(
            Problem(
                shown,
                1,
                1,
                f"a divergence record is a mapping with the single key '{KEY}'",
                "see DESIGN section 3 for the record format",
            )
        )
        return None
    models = _models()
    try:
        body: Any = models.file.model_validate(found.data).divergence  # type: ignore[attr-defined]
    except models.error as e:
        problems += translate(e, found.data, shown, found.keys, found.values, _keys_at)
        return None
    return Record(
        id=path.stem,
        file=path,
        target=body.target,
        server=body.server,
        paths=tuple(body.paths),
        observed=body.observed,
        reason=body.reason,
        expires=body.expires,
        created=body.created,
        created_by=body.created_by,
        reviewed=body.reviewed,
    )


def render(record: Record) -> str:
    """The record file's text. Machine-written, so always dumped fresh (PYTHON.md 1.2)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq  # heavy: only when writing
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    def text(value: str) -> str:
        # ruamel writes NEL, LS and PS raw in a single-quoted scalar, then reads them back
        # as line breaks: such text is written double-quoted, where they are escaped.
        if any(c in value for c in "\x85\u2028\u2029"):
            quoted: str = DoubleQuotedScalarString(value)
            return quoted
        return value

    paths = CommentedSeq([text(p) for p in record.paths])
    paths.fa.set_flow_style()
    body = CommentedMap()
    body["target"] = text(record.target)
    body["server"] = text(record.server)
    body["paths"] = paths
    body["observed"] = record.observed
    body["reason"] = text(record.reason)
    if record.expires is not None:
        body["expires"] = record.expires
    body["created"] = text(record.created)
    body["created_by"] = text(record.created_by)
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
