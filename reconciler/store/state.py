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

from reconciler.core.errors import ReconcilerError
from reconciler.core.essence import Essence
from reconciler.store import fsutil

KEY_FILE = "fingerprint.key"
STATUS_FILE = "status.json"
REJECTED_FILE = "rejected.json"
DAEMON_STATUS_FILE = "daemon.json"
DAEMON_LOCK_FILE = "daemon.lock"
CACHE_DIR = "mirror-cache"
FORMAT = 1


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

    def _inventory_path(self, target: str) -> Path:
        return self.root / "last-applied" / f"{target}.json"

    def inventory(self, target: str) -> Inventory:
        path = self._inventory_path(target)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Inventory()
        except (OSError, ValueError) as e:
            raise ReconcilerError(f"{path}: unreadable last-applied record: {e}") from e
        inventory = Inventory()
        for name, record in data.get("entries", {}).items():
            inventory.entries[name] = record["essence"]
            if record.get("created"):
                inventory.created.add(name)
        return inventory

    def save_inventory(self, target: str, inventory: Inventory) -> None:
        payload = json.dumps(inventory.to_json(target), indent=2, sort_keys=False) + "\n"
        path = self._inventory_path(target)
        current = fsutil.read_snapshot(path)
        if current.content != payload.encode():  # unchanged state is not rewritten
            fsutil.atomic_write(path, payload.encode())

    def fingerprint_key(self, *, create: bool) -> bytes:
        """The HMAC key; created (0600) only when ``create``, else ephemeral if absent."""
        path = self.root / KEY_FILE
        try:
            key = path.read_bytes()
            if len(key) >= 32:
                return key
        except FileNotFoundError:
            pass
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
            result: dict[str, Any] = json.loads((self.root / STATUS_FILE).read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return result

    def rejections(self) -> dict[str, dict[str, str]]:
        """Rejected records per target and server, kept until a pass has synced the entry.

        Without it, a target with ``on_drift: record`` would just record the same live edit
        again on the next pass.
        """
        try:
            data = json.loads((self.root / REJECTED_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        targets = data.get("targets", {}) if isinstance(data, dict) else {}
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
            data = json.loads((self.root / DAEMON_STATUS_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def daemon_lock(self) -> Path:
        return self.root / DAEMON_LOCK_FILE

    def cache_file(self, key: str) -> Path:
        """Where a target keeps a cache between passes (a mirror tree's file hashes)."""
        return self.root / CACHE_DIR / f"{key}.json"

    @property
    def lock_dir(self) -> Path:
        return self.root / "locks"
