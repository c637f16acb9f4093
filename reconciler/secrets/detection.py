"""Detection: literal secrets found by their shape, or by randomness under a secret-like key.

This module exists so that desired state (where a finding is a validation error), live
targets (``reconcile audit`` lists every finding), diffs (a line that looks like a secret is
hidden) and the redactor (``register_literals`` teaches it what it finds) share one set of
rules: known token prefixes, ``Bearer <literal>``, ``Basic`` credentials, credentials in
URLs, private keys and JWTs (``detect``), and random-looking values under secret-like keys
(``looks_random``). References are never findings.

Why hand-written rules rather than detect-secrets' regex plugins (entropy plugins off), as
measured with detect-secrets 1.5.0 on the cases of tests/test_secrets.py:

- its plugins miss shapes this project must catch: fine-grained GitHub tokens
  (``github_pat_``), OpenAI project keys (``sk-proj-``), Anthropic keys (``sk-ant-``),
  ``Bearer <literal>`` and ``Basic <base64>`` header values;
- the forms of a password in an MCP entry are not source code: of ``--password=X``,
  ``--password X``, ``-pX``, ``PGPASSWORD=X``, ``PGPASSWORD: X``, a libpq DSN
  (``host=db password=X``), an ADO.NET one (``Server=db;Password=X;``) and ``DB_PWD=X``,
  its keyword plugin (``scan_line``, all regex plugins on) found none; it found only the
  quoted JSON assignment ``"PGPASSWORD": "X"`` and, as basic auth, ``postgres://app:X@db``;
- a finding's kind is part of the output (``reconcile audit``, its ``--json``, and the
  desired-state error), and its plugin names would change it;
- all 24 regex plugins cost about 60 µs per string against about 1.4 µs here, where most
  strings are rejected by a marker pre-check before any pattern runs;
- randomness under a secret-like key (the ``high-entropy`` kind) would stay ours anyway:
  its entropy plugins are off here, and its keyword plugin reads assignments in source
  code, not env and header names.

So detect-secrets is not a dependency; the shapes below are the one set of rules. Passwords
are the one secret people choose, so they are not random: any literal under a
password-like name (``*PASSWORD*``, ``*PASSWD*``, ``*_PWD``, ``*_PASS``, a ``--password``
argument, mysql's ``-pX``) is one, and so is the ``password=`` of a DSN.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

from reconciler.core.essence import Essence, is_sealed_value
from reconciler.secrets.redaction import REDACTOR, Redactor
from reconciler.secrets.references import essence_strings, essence_texts, without_references

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
    "://", "passw", "pwd",
)  # fmt: skip
# "\n-p": mysql's -pSECRET, an argument that starts a line of the joined strings.
_KEY_MARKERS = ("token", "secret", "passw", "pwd", "key", "auth", "credential", "cookie",
                "session", "pass", "\n-p")  # fmt: skip


def has_secret_marker(lowered: str) -> bool:
    """False when lowercased text certainly holds no secret: no token shape, no secret-like
    name (a cheap pre-check before the real rules)."""
    return any(m in lowered for m in _SHAPE_MARKERS) or any(m in lowered for m in _KEY_MARKERS)


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
# Names of a password: chosen by people, so a secret whatever it looks like.
_PASSWORD_KEY = re.compile(r"(?i)passw(?:or)?d|passwd|passphrase|[_-]pwd$|[_-]pass$")
# Password-like names of something else: a flag, a prompt, a policy.
_NOT_PASSWORD = re.compile(
    r"(?i)(?:^|[_-])(?:stdin|prompt|env|var|policy|length|min|max|required|auth|reset|less)s?$"
)
_NOT_A_PASSWORD = re.compile(r"(?i)^(?:true|false|yes|no|on|off|none|null|0|1)$")
# ``password=X`` in a DSN: libpq's ``host=db password=X``, ADO.NET's ``Server=db;Password=X;``.
_DSN_PASSWORD = re.compile(r"(?i)(?:^|[\s;])(?:password|passwd|pwd)\s*=\s*(?P<value>[^;\s'\"]+)")
_SEGMENTS = re.compile(r"[-_./:@+=,]")


def secret_like_key(key: str) -> bool:
    """A name that holds a secret (*TOKEN*, *KEY*, *PASSWORD*, Authorization...), and not
    one that names where a secret is (*_FILE, *_PATH, *_URL, *_ID...)."""
    return bool(_SECRET_KEY.search(key)) and not _NOT_SECRET_KEY.search(key)


@functools.lru_cache(maxsize=1 << 16)
def is_secret_value(field: str, key: str, value: str) -> bool:
    """Whether an env or header value is masked: under a secret-like name, or shaped like a
    secret. Other values (``TZ: UTC``, ``GOVERNED_TOOLS: 1``) are shown as they are. A value
    resolved from a reference is masked by where it sits (``seal_paths``), whatever this says.
    Pure (a cache): the same value masks the same way in every pass and process.
    """
    return secret_like_key(key) or detect(value, key) is not None


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
        found = _url_secret(literal)
        if found is not None:
            return found[0]
        if _dsn_password(literal) is not None:
            return "dsn-password"
    if key is not None and _SECRET_KEY.search(key) and not _NOT_SECRET_KEY.search(key):
        candidate = literal.strip()
        if (key.lower() == "authorization" or key.lower().endswith("-authorization")) and (
            " " in candidate
        ):
            candidate = candidate.split()[-1]  # "token abc...", "Digest ..."
        if looks_random(candidate):
            return "high-entropy"
    if key is not None and _is_password_key(key) and _plausible_password(literal.strip()):
        return "password"  # chosen by a person: a secret however plain it looks
    return None


def _is_password_key(key: str) -> bool:
    return (
        bool(_PASSWORD_KEY.search(key))
        and not _NOT_SECRET_KEY.search(key)
        and not _NOT_PASSWORD.search(key)
    )


def _plausible_password(value: str) -> bool:
    """A literal that can be a password: not empty, a placeholder, a switch, a path or URL."""
    if not value or (" " in value and len(value) > 64):  # a sentence, not a password
        return False
    if _PLACEHOLDER.match(value) or _NOT_A_PASSWORD.match(value):
        return False
    return "://" not in value and not value.startswith(("/", "~", "./", "../", "-"))


def _dsn_password(text: str) -> str | None:
    """The password of a key=value DSN in ``text``, if it holds a literal one."""
    for match in _DSN_PASSWORD.finditer(text):
        value = match.group("value")
        if not _PLACEHOLDER.match(value) and not _NOT_A_PASSWORD.match(value):
            return value
    return None


def template_dsn_secrets(value: str, prefix: str) -> tuple[str, list[str]]:
    """``value`` with only the password of its DSN replaced by a reference:
    ``host=db user=app password=${env:PG_PASSWORD}`` (``prefix``: ``PG``)."""
    variables: list[str] = []

    def one(match: re.Match[str]) -> str:
        secret = match.group("value")
        if _PLACEHOLDER.match(secret) or _NOT_A_PASSWORD.match(secret) or "${" in secret:
            return match.group(0)
        variable = _variable(prefix, "password")
        variables.append(variable)
        start = match.start("value") - match.start(0)
        return match.group(0)[:start] + f"${{env:{variable}}}"

    return _DSN_PASSWORD.sub(one, value), variables


# Query parameters that carry a credential (``?api_key=...``, ``&sig=...``): by exact name,
# or by a name that holds one of the unmistakable words.
_QUERY_SECRET_NAMES = frozenset(
    {
        "api_key", "apikey", "api-key", "key", "token", "access_token", "accesstoken",
        "auth", "auth_token", "authtoken", "secret", "client_secret", "password", "passwd",
        "pwd", "sig", "signature", "x-api-key", "session", "sessionid",
        "private_token", "refresh_token", "id_token", "credential", "credentials",
    }
)  # fmt: skip
_QUERY_SECRET_WORDS = re.compile(r"(?i)token|secret|passw|apikey|api_key|api-key|signature")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s]+")
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^\s/?#@]+)@")


def _url_secrets(text: str) -> list[tuple[str, str]]:
    """(kind, secret part) of each credential in the URLs of ``text``: a user-only
    userinfo that looks random (``https://<token>@host``), or the value of a query
    parameter with a secret-like name (``?api_key=...``). A password in the userinfo is
    the ``url-password`` shape; its part is listed here too, for the redactor."""
    out: list[tuple[str, str]] = []
    for match in _URL.finditer(text):
        url = match.group(0)
        user = _USERINFO.match(url)
        if user is not None:
            name, colon, password = user.group(1).partition(":")
            if colon and password and not _PLACEHOLDER.match(password):
                out.append(("url-password", password))
            elif not colon and looks_random(name):
                out.append(("url-userinfo", name))
        query = url.partition("?")[2].split("#", 1)[0]
        for pair in query.split("&") if query else ():
            key, sep, value = pair.partition("=")
            low = key.lower()
            secret_name = low in _QUERY_SECRET_NAMES or bool(_QUERY_SECRET_WORDS.search(low))
            if sep and value and secret_name and not _PLACEHOLDER.match(value):
                out.append(("url-query-secret", value))
    return out


def _url_secret(text: str) -> tuple[str, str] | None:
    found = [(k, v) for k, v in _url_secrets(text) if k != "url-password"]
    return found[0] if found else None


def url_secret_parts(value: str) -> list[str]:
    """The secret substrings of the URLs in ``value`` (a password, a query key's value),
    for the redactor: each is scrubbed wherever the URL is shown, whole or in part."""
    literal = without_references(value)
    if "://" not in literal:
        return []
    return [part for _, part in _url_secrets(literal) if len(part) >= 4]


def _variable(prefix: str, name: str) -> str:
    tail = re.sub(r"[^A-Za-z0-9]+", "_", name).upper().strip("_")
    return "_".join(p for p in (prefix, tail) if p)


def template_url_secrets(value: str, prefix: str) -> tuple[str, list[str]]:
    """``value`` with only the secret parts of its URLs replaced by ``${env:VAR}``
    references, and the variables: ``postgres://app:${env:PG_PASSWORD}@db/app``,
    ``https://host/mcp?api_key=${env:HOST_API_KEY}`` (``prefix``: ``PG``, ``HOST``)."""
    variables: list[str] = []

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        user = _USERINFO.match(url)
        if user is not None:
            name, colon, password = user.group(1).partition(":")
            start, end = user.span(1)
            if "${" in user.group(1) or "<GET_FROM" in user.group(1):
                pass  # already a reference
            elif colon and password and not _PLACEHOLDER.match(password):
                variable = _variable(prefix, "password")
                variables.append(variable)
                url = url[:start] + f"{name}:${{env:{variable}}}" + url[end:]
            elif not colon and looks_random(name):
                variable = _variable(prefix, "token")
                variables.append(variable)
                url = url[:start] + f"${{env:{variable}}}" + url[end:]
        head, mark, rest = url.partition("?")
        if not mark:
            return url
        query, hash_, fragment = rest.partition("#")
        pairs = []
        for pair in query.split("&"):
            key, sep, secret = pair.partition("=")
            low = key.lower()
            secret_name = low in _QUERY_SECRET_NAMES or bool(_QUERY_SECRET_WORDS.search(low))
            literal = without_references(secret).strip()
            if sep and literal and secret_name and not _PLACEHOLDER.match(secret):
                variable = _variable(prefix, key)
                variables.append(variable)
                pair = f"{key}=${{env:{variable}}}"
            pairs.append(pair)
        return head + mark + "&".join(pairs) + hash_ + fragment

    return _URL.sub(one, value), variables


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


# mysql's ``-pSECRET`` (attached; ``-p 3306`` and ``-p8080:80`` are ports, not this).
_SHORT_PASSWORD = re.compile(r"^-p(?P<value>(?![\d:./-]+$)[^\s-][^\s]{2,})$")


def arg_secret(args: list[str], index: int) -> tuple[str | None, int]:
    """The name an argument's value sits under and where that value starts in it:
    ``--token=X`` (``token``), ``--token X`` (``token``, 0), mysql's ``-pX`` (``password``)."""
    value = args[index]
    match = re.match(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)=(.*)$", value, re.S)
    if match:
        return match.group(1), match.start(2)
    short = _SHORT_PASSWORD.match(value)
    if short:
        return "password", short.start("value")
    if index > 0:
        previous = re.match(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)$", args[index - 1])
        if previous:
            return previous.group(1), 0
    return None, 0


def _arg_key(args: list[str], index: int) -> tuple[str | None, str]:
    """The name an argument's value sits under: ``--token=X`` or ``--token X``."""
    key, start = arg_secret(args, index)
    return key, args[index][start:]


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
    for pointer, field, key, value in essence_strings(essence):
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
    low = "\n".join(essence_texts(unsealed)).lower()
    if not has_secret_marker(low):
        return  # no token shape, no secret-like argument name: nothing to learn
    for finding in scan_essence(unsealed):
        redactor.add(finding.value)
        for part in url_secret_parts(finding.value):
            redactor.add(part)


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
