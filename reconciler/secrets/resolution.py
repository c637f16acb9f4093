"""Resolution: a reference's value, from the environment, a file, or a resolver command.

This module exists because resolving is the only place the secrets layer does I/O and runs
programs: a ``secrets:`` resolver is a command, run without a shell, with a timeout, its
stderr never read (it could hold the value), its process group killed on timeout.
``SecretResolver`` resolves each reference at most once per pass and registers every value
it returns with the redactor it is given, before anyone else can see it. A reference that
cannot be resolved is a ``SecretError`` whose text carries no value.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.errors import TargetError
from reconciler.core.model import Resolver
from reconciler.secrets.redaction import REDACTOR, Redactor
from reconciler.secrets.references import ENV, FILE, Reference, find_references, substitute
from reconciler.store import fsutil

MAX_OUTPUT = 1 << 20  # a resolver printing more than 1 MiB is refused


class SecretError(TargetError):
    """A reference cannot be resolved. The message never carries a value, nor stderr."""


@dataclass(frozen=True)
class _Outcome:
    value: str | None
    error: str | None
    recoverable: bool = False


class SecretResolver:
    """Resolves references for one process: env, files, and the ``secrets:`` commands.

    Each (scheme, name) is resolved at most once per resolver (failures included), so a
    resolver command runs once however many targets use the secret. Every value resolved
    is registered with the redactor before it is returned.
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
        self._cache: dict[tuple[str, str], _Outcome] = {}
        self._lock = threading.Lock()

    def resolve(self, ref: Reference) -> str:
        """The value of ``ref``; SecretError if it has none."""
        key = (ref.scheme, ref.name)
        with self._lock:
            outcome = self._cache.get(key)
            if outcome is None:
                outcome = self._resolve(ref)
                self._cache[key] = outcome
                if outcome.value is not None and ref.is_secret:
                    self.redactor.add(outcome.value)
        if outcome.value is None:
            raise SecretError(f"{ref.canonical}: {outcome.error}", recoverable=outcome.recoverable)
        return outcome.value

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
                stderr=subprocess.DEVNULL,  # never echoed: it could hold the value
                env=self.environ,
                cwd=self.root if self.root.is_dir() else None,
                start_new_session=posix,
            )
        except FileNotFoundError:
            return _Outcome(None, f"{what}: command '{argv[0]}' not found")
        except OSError as e:
            return _Outcome(None, f"{what}: cannot run '{argv[0]}': {e.strerror}")
        try:
            out, _ = proc.communicate(timeout=resolver.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc, posix)
            return _Outcome(None, f"{what} timed out after {resolver.timeout:g} s", True)
        if proc.returncode != 0:
            return _Outcome(
                None,
                f"{what} failed with exit status {proc.returncode} (its output is not shown)",
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
