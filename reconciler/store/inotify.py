"""Linux inotify, read with a blocking wait: the daemon's file watcher that costs nothing idle.

Why not watchfiles here: its loop wakes every ``step`` milliseconds to look for changes and
for its stop event, and the daemon needs a short step to react within its debounce, so an
idle daemon woke 50 times a second (0.3 s of CPU a minute, issue 14). An inotify descriptor
read after ``poll`` sleeps in the kernel until a watched folder changes or ``close`` writes
to a wake-up pipe: no timer at all. watchfiles stays the watcher where inotify is not
there (macOS) or polling is asked for (network file systems, WSL).

Only folders are watched, not recursively, as the daemon's watch set asks; each event is
the path of the entry that changed in a watched folder (or the folder itself when it went
away). Through libc with ctypes: the standard library has no inotify binding.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

# <sys/inotify.h>
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
#: What changes a file in a folder: written, created, removed, renamed in or out, chmod.
MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
    | _IN_ONLYDIR
)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


class Overflow(OSError):
    """The kernel's event queue overflowed: events were lost, the caller must re-read all."""


def available() -> bool:
    """inotify can be used here (Linux, and libc has it)."""
    return _libc() is not None


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "inotify_init1") else None


class FolderWatch:
    """An inotify descriptor watching ``dirs``, and a pipe that ends a blocking ``batches``."""

    def __init__(self, dirs: Iterable[Path]) -> None:
        libc = _libc()
        if libc is None:
            raise OSError(errno.ENOSYS, "inotify is not available")
        self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._open = True
        self._folders: dict[int, Path] = {}
        try:
            for folder in dirs:
                wd = libc.inotify_add_watch(self._fd, os.fsencode(folder), MASK)
                if wd >= 0:
                    self._folders[wd] = Path(folder)
                    continue
                err = ctypes.get_errno()
                if err not in (errno.EACCES, errno.EPERM):  # unreadable folders are skipped
                    raise OSError(err, f"cannot watch {folder}: {os.strerror(err)}")
        except BaseException:
            self.release()
            raise

    def batches(self) -> Iterator[set[Path]]:
        """Each time the descriptor has events, the paths they name; ends after ``close``.

        Sleeps in ``poll`` between events, with no timeout. Raises `Overflow` when the
        kernel dropped events.
        """
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_r in ready:
                return
            paths = self._read()
            if paths:
                yield paths

    def _read(self) -> set[Path]:
        paths: set[Path] = set()
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return paths
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _cookie, size = _HEADER.unpack_from(data, offset)
                name = data[offset + _HEADER.size : offset + _HEADER.size + size].rstrip(b"\0")
                offset += _HEADER.size + size
                if mask & _IN_Q_OVERFLOW:
                    raise Overflow(errno.EOVERFLOW, "inotify queue overflowed; events were lost")
                folder = self._folders.get(wd)
                if folder is None:
                    continue
                if mask & _IN_IGNORED:  # the folder went away (or moved): its own path
                    del self._folders[wd]
                    paths.add(folder)
                elif name:
                    paths.add(folder / os.fsdecode(name))
                else:
                    paths.add(folder)

    def wake(self) -> None:
        """End ``batches`` (from another thread); ``release`` once it has returned."""
        if self._open:
            os.write(self._wake_w, b"x")

    def release(self) -> None:
        """Close the descriptors. Idempotent; never while ``batches`` is still running."""
        if self._open:
            self._open = False
            for fd in (self._fd, self._wake_r, self._wake_w):
                os.close(fd)

    def __del__(self) -> None:  # a watch dropped without release leaks no descriptor
        self.release()
