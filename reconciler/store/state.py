"""The state directory, one store for every file in it: last-applied essences, the
fingerprint key, the status file, rejected records, the daemon's heartbeat and lock, and
the mirrors' hash caches. Every write goes through ``fsutil.atomic_write``.

Client files carry no metadata, so what this tool wrote (the inventory that makes pruning
safe and the third side of the three-way compare) is kept here, per target. Essences are
stored sealed: the state directory never holds a secret value. The only secret-bearing
file is the fingerprint key itself, created once with mode 0600.

A dry run must not create anything, not even this directory: readers here never write, and
an absent key gives an ephemeral one (there is nothing applied to compare against anyway).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.errors import ReconcilerError, TargetError
from reconciler.core.essence import Essence
from reconciler.store import desired, fsutil
from reconciler.store.desired import DesiredState

KEY_FILE = "fingerprint.key"
DESIRED_CACHE_FILE = "desired-cache.bin"
STATUS_FILE = "status.json"
REJECTED_FILE = "rejected.json"
DAEMON_STATUS_FILE = "daemon.json"
DAEMON_LOCK_FILE = "daemon.lock"
CACHE_DIR = "mirror-cache"
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

    def to_json(self, target: str) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "target": target,
            "entries": {
                name: {"essence": essence, "created": name in self.created}
                for name, essence in sorted(self.entries.items())
            },
        }


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
        return inventory

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
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(fresh)
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


def _read(path: Path) -> bytes:
    """A state file's bytes by the bounded read; absent reads as empty (invalid JSON)."""
    return fsutil.read_bounded(path) or b""
