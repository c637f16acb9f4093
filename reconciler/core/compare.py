"""Field-level differences between essences, and the three-way origin of a drift.

Pure functions over plain data. Paths are JSON Pointers (RFC 6901) into the essence, the
same addresses divergence records use: ``/args/1``, ``/env/GITHUB_TOKEN``, ``/url``.

The origin of a drift comes from comparing three essences, as kubectl's last-applied
annotation does: desired (git), live (the target) and last-applied (what this tool wrote).

Plain equality decides whether two essences differ; deepdiff explains how, once they do.
Running deepdiff on every entry would cost about 130 ms per 500 entries even when nothing
changed (and importing it ~200 ms), so a no-op pass never touches it. Its tree view, with
``threshold_to_diff_deeper=0`` (never a whole-dict replacement, PYTHON.md 1.3), gives each
changed path with its old and new value; the path's list form becomes the JSON Pointer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.core.essence import Essence


class Origin(StrEnum):
    """Who moved: git, a person editing the target, both, or nobody yet (never applied)."""

    NEW = "new"
    DESIRED = "desired"
    LIVE = "live"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class FieldChange:
    """One difference: at ``path`` the live value ``old`` must become ``new`` (None: absent).

    ``last`` is the last-applied value there, kept for a conflict (git and live both moved),
    so that the three values can be shown.
    """

    path: str
    old: Any
    new: Any
    last: Any = None


def pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def pointer_unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer_parts(pointer: str) -> list[str]:
    if pointer in ("", "/"):
        return []
    return [pointer_unescape(p) for p in pointer.lstrip("/").split("/")]


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at ``pointer``, or None where the path does not exist."""
    node = document
    for part in pointer_parts(pointer):
        if isinstance(node, dict):
            if part not in node:
                return None
            node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return None
            node = node[int(part)]
        else:
            return None
    return node


def diff(old: Essence | None, new: Essence | None) -> tuple[FieldChange, ...]:
    """Every value that differs from ``old`` (live) to ``new`` (desired), in field order.

    An added or removed key or list item is one change (None on the absent side), even
    when its value is a mapping: ``/env/TOKEN: None -> ...``.
    """
    old, new = old or {}, new or {}
    if old == new:
        return ()
    from deepdiff import DeepDiff  # heavy: only once a difference is known

    found = DeepDiff(
        old,
        new,
        threshold_to_diff_deeper=0,
        zip_ordered_iterables=True,  # args compare by position, as clients read them
        verbose_level=2,
        view="tree",
    )
    changes = []
    for levels in found.values():
        for level in levels:
            before, after = _present(level.t1), _present(level.t2)
            if before == after:
                continue  # a key added or removed with a null value: absent either way
            parts = level.path(output_format="list")
            path = "/" + "/".join(pointer_escape(str(p)) for p in parts) if parts else "/"
            changes.append(FieldChange(path, before, after))
    return tuple(sorted(changes, key=lambda c: _field_order(c.path, old, new)))


def _present(value: Any) -> Any:
    """deepdiff marks the absent side with its ``NotPresent`` object: None here."""
    return None if type(value).__name__ == "NotPresent" else value


def _field_order(path: str, old: Any, new: Any) -> tuple[int, ...]:
    """Where ``path`` comes in the documents: live's keys first, then keys only desired has."""
    order = []
    for part in pointer_parts(path):
        if isinstance(old, dict) or isinstance(new, dict):
            keys = list(old or {}) if isinstance(old, dict) else []
            keys += [k for k in (new if isinstance(new, dict) else {}) if k not in keys]
            order.append(keys.index(part) if part in keys else len(keys))
            old = old.get(part) if isinstance(old, dict) else None
            new = new.get(part) if isinstance(new, dict) else None
        else:
            index = int(part) if part.isdigit() else 0
            order.append(index)
            old = old[index] if isinstance(old, list) and index < len(old) else None
            new = new[index] if isinstance(new, list) and index < len(new) else None
    return tuple(order)


def align_header_names(live: Essence, desired: Essence | None) -> Essence:
    """Header names are case-insensitive: spell live names as desired spells them."""
    if not desired or "headers" not in live or "headers" not in desired:
        return live
    spelling = {name.lower(): name for name in desired["headers"]}
    headers = {spelling.get(k.lower(), k): v for k, v in live["headers"].items()}
    return {**live, "headers": dict(sorted(headers.items()))}


def origin(desired: Essence | None, live: Essence | None, last: Essence | None) -> Origin:
    """Three-way classification of a difference between desired and live."""
    if last is None:
        return Origin.NEW
    if live == last:
        return Origin.DESIRED
    if desired == last:
        return Origin.LIVE
    return Origin.CONFLICT
