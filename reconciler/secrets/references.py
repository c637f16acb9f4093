"""The one reference grammar: how desired state names a secret instead of holding it.

Desired state never holds a secret value, only references to one:

    ${env:NAME}   ${NAME}            an environment variable of the reconciler's process
    ${file:PATH}                     a file's content (relative to the desired repository)
    ${infisical:NAME}                any resolver declared under ``secrets:`` (``${vault:X}``...)
    <GET_FROM_INFISICAL:NAME>        the legacy spelling of ``${infisical:NAME}``

This module exists so that the grammar is declared once: finding references
(``find_references``), spelling them canonically (``canonical_env``: essences carry
``${env:NAME}`` only), replacing them (``substitute``), and the names they may use
(``ENV_NAME_PATTERN``, from which the client dialects in ``reconciler.targets.references``
and Codex's ``bearer_token_env_var`` build their own syntax). It resolves nothing and has no
I/O; it also knows which strings of an essence a reference (or a secret) can sit in
(``essence_strings``), the walk every other secrets module shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from reconciler.core.compare import pointer_escape
from reconciler.core.essence import SECRET_FIELDS, Essence

ENV = "env"
FILE = "file"
INFISICAL = "infisical"
BUILTIN_SCHEMES = (ENV, FILE)

# An environment variable's name, as a pattern to build others from (the client dialects).
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
ENV_NAME = re.compile(ENV_NAME_PATTERN)
RESOLVER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_BRACED = re.compile(r"\$\{([^{}]*)\}")
_LEGACY = re.compile(r"<GET_FROM_INFISICAL:([^<>]*)>")
# The canonical spelling of one environment reference, ``${env:NAME}`` (group 1: NAME).
ONLY_ENV = re.compile(r"\$\{env:(" + ENV_NAME_PATTERN + r")\}")
# ``Bearer ${env:NAME}``: a header that clients with a bearer-variable key can keep as one.
BEARER_ENV = re.compile(r"Bearer \$\{env:(" + ENV_NAME_PATTERN + r")\}")

# Environment variables that locate things rather than authenticate: resolving them is not
# materializing a secret (no 0600, no redaction of every path under $HOME).
NOT_SECRET_ENV = frozenset(
    {"HOME", "USER", "USERNAME", "LOGNAME", "PATH", "PWD", "SHELL", "TMPDIR", "TEMP", "TMP",
     "LANG", "TZ", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "XDG_CONFIG_HOME",
     "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"}
)  # fmt: skip


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


def env_reference(name: str) -> str:
    """The canonical reference to environment variable ``name``: ``${env:NAME}``."""
    return "${env:" + name + "}"


def referenced_env(value: str) -> str | None:
    """NAME when ``value`` is exactly one canonical reference ``${env:NAME}``, else None."""
    match = ONLY_ENV.fullmatch(value)
    return match.group(1) if match else None


def essence_strings(essence: Essence) -> Iterator[tuple[str, str, str | None, str]]:
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


def essence_texts(essence: Essence) -> Iterator[str]:
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
