"""The shared mechanism of every file-backed client target.

Each client stores servers in its own document format (JSON, JSONC, TOML) and spells them in
its own dialect, but the way to change such a file safely is always the same: read a
snapshot, map entries to essences, and on apply take the reconciler's lock, re-check the
snapshot (compare-and-swap), merge only the managed entries into the document as it is on
disk, and write atomically. Subclasses supply only the format and the dialect.

A kind with a per-tool control (``Capability.tool_rules``) holds governed tools as rules of
that control: in each entry (``tool_control``, the list's key: Codex ``disabled_tools``, Gemini
``excludeTools``), elsewhere in the document (opencode's ``tools`` map), or in another file
(Claude Code's settings, ``tools_path``). The family spells a rule (``tool_rule``); the
mechanism here reads every rule, and adds or removes only the rules it is told to, so a
rule the user wrote is never touched.
"""

from __future__ import annotations

import contextlib
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler.core.compare import pointer_escape
from reconciler.core.errors import ConcurrentChange, TargetError, TargetFormatError
from reconciler.core.essence import Capability, Essence
from reconciler.core.model import TargetSpec
from reconciler.core.plan import TOOL_ACTIONS, Action
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
        side = self.tools_path()
        return (self.path,) if side is None else (self.path, side)

    def close(self) -> None:
        return None

    def observe(self) -> Observation:
        snapshot = fsutil.read_snapshot(self.path)
        side = self.tools_path()
        rules: frozenset[str] = frozenset()
        side_snapshot = None
        notes: tuple[str, ...] = ()
        if side is not None and self.capability.tool_rules:
            side_snapshot = fsutil.read_snapshot(side)
            try:
                if _filled(side_snapshot.content):
                    rules = self.read_tool_rules(self.parse_tools(side_snapshot.content or b""))
            except TargetFormatError as e:
                # Not this pass's business unless it has tool rules to write (then the
                # write refuses with this error); the servers are still reconciled.
                notes = (f"{e}; governed tools cannot be read there",)
        if not snapshot.exists:
            return Observation(
                {},
                snapshot,
                notes=notes,
                exists=False,
                tool_rules=rules,
                tool_snapshot=side_snapshot,
            )
        if not _filled(snapshot.content):
            # Empty is not "no servers": a client halfway through its own save leaves it so
            # for a moment. Taken for an empty config, every foreign key would be wiped.
            raise TargetFormatError(f"{self.path}: {fsutil.EMPTY_FILE}", recoverable=True)
        document = self.read(snapshot.content or b"")
        essences = {
            name: self.to_essence(name, native) for name, native in self.entries(document).items()
        }
        if side is None and self.capability.tool_rules:
            rules = self.read_tool_rules(document)
        return Observation(
            essences,
            snapshot,
            notes=notes,
            tool_rules=rules,
            tool_snapshot=side_snapshot,
            mode=_mode(self.path),
        )

    # "file": any change since observe refuses the write (the pass is retried).
    # "entries": only a change to an entry being written does; a change elsewhere in the
    # document (a client saving its own state) is merged, for files their app rewrites often.
    cas_scope = "file"

    def client_lock(self) -> AbstractContextManager[None]:
        """The client's own lock on its file, for clients that have one (none by default)."""
        return contextlib.nullcontext()

    def apply(self, observation: Observation, writes: Sequence[Write]) -> None:
        side = self.tools_path()
        tools = [w for w in writes if w.action in TOOL_ACTIONS]
        entries = [w for w in writes if w.action not in TOOL_ACTIONS]
        if tools and side is not None:  # first: an unreadable control file changes nothing
            self._apply_tools_file(side, observation.tool_snapshot, tools)
        if entries or (tools and side is None):
            self._apply_document(observation, entries, [] if side is not None else tools)

    def _apply_document(
        self, observation: Observation, writes: Sequence[Write], tools: Sequence[Write]
    ) -> None:
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
            for write in tools:
                self._edit_tool_rules(document, write)
            data = self.render(document, current.content)
            sensitive = any(w.sensitive for w in writes)
            fsutil.compare_and_swap(current, data, mode=fsutil.NEW_FILE_MODE if sensitive else None)

    def _apply_tools_file(
        self, side: Path, seen: fsutil.FileSnapshot | None, writes: Sequence[Write]
    ) -> None:
        """The control in its own file: the same lock, compare-and-swap and atomic write."""
        with fsutil.locked(self.context.lock_dir, side):
            current = fsutil.read_snapshot(side)
            if seen is not None and current.content != seen.content:
                raise ConcurrentChange(f"{side}: changed since it was read; the pass is retried")
            if _filled(current.content):
                document = self.parse_tools(current.content or b"")
            elif current.exists:
                raise TargetFormatError(f"{side}: {fsutil.EMPTY_FILE}", recoverable=True)
            else:
                document = {}
            for write in writes:
                self._edit_tool_rules(document, write)
            fsutil.compare_and_swap(current, self.render(document, current.content))

    def _edit_tool_rules(self, document: Any, write: Write) -> None:
        if write.action is Action.TOOL_DISABLE:
            self.write_tool_rules(document, write.entry, write.tool_names, ())
        else:
            self.write_tool_rules(document, write.entry, (), write.tool_names)

    # -- the per-tool control (kinds whose capability has ``tool_rules``) ---------------------

    def tools_path(self) -> Path | None:
        """The file of the per-tool control when it is not the entries' file."""
        return None

    def parse_tools(self, content: bytes) -> Any:
        """The control's own file as a document (``tools_path``)."""
        return self.parse(content)

    def tool_rule(self, entry: str, tool: str) -> str:
        """The rule denying ``tool`` of the server at ``entry``, spelled as the control holds
        it. An entry-level list: the rule is its JSON Pointer in the document."""
        key = self.tool_control
        if key is None:
            raise TargetError(f"{self.kind} has no per-tool control")
        return f"{pointer_escape(entry)}/{key}/{pointer_escape(tool)}"

    def read_tool_rules(self, document: Any) -> frozenset[str]:
        """Every rule of the control, whoever wrote it."""
        key = self.tool_control
        if key is None:
            return frozenset()
        return frozenset(
            self.tool_rule(entry, tool)
            for entry, native in self.entries(document).items()
            if isinstance(native, Mapping) and isinstance(native.get(key), list)
            for tool in _plain_list(native.get(key))
            if isinstance(tool, str)
        )

    def write_tool_rules(
        self, document: Any, entry: str, deny: Sequence[str], release: Sequence[str]
    ) -> None:
        """Add the rules denying the ``deny`` tools of ``entry`` and remove those of the
        ``release`` tools; no other rule is touched."""
        key = self.tool_control
        if key is None:
            raise TargetError(f"{self.kind} has no per-tool control")
        native = self.entries_for_update(document).get(entry)
        if not isinstance(native, MutableMapping):
            if not deny:  # deleted in this same write: its rules went with it
                return
            raise TargetError(f"{self.path}: no entry '{entry}' to hold its denied tools")
        have = native.get(key)
        if have is not None and not isinstance(have, list):
            raise TargetFormatError(f"{self.path}: '{entry}.{key}' is not a list")
        listed = _plain_list(have)
        kept = [t for t in listed if t not in release]
        kept += [t for t in deny if t not in kept]
        if kept == listed:
            return
        if kept:
            native[key] = kept
        elif key in native:
            del native[key]

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


def _filled(content: bytes | None) -> bool:
    return bool((content or b"").strip(b" \t\r\n\xef\xbb\xbf"))


def _plain_list(value: Any) -> list[Any]:
    unwrap = getattr(value, "unwrap", None)  # a tomlkit array
    result = unwrap() if callable(unwrap) else value
    return list(result) if isinstance(result, list) else []
