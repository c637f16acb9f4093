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
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from reconciler.core.errors import TargetError

STALE_S = 10.0  # proper-lockfile's default ``stale``


@contextlib.contextmanager
def held(path: Path, *, stale: float = STALE_S, timeout: float = STALE_S + 2) -> Iterator[None]:
    """Hold ``<path>.lock`` the way proper-lockfile does; break it once it is stale."""
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
            if age > stale:
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
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(lock)
