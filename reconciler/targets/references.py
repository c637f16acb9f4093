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
from dataclasses import dataclass

from reconciler.core.essence import Essence
from reconciler.secrets import ENV_NAME_PATTERN, ONLY_ENV, env_reference


@dataclass(frozen=True)
class Syntax:
    """How one client spells an environment reference: both directions of the mapping."""

    name: str
    to_essence: Callable[[str], str]
    to_native: Callable[[str], str]


def _identity(value: str) -> str:
    return value


# Cursor, Windsurf, VS Code: ``${env:NAME}`` is already the canonical form.
ENV_COLON = Syntax("${env:NAME}", _identity, _identity)

# Claude Code: ``${NAME}``; ``${NAME:-default}`` is not a plain reference and is left as is.
_CLAUDE_IN = re.compile(r"\$\{(" + ENV_NAME_PATTERN + r")\}")
CLAUDE_CODE = Syntax(
    "${NAME}",
    lambda s: _CLAUDE_IN.sub(lambda m: env_reference(m.group(1)), s),
    lambda s: ONLY_ENV.sub(lambda m: "${" + m.group(1) + "}", s),
)

# Kiro, Warp: ``${NAME}``, read and written as Claude Code's (Kiro's older releases read
# ``${env:NAME}``, which is the canonical form and reads as the same reference).
BRACED = Syntax("${NAME}", CLAUDE_CODE.to_essence, CLAUDE_CODE.to_native)

# Gemini CLI: ``$NAME`` or ``${NAME}``; written as ``${NAME}``, which survives being
# followed by letters ("${TOKEN}abc" vs "$TOKENabc").
_GEMINI_IN = re.compile(r"\$\{(" + ENV_NAME_PATTERN + r")\}|\$(" + ENV_NAME_PATTERN + r")")
GEMINI = Syntax(
    "$NAME",
    lambda s: _GEMINI_IN.sub(lambda m: env_reference(m.group(1) or m.group(2)), s),
    lambda s: ONLY_ENV.sub(lambda m: "${" + m.group(1) + "}", s),
)

# opencode: ``{env:NAME}`` (anywhere in the file). A ``$`` before it is a literal dollar, so
# the mapping is a bijection: ``${env:X}`` in an opencode file reads as ``$${env:X}``.
_OPENCODE_IN = re.compile(r"\{env:(" + ENV_NAME_PATTERN + r")\}")
OPENCODE = Syntax(
    "{env:NAME}",
    lambda s: _OPENCODE_IN.sub(lambda m: env_reference(m.group(1)), s),
    lambda s: ONLY_ENV.sub(lambda m: "{env:" + m.group(1) + "}", s),
)


def convert(essence: Essence, convert_string: Callable[[str], str]) -> Essence:
    """The essence with ``convert_string`` applied to every string a client may expand."""
    if convert_string is _identity:
        return essence
    out = dict(essence)
    for name in ("command", "cwd", "url"):
        if isinstance(out.get(name), str):
            out[name] = convert_string(out[name])
    if isinstance(out.get("args"), list):
        out["args"] = [convert_string(a) if isinstance(a, str) else a for a in out["args"]]
    for name in ("env", "headers"):
        if isinstance(out.get(name), dict):
            out[name] = {
                k: convert_string(v) if isinstance(v, str) else v for k, v in out[name].items()
            }
    return out
