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
import errno
import hashlib
import json
import os
import re
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.errors import ConcurrentChange, TargetError

NEW_FILE_MODE = 0o600
MAX_FILE_BYTES = 16 * 1024 * 1024  # no config, state or secret file is near this: refuse more
MAX_DEPTH = 200  # nesting any reader accepts in YAML, JSON or TOML (Python's own limit: ~1000)

# The crash suite (tests/test_crash.py) names one point where a real process kills itself
# with SIGKILL, to prove what a crash there leaves behind. Read once, at import; unset in
# every real run, where ``crash_point`` is one dictionary-free comparison.
_CRASH_AT = os.environ.get("RECONCILER_TEST_CRASH_AT") or None

# Temp files are named ``.<file>.<pid>.<random>.tmp`` beside their file, so that the next
# write can tell the leftovers of a killed process (they may hold resolved secrets).
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[^.]+\.tmp")

# Told about every completed write (path written, bytes): the watch daemon tells its own
# writes from everyone else's this way. Register for a while with ``observe_writes``.
_write_observers: list[Callable[[Path, bytes], None]] = []


def crash_point(point: str) -> None:
    """Kill this process here with SIGKILL when the crash suite asked for ``point``."""
    if _CRASH_AT is not None and point == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Identity:
    """What ``stat`` says of a file: any save (a rename, a truncate and write) changes it."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> Identity | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise TargetError(f"{path}: cannot read: {e.strerror}") from e
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


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


class UnsafeFile(TargetError):
    """A file that a bounded read refuses: not a regular file, or too large."""

    recoverable = False


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_bounded(path: Path, *, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of the regular file at ``path`` (symlinks followed), None if it is absent.

    The one read every reader of desired, client, state and secret files goes through:
    never blocks (a FIFO is opened non-blocking and refused, like a socket, a device or a
    directory), never reads more than ``limit`` bytes (an endless file is refused), and a
    symlink loop is an error. Raises UnsafeFile (or TargetError for an I/O error).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFile(f"{path}: symlink loop") from e
        if e.errno in (errno.ENXIO, errno.EISDIR):  # a socket or a directory
            try:
                kind = _kind_of(os.stat(path).st_mode)
            except OSError:
                kind = "not a regular file"
            raise UnsafeFile(f"{path}: is {kind}, not a regular file") from e
        raise TargetError(f"{path}: cannot read: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path}: is {_kind_of(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise UnsafeFile(f"{path}: {st.st_size} bytes, more than the {limit} allowed")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while read (an endless file): refuse it
                raise UnsafeFile(f"{path}: more than the {limit} bytes allowed")
        return b"".join(chunks)
    except OSError as e:
        raise TargetError(f"{path}: cannot read: {e.strerror}") from e
    finally:
        os.close(fd)


_FLOW = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|[\[\]{}]')
_COMPACT = re.compile(r"(?:[-?]\s+)+")
# An escape, not an escaped backslash before "u": an odd run of backslashes.
_LONE_SURROGATE = re.compile(
    r"(?<!\\)(?:\\\\)*(?:\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)
_HUGE_INT = re.compile(r"[0-9_]{4000,}")


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


# Everything but the flow brackets, quoted strings included (as _FLOW reads them); and one
# innermost pair of brackets.
_NOT_BRACKET = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|[^\[\]{}"\']+')
_PAIR = re.compile(r"\[\]|\{\}")


# What ``_shallow`` may spend, in passes over the brackets it started with: one pass per
# level costs (length x depth) on a long, deep text, where the exact scan stops at once.
_SHALLOW_BUDGET = 8


def _shallow(text: str) -> bool:
    """The flow brackets of ``text`` balance and nest at most MAX_DEPTH deep: the common
    case, decided in C (one substitution per level) instead of a Python loop per bracket.
    False also when they do not balance, or when the passes cost more than a few over the
    whole text (a long, deep text): then the exact scan decides."""
    brackets = _NOT_BRACKET.sub("", text)
    budget = _SHALLOW_BUDGET * len(brackets)
    for _ in range(MAX_DEPTH):
        if not brackets:
            return True
        budget -= len(brackets)
        if budget < 0:
            return False
        brackets = _PAIR.sub("", brackets)
    return not brackets


def too_deep(text: str, *, yaml: bool = False) -> tuple[int, int] | None:
    """Where ``text`` nests deeper than MAX_DEPTH (line, column), or None.

    Run before any parser: deep nesting costs recursion in every parser (RecursionError in
    Python's, a crash in libyaml's). Brackets are counted outside quoted strings; for YAML,
    block nesting is counted too, by indentation and compact ``- - x`` items. Cheap when
    the text holds fewer brackets than the limit.
    """
    if text.count("[") + text.count("{") > MAX_DEPTH and not _shallow(text):
        depth = 0
        for match in _FLOW.finditer(text):
            token = match.group()
            if token in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    return _position(text, match.start())
            elif token in "]}":
                depth = max(0, depth - 1)
    if yaml:
        stack: list[int] = []
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.lstrip(" ")
            if not stripped or stripped.startswith("#"):
                continue
            indent = len(line) - len(stripped)
            while stack and stack[-1] >= indent:
                stack.pop()
            stack.append(indent)
            compact = _COMPACT.match(stripped)
            extra = compact.group().count("-") + compact.group().count("?") if compact else 0
            if len(stack) + extra > MAX_DEPTH:
                return number, indent + 1
    return None


def depth_message(where: tuple[int, int]) -> str:
    return f"{where[0]}:{where[1]}: nested deeper than {MAX_DEPTH} levels"


def nests_deeper(data: Any) -> bool:
    """Whether parsed ``data`` nests lists and mappings more than MAX_DEPTH deep (a
    top-level object is one level), looking at containers only, level by level."""
    level = [data] if isinstance(data, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return True
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
    return False


def checked_json(text: str, **options: Any) -> tuple[Any] | None:
    """``(document,)`` when ``json.loads(text, **options)`` reads the whole text and it
    passes what the JSON readers check before they parse (no lone surrogate escape, nesting
    at most MAX_DEPTH deep); None otherwise, and the reader then runs its checks and its
    parse as before, for the error they give.

    Why: those checks scan the text (``too_deep``), which cost more than the parse itself
    on a large client file. Valid JSON nests exactly as deep as its brackets do outside
    strings, so for a text json reads whole the parsed document answers the same question
    from its containers alone.
    """
    if lone_surrogate(text) is not None:
        return None
    try:
        document = json.loads(text, **options)
    except (ValueError, RecursionError):
        return None
    return None if nests_deeper(document) else (document,)


def lone_surrogate(text: str) -> tuple[int, int] | None:
    """Where a JSON-style ``\\uD800`` escape stands alone (no UTF-8 text can hold it)."""
    if "\\u" not in text:
        return None
    match = _LONE_SURROGATE.search(text)
    return _position(text, match.start()) if match else None


def huge_integer(text: str) -> tuple[int, int] | None:
    """Where a run of digits too long for any integer this tool accepts starts."""
    match = _HUGE_INT.search(text)
    return _position(text, match.start()) if match else None


EMPTY_FILE = (
    "the file is empty (perhaps mid-save by its client); it is left alone and the next"
    " pass reads it again (delete it if it should be created)"
)


def truncated(text: str, offset: int) -> bool:
    """True when a parse error sits at the very end: the document stops before it is
    complete, as a client halfway through a non-atomic save leaves it."""
    return offset >= len(text.rstrip())


TRUNCATED = "the document ends before it is complete; it is left alone and the next pass retries"


def read_text(path: Path) -> str:
    """A bounded read as UTF-8 text; an absent file is an error here (TargetError)."""
    data = read_bounded(path)
    if data is None:
        raise TargetError(f"{path}: no such file")
    return data.decode("utf-8")


def read_snapshot(path: Path) -> FileSnapshot:
    return FileSnapshot(path, read_bounded(path))


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
    expect: Identity | bool | None = False,
) -> None:
    """Replace ``path``'s content with ``data`` so readers see the old or the new file, whole.

    ``expect`` (an ``Identity``, or None for "absent") is checked once more right before
    the rename, after the temp file is written and synced: a writer that saved meanwhile
    (even one that takes no lock) makes this a ConcurrentChange, and nothing is replaced.
    Leftover temp files of this file from a killed process are removed first.

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
    except OSError as e:
        raise TargetError(f"{path}: cannot write: {e.strerror}") from e
    else:
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            # A device, FIFO, socket or directory is never replaced by a regular file.
            raise UnsafeFile(f"{path}: is {_kind_of(st.st_mode)}; refusing to replace it")
    final_mode = mode if mode is not None else (current_mode or NEW_FILE_MODE)
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        sweep(target)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=directory
        )
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
        crash_point(f"write:{target.parent.name}/{target.name}:before-rename")
        if expect is not False and Identity.of(target) != expect:
            raise ConcurrentChange(f"{path}: changed since it was read; the pass is retried")
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise TargetError(f"{path}: cannot write: {e.strerror}") from e
        raise
    if durable:
        fsync_directory(directory)
    crash_point(f"write:{target.parent.name}/{target.name}:after-rename")
    for observer in tuple(_write_observers):
        observer(target, data)


def sweep(path: Path) -> list[Path]:
    """Remove the temp files of ``path`` that a killed process left beside it.

    Only names of this module's pattern whose process is gone: a temp file of a live
    process (another write in flight) is never touched. They may hold resolved secrets,
    so they must not stay on disk. Returns what was removed.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    prefix = f".{path.name}."
    for name in names:
        if not name.startswith(prefix):
            continue
        match = _TEMP.fullmatch(name)
        if match is None or match["name"] != path.name or process_alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            (path.parent / name).unlink()
            removed.append(path.parent / name)
    return removed


def process_alive(pid: int) -> bool:
    """True when process ``pid`` exists (this process included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process: not ours to judge
    return True


@contextlib.contextmanager
def observe_writes(observer: Callable[[Path, bytes], None]) -> Iterator[None]:
    """Call ``observer(path, data)`` after each ``atomic_write`` in this block (any thread)."""
    _write_observers.append(observer)
    try:
        yield
    finally:
        _write_observers.remove(observer)


def fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def compare_and_swap(snapshot: FileSnapshot, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` only if the file still holds what ``snapshot`` saw; else ConcurrentChange.

    The content is compared now, and the file's identity (inode, size, times) once more
    right before the rename, so a writer that saves in between, even one that takes no
    lock, is not overwritten: the window left is the rename itself (see RELIABILITY.md).
    """
    changed = ConcurrentChange(f"{snapshot.path}: changed since it was read; the pass is retried")
    target = real_path(snapshot.path)
    before = Identity.of(target)
    now = read_snapshot(snapshot.path)
    if now.content != snapshot.content or Identity.of(target) != before:
        raise changed
    atomic_write(snapshot.path, data, mode=mode, expect=before)


@contextlib.contextmanager
def locked(
    lock_dir: Path | None, path: Path, timeout: float = 10.0, *, busy: str = ""
) -> Iterator[None]:
    """Hold the reconciler's lock for one file, so two reconciler processes never interleave.

    The lock is the kernel's (``flock``), so a killed holder releases it at once. ``busy``
    is the message when it is not free within ``timeout`` seconds.
    """
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
        raise TargetError(
            busy or f"{path}: another reconciler holds the lock for {timeout:g}s"
        ) from e
