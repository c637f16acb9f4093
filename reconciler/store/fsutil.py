"""The one way this tool writes a file: atomically, keeping mode and symlinks, with a CAS check.

Clients read their config files at any moment and some (Claude Code) rewrite them constantly,
so a write must never leave a half-written file and must not silently overwrite a change
made since we read it. The recipe: resolve symlinks (a dotfiles link stays a link), write a
temp file in the same directory, fsync, rename over the real file, fsync the directory.
Client files cannot be locked against their own apps (they ignore advisory locks); the lock
here only keeps two reconciler processes apart, and the compare-and-swap catches the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.errors import ConcurrentChange, TargetError

NEW_FILE_MODE = 0o600

# Told about every completed write (path written, bytes): the watch daemon tells its own
# writes from everyone else's this way. Register for a while with ``observe_writes``.
_write_observers: list[Callable[[Path, bytes], None]] = []


@dataclass(frozen=True)
class FileSnapshot:
    """What a file held when observed: its bytes (None if absent) for the compare-and-swap."""

    path: Path
    content: bytes | None

    @property
    def exists(self) -> bool:
        return self.content is not None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content or b"").hexdigest() if self.exists else "absent"


def read_snapshot(path: Path) -> FileSnapshot:
    try:
        return FileSnapshot(path, path.read_bytes())
    except FileNotFoundError:
        return FileSnapshot(path, None)
    except IsADirectoryError as e:
        raise TargetError(f"{path}: is a directory, not a config file", recoverable=False) from e
    except OSError as e:
        raise TargetError(f"{path}: cannot read: {e.strerror}") from e


def real_path(path: Path) -> Path:
    """Where a write must land: the final file behind any symlinks (even a dangling one)."""
    try:
        return path.resolve(strict=False)
    except RuntimeError as e:  # a symlink loop
        raise TargetError(f"{path}: symlink loop", recoverable=False) from e


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int | None = None,
    follow_symlinks: bool = True,
    durable: bool = True,
) -> None:
    """Replace ``path``'s content with ``data`` so readers see the old or the new file, whole.

    The mode of an existing file is kept unless ``mode`` is given; a new file gets 0600.
    With ``follow_symlinks=False`` a symlink at ``path`` is replaced by the file instead of
    written through (mirrors: a link in a copy is never followed). ``durable=False`` skips
    the fsyncs, for a file rewritten after every daemon pass whose loss in a crash costs
    nothing (its status): still atomic, never half-written.
    """
    target = real_path(path) if follow_symlinks else path
    try:
        st = target.stat() if follow_symlinks else target.lstat()
        current_mode = None if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)
    except FileNotFoundError:
        current_mode = None
    final_mode = mode if mode is not None else (current_mode or NEW_FILE_MODE)
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise TargetError(f"{path}: cannot write: {e.strerror}") from e
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), final_mode)
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise TargetError(f"{path}: cannot write: {e.strerror}") from e
        raise
    if durable:
        _fsync_directory(directory)
    for observer in tuple(_write_observers):
        observer(target, data)


@contextlib.contextmanager
def observe_writes(observer: Callable[[Path, bytes], None]) -> Iterator[None]:
    """Call ``observer(path, data)`` after each ``atomic_write`` in this block (any thread)."""
    _write_observers.append(observer)
    try:
        yield
    finally:
        _write_observers.remove(observer)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def compare_and_swap(snapshot: FileSnapshot, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` only if the file still holds what ``snapshot`` saw; else ConcurrentChange."""
    now = read_snapshot(snapshot.path)
    if now.content != snapshot.content:
        raise ConcurrentChange(f"{snapshot.path}: changed since it was read; the pass is retried")
    atomic_write(snapshot.path, data, mode=mode)


@contextlib.contextmanager
def locked(lock_dir: Path | None, path: Path, timeout: float = 10.0) -> Iterator[None]:
    """Hold the reconciler's lock for one file, so two reconciler processes never interleave."""
    if lock_dir is None:
        yield
        return
    from filelock import FileLock, Timeout  # imported lazily: start-up time matters

    lock_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(str(real_path(path)).encode()).hexdigest()[:24]
    lock = FileLock(str(lock_dir / f"{name}.lock"), timeout=timeout)
    try:
        with lock:
            yield
    except Timeout as e:
        raise TargetError(f"{path}: another reconciler holds the lock for {timeout:g}s") from e
