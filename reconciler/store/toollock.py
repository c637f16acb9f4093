"""The tool lock, ``desired/tools.lock.yaml``: the reviewed tool surface of every server.

It lives in the desired repository because it is reviewed like desired state: a change of a
server's tools after review (a new tool, a changed description or schema) shows as drift
until ``reconcile probe --lock`` accepts it, and that commit is the review record. It holds
classes and hashes only (``core.tools.ToolRecord``), never a description or schema text, so
it cannot carry a secret a server put in a description.

The desired loader skips this file (``LOCK_FILE``): it is not desired state.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.core.errors import DesiredStateError, Problem, ReconcilerError
from reconciler.core.tools import LOCKED_FIELDS, ToolClass, ToolRecord
from reconciler.store import fsutil, yamlio

LOCK_FILE = "tools.lock.yaml"
FORMAT = 1
HEADER = (
    "# The reviewed tool surface of each server, written by `reconcile probe --lock`.\n"
    "# A tool added, removed or changed upstream is drift until the lock is updated.\n"
)

# server -> tool -> record
Lock = Mapping[str, Mapping[str, ToolRecord]]


def lock_path(desired_dir: Path) -> Path:
    return desired_dir / LOCK_FILE


def load(desired_dir: Path) -> dict[str, dict[str, ToolRecord]] | None:
    """The lock, or None when there is none yet. A malformed lock is exit 2, located."""
    path = lock_path(desired_dir)
    shown = str(path)
    try:
        content = fsutil.read_bounded(path)
    except ReconcilerError as e:
        raise DesiredStateError([Problem(shown, 0, 0, f"cannot read the tool lock: {e}")]) from e
    if content is None:
        return None
    problems: list[Problem] = []
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DesiredStateError([Problem(shown, 0, 0, "the tool lock is not UTF-8")]) from e
    found = yamlio.read(text, shown, problems)
    if found is None:
        raise DesiredStateError(problems)
    lock = _parse(found.data)
    if lock is None:
        raise DesiredStateError(
            [
                Problem(
                    shown,
                    1,
                    1,
                    "malformed tool lock",
                    "it is written by `reconcile probe --lock`: restore it from git or run that",
                )
            ]
        )
    return lock


def _parse(data: Any) -> dict[str, dict[str, ToolRecord]] | None:
    if data is None:
        return {}
    if not isinstance(data, dict) or data.get("lock") != FORMAT:
        return None
    servers = data.get("servers") or {}
    if not isinstance(servers, dict):
        return None
    out: dict[str, dict[str, ToolRecord]] = {}
    classes = {c.value: c for c in ToolClass}
    for server, tools in servers.items():
        if not isinstance(tools, dict):
            return None
        records: dict[str, ToolRecord] = {}
        for name, entry in (tools or {}).items():
            if not isinstance(entry, dict) or entry.get("class") not in classes:
                return None
            digest, fields = entry.get("sha256"), entry.get("fields") or {}
            if not isinstance(digest, str) or not isinstance(fields, dict):
                return None
            kept = {k: str(v) for k, v in fields.items() if k in LOCKED_FIELDS}
            records[str(name)] = ToolRecord(str(name), classes[entry["class"]], digest, kept)
        out[str(server)] = records
    return out


def render(lock: Lock) -> bytes:
    """The lock file's bytes: servers and tools sorted, so a diff shows only what moved."""
    servers = {
        server: {name: tools[name].to_json() for name in sorted(tools)}
        for server, tools in sorted(lock.items())
    }
    return yamlio.dump_plain({"lock": FORMAT, "servers": servers}, HEADER)


def save(desired_dir: Path, lock: Lock) -> bool:
    """Write the lock atomically; False (nothing written) when it would not change."""
    path = lock_path(desired_dir)
    data = render(lock)
    if fsutil.read_snapshot(path).content == data:
        return False
    fsutil.atomic_write(path, data)
    return True
