"""The lock Claude Code takes on ``~/.claude.json``, so our writes and its own never interleave.

Claude Code rewrites ``~/.claude.json`` all the time (session state, feature flags, the
project list) and serializes its own saves with the Node package ``proper-lockfile``: the
lock is a directory ``<file>.lock``, created with ``mkdir`` (atomic), refreshed by its
holder and considered stale once its mtime is 10 s old (the package's default, which
Claude Code keeps). Taking the same lock around our re-read, merge and rename makes the
compare-and-swap exact: Claude Code cannot save between our check and our rename, and a
save of its own that was waiting for the lock then reads our result. Verified against
Claude Code 2.1.329: with the directory present, ``claude mcp add-json`` waits for it.

We hold it for milliseconds (one read and one atomic write), so it is never refreshed.
A lock left by a reconciler that was killed while holding it would still cost the next
pass the 10 s until it is stale, so each lock we take is noted in our own lock folder
(``owners``): our pid and the lock's mtime. A lock whose note names a process that is
gone, with the same mtime (so nobody took it since), is ours and dead: it is broken at
once. A lock without such a note is Claude Code's, and is waited for as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from reconciler.core.errors import TargetError
from reconciler.store import fsutil

STALE_S = 10.0  # proper-lockfile's default ``stale``


def _note(owners: Path, lock: Path) -> Path:
    return owners / f"{hashlib.sha256(str(lock).encode()).hexdigest()[:24]}.client-lock"


def _left_by_the_dead(owners: Path | None, lock: Path) -> bool:
    """True when ``lock`` is one we took in a process that is gone (killed holding it)."""
    if owners is None:
        return False
    try:
        note = json.loads(_note(owners, lock).read_bytes())
        mtime = os.stat(lock).st_mtime_ns
    except (OSError, ValueError):
        return False
    if not isinstance(note, dict) or note.get("lock") != str(lock):
        return False
    pid, seen = note.get("pid"), note.get("mtime_ns")
    return isinstance(pid, int) and seen == mtime and not fsutil.process_alive(pid)


@contextlib.contextmanager
def held(
    path: Path,
    *,
    stale: float = STALE_S,
    timeout: float = STALE_S + 2,
    owners: Path | None = None,
) -> Iterator[None]:
    """Hold ``<path>.lock`` the way proper-lockfile does; break it once it is stale, or at
    once when ``owners`` holds our note that a process now gone took it."""
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.mkdir(lock)
            break
        except FileNotFoundError:  # no parent folder yet: nobody else can hold the lock
            yield
            return
        except FileExistsError:
            try:
                age = time.time() - os.stat(lock).st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            if age > stale or _left_by_the_dead(owners, lock):
                with contextlib.suppress(OSError):
                    os.rmdir(lock)
                continue
            if time.monotonic() > deadline:
                raise TargetError(
                    f"{path}: its client holds {lock.name} for {timeout:g}s"
                ) from None
            time.sleep(delay)  # wait for the holder: a lock poll, as proper-lockfile's retries
            delay = min(delay * 2, 0.01)
        except OSError as e:
            raise TargetError(f"{path}: cannot take {lock.name}: {e.strerror}") from e
    note = None
    if owners is not None:
        note = _note(owners, lock)
        record = {"pid": os.getpid(), "lock": str(lock), "mtime_ns": os.stat(lock).st_mtime_ns}
        fsutil.atomic_write(note, json.dumps(record).encode(), durable=False)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(lock)
        if note is not None:
            with contextlib.suppress(OSError):
                note.unlink()
