"""Redaction: no secret value in any output, each shown as ``‹secret:4f1c2a›``.

This module exists so that there is one mechanism, ``Redactor``: every value resolved or
detected is registered with one, and every output path (terminal, ``--json``, logs, the
status file, exception texts, divergence records and commit messages) passes text through
it, which shows each known value by the prefix of its keyed fingerprint, the same one the
diffs show. A pass hands its redactor to the targets through their ``Context``; the
process-wide instance ``REDACTOR`` is the default one, and the sink for what has no
context: log records (``install_logging``), the standard streams (``wrap_streams``), and
``redact`` / ``redact_data``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from reconciler.core.essence import Sealer, display, fingerprint_with


class Redactor:
    """Knows every secret value seen by this process and scrubs them out of any text.

    A value is replaced by ``‹secret:4f1c2a›``: the prefix of its keyed fingerprint, the
    same one the diffs show for a sealed value. Its JSON-escaped and URL-encoded spellings
    are scrubbed too. Values shorter than ``MIN_LENGTH`` are not registered: they cannot be
    secrets, and scrubbing them would mangle ordinary text.
    """

    MIN_LENGTH = 4

    def __init__(self, fingerprint: Sealer | None = None) -> None:
        self._fingerprint = fingerprint or fingerprint_with(os.urandom(32))
        self._values: dict[str, str] = {}  # secret value -> the value it is shown for
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def use_fingerprint(self, fingerprint: Sealer) -> None:
        """Show values by this (the state directory's) key from now on."""
        with self._lock:
            self._fingerprint = fingerprint

    def scoped(self, values: Iterable[str]) -> Redactor:
        """A redactor for one text that must hide more than the rest of the output: it knows
        every value this one knows now, and ``values`` besides, shown by the same key.

        An MCPJungle answer may quote the env values of a config we sent; env values are
        never shown, but a plain one (a path, a name) registered for the whole process would
        mangle every other text that holds it.
        """
        with self._lock:
            scoped = Redactor(self._fingerprint)
            scoped._values = dict(self._values)
        for value in values:
            scoped.add(value)
        return scoped

    def add(self, value: str) -> None:
        if len(value) < self.MIN_LENGTH:
            return
        variants = {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}
        variants.add(quote(value, safe=""))
        with self._lock:
            fresh = [v for v in variants if len(v) >= self.MIN_LENGTH and v not in self._values]
            if not fresh:
                return
            for variant in fresh:
                self._values[variant] = value
            self._pattern = None

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __len__(self) -> int:
        return len(set(self._values.values()))

    def mentions(self, text: str) -> bool:
        """Whether ``text`` holds any known secret value."""
        return bool(self._values) and self.scrub(text) != text

    def shown(self, value: str) -> str:
        """How a secret value is shown: ``‹secret:4f1c2a›``."""
        return display(self._fingerprint(value))

    def scrub(self, text: str) -> str:
        """``text`` with every known secret value replaced by its display form."""
        if not self._values or not text:
            return text
        with self._lock:
            pattern = self._pattern
            if pattern is None:
                ordered = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, ordered)))
            values = dict(self._values)
        return pattern.sub(lambda m: self.shown(values[m.group(0)]), text)

    def scrub_data(self, data: Any) -> Any:
        """JSON-like data with every string (keys included) scrubbed."""
        if not self._values:
            return data
        if isinstance(data, str):
            return self.scrub(data)
        if isinstance(data, dict):
            return {
                (self.scrub(k) if isinstance(k, str) else k): self.scrub_data(v)
                for k, v in data.items()
            }
        if isinstance(data, (list, tuple)):
            return [self.scrub_data(v) for v in data]
        return data


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs a record's message, exception and stack texts."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        scrubbed = self.redactor.scrub(message)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.scrub(record.stack_info)
        return True


class RedactingStream:
    """A text stream that scrubs every write (the CLI wraps stdout and stderr in it)."""

    def __init__(self, stream: Any, redactor: Redactor) -> None:
        self._stream = stream
        self._redactor = redactor

    def write(self, text: str) -> int:
        self._stream.write(self._redactor.scrub(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    @property
    def buffer(self) -> _RedactingBinary:
        # click rewraps the binary buffer of a misconfigured (e.g. ASCII) stream.
        return _RedactingBinary(self._stream.buffer, self._redactor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _RedactingBinary:
    def __init__(self, stream: Any, redactor: Redactor) -> None:
        self._stream = stream
        self._redactor = redactor

    def write(self, data: bytes) -> int:
        text = bytes(data).decode("utf-8", "surrogateescape")
        self._stream.write(self._redactor.scrub(text).encode("utf-8", "surrogateescape"))
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


REDACTOR = Redactor()


def redact(text: str) -> str:
    """Scrub every secret value known to this process out of ``text``."""
    return REDACTOR.scrub(text)


def redact_data(data: Any) -> Any:
    """Scrub every string of JSON-like ``data``."""
    return REDACTOR.scrub_data(data)


_FILTER = RedactingFilter(REDACTOR)


def install_logging(*loggers: logging.Logger) -> None:
    """Make every log record pass the redactor, whatever logger or handler it goes through.

    Records are scrubbed when they are created (a record factory), which covers handlers
    added later (a daemon's log file); the filter is also put on the handlers of the root
    logger and of ``loggers``. Idempotent.
    """
    global _factory_installed
    if not _factory_installed:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _FILTER.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
    for logger in (logging.getLogger(), logging.getLogger("reconciler"), *loggers):
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


_factory_installed = False


# Libraries whose request logging is noise below -vv ("HTTP Request: POST ...").
CHATTY_LIBRARIES = ("httpx", "httpcore")


def quiet_libraries(verbosity: int) -> None:
    """Keep library request logging off below -vv (the commands and the daemon share it)."""
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def wrap_streams() -> None:
    """Make every write to stdout and stderr pass through the redactor (idempotent)."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout, REDACTOR)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr, REDACTOR)
