"""Mirror targets: one copy of a mirrored source tree, observed and synced file by file.

A mirror (``mirrors:`` in desired state) keeps each of its copies in parity with its source.
Each copy is a target of its own, named after the mirror (``<mirror>:<copy path>`` when the
mirror has several copies), so it takes part in a pass, ``status``, ``--json``, exit codes,
``allow`` and the daemon like any other target. Its entries are files, addressed by JSON
Pointers (``/src/index.ts``); the per-file comparison is pure (``reconciler.core.mirrordiff``).

Trees are walked without following any symlink: a link is compared by its target text, and a
write never goes through a link (a link in the copy where the source has a file is replaced,
never written through; a folder that is a link in the copy is never entered). Regular files
are hashed (SHA-256) only when their size, mtime, ctime or inode changed since the last pass:
the hashes are cached per tree in the state directory, written by non-dry runs only. An entry
whose timestamps are too close to the scan that hashed it is stored "racy" and re-hashed next
time (git's racy-clean rule), so a same-size edit in the same clock tick is never missed.

A sync copies each drifted file atomically (``fsutil.atomic_write``: temp file, fsync,
rename), with the source's mode; symlinks are recreated with a temp link and a rename; extra
files are deleted only with ``prune: true``. Before each file is replaced, the copy is checked
against what was observed (compare-and-swap per file) and the source's bytes against the hash
that was compared: a concurrent edit makes the pass retry instead of losing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.errors import ConcurrentChange, Problem, ReconcilerError, TargetError
from reconciler.core.essence import Capability
from reconciler.core.mirrordiff import (
    ALWAYS_SKIPPED,
    FileDiff,
    FileState,
    Selection,
    _compile,
    compare,
    path_of,
    token,
)
from reconciler.core.model import (
    MIRROR_COPY_KIND,
    MirrorCopySpec,
    TargetSpec,
    mirror_target_name,
    server_name_problem,
)
from reconciler.store import fsutil, paths
from reconciler.store.desired import DesiredState
from reconciler.store.state import StateStore
from reconciler.store.yamlio import Located
from reconciler.targets.base import Context, Entries, Observation, Write

KIND = MIRROR_COPY_KIND
CAPABILITY = Capability(frozenset(), frozenset())  # a mirror carries files, not servers
CACHE_FORMAT = 1
RACY_NS = 2_000_000_000  # timestamps this close to a scan are not trusted next time (FAT: 2 s)
HASH_THREADS = 4
READ_CHUNK = 1 << 20
CAS_ATTEMPTS = 5
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

StatKey = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


# -- desired state -------------------------------------------------------------------------


def check(
    state: DesiredState, at: Callable[..., Located], home: Path | None = None
) -> list[Problem]:
    """Cross-checks of ``mirrors:`` that need the whole desired state (names, paths, globs)."""
    problems: list[Problem] = []

    def problem(where: Located, message: str, hint: str = "") -> None:
        problems.append(Problem(where.file, where.line, where.column, message, hint))

    for name, spec in state.targets.items():
        if spec.kind == KIND:
            problem(
                at("targets", name, "kind"),
                f"target '{name}': kind 'mirror' is not declared under targets",
                "declare mirrored folders under `mirrors:` (source, copies); each copy becomes "
                "a target of its own",
            )
    root = paths.repository_root(state.root)
    seen_copies: dict[str, str] = {}
    for name, mirror in state.mirrors.items():
        why = server_name_problem(name)
        if why is not None:
            problem(at("mirrors", name), f"invalid mirror name '{name}': {why}")
        for copy in mirror.copies:
            tname = mirror_target_name(name, copy, len(mirror.copies))
            if tname in state.targets:
                problem(
                    at("mirrors", name),
                    f"mirror copy target '{tname}' has the name of a declared target",
                    "rename the mirror or the target: target names must be unique",
                )
        source = _normal(root, mirror.source, home)
        for index, copy in enumerate(mirror.copies):
            where = at("mirrors", name, "copies", index)
            path = _normal(root, copy, home)
            if path == source:
                problem(where, f"mirror '{name}': the copy is the source itself")
            elif path.startswith(source + os.sep) or source.startswith(path + os.sep):
                problem(
                    where,
                    f"mirror '{name}': the copy {copy} and the source {mirror.source} "
                    "contain one another",
                    "a mirror's copy must be a folder outside its source",
                )
            owner = seen_copies.get(path)
            if owner is not None:
                problem(where, f"the folder {copy} is a copy in mirrors '{owner}' and '{name}'")
            seen_copies[path] = name
        for key in ("include", "exclude"):
            for index, pattern in enumerate(getattr(mirror, key)):
                try:
                    _compile(pattern)
                except re.error as e:
                    problem(at("mirrors", name, key, index), f"invalid glob {pattern!r}: {e}")
                if not pattern.strip():
                    problem(at("mirrors", name, key, index), "an empty glob selects nothing")
    return problems


def _normal(root: Path, text: str, home: Path | None) -> str:
    return os.path.normpath(paths.expand(text, home=home or Path.home(), root=root))


def locate(text: str, context: Context) -> Path:
    """A mirror folder as written in desired state: ``~/``, absolute, or repository-relative."""
    return paths.expand(text, home=context.home, root=context.root)


# -- hash cache ----------------------------------------------------------------------------


class HashCache:
    """Hashes of one tree's regular files by stat key, kept in the state directory.

    The file is read by every pass and written only when ``writable`` (a non-dry run) and
    something changed: a no-op pass rewrites nothing.
    """

    def __init__(
        self,
        state_dir: Path | None,
        root: Path,
        *,
        writable: bool,
        selection: Selection | None = None,
    ) -> None:
        self.root = root
        self.writable = writable and state_dir is not None
        self.path: Path | None = None
        if state_dir is not None:
            # One file per tree and selection: two mirrors of one folder never thrash.
            chosen = selection or Selection()
            what = json.dumps([str(root), chosen.include, chosen.exclude])
            key = hashlib.sha256(what.encode()).hexdigest()[:24]
            self.path = StateStore(state_dir).cache_file(key)
        self.entries: dict[str, list[Any]] = {}
        self.synced: dict[str, str] = {}  # path -> the source token last put in this copy
        self._loaded_entries: dict[str, list[Any]] = {}
        self._loaded_synced: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            data = json.loads(fsutil.read_bounded(self.path) or b"")
        except (ReconcilerError, ValueError, RecursionError):
            return  # absent or unreadable: a cold pass, rebuilt by the next non-dry run
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return
        files, synced = data.get("files"), data.get("synced")
        if isinstance(files, dict):
            self.entries = files
        if isinstance(synced, dict):
            self.synced = {k: v for k, v in synced.items() if isinstance(v, str)}
        self._loaded_entries = dict(self.entries)
        self._loaded_synced = dict(self.synced)

    def save(self, found: Scan) -> None:
        """Keep the hashes of a scan; entries touched near its start are stored racy."""
        if found.hashed == 0 and len(found.keys) == len(self.entries):
            return  # every file vouched for by the cache: nothing to change
        fresh: dict[str, list[Any]] = {}
        limit = found.started - RACY_NS
        for path, key in found.keys.items():
            state = found.tree.get(path)
            if state is None or state.link is not None:
                continue
            size, mtime, ctime, ino = key
            if mtime >= limit or ctime >= limit:
                size = -1  # never matches: hashed again by the next pass
            fresh[path] = [size, mtime, ctime, ino, state.sha256]
        self.entries = fresh
        self.flush()

    def flush(self) -> None:
        if not self.writable or self.path is None:
            return
        if self.entries == self._loaded_entries and self.synced == self._loaded_synced:
            return
        payload = {
            "format": CACHE_FORMAT,
            "root": str(self.root),
            "files": self.entries,
            "synced": self.synced,
        }
        fsutil.atomic_write(self.path, json.dumps(payload, separators=(",", ":")).encode())
        self._loaded_entries = dict(self.entries)
        self._loaded_synced = dict(self.synced)


# -- scanning ------------------------------------------------------------------------------


@dataclass
class Scan:
    """One tree as observed: its entries, the stat keys of its files, and what was skipped."""

    root: Path
    tree: dict[str, FileState] = field(default_factory=dict)
    keys: dict[str, StatKey] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    exists: bool = True
    hashed: int = 0  # files read and hashed by this scan (the rest came from the cache)
    started: int = 0


def _key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def hash_file(path: str) -> tuple[str, StatKey, int]:
    """SHA-256, stat key and mode of a regular file, opened without following a link."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: no longer a regular file")
        digest = hashlib.sha256()
        want = st.st_size + 1  # one read for a file that did not grow; a short read is EOF
        while True:
            chunk = os.read(fd, min(want, READ_CHUNK))
            digest.update(chunk)
            if len(chunk) < min(want, READ_CHUNK) or not chunk:
                break
            want = READ_CHUNK
    finally:
        os.close(fd)
    return digest.hexdigest(), _key(st), stat.S_IMODE(st.st_mode)


def scan(
    root: Path,
    selection: Selection,
    cache: HashCache | None,
    *,
    missing_ok: bool,
    now_ns: Callable[[], int] = time.time_ns,
) -> Scan:
    """Walk ``root`` (never following a symlink below it); hash what the cache cannot vouch for."""
    result = Scan(root, started=now_ns())
    try:
        top = os.stat(root)
    except FileNotFoundError:
        if missing_ok:
            result.exists = False
            return result
        raise TargetError(f"{root}: folder not found", recoverable=False) from None
    except OSError as e:
        raise TargetError(f"{root}: cannot read: {e.strerror}") from e
    if not stat.S_ISDIR(top.st_mode):
        raise TargetError(f"{root}: not a folder", recoverable=False)
    filtered = bool(selection.include or selection.exclude)
    known = cache.entries if cache is not None else {}
    tree, keys = result.tree, result.keys
    pending: list[str] = []
    stack: list[tuple[str, str]] = [("", str(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as e:
            result.notes.append(f"{rel_dir or '.'}: cannot list: {e.strerror}; skipped")
            continue
        for entry in entries:
            name = entry.name
            if name in ALWAYS_SKIPPED:
                continue  # folders, and a file named .git (a worktree's pointer) too
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                if entry.is_file(follow_symlinks=False):
                    if filtered and not selection.selects(rel):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    cached = known.get(rel)
                    if (
                        cached is not None
                        and cached[1] == st.st_mtime_ns
                        and cached[0] == st.st_size
                        and cached[2] == st.st_ctime_ns
                        and cached[3] == st.st_ino
                    ):
                        tree[rel] = FileState(cached[4], st.st_size, st.st_mode & 0o7777)
                        keys[rel] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                    else:
                        pending.append(rel)
                elif entry.is_dir(follow_symlinks=False):
                    if not selection.skips_folder(rel):
                        stack.append((rel, entry.path))
                elif entry.is_symlink():
                    if not filtered or selection.selects(rel):
                        tree[rel] = FileState(link=os.readlink(entry.path))
                elif not filtered or selection.selects(rel):
                    result.notes.append(f"{rel}: not a file, folder or symlink; skipped")
            except OSError as e:
                if isinstance(e, FileNotFoundError):
                    continue  # removed while walking: the next pass sees the new state
                result.notes.append(f"{rel}: cannot read: {e.strerror or e}; skipped")
    _hash_pending(result, pending)
    return result


def _hash_pending(result: Scan, pending: list[str]) -> None:
    """Hash the files the cache could not vouch for, in a few threads for large batches."""
    root = str(result.root)

    def batch(rels: list[str]) -> list[tuple[str, tuple[str, StatKey, int] | str]]:
        out: list[tuple[str, tuple[str, StatKey, int] | str]] = []
        for rel in rels:
            try:
                out.append((rel, hash_file(os.path.join(root, rel))))
            except FileNotFoundError:
                out.append((rel, ""))
            except OSError as e:
                out.append((rel, f"{rel}: cannot read: {e.strerror or e}; skipped"))
        return out

    if len(pending) > 256:
        size = -(-len(pending) // HASH_THREADS)
        parts = [pending[i : i + size] for i in range(0, len(pending), size)]
        with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
            done = [item for part in pool.map(batch, parts) for item in part]
    else:
        done = batch(pending)
    for rel, outcome in done:
        if isinstance(outcome, str):
            if outcome:
                result.notes.append(outcome)
            continue
        digest, key, mode = outcome
        result.tree[rel] = FileState(digest, key[0], mode)
        result.keys[rel] = key
        result.hashed += 1


# -- the target ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeSnapshot:
    """What one observation saw: the source and the copy."""

    source: Scan
    copy: Scan

    def diffs(self) -> list[FileDiff]:
        return compare(self.source.tree, self.copy.tree)


class MirrorTarget:
    """One copy of a mirror: observe both trees, sync files from the source into the copy."""

    kind = KIND
    entry_kind = Entries.FILES
    scopes: tuple[str, ...] = ()
    tool_control: str | None = None  # files, not servers
    capability = CAPABILITY

    def __init__(self, name: str, spec: MirrorCopySpec, context: Context) -> None:
        self.name = name
        self.spec = spec
        self.context = context
        self.source_root = _real_dir(locate(spec.source, context))
        self.copy_root = _real_dir(locate(spec.copy_path, context))
        self.selection = Selection(spec.include, spec.exclude)
        self.writable = context.lock_dir is not None
        self.state_dir = context.state_dir
        self.copy_cache: HashCache | None = None

    def describe(self) -> str:
        return f"{self.spec.source} -> {self.spec.copy_path}"

    def watch_paths(self) -> tuple[Path, ...]:
        return (self.source_root, self.copy_root)

    def close(self) -> None:
        return None

    # -- observe -----------------------------------------------------------------------

    @property
    def _source_key(self) -> tuple[str, str, Selection]:
        return ("mirror-source", str(self.source_root), self.selection)

    def scan_source(self) -> Scan:
        """The source tree, scanned once per pass whatever the number of copies."""
        lock, memo = self.context.cache.slot(self._source_key)
        with lock:
            if not memo:
                cache = HashCache(
                    self.state_dir,
                    self.source_root,
                    writable=self.writable,
                    selection=self.selection,
                )
                found = scan(self.source_root, self.selection, cache, missing_ok=False)
                cache.save(found)
                memo.append(found)
            scanned: Scan = memo[0]
            return scanned

    def forget_source(self) -> None:
        lock, memo = self.context.cache.slot(self._source_key)
        with lock:
            memo.clear()

    def scan_copy(self) -> Scan:
        self.copy_cache = HashCache(
            self.state_dir, self.copy_root, writable=self.writable, selection=self.selection
        )
        found = scan(self.copy_root, self.selection, self.copy_cache, missing_ok=True)
        self.copy_cache.save(found)
        return found

    def observe(self) -> Observation:
        source = self.scan_source()
        copy = self.scan_copy()
        notes = tuple(f"source: {n}" for n in source.notes) + tuple(
            f"copy: {n}" for n in copy.notes
        )
        # Entries stay empty for the generic consumers (audit, import): a mirror's files
        # are not server entries. Its own planning reads the snapshot.
        return Observation({}, TreeSnapshot(source, copy), notes=notes)

    # -- apply -------------------------------------------------------------------------

    def apply(self, observation: Observation, writes: Sequence[Write]) -> None:
        """Carry out per-file writes: ``entry`` is a file's pointer; no essence means delete."""
        snapshot: TreeSnapshot = observation.snapshot
        with fsutil.locked(self.context.lock_dir, self.copy_root):
            deletes = [w for w in writes if w.essence is None]
            for write in sorted(deletes, key=lambda w: w.entry.count("/"), reverse=True):
                self._delete(snapshot, path_of(write.entry))
            for write in writes:
                if write.essence is not None:
                    self._copy(snapshot, path_of(write.entry))

    def _check_copy(self, snapshot: TreeSnapshot, rel: str) -> None:
        """Compare-and-swap: the copy's entry is still what was observed (or still absent)."""
        seen = snapshot.copy.tree.get(rel)
        path = os.path.join(self.copy_root, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if seen is None:
                return
            raise ConcurrentChange(
                f"{path}: removed since it was read; the pass is retried"
            ) from None
        except NotADirectoryError:
            if seen is None:
                return
            raise
        if seen is None:
            if stat.S_ISDIR(st.st_mode):
                return  # a folder in the way: handled by the caller
            raise ConcurrentChange(f"{path}: created since it was read; the pass is retried")
        if stat.S_ISLNK(st.st_mode):
            if seen.link == os.readlink(path):
                return
        elif stat.S_ISREG(st.st_mode) and not seen.is_link:
            if _key(st) == snapshot.copy.keys.get(rel):
                return
            digest, _, mode = hash_file(path)
            if digest == seen.sha256 and mode == seen.mode:
                return
        raise ConcurrentChange(f"{path}: changed since it was read; the pass is retried")

    def _inside(self, rel: str, *, make: bool) -> Path:
        """The copy's path for ``rel``, its folders real folders (never links) inside the copy."""
        folder = self.copy_root
        parts = rel.split("/")
        for part in parts[:-1]:
            folder = folder / part
            try:
                st = os.lstat(folder)
            except FileNotFoundError:
                if not make:
                    return self.copy_root.joinpath(*parts)
                try:
                    os.mkdir(folder, 0o755)
                except OSError as e:
                    raise TargetError(f"{folder}: cannot create: {e.strerror}") from e
                continue
            if not stat.S_ISDIR(st.st_mode):
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else "a file"
                hint = " (not followed)" if stat.S_ISLNK(st.st_mode) else ""
                raise TargetError(
                    f"{folder}: is {what} in the copy{hint} where the source has a folder; "
                    "delete it or set prune: true",
                    recoverable=False,
                )
        return folder / parts[-1]

    def _copy(self, snapshot: TreeSnapshot, rel: str) -> None:
        want = snapshot.source.tree[rel]
        self._check_copy(snapshot, rel)
        dest = self._inside(rel, make=True)
        if os.path.isdir(dest) and not os.path.islink(dest):
            try:
                os.rmdir(dest)  # an empty folder where the source has a file
            except OSError as e:
                raise TargetError(
                    f"{dest}: is a folder in the copy where the source has a file; "
                    "delete it or set prune: true",
                    recoverable=False,
                ) from e
        if want.link is not None:
            _replace_with_link(dest, want.link)
            return
        source_path = os.path.join(self.source_root, rel)
        data, mode = _read_verified(source_path, want)
        current = snapshot.copy.tree.get(rel)
        if current is not None and not current.is_link and current.same_content(want):
            try:
                os.chmod(dest, mode)  # a mode change only: the content stays
            except OSError as e:
                raise TargetError(f"{dest}: cannot change mode: {e.strerror}") from e
            return
        fsutil.atomic_write(dest, data, mode=mode, follow_symlinks=False)

    def _delete(self, snapshot: TreeSnapshot, rel: str) -> None:
        self._check_copy(snapshot, rel)
        dest = self._inside(rel, make=False)
        try:
            os.unlink(dest)
        except FileNotFoundError:
            return
        except OSError as e:
            raise TargetError(f"{dest}: cannot delete: {e.strerror}") from e
        # Folders emptied by the prune go too, unless the source has them.
        folder = dest.parent
        while folder != self.copy_root and self.copy_root in folder.parents:
            relative = folder.relative_to(self.copy_root)
            if (self.source_root / relative).is_dir():
                break
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = folder.parent

    def contents(self, rel: str) -> tuple[bytes | None, bytes | None]:
        """A file's bytes in the copy and in the source (first 2 MiB; None if unreadable)."""
        return _read_plain(self.copy_root, rel), _read_plain(self.source_root, rel)

    def remember_in_parity(self, snapshot: TreeSnapshot, diffs: Sequence[FileDiff]) -> None:
        """Files found identical become the last-synced state (non-dry runs only)."""
        if self.copy_cache is None or not self.writable:
            return
        drifted = {d.path for d in diffs}
        synced = self.copy_cache.synced
        for rel, state in snapshot.source.tree.items():
            if rel not in drifted:
                mark = token(state)
                if synced.get(rel) != mark:
                    synced[rel] = mark
        for rel in list(synced):
            if rel not in snapshot.source.tree and rel not in snapshot.copy.tree:
                del synced[rel]
        self.copy_cache.flush()


def _read_plain(root: Path, rel: str) -> bytes | None:
    try:
        fd = os.open(os.path.join(root, rel), os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(1 << 21)


def _real_dir(path: Path) -> Path:
    """A mirror's root as configured; the root itself may be a link, nothing below it is."""
    try:
        return Path(os.path.realpath(path))
    except OSError:
        return path


def _read_verified(path: str, want: FileState) -> tuple[bytes, int]:
    """The source file's bytes, refused if they are not the ones that were compared."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as e:
        raise ConcurrentChange(f"{path}: source changed since it was read ({e.strerror})") from e
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        data = handle.read()
    if not stat.S_ISREG(st.st_mode) or hashlib.sha256(data).hexdigest() != want.sha256:
        raise ConcurrentChange(f"{path}: source changed since it was read; the pass is retried")
    return data, stat.S_IMODE(st.st_mode)


def _replace_with_link(dest: Path, target: str) -> None:
    """Make ``dest`` a symlink to ``target`` atomically: a temp link renamed over it."""
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{threading.get_ident()}.link"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, dest)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise TargetError(f"{dest}: cannot create symlink: {e.strerror}") from e


def build(name: str, spec: TargetSpec, context: Context) -> MirrorTarget:
    if not isinstance(spec, MirrorCopySpec):
        raise ReconcilerError(
            f"target '{name}': kind 'mirror' is declared under mirrors:, not under targets:"
        )
    return MirrorTarget(name, spec, context)


# The kinds this family declares (read by the registry in ``targets/__init__``).
KIND_CLASSES: tuple[type[MirrorTarget], ...] = (MirrorTarget,)
