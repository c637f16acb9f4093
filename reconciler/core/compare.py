"""Field-level differences between essences, and the three-way origin of a drift.

Pure functions over plain data. Paths are JSON Pointers (RFC 6901) into the essence, the
same addresses divergence records use: ``/args/1``, ``/env/GITHUB_TOKEN``, ``/url``.

The origin of a drift comes from comparing three essences, as kubectl's last-applied
annotation does: desired (git), live (the target) and last-applied (what this tool wrote).
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
    """Every leaf that differs from ``old`` (live) to ``new`` (desired), in field order."""
    changes: list[FieldChange] = []
    _diff(old or {}, new or {}, "", changes)
    return tuple(changes)


def _diff(old: Any, new: Any, path: str, out: list[FieldChange]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [k for k in new if k not in old]
        for key in keys:
            _diff(old.get(key), new.get(key), f"{path}/{pointer_escape(str(key))}", out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            _diff(
                old[i] if i < len(old) else None,
                new[i] if i < len(new) else None,
                f"{path}/{i}",
                out,
            )
        return
    out.append(FieldChange(path or "/", old, new))


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
