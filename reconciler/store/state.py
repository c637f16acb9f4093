"""The state directory, one store for every file in it: last-applied essences, the
fingerprint key, the status file, rejected records, the daemon's heartbeat and lock, the
intent log of writes in flight, the last probe's tool inventory, and the targets' caches
(mirror hashes, MCPJungle tool flags to restore). Every write goes through
``fsutil.atomic_write``.

Client files carry no metadata, so what this tool wrote (the inventory that makes pruning
safe and the third side of the three-way compare) is kept here, per target. Essences are
stored sealed: the state directory never holds a secret value. The only secret-bearing
file is the fingerprint key itself, created once with mode 0600.

A dry run must not create anything, not even this directory: readers here never write, and
an absent key gives an ephemeral one (there is nothing applied to compare against anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.errors import ReconcilerError, TargetError
from reconciler.core.essence import Essence
from reconciler.core.tools import LOCKED_FIELDS, ServerTools, ToolClass, ToolRecord
from reconciler.store import desired, fsutil
from reconciler.store.desired import DesiredState

KEY_FILE = "fingerprint.key"
DESIRED_CACHE_FILE = "desired-cache.bin"
STATUS_FILE = "status.json"
REJECTED_FILE = "rejected.json"
DAEMON_STATUS_FILE = "daemon.json"
DAEMON_LOCK_FILE = "daemon.lock"
TOOLS_FILE = "tools.json"  # the last probe's tool inventory: classes and hashes, no texts
CACHE_DIR = "mirror-cache"
INTENT_DIR = "intents"
FORMAT = 1
KEY_FIX = (
    "delete it and run again: a new key is made, and every entry this tool applied is"
    " seen once as changed"
)


class StateFileError(TargetError):
    """A file of the state directory is unreadable or malformed: a person must act."""

    recoverable = False


def default_state_dir() -> Path:
    from platformdirs import user_state_dir

    return Path(user_state_dir("mcp-reconciler", appauthor=False))


@dataclass
class Inventory:
    """What this tool last applied on one target, keyed by entry name on the target."""

    entries: dict[str, Essence] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    # Per entry, the tools this tool disabled in the target's own control (its rules, or
    # MCPJungle's flags): only these are ever released, and one missing is a live edit.
    tools: dict[str, frozenset[str]] = field(default_factory=dict)

    def copy(self) -> Inventory:
        return Inventory(dict(self.entries), set(self.created), dict(self.tools))

    def to_json(self, target: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "target": target,
            "entries": {
                name: {"essence": essence, "created": name in self.created}
                for name, essence in sorted(self.entries.items())
            },
        }
        owned = {name: sorted(tools) for name, tools in sorted(self.tools.items()) if tools}
        if owned:
            data["disabled_tools"] = owned
        return data


class StateStore:
    """Reads and writes one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._kept = b""  # the digest of the desired state last kept (keep_desired)

    def _inventory_path(self, target: str) -> Path:
        return self._inside("last-applied", f"{target}.json")

    def _inside(self, folder: str, name: str) -> Path:
        """``root/folder/name``, refused unless ``name`` is one plain file name: a crafted
        target name must never make this store write outside its directory."""
        if (
            not name
            or name.startswith(".")
            or any(c in name for c in "/\\\0")
            or name in (".", "..")
            or len(name.encode()) > 200
        ):
            raise ReconcilerError(
                f"refused state file name {name!r}: it would leave {self.root / folder}"
            )
        path = self.root / folder / name
        if os.path.normpath(path).rpartition(os.sep)[0] != os.path.normpath(self.root / folder):
            raise ReconcilerError(
                f"refused state file name {name!r}: it would leave {self.root / folder}"
            )
        return path

    def inventory(self, target: str) -> Inventory:
        path = self._inventory_path(target)
        fix = (
            "fix or delete this file; deleting it forgets which entries this tool created,"
            " so they are no longer pruned"
        )
        try:
            content = fsutil.read_bounded(path)
            if content is None:
                return Inventory()
            data = json.loads(content.decode("utf-8"))
        except (ReconcilerError, ValueError, RecursionError) as e:
            why = str(e).removeprefix(f"{path}: ").splitlines()[0] if str(e) else type(e).__name__
            raise StateFileError(f"{path}: unreadable last-applied record: {why} ({fix})") from e
        entries = data.get("entries", {}) if isinstance(data, dict) else None
        inventory = Inventory()
        if not isinstance(entries, dict) or not all(
            isinstance(r, dict) and isinstance(r.get("essence"), dict) for r in entries.values()
        ):
            raise StateFileError(f"{path}: malformed last-applied record ({fix})")
        for name, record in entries.items():
            inventory.entries[str(name)] = record["essence"]
            if record.get("created"):
                inventory.created.add(str(name))
        owned = data.get("disabled_tools", {})
        if not isinstance(owned, dict) or not all(
            isinstance(t, list) and all(isinstance(n, str) for n in t) for t in owned.values()
        ):
            raise StateFileError(f"{path}: malformed last-applied record ({fix})")
        inventory.tools = {str(name): frozenset(tools) for name, tools in owned.items()}
        return inventory

    # -- the intent log: ownership recorded before the client file is renamed ---------------

    def _intent_path(self, target: str) -> Path:
        return self._inside(INTENT_DIR, f"{target}.json")

    def write_intent(self, target: str, before: Inventory, after: Inventory) -> None:
        """Note, before a target is written, the inventory before and after the write.

        A process killed between the client file's rename and ``save_inventory`` would
        otherwise forget that it created an entry (never pruned again). The next pass
        replays the note against what the target holds (``pending_intent``).
        """
        payload = {
            "format": FORMAT,
            "before": before.to_json(target),
            "after": after.to_json(target),
        }
        fsutil.atomic_write(self._intent_path(target), (json.dumps(payload) + "\n").encode())

    def pending_intent(self, target: str) -> tuple[Inventory, Inventory] | None:
        """The (before, after) inventories of a write a killed pass did not finish recording."""
        path = self._intent_path(target)
        try:
            content = fsutil.read_bounded(path)
            data = json.loads(content.decode("utf-8")) if content is not None else None
        except (ReconcilerError, ValueError, RecursionError):
            data = {}
        if data is None:
            return None
        try:
            return _inventory_of(data["before"]), _inventory_of(data["after"])
        except (KeyError, TypeError, AttributeError):
            # A note cut by the kill itself: it was written before anything else, so the
            # target was not touched; the inventory as saved is still the truth.
            return Inventory(), Inventory()

    def clear_intent(self, target: str) -> None:
        path = self._intent_path(target)
        if path.exists():
            path.unlink()
            fsutil.fsync_directory(path.parent)

    def save_inventory(self, target: str, inventory: Inventory) -> None:
        payload = json.dumps(inventory.to_json(target), indent=2, sort_keys=False) + "\n"
        path = self._inventory_path(target)
        current = fsutil.read_snapshot(path)
        if current.content != payload.encode():  # unchanged state is not rewritten
            fsutil.atomic_write(path, payload.encode())

    def desired_cache(self) -> desired.Cache | None:
        """The validated desired state kept between runs, signed with the fingerprint key;
        None until an applying pass has made that key."""
        try:
            key = fsutil.read_bounded(self.root / KEY_FILE, limit=4096)
        except ReconcilerError:
            return None
        if key is None or len(key) < 32:
            return None
        return desired.Cache(self.root / DESIRED_CACHE_FILE, key)

    def keep_desired(self, state: DesiredState) -> None:
        """After an applying pass: keep its validated desired state for the next runs
        (once per state: the daemon passes the same state again and again)."""
        if state.cached or not state.digest or state.digest == self._kept:
            return
        cache = self.desired_cache()
        if cache is not None:
            desired.keep(cache, state)
            self._kept = state.digest

    def fingerprint_key(self, *, create: bool) -> bytes:
        """The HMAC key; created (0600) only when ``create``, else ephemeral if absent."""
        path = self.root / KEY_FILE
        try:
            key = fsutil.read_bounded(path, limit=4096)
        except ReconcilerError as e:
            why = str(e).removeprefix(f"{path}: ")
            raise StateFileError(f"{path}: unreadable fingerprint key: {why} ({KEY_FIX})") from e
        if key is not None:
            if len(key) < 32:
                raise StateFileError(
                    f"{path}: the fingerprint key is {len(key)} bytes, fewer than 32 ({KEY_FIX})"
                )
            return key
        fresh = secrets.token_bytes(32)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
            fsutil.sweep(path)  # a temp key left by a killed process
            # Written whole to a temp file, then linked into place: a kill can never leave a
            # short key behind (the next pass would refuse it), and of two first passes at
            # once the second reads the first's key instead of replacing it.
            fd, temp = tempfile.mkstemp(
                prefix=f".{KEY_FILE}.{os.getpid()}.", suffix=".tmp", dir=self.root
            )
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(fresh)
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):  # the other first pass's key wins
                    os.link(temp, path)
            finally:
                os.unlink(temp)
            return path.read_bytes()
        return fresh

    def write_status(self, report: dict[str, Any]) -> None:
        data = (json.dumps(report, indent=2) + "\n").encode()
        fsutil.atomic_write(self.root / STATUS_FILE, data)

    def read_status(self) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = json.loads(_read(self.root / STATUS_FILE))
        except (ReconcilerError, ValueError, RecursionError):
            return None
        return result

    def rejections(self) -> dict[str, dict[str, str]]:
        """Rejected records per target and server, kept until a pass has synced the entry.

        Without it, a target with ``on_drift: record`` would just record the same live edit
        again on the next pass.
        """
        try:
            data = json.loads(_read(self.root / REJECTED_FILE))
        except (ReconcilerError, ValueError, RecursionError):
            return {}
        targets = data.get("targets", {}) if isinstance(data, dict) else {}
        if not isinstance(targets, dict):
            return {}
        return {
            str(t): {str(s): str(i) for s, i in servers.items()}
            for t, servers in targets.items()
            if isinstance(servers, dict)
        }

    def save_rejections(self, rejected: dict[str, dict[str, str]]) -> None:
        payload = {"format": 1, "targets": {t: s for t, s in sorted(rejected.items()) if s}}
        data = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
        path = self.root / REJECTED_FILE
        if fsutil.read_snapshot(path).content != data:
            fsutil.atomic_write(path, data)

    def tool_inventory(self) -> dict[str, ServerTools]:
        """Per server, the tools the last probe found: a pass governs from it without
        probing. Absent or unreadable reads as empty (a pass then says it is missing)."""
        try:
            data = json.loads(_read(self.root / TOOLS_FILE))
        except (ReconcilerError, ValueError, RecursionError):
            return {}
        servers = data.get("servers") if isinstance(data, dict) else None
        if not isinstance(servers, dict):
            return {}
        classes = {c.value: c for c in ToolClass}
        out: dict[str, ServerTools] = {}
        for server, entry in servers.items():
            tools = entry.get("tools") if isinstance(entry, dict) else None
            if not isinstance(tools, dict):
                continue
            records = {
                str(name): ToolRecord(
                    str(name),
                    classes[t["class"]],
                    str(t.get("sha256", "")),
                    {k: str(v) for k, v in (t.get("fields") or {}).items() if k in LOCKED_FIELDS},
                )
                for name, t in tools.items()
                if isinstance(t, dict) and t.get("class") in classes
            }
            probed = entry.get("probed_at")
            out[str(server)] = ServerTools(
                str(server), records, str(probed) if probed is not None else None
            )
        return out

    def save_tool_inventory(self, servers: Mapping[str, ServerTools]) -> None:
        """Keep what a probe found for these servers; the other servers' entries stay.
        One atomic write; an unchanged inventory is not rewritten."""
        merged = {**self.tool_inventory(), **servers}
        payload = {
            "format": FORMAT,
            "servers": {
                name: {
                    "probed_at": found.probed_at,
                    "counts": found.counts(),
                    "tools": {t: found.tools[t].to_json() for t in sorted(found.tools)},
                }
                for name, found in sorted(merged.items())
            },
        }
        data = (json.dumps(payload, indent=2) + "\n").encode()
        path = self.root / TOOLS_FILE
        if fsutil.read_snapshot(path).content != data:
            fsutil.atomic_write(path, data)

    def write_daemon_status(self, data: dict[str, Any]) -> None:
        """The daemon's heartbeat, rewritten after every pass (not fsynced: see atomic_write)."""
        payload = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()
        fsutil.atomic_write(self.root / DAEMON_STATUS_FILE, payload, durable=False)

    def read_daemon_status(self) -> dict[str, Any] | None:
        try:
            data = json.loads(_read(self.root / DAEMON_STATUS_FILE))
        except (ReconcilerError, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def daemon_lock(self) -> Path:
        return self.root / DAEMON_LOCK_FILE

    def cache_file(self, key: str) -> Path:
        """Where a target keeps a cache between passes (a mirror tree's file hashes)."""
        return self._inside(CACHE_DIR, f"{key}.json")

    @property
    def lock_dir(self) -> Path:
        return self.root / "locks"


def _inventory_of(data: Any) -> Inventory:
    entries = data["entries"]
    return Inventory(
        {str(n): dict(r["essence"]) for n, r in entries.items()},
        {str(n) for n, r in entries.items() if r.get("created")},
    )


def _read(path: Path) -> bytes:
    """A state file's bytes by the bounded read; absent reads as empty (invalid JSON)."""
    return fsutil.read_bounded(path) or b""
