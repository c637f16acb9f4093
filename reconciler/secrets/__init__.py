"""Secrets: references in desired state, their resolution, literal detection, and redaction.

Desired state never holds a secret value, only references to one:

    ${env:NAME}   ${NAME}            an environment variable of the reconciler's process
    ${file:PATH}                     a file's content (relative to the desired repository)
    ${infisical:NAME}                any resolver declared under ``secrets:`` (``${vault:X}``...)
    <GET_FROM_INFISICAL:NAME>        the legacy spelling of ``${infisical:NAME}``

Rendering (``render_essence``) turns a target's essence into what the target must hold: on a
client that can reference an environment variable itself, ``${env:NAME}`` stays a reference
(in its one canonical spelling; each client dialect converts it to its own syntax), and
every other reference is resolved; elsewhere every reference is resolved to its value and
the write is marked sensitive (file mode 0600). A reference that cannot be resolved fails the
target's plan (``SecretError``); nothing empty or literal is ever written in its place.

Detection (``detect``, ``scan_essence``, ``check_desired``) finds literal secrets by shape
(known token prefixes, ``Bearer <literal>``, credentials in URLs, JWTs) and by randomness
under secret-like keys. In desired state a finding is a validation error; in live targets
``reconcile audit`` lists them.

Redaction is one mechanism, ``Redactor``, with one process-wide instance (``REDACTOR``):
every value resolved or detected in this process is registered with it, and every output
path (terminal, ``--json``, logs, the status file, exception texts, divergence records and
commit messages) passes text through ``redact`` / ``redact_data``, which shows each known
value as ``‹secret:4f1c2a›``, the same fingerprint prefix the diffs show.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from reconciler.core.compare import pointer_escape, pointer_parts
from reconciler.core.errors import Problem, TargetError
from reconciler.core.essence import (
    CAPABILITIES,
    SECRET_FIELDS,
    Essence,
    Sealer,
    display,
    fingerprint_with,
    from_server,
    is_sealed_value,
    normalize_url,
)
from reconciler.core.model import Kind, Resolver, Server, TargetSpec

ENV = "env"
FILE = "file"
INFISICAL = "infisical"
BUILTIN_SCHEMES = (ENV, FILE)

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESOLVER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_BRACED = re.compile(r"\$\{([^{}]*)\}")
_LEGACY = re.compile(r"<GET_FROM_INFISICAL:([^<>]*)>")
_ONLY_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
# ``Bearer ${env:NAME}``: a header that clients with a bearer-variable key can keep as one.
BEARER_ENV = re.compile(r"Bearer \$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")

# Environment variables that locate things rather than authenticate: resolving them is not
# materializing a secret (no 0600, no redaction of every path under $HOME).
NOT_SECRET_ENV = frozenset(
    {"HOME", "USER", "USERNAME", "LOGNAME", "PATH", "PWD", "SHELL", "TMPDIR", "TEMP", "TMP",
     "LANG", "TZ", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "XDG_CONFIG_HOME",
     "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"}
)  # fmt: skip

MAX_OUTPUT = 1 << 20  # a resolver printing more than 1 MiB is refused

# -- references ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """One reference inside a string: ``scheme`` (env, file or a resolver) and its ``name``."""

    scheme: str
    name: str
    text: str  # as written
    start: int
    end: int

    @property
    def canonical(self) -> str:
        """The one spelling essences carry: ``${env:NAME}``, ``${infisical:NAME}``..."""
        return f"${{{self.scheme}:{self.name}}}"

    @property
    def is_secret(self) -> bool:
        return not (self.scheme == ENV and self.name in NOT_SECRET_ENV)


def might_reference(text: str) -> bool:
    """A cheap test: False means ``text`` certainly holds no reference."""
    return "${" in text or "<GET_FROM_INFISICAL:" in text


def find_references(text: str) -> list[Reference]:
    """Every reference in ``text``, in order. ``${NAME}`` is read as ``${env:NAME}``."""
    if not might_reference(text):
        return []
    found: list[Reference] = []
    for match in _BRACED.finditer(text):
        inner = match.group(1)
        scheme, sep, name = inner.partition(":")
        if not sep:
            scheme, name = ENV, inner
        found.append(Reference(scheme, name, match.group(0), match.start(), match.end()))
    for match in _LEGACY.finditer(text):
        found.append(
            Reference(INFISICAL, match.group(1), match.group(0), match.start(), match.end())
        )
    found.sort(key=lambda r: r.start)
    return found


def reference_problem(ref: Reference, resolvers: Iterable[str]) -> tuple[str, str] | None:
    """Why ``ref`` cannot be resolved by any run, as (message, hint), or None if it is fine."""
    if ref.name.startswith("-") and RESOLVER_NAME.fullmatch(ref.scheme):
        return (
            f"'{ref.text}': defaults (${{NAME:-default}}) are not supported",
            "a secret has no default; set the variable, or write the value in full if it "
            "is not a secret",
        )
    if ref.scheme == ENV:
        if not ENV_NAME.fullmatch(ref.name):
            return (
                f"'{ref.text}': '{ref.name}' is not an environment variable name",
                "letters, digits and '_', not starting with a digit",
            )
        return None
    if not ref.name.strip():
        return f"'{ref.text}': the reference names nothing", ""
    if ref.scheme == FILE:
        return None
    known = sorted(set(resolvers))
    if ref.scheme not in known:
        hint = (
            f"declared resolvers: {', '.join(known)}"
            if known
            else "declare it, e.g. secrets: {" + ref.scheme + ': {command: [tool, get, "{name}"]}}'
        )
        return f"'{ref.text}': no resolver '{ref.scheme}' is declared under secrets:", hint
    if any(ch.isspace() for ch in ref.name):
        return f"'{ref.text}': a secret name has no spaces", ""
    return None


def substitute(text: str, refs: list[Reference], value: Callable[[Reference], str]) -> str:
    """``text`` with each reference replaced by ``value(ref)``."""
    out: list[str] = []
    pos = 0
    for ref in refs:
        out.append(text[pos : ref.start])
        out.append(value(ref))
        pos = ref.end
    out.append(text[pos:])
    return "".join(out)


def canonical_env(text: str) -> str:
    """``text`` with ``${NAME}`` spelled ``${env:NAME}``; other references untouched."""
    refs = find_references(text)
    if not refs:
        return text
    return substitute(text, refs, lambda r: r.canonical if r.scheme == ENV else r.text)


def without_references(text: str) -> str:
    """``text`` with every reference blanked out (what remains is literal)."""
    refs = find_references(text)
    return substitute(text, refs, lambda r: " ") if refs else text


# -- resolution ---------------------------------------------------------------------------


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
            data = path.read_bytes()
        except FileNotFoundError:
            return _Outcome(None, f"file {path} does not exist")
        except OSError as e:
            return _Outcome(None, f"cannot read {path}: {e.strerror}")
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


# -- rendering per target -----------------------------------------------------------------


@dataclass(frozen=True)
class RenderedSecrets:
    """A target's essence with its references rendered, and what that implies."""

    essence: Essence
    sensitive: bool  # it holds at least one resolved secret value: write it 0600
    secret_paths: frozenset[str]  # JSON Pointers of strings that hold resolved secret values
    notes: tuple[str, ...] = ()


def _can_reference(kind: Kind) -> bool:
    capability = CAPABILITIES.get(kind)  # kinds without server entries (mirrors) have none
    return capability is not None and capability.env_references


def reference_mode(kind: Kind, option: str | None) -> bool:
    """True when ``${env:NAME}`` stays a reference on this target (``secrets:`` option)."""
    if option == "resolve":
        return False
    return _can_reference(kind)


def referable(kind: Kind, field: str, key: str | None, value: str) -> bool:
    """Whether ``value`` (canonical ``${env:NAME}`` spelling) can stay as it is on ``kind``.

    Clients with interpolation take a reference anywhere. Codex has no interpolation; it
    passes a variable through by name only: ``env_vars`` (an env entry named like its
    variable), ``bearer_token_env_var`` (``Authorization: Bearer ${env:V}``) and
    ``env_http_headers`` (a header that is exactly ``${env:V}``).
    """
    if not _can_reference(kind):
        return False
    if kind is not Kind.CODEX:
        return True
    whole = _ONLY_ENV.fullmatch(value)
    if field == "env":
        return whole is not None and whole.group(1) == key
    if field == "headers":
        if whole is not None:
            return True
        return (key or "").lower() == "authorization" and BEARER_ENV.fullmatch(value) is not None
    return False


def _strings(essence: Essence) -> Iterator[tuple[str, str, str | None, str]]:
    """(pointer, field, key, value) for every string of an essence that may hold a secret."""
    for field in ("command", "cwd", "url"):
        value = essence.get(field)
        if isinstance(value, str):
            yield f"/{field}", field, None, value
    args = essence.get("args")
    if isinstance(args, list):
        for i, value in enumerate(args):
            if isinstance(value, str):
                yield f"/args/{i}", "args", None, value
    for field in SECRET_FIELDS:
        mapping = essence.get(field)
        if isinstance(mapping, dict):
            for key, value in mapping.items():
                if isinstance(value, str):
                    yield f"/{field}/{pointer_escape(str(key))}", field, str(key), value


def _texts(essence: Essence) -> Iterator[str]:
    """Every string of an essence, without paths (the fast pre-checks)."""
    for field in ("command", "cwd", "url"):
        value = essence.get(field)
        if isinstance(value, str):
            yield value
    args = essence.get("args")
    if isinstance(args, list):
        yield from (a for a in args if isinstance(a, str))
    for field in SECRET_FIELDS:
        mapping = essence.get(field)
        if isinstance(mapping, dict):
            yield from (v for v in mapping.values() if isinstance(v, str))


def _mentions_reference(essence: Essence) -> bool:
    """Whether any string of the essence may hold a reference (a hot path: no generators)."""
    for value in essence.values():
        if isinstance(value, str):
            if "${" in value or "<GET_FROM_INFISICAL:" in value:
                return True
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str) and ("${" in item or "<GET_FROM_INFISICAL:" in item):
                    return True
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, str) and ("${" in item or "<GET_FROM_INFISICAL:" in item):
                    return True
    return False


def _set(essence: Essence, pointer: str, value: str) -> None:
    parts = pointer_parts(pointer)
    if len(parts) == 1:
        essence[parts[0]] = value
    elif parts[0] == "args":
        essence["args"][int(parts[1])] = value
    else:
        essence[parts[0]][parts[1]] = value


def render_essence(
    essence: Essence,
    resolver: SecretResolver,
    *,
    kind: Kind,
    keep_env: bool,
    server: str = "",
) -> RenderedSecrets:
    """The essence a target must hold: references kept (``keep_env``) or resolved.

    Raises SecretError naming every reference that could not be resolved (and no value).
    """
    if not _mentions_reference(essence):
        return RenderedSecrets(essence, False, frozenset())
    out: Essence = {
        k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
        for k, v in essence.items()
    }
    sensitive = False
    paths: set[str] = set()
    notes: list[str] = []
    errors: list[SecretError] = []
    for pointer, field, key, value in list(_strings(essence)):
        refs = find_references(value)
        if not refs:
            continue
        has_env = any(r.scheme == ENV for r in refs)
        keep = False
        if keep_env and has_env:
            keep = referable(kind, field, key, canonical_env(value))
            if not keep:
                notes.append(
                    f"{server or 'server'} {pointer}: {kind.value} cannot keep this as a "
                    "reference (it passes a variable through only under its own name: "
                    "env_vars, bearer_token_env_var, env_http_headers), so the value is "
                    "resolved into the file (mode 0600)"
                )

        resolved_secret = False

        def value_of(ref: Reference, keep: bool = keep) -> str:
            nonlocal resolved_secret
            if keep and ref.scheme == ENV:
                return ref.canonical
            try:
                result = resolver.resolve(ref)
            except SecretError as e:
                errors.append(e)
                return ref.text
            resolved_secret = resolved_secret or ref.is_secret
            return result

        text = substitute(value, refs, value_of)
        if field == "url" and text != value:
            text = normalize_url(text)  # a resolved host compares as the live one does
        _set(out, pointer, text)
        if resolved_secret:
            sensitive = True
            paths.add(pointer)
    if errors:
        detail = "; ".join(dict.fromkeys(str(e) for e in errors))
        where = f"server '{server}': " if server else ""
        raise SecretError(
            f"{where}cannot resolve {detail}; nothing is written to this target",
            recoverable=all(e.recoverable for e in errors),
        )
    return RenderedSecrets(out, sensitive, frozenset(paths), tuple(notes))


def seal_paths(essence: Essence, paths: Iterable[str], fingerprint: Sealer) -> Essence:
    """Seal strings outside env/headers that hold resolved secrets (args, url, command, cwd).

    ``essence.seal`` already seals every env and header value; this covers a secret passed
    as an argument or in a URL, so that it is compared, stored and shown by fingerprint.
    """
    if not paths:
        return essence
    out = essence
    for pointer in paths:
        parts = pointer_parts(pointer)
        if not parts or parts[0] in SECRET_FIELDS or parts[0] not in out:
            continue
        if out is essence:
            out = dict(essence)
        if parts[0] == "args" and len(parts) == 2 and isinstance(out["args"], list):
            index = int(parts[1])
            if index < len(out["args"]) and not is_sealed_value(out["args"][index]):
                args = list(out["args"])
                args[index] = fingerprint(str(args[index]))
                out["args"] = args
        elif (
            len(parts) == 1
            and isinstance(out[parts[0]], str)
            and not is_sealed_value(out[parts[0]])
        ):
            out[parts[0]] = fingerprint(out[parts[0]])
    return out


# -- detection ----------------------------------------------------------------------------

_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("private-key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
        ("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
        ("anthropic-key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
        ("openai-key", r"\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"),
        ("slack-token", r"\bxox[abposre]-(?=[A-Za-z0-9-]*\d)[A-Za-z0-9-]{10,}"),
        ("aws-access-key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
        ("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
        ("bearer-token", r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{8,}=*"),
        ("basic-auth", r"(?i)\bbasic\s+[A-Za-z0-9+/]{8,}={0,2}"),
        ("url-password", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@"),
    )
)
# Cheap pre-checks on lowercased text: no marker, no token shape (most strings).
_SHAPE_MARKERS = (
    "begin", "gh", "glpat-", "sk-", "xox", "akia", "asia", "aiza", "eyj", "bearer", "basic",
    "://",
)  # fmt: skip
_KEY_MARKERS = ("token", "secret", "passw", "pwd", "key", "auth", "credential", "cookie",
                "session")  # fmt: skip


def _may_have_shape(text: str) -> bool:
    low = text.lower()
    return any(marker in low for marker in _SHAPE_MARKERS)


_SECRET_KEY = re.compile(
    r"(?i)token|secret|passw(?:or)?d|passwd|pwd|key|auth|credential|cookie|session"
)
_NOT_SECRET_KEY = re.compile(
    r"(?i)(?:^|[_-])(?:path|file|dir|url|uri|name|host|port|type|mode|limit|timeout|region"
    r"|endpoint|format|count|size|id|user|username|header)s?$"
)
_PLACEHOLDER = re.compile(r"(?i)^(?:\*+|x+|<[^>]*>|\.\.\.|changeme|redacted|password)$")
_SEGMENTS = re.compile(r"[-_./:@+=,]")


def detect(value: str, key: str | None = None) -> str | None:
    """The kind of literal secret ``value`` is (``github-token``, ``high-entropy``...), or None.

    References are ignored (``Bearer ${env:X}`` is fine). ``key`` is the env or header name
    (or argument name) the value sits under; random-looking values are secrets only under a
    secret-like key (*TOKEN*, *KEY*, *SECRET*, *PASSWORD*, Authorization...).
    """
    literal = without_references(value)
    if not literal.strip():
        return None
    if _may_have_shape(literal):
        for kind, pattern in _SHAPES:
            match = pattern.search(literal)
            if match is None:
                continue
            if kind == "url-password":
                password = match.group(0).rsplit(":", 1)[1][:-1]
                if _PLACEHOLDER.match(password):
                    continue
            return kind
    if key is not None and _SECRET_KEY.search(key) and not _NOT_SECRET_KEY.search(key):
        candidate = literal.strip()
        if (key.lower() == "authorization" or key.lower().endswith("-authorization")) and (
            " " in candidate
        ):
            candidate = candidate.split()[-1]  # "token abc...", "Digest ..."
        if looks_random(candidate):
            return "high-entropy"
    return None


def shannon_entropy(text: str) -> float:
    """Bits per character."""
    if not text:
        return 0.0
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_random(value: str) -> bool:
    """A credential-looking literal: long, unspaced, mixed, not a path, URL or word list."""
    if len(value) < 16 or any(ch.isspace() for ch in value) or _PLACEHOLDER.match(value):
        return False
    if "://" in value or value.startswith(("/", "~", "./", "../", "\\")):
        return False
    if re.match(r"^[A-Za-z]:[\\/]", value):
        return False
    lower = any(ch.islower() for ch in value)
    upper = any(ch.isupper() for ch in value)
    digit = any(ch.isdigit() for ch in value)
    if lower + upper + digit < 2:
        return False
    segments = [s for s in _SEGMENTS.split(value) if s]
    if all(s.isalpha() or s.isdigit() for s in segments):
        return False  # words and numbers joined by separators: an identifier, a version
    return shannon_entropy(value) >= 3.3


@dataclass(frozen=True)
class Finding:
    """A literal secret at ``path`` (a JSON Pointer). ``value`` is never shown, only sealed."""

    path: str
    kind: str
    value: str


def _arg_key(args: list[str], index: int) -> tuple[str | None, str]:
    """The name an argument's value sits under: ``--token=X`` or ``--token X``."""
    value = args[index]
    match = re.match(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)=(.*)$", value, re.S)
    if match:
        return match.group(1), match.group(2)
    if index > 0:
        previous = re.match(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)$", args[index - 1])
        if previous:
            return previous.group(1), value
    return None, value


def scan_essence(
    essence: Essence, redactor: Redactor | None = None, *, known: bool = True
) -> list[Finding]:
    """Every literal secret in an essence (sealed values are skipped: they are ours).

    Besides ``detect``'s shapes and randomness, a string holding a value this process
    resolved or found as a secret (the redactor knows it) is one, whatever it looks like:
    kind ``known-secret`` (unless ``known`` is False: desired-state validation must not
    depend on what a long-running process happens to have resolved).
    """
    redactor = REDACTOR if redactor is None else redactor
    findings: list[Finding] = []
    args = essence.get("args")
    for pointer, field, key, value in _strings(essence):
        if is_sealed_value(value):
            continue
        candidate = value
        if field == "args" and isinstance(args, list):
            key, candidate = _arg_key(args, int(pointer.rsplit("/", 1)[1]))
        kind = detect(candidate, key)
        if kind is None and known and redactor.mentions(value):
            kind = "known-secret"
        if kind is not None:
            findings.append(Finding(pointer, kind, value))
    return findings


def register_literals(essence: Essence, redactor: Redactor | None = None) -> None:
    """Teach the redactor the literal secrets of a live entry's unsealed strings.

    env and header values are sealed before anything shows them; a token passed as an
    argument or inside a URL is not, so a diff could print it: this makes it scrubbed.
    """
    redactor = REDACTOR if redactor is None else redactor
    if "args" not in essence and "url" not in essence:
        return
    unsealed: Essence = {k: essence[k] for k in ("command", "args", "url", "cwd") if k in essence}
    low = "\n".join(_texts(unsealed)).lower()
    if not any(m in low for m in _SHAPE_MARKERS) and not any(m in low for m in _KEY_MARKERS):
        return  # no token shape, no secret-like argument name: nothing to learn
    for finding in scan_essence(unsealed):
        redactor.add(finding.value)


def register_document_literals(
    data: Any, key: str | None = None, redactor: Redactor | None = None
) -> None:
    """Teach the redactor every literal secret anywhere in a plain YAML/JSON document.

    For documents that failed validation: their error messages may quote a value (an enum
    field holding a pasted token), and no later check will have seen it.
    """
    redactor = REDACTOR if redactor is None else redactor
    if isinstance(data, dict):
        for k, v in data.items():
            register_document_literals(v, str(k), redactor)
    elif isinstance(data, list):
        for item in data:
            register_document_literals(item, key, redactor)
    elif isinstance(data, str) and detect(data, key) is not None:
        redactor.add(data)


class _Where(Protocol):
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


def check_desired(
    servers: Mapping[str, Server],
    targets: Mapping[str, TargetSpec],
    resolvers: Mapping[str, Resolver],
    at: Callable[..., _Where],
    *,
    redactor: Redactor | None = None,
) -> list[Problem]:
    """Secret rules of desired state, each problem located: ``at(section, name, *path)``.

    Resolver declarations, reference syntax, the ``secrets:`` option of each target, and
    literal secrets. A literal secret's value is registered with the redactor (so nothing
    else can print it) and never appears in the problem.
    """
    redactor = REDACTOR if redactor is None else redactor
    problems: list[Problem] = []

    def problem(where: _Where, message: str, hint: str = "") -> None:
        problems.append(Problem(where.file, where.line, where.column, message, hint))

    for name, resolver in resolvers.items():
        if name in BUILTIN_SCHEMES or not RESOLVER_NAME.fullmatch(name):
            problem(
                at("secrets", name),
                f"secrets: '{name}' cannot name a resolver",
                "env and file are built in; a name is letters, digits, '-' and '_'",
            )
        if not any("{name}" in part for part in resolver.command):
            problem(
                at("secrets", name, "command"),
                f"secrets.{name}.command never uses {{name}}",
                "every secret would get the same value; put {name} where the secret's name goes",
            )

    def check_string(section: str, owner: str, path: tuple[str | int, ...], text: str) -> None:
        for ref in find_references(text):
            why = reference_problem(ref, resolvers)
            if why is not None:
                shown = ".".join(str(p) for p in (section, owner, *path))
                problem(at(section, owner, *path), f"{shown}: {why[0]}", why[1])

    for name, server in servers.items():
        if _plainly_clean(server):
            continue
        essence_like: Essence = {
            k: v for k, v in from_server(server).items() if k not in ("transport", "enabled")
        }
        for pointer, _field, _key, value in _strings(essence_like):
            check_string("servers", name, _loc(pointer), value)
        for finding in scan_essence(essence_like, known=False):
            redactor.add(finding.value)
            loc = _loc(finding.path)
            problem(
                at("servers", name, *loc),
                f"servers.{name}.{'.'.join(map(str, loc))}: a literal secret ({finding.kind}) "
                "in desired state",
                "replace it with a reference, e.g. "
                + _suggest(name, loc)
                + ", and give the value through the environment or a secrets: resolver",
            )

    for name, spec in targets.items():
        if spec.secrets == "reference" and not _can_reference(spec.kind):
            problem(
                at("targets", name, "secrets"),
                f"target '{name}': kind {spec.kind.value} cannot reference environment "
                "variables, so 'secrets: reference' is impossible",
                "remove the option: values are resolved at apply time and written with mode 0600",
            )
        for field in ("token", "url"):
            value = getattr(spec, field)
            if not isinstance(value, str):
                continue
            check_string("targets", name, (field,), value)
            kind = detect(value, field)
            if kind is not None:
                redactor.add(value)
                problem(
                    at("targets", name, field),
                    f"targets.{name}.{field}: a literal secret ({kind}) in desired state",
                    "use a reference, e.g. token: ${env:MCPJUNGLE_ADMIN_TOKEN}",
                )
    return problems


def _plainly_clean(server: Server) -> bool:
    """No reference, no token shape, no secret-like name anywhere: nothing to check (fast)."""
    parts = [server.command or "", server.cwd or "", server.url or "", *server.args]
    parts += [*server.env.values(), *server.headers.values(), *server.env, *server.headers]
    low = "\n".join(parts).lower()
    if "${" in low or "<get_from_infisical:" in low:
        return False
    return not any(m in low for m in _SHAPE_MARKERS) and not any(m in low for m in _KEY_MARKERS)


def _loc(pointer: str) -> tuple[str | int, ...]:
    parts = pointer_parts(pointer)
    return tuple(int(p) if parts[0] == "args" and i == 1 else p for i, p in enumerate(parts))


def _suggest(server: str, loc: tuple[str | int, ...]) -> str:
    if len(loc) == 2 and loc[0] == "env" and ENV_NAME.fullmatch(str(loc[1])):
        return f"${{env:{loc[1]}}}"
    if len(loc) == 2 and loc[0] == "headers" and str(loc[1]).lower() == "authorization":
        return f"Bearer ${{env:{_env_name(server)}_TOKEN}}"
    return f"${{env:{_env_name(server)}_SECRET}}"


def _env_name(server: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", server).upper().strip("_") or "SERVER"


# -- redaction ----------------------------------------------------------------------------


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


def wrap_streams() -> None:
    """Make every write to stdout and stderr pass through the redactor (idempotent)."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout, REDACTOR)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr, REDACTOR)
