"""Resolution: a reference's value, from the environment, a file, or a resolver command.

This module exists because resolving is the only place the secrets layer does I/O and runs
programs: a ``secrets:`` resolver is a command, run without a shell, with a timeout, its
process group killed on timeout. ``SecretResolver`` resolves each reference at most once
per pass (callers asking for the same reference at once wait for the one run) and
registers every value it returns with the redactor it is given, before anyone else can see
it. ``prefetch`` runs the resolver commands a pass needs concurrently, at most
``MAX_CONCURRENT`` at a time, and reports progress when they take longer than
``SLOW_AFTER``. A reference that cannot be resolved is a ``SecretError`` whose text carries
no value and no stderr; a failing command's stderr (its last ``MAX_STDERR`` bytes, scrubbed
of known values and of anything shaped like a secret) is logged as a warning, shown with
``-v``.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.errors import TargetError
from reconciler.core.model import Resolver
from reconciler.secrets.detection import detect
from reconciler.secrets.redaction import REDACTOR, Redactor
from reconciler.secrets.references import (
    BUILTIN_SCHEMES,
    ENV,
    FILE,
    Reference,
    find_references,
    substitute,
)
from reconciler.store import fsutil

log = logging.getLogger("reconciler")

MAX_OUTPUT = 1 << 20  # a resolver printing more than 1 MiB is refused
MAX_STDERR = 4096  # the tail of a failing resolver's stderr that is logged
MAX_CONCURRENT = 8  # resolver commands running at once
SLOW_AFTER = 0.5  # seconds of resolving before progress is reported

# (done, total) while resolver commands run; done == total when they have all finished.
Progress = Callable[[int, int], None]


class SecretError(TargetError):
    """A reference cannot be resolved. The message never carries a value, nor stderr."""


@dataclass(frozen=True)
class _Outcome:
    value: str | None
    error: str | None
    recoverable: bool = False


class _Slot:
    """One reference's resolution: the first caller runs it, the others wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: _Outcome | None = None


class SecretResolver:
    """Resolves references for one process: env, files, and the ``secrets:`` commands.

    Each (scheme, name) is resolved at most once per resolver (failures included), so a
    resolver command runs once however many targets use the secret, even when they ask at
    the same time. Every value resolved is registered with the redactor before it is
    returned.
    """

    def __init__(
        self,
        resolvers: Mapping[str, Resolver],
        environ: Mapping[str, str],
        *,
        root: Path,
        home: Path,
        redactor: Redactor | None = None,
    ) -> None:
        self.resolvers = dict(resolvers)
        self.environ = dict(environ)
        self.root = root
        self.home = home
        self.redactor = REDACTOR if redactor is None else redactor
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._lock = threading.Lock()

    def resolve(self, ref: Reference) -> str:
        """The value of ``ref``; SecretError if it has none."""
        outcome = self._outcome(ref)
        if outcome.value is None:
            raise SecretError(f"{ref.canonical}: {outcome.error}", recoverable=outcome.recoverable)
        return outcome.value

    def _outcome(self, ref: Reference) -> _Outcome:
        key = (ref.scheme, ref.name)
        with self._lock:
            slot = self._slots.get(key)
            owner = slot is None
            if slot is None:
                slot = self._slots[key] = _Slot()
        if not owner:
            slot.done.wait()
            assert slot.outcome is not None
            return slot.outcome
        outcome = _Outcome(None, "its resolution was interrupted", True)
        try:
            outcome = self._resolve(ref)
        finally:
            slot.outcome = outcome
            if outcome.value is not None and ref.is_secret:
                self.redactor.add(outcome.value)  # before anyone else can see it
            slot.done.set()
        return outcome

    def prefetch(self, refs: Iterable[Reference], progress: Progress | None = None) -> None:
        """Run the resolver commands behind ``refs`` concurrently (at most MAX_CONCURRENT
        at once), so that the pass then finds every value ready. Failures are kept for the
        targets that need them; nothing is raised. ``progress`` hears (done, total) once
        resolving has taken SLOW_AFTER seconds, then at each completion."""
        wanted: dict[tuple[str, str], Reference] = {}
        with self._lock:
            for ref in refs:
                key = (ref.scheme, ref.name)
                if ref.scheme not in BUILTIN_SCHEMES and key not in self._slots:
                    wanted.setdefault(key, ref)
        if not wanted:
            return
        total = len(wanted)
        started = time.monotonic()
        with ThreadPoolExecutor(
            max_workers=min(MAX_CONCURRENT, total), thread_name_prefix="resolver"
        ) as pool:
            pending: set[Future[_Outcome]] = {
                pool.submit(self._outcome, ref) for ref in wanted.values()
            }
            shown = False
            while pending:
                timeout = None if shown else max(0.0, SLOW_AFTER - (time.monotonic() - started))
                _, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
                if progress is not None and (shown or time.monotonic() - started >= SLOW_AFTER):
                    shown = True
                    progress(total - len(pending), total)

    def resolve_text(self, text: str) -> str:
        """``text`` with every reference resolved (an mcpjungle ``token:``, say)."""
        refs = find_references(text)
        return substitute(text, refs, self.resolve) if refs else text

    def _resolve(self, ref: Reference) -> _Outcome:
        if ref.scheme == ENV:
            value = self.environ.get(ref.name)
            if value is None:
                return _Outcome(None, f"environment variable {ref.name} is not set")
            if value == "":
                return _Outcome(None, f"environment variable {ref.name} is empty")
            return _Outcome(value, None)
        if ref.scheme == FILE:
            return self._read_file(ref.name)
        resolver = self.resolvers.get(ref.scheme)
        if resolver is None:
            return _Outcome(None, f"no resolver '{ref.scheme}' is declared under secrets:")
        return self._run(ref, resolver)

    def _read_file(self, name: str) -> _Outcome:
        if name == "~" or name.startswith("~/"):
            path = self.home / name[2:]
        else:
            path = Path(name)
            if not path.is_absolute():
                path = self.root / path
        try:
            data = fsutil.read_bounded(path)
        except TargetError as e:  # not a regular file, too large, unreadable: never a hang
            return _Outcome(None, str(e))
        if data is None:
            return _Outcome(None, f"file {path} does not exist")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return _Outcome(None, f"{path} is not UTF-8 text")
        text = _strip_newline(text)
        if not text:
            return _Outcome(None, f"file {path} is empty")
        return _Outcome(text, None)

    def _run(self, ref: Reference, resolver: Resolver) -> _Outcome:
        argv = [part.replace("{name}", ref.name) for part in resolver.command]
        what = f"resolver '{ref.scheme}'"
        posix = sys.platform != "win32"
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,  # logged only scrubbed, and only on failure
                env=self.environ,
                cwd=self.root if self.root.is_dir() else None,
                start_new_session=posix,
            )
        except FileNotFoundError:
            return _Outcome(None, f"{what}: command '{argv[0]}' not found")
        except OSError as e:
            return _Outcome(None, f"{what}: cannot run '{argv[0]}': {e.strerror}")
        try:
            out, err = proc.communicate(timeout=resolver.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc, posix)
            return _Outcome(None, f"{what} timed out after {resolver.timeout:g} s", True)
        if proc.returncode != 0:
            self._log_stderr(ref, proc.returncode, out, err)
            return _Outcome(
                None,
                f"{what} failed with exit status {proc.returncode} "
                "(its stderr is shown with -v, scrubbed)",
                True,
            )
        if len(out) > MAX_OUTPUT:
            return _Outcome(None, f"{what} printed more than {MAX_OUTPUT} bytes")
        try:
            value = _strip_newline(out.decode("utf-8"))
        except UnicodeDecodeError:
            return _Outcome(None, f"{what} printed something that is not UTF-8 text")
        if not value:
            return _Outcome(None, f"{what} returned an empty value")
        return _Outcome(value, None)

    def _log_stderr(self, ref: Reference, status: int, out: bytes, err: bytes) -> None:
        """A failing resolver's stderr, for -v: its tail, with whatever it printed on
        stdout (a value, perhaps), every known secret and every secret-shaped word out."""
        text = err[-MAX_STDERR:].decode("utf-8", "replace").strip()
        if not text:
            return
        for line in out.decode("utf-8", "replace").splitlines():
            if line.strip():
                text = text.replace(line.strip(), "‹output›")
        shown = self.redactor.scrub(scrub_shapes(text))
        log.warning(
            "resolver '%s' for %s exited %d; its stderr: %s",
            ref.scheme,
            ref.canonical,
            status,
            shown,
        )


_WORD = re.compile(r"(?:(?P<key>[A-Za-z_][\w.-]*)\s*[=:]\s*)?(?P<value>[^\s'\",;]+)")


def scrub_shapes(text: str) -> str:
    """``text`` with every word that looks like a secret (by its shape, or by randomness
    after a secret-like ``key=`` or ``key:``) replaced by ``‹secret›``."""

    def one(match: re.Match[str]) -> str:
        key, value = match.group("key"), match.group("value")
        if detect(value, key) is None and detect(match.group(0)) is None:
            return match.group(0)
        return match.group(0)[: match.start("value") - match.start(0)] + "‹secret›"

    return _WORD.sub(one, text)


def _strip_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def _kill(proc: subprocess.Popen[bytes], posix: bool) -> None:
    """Kill a timed-out resolver and everything it started (they may hold its stdout)."""
    try:
        if posix:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
