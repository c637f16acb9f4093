"""Environment references in each client's own syntax, and the one canonical form.

Essences that targets produce and consume spell an environment reference one way only,
``${env:NAME}``, so that a reference compares equal whichever client holds it and the
secrets layer has a single form to find. Each client that expands references itself
spells them differently (reference/CLIENTS.md 1.13); a dialect converts every string of an
entry on the way in (``to_essence``) and on the way out (``to_native``). Resolution is not
done here: a reference stays a reference.

Only exact variable references are converted. Anything a client would not expand (Claude
Code's ``$NAME``, a Cursor ``${NAME}``) is a literal and stays one, so it shows as drift
rather than silently becoming a reference.

The canonical form and the names a variable may have are the secrets layer's one grammar
(``reconciler.secrets.references``); this module declares only each client's spelling.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from reconciler.core.essence import Essence
from reconciler.secrets import ENV_NAME_PATTERN, ONLY_ENV, env_reference


def _any_literal(value: str) -> bool:
    return True


ANY_LITERAL = _any_literal


@dataclass(frozen=True)
class Syntax:
    """How one client spells an environment reference: both directions of the mapping.

    ``writable`` says whether a string's literal text (references blanked out) can be
    written so that the client reads it back as the same literal; ``why_not`` says why not,
    for ``validate``. ``fields`` are the essence fields the client expands references in
    (None: every field); only those are converted, and the kind's capability declares the
    same set (``reference_fields``) so that the secrets layer resolves a reference anywhere
    else into the file.
    """

    name: str
    to_essence: Callable[[str], str]
    to_native: Callable[[str], str]
    writable: Callable[[str], bool] = _any_literal  # ANY_LITERAL
    why_not: str = ""
    fields: frozenset[str] | None = None

    def only_in(self, *fields: str) -> Syntax:
        """This spelling, expanded by the client in ``fields`` only."""
        return replace(self, fields=frozenset(fields))

    def read(self, essence: Essence) -> Essence:
        """An essence read from the client: its references in the canonical form."""
        return convert(essence, self.to_essence, self.fields)

    def write(self, essence: Essence) -> Essence:
        """An essence as the client spells it: canonical references in its syntax."""
        return convert(essence, self.to_native, self.fields)


def _identity(value: str) -> str:
    return value


def rewriter(
    pattern: re.Pattern[str], marker: str, spell: Callable[[re.Match[str]], str]
) -> Callable[[str], str]:
    """Every match of ``pattern`` in a string spelled by ``spell``. Every match holds
    ``marker``, and most strings of an entry hold no reference: those are returned as they
    are without running the pattern (this runs on every string of every entry, both ways)."""

    def rewrite(text: str) -> str:
        return pattern.sub(spell, text) if marker in text else text

    return rewrite


# Canonical references in a client's braced spelling, ``${NAME}`` (to_native of two dialects).
_TO_BRACED = rewriter(ONLY_ENV, "${env:", lambda m: "${" + m.group(1) + "}")


# Cursor, Windsurf, VS Code: ``${env:NAME}`` is already the canonical form.
ENV_COLON = Syntax("${env:NAME}", _identity, _identity)

# Claude Code: ``${NAME}``; ``${NAME:-default}`` is not a plain reference and is left as is.
_CLAUDE_IN = re.compile(r"\$\{(" + ENV_NAME_PATTERN + r")\}")
CLAUDE_CODE = Syntax(
    "${NAME}",
    rewriter(_CLAUDE_IN, "${", lambda m: env_reference(m.group(1))),
    _TO_BRACED,
)

# Kiro, Warp: ``${NAME}``, read and written as Claude Code's (Kiro's older releases read
# ``${env:NAME}``, which is the canonical form and reads as the same reference).
BRACED = Syntax("${NAME}", CLAUDE_CODE.to_essence, CLAUDE_CODE.to_native)

# Gemini CLI: ``$NAME`` or ``${NAME}``; written as ``${NAME}``, which survives being
# followed by letters ("${TOKEN}abc" vs "$TOKENabc").
#
# How Gemini CLI 0.61 expands (bundle: packages/cli/src/utils/envVarResolver.ts and
# packages/core/src/utils/envExpansion.ts): on load, every string of the settings file
# goes through /\$(?:(\w+)|{([^}]+?)(?::-([^}]*))?})/, replaced by the variable's value
# when it is set; then env and header values go through dotenv-expand, where an unset
# $NAME becomes empty. A backslash escapes only in the second step, after the first has
# already expanded a set variable: there is no escape. A literal ``$HOME`` or ``a$b`` in
# desired state could never read back as written, so ``validate`` refuses it.
_GEMINI_IN = re.compile(r"\$\{(" + ENV_NAME_PATTERN + r")\}|\$(" + ENV_NAME_PATTERN + r")")
_GEMINI_EXPANDED = re.compile(r"\$(?:\w|\{[^}]+\})")
GEMINI = Syntax(
    "$NAME",
    rewriter(_GEMINI_IN, "$", lambda m: env_reference(m.group(1) or m.group(2))),
    _TO_BRACED,
    writable=lambda literal: _GEMINI_EXPANDED.search(literal) is None,
    why_not=(
        "Gemini CLI expands $NAME and ${NAME} in every string of its settings whenever NAME "
        "is set (and to nothing in env and headers when it is not), and has no escape: a "
        "literal '$' before a name or '{' cannot be written to it"
    ),
)

# opencode: ``{env:NAME}`` (anywhere in the file). A ``$`` before it is a literal dollar, so
# the mapping is a bijection: ``${env:X}`` in an opencode file reads as ``$${env:X}``.
_OPENCODE_IN = re.compile(r"\{env:(" + ENV_NAME_PATTERN + r")\}")
OPENCODE = Syntax(
    "{env:NAME}",
    rewriter(_OPENCODE_IN, "{env:", lambda m: env_reference(m.group(1))),
    rewriter(ONLY_ENV, "${env:", lambda m: "{env:" + m.group(1) + "}"),
)


def convert(
    essence: Essence,
    convert_string: Callable[[str], str],
    fields: frozenset[str] | None = None,
) -> Essence:
    """The essence with ``convert_string`` applied to every string a client may expand (in
    ``fields`` only, when given)."""
    if convert_string is _identity:
        return essence
    out = dict(essence)
    for name in ("command", "cwd", "url"):
        if isinstance(out.get(name), str) and (fields is None or name in fields):
            out[name] = convert_string(out[name])
    if isinstance(out.get("args"), list) and (fields is None or "args" in fields):
        out["args"] = [convert_string(a) if isinstance(a, str) else a for a in out["args"]]
    for name in ("env", "headers"):
        if isinstance(out.get(name), dict) and (fields is None or name in fields):
            out[name] = {
                k: convert_string(v) if isinstance(v, str) else v for k, v in out[name].items()
            }
    return out
