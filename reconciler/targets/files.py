"""The shared mechanism of every file-backed client target.

Each client stores servers in its own document format (JSON, JSONC, TOML) and spells them in
its own dialect, but the way to change such a file safely is always the same: read a
snapshot, map entries to essences, and on apply take the reconciler's lock, re-check the
snapshot (compare-and-swap), merge only the managed entries into the document as it is on
disk, and write atomically. Subclasses supply only the format and the dialect.
"""

from __future__ import annotations

import contextlib
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler.core.errors import ConcurrentChange, TargetError, TargetFormatError
from reconciler.core.essence import Capability, Essence
from reconciler.core.model import TargetSpec
from reconciler.store import fsutil
from reconciler.targets import paths
from reconciler.targets.base import Context, Entries, Observation, Write


class FileTarget(ABC):
    """A client config file holding a map of server entries somewhere inside a document."""

    kind: str  # the name a target's ``kind:`` gives in desired state
    entry_kind = Entries.SERVERS
    capability: Capability
    scopes: tuple[str, ...] = ("user",)  # the first is the default
    # Where the client turns single tools of a server off: the entry key (``disabled_tools``),
    # or a key elsewhere in the client's settings (Claude Code's ``permissions.deny``). None:
    # the client has none in its files. Declared per kind for tool governance, which compiles
    # ``tools.deny``/``allow`` into it; reference/TOOLCONTROLS.md sections 1 and 3.
    tool_control: str | None = None

    def __init__(self, name: str, spec: TargetSpec, context: Context) -> None:
        self.name = name
        self.spec = spec
        self.context = context
        self.path = self.locate(spec, context)

    # -- what subclasses provide -------------------------------------------------------

    @classmethod
    @abstractmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        """The client's own file location for this platform and scope."""

    @abstractmethod
    def parse(self, content: bytes) -> Any:
        """The whole document; raise TargetFormatError (with file:line) if it is not valid."""

    @abstractmethod
    def render(self, document: Any, original: bytes | None) -> bytes:
        """Serialize the document in the original's style (indentation, final newline)."""

    @abstractmethod
    def entries(self, document: Any) -> Mapping[str, Any]:
        """The native server entries in the document (empty if the section is absent)."""

    @abstractmethod
    def entries_for_update(self, document: Any) -> MutableMapping[str, Any]:
        """The server section, created where it is missing, for in-place edits."""

    @abstractmethod
    def to_essence(self, entry: str, native: Any) -> Essence:
        """One native entry as an essence; TargetFormatError if it is not an entry at all."""

    @abstractmethod
    def to_native(self, essence: Essence, existing: Any) -> Any:
        """The native entry for an essence, keeping fields of ``existing`` that we do not manage."""

    # -- the shared mechanism ----------------------------------------------------------

    # The kind has profiles of the user scope (``profile:`` in desired state).
    profiles = False

    @classmethod
    def variants(cls, spec: TargetSpec, context: Context) -> tuple[TargetSpec, ...]:
        """The spec, and one per profile found on this machine (for discovery)."""
        return (spec,)

    @classmethod
    def locate(cls, spec: TargetSpec, context: Context) -> Path:
        if spec.path:
            return paths.expand(spec.path, context)
        return cls.default_path(spec, context)

    def describe(self) -> str:
        return str(self.path)

    def watch_paths(self) -> tuple[Path, ...]:
        return (self.path,)

    def close(self) -> None:
        return None

    def observe(self) -> Observation:
        snapshot = fsutil.read_snapshot(self.path)
        if not snapshot.exists:
            return Observation({}, snapshot, exists=False)
        if not (snapshot.content or b"").strip(b" \t\r\n\xef\xbb\xbf"):
            # Empty is not "no servers": a client halfway through its own save leaves it so
            # for a moment. Taken for an empty config, every foreign key would be wiped.
            raise TargetFormatError(f"{self.path}: {fsutil.EMPTY_FILE}", recoverable=True)
        document = self.read(snapshot.content or b"")
        essences = {
            name: self.to_essence(name, native) for name, native in self.entries(document).items()
        }
        return Observation(essences, snapshot, mode=_mode(self.path))

    # "file": any change since observe refuses the write (the pass is retried).
    # "entries": only a change to an entry being written does; a change elsewhere in the
    # document (a client saving its own state) is merged, for files their app rewrites often.
    cas_scope = "file"

    def client_lock(self) -> AbstractContextManager[None]:
        """The client's own lock on its file, for clients that have one (none by default)."""
        return contextlib.nullcontext()

    def apply(self, observation: Observation, writes: Sequence[Write]) -> None:
        snapshot: fsutil.FileSnapshot = observation.snapshot
        with fsutil.locked(self.context.lock_dir, self.path), self.client_lock():
            # Merge into the document as it is on disk now: the CAS below refuses if that
            # differs from what was observed, so no change made meanwhile is lost.
            current = fsutil.read_snapshot(self.path)
            if current.content != snapshot.content and not self._only_elsewhere(
                snapshot, current, writes
            ):
                raise ConcurrentChange(
                    f"{self.path}: changed since it was read; the pass is retried"
                )
            if current.content is None:
                document = self.empty_document()
            else:
                document = self.parse(current.content)
            section = self.entries_for_update(document)
            for write in writes:
                if write.essence is None:
                    section.pop(write.entry, None)
                else:
                    section[write.entry] = self.to_native(write.essence, section.get(write.entry))
            data = self.render(document, current.content)
            sensitive = any(w.sensitive for w in writes)
            fsutil.compare_and_swap(current, data, mode=fsutil.NEW_FILE_MODE if sensitive else None)

    def read(self, content: bytes) -> Any:
        """The document for observing only, never written back: ``parse`` unless faster."""
        return self.parse(content)

    def empty_document(self) -> Any:
        return {}

    def _only_elsewhere(
        self, seen: fsutil.FileSnapshot, now: fsutil.FileSnapshot, writes: Sequence[Write]
    ) -> bool:
        """True when the file changed, but not in any entry about to be written."""
        if self.cas_scope != "entries" or seen.content is None or now.content is None:
            return False
        try:
            before = self.entries(self.parse(seen.content))
            after = self.entries(self.parse(now.content))
        except TargetError:  # caught mid-write by a non-atomic writer: retry the pass
            return False
        return all(before.get(w.entry) == after.get(w.entry) for w in writes)


def _mode(path: Path) -> int | None:
    """The file's permission bits, read after its content (a file holding resolved secret
    values must be 0600: a wider mode is drift)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
