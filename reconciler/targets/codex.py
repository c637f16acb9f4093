"""Codex CLI: ``config.toml``, one ``[mcp_servers.NAME]`` table per server, edited with tomlkit.

``$CODEX_HOME/config.toml`` (default ``~/.codex/config.toml``) or a trusted project's
``.codex/config.toml``. The document is edited in place with tomlkit, so comments, key
order and the rest of the file (profiles, projects, model settings) stay as they are; a
table we write is updated key by key, so a comment beside ``command = ...`` survives a
change of its value.

Codex has no ``${...}`` expansion; it takes secrets by name (reference/CLIENTS.md 1.6).
The dialect maps them onto the canonical ``${env:NAME}`` references of the essence:

- ``env_vars = ["KEY"]``                 <->  env ``KEY: ${env:KEY}`` (same name only)
- ``bearer_token_env_var = "X"``         <->  header ``Authorization: Bearer ${env:X}``
- ``env_http_headers = {H = "Y"}``       <->  header ``H: ${env:Y}``
- ``http_headers`` / ``env``             <->  literal headers / env values

Anything else that looks like a reference would be written literally (Codex passes it
through unexpanded); ``secrets.referable`` tells the engine which values Codex can keep as
references, and the rest is resolved before it reaches this dialect. Codex has no sse
transport; ``enabled`` is its switch, written only when false or already present.
Governed tools go to ``disabled_tools`` (exact names), which is not a managed field: an
entry rewritten keeps it, and only the names this tool wrote are ever removed from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from reconciler.core.errors import TargetFormatError
from reconciler.core.essence import REMOTE_FIELDS, STDIO_FIELDS, Capability, Essence, normalize
from reconciler.core.model import TargetSpec
from reconciler.secrets import BEARER_ENV, env_reference, referenced_env
from reconciler.store import fsutil
from reconciler.targets import paths
from reconciler.targets.base import Context
from reconciler.targets.files import FileTarget

MANAGED = (
    "command",
    "args",
    "env",
    "env_vars",
    "cwd",
    "url",
    "bearer_token_env_var",
    "http_headers",
    "env_http_headers",
    "enabled",
)


class Codex(FileTarget):
    kind = "codex"
    capability = Capability(
        frozenset({"stdio", "http"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"cwd", "enabled"},
        True,
        env_references=True,
        references_by_name=True,
        tool_rules=True,
    )
    scopes: tuple[str, ...] = ("user", "project")
    # Governed tools: ``disabled_tools`` in the server's table, exact names only (Codex has
    # no globs: ``disabled_tools = ["*"]`` disables nothing; reference/TOOLCONTROLS.md).
    tool_control = "disabled_tools"

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".codex" / "config.toml"
        codex_home = context.environ.get("CODEX_HOME")
        return (Path(codex_home) if codex_home else context.home / ".codex") / "config.toml"

    # -- the TOML format ------------------------------------------------------------------

    def parse(self, content: bytes) -> Any:
        import tomlkit  # lazily: only runs that hold a codex target pay for it
        from tomlkit.exceptions import ParseError, TOMLKitError

        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise TargetFormatError(f"{self.path}: not UTF-8 text (byte {e.start})") from e
        deep = fsutil.too_deep(text)
        if deep is not None:
            raise TargetFormatError(f"{self.path}:{fsutil.depth_message(deep)}")
        try:
            return tomlkit.parse(text)
        except (RecursionError, ValueError) as e:
            raise self._unreadable(text, e) from e
        except ParseError as e:
            message = str(e).split(" at line ")[0]
            raise TargetFormatError(
                f"{self.path}:{e.line}:{e.col + 1}: invalid TOML: {message}"
            ) from e
        except TOMLKitError as e:
            raise TargetFormatError(f"{self.path}: invalid TOML: {e}") from e

    def read(self, content: bytes) -> Any:
        # Observing needs plain data only: the stdlib reader is several times faster than
        # tomlkit (and its import), which matters for a no-op pass. Writes still parse with
        # tomlkit, which keeps the layout.
        import tomllib

        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise TargetFormatError(f"{self.path}: not UTF-8 text (byte {e.start})") from e
        deep = fsutil.too_deep(text)
        if deep is not None:
            raise TargetFormatError(f"{self.path}:{fsutil.depth_message(deep)}")
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            message, _, where = str(e).partition(" (at line ")
            line, _, column = where.rstrip(")").partition(", column ")
            position = f":{line}:{column}" if line.isdigit() else ""
            raise TargetFormatError(f"{self.path}{position}: invalid TOML: {message}") from e
        except (RecursionError, ValueError) as e:
            raise self._unreadable(text, e) from e

    def _unreadable(self, text: str, error: Exception) -> TargetFormatError:
        """A parser's own limit hit (a huge integer, deep nesting): one located line."""
        huge = fsutil.huge_integer(text)
        if huge is not None:
            return TargetFormatError(
                f"{self.path}:{huge[0]}:{huge[1]}: invalid TOML: an integer too large"
            )
        if isinstance(error, RecursionError):
            return TargetFormatError(f"{self.path}:{fsutil.depth_message((1, 1))}")
        return TargetFormatError(f"{self.path}: invalid TOML: {str(error).splitlines()[0]}")

    def render(self, document: Any, original: bytes | None) -> bytes:
        import tomlkit

        text = tomlkit.dumps(document)
        text = text.rstrip("\n") + "\n" if text.strip() else ""
        return text.encode("utf-8")

    def empty_document(self) -> Any:
        import tomlkit

        return tomlkit.document()

    def _section(self, document: Any) -> Any:
        section = document.get("mcp_servers")
        if section is not None and not isinstance(section, MutableMapping):
            raise TargetFormatError(f"{self.path}: 'mcp_servers' is not a table")
        return section

    def entries(self, document: Any) -> Mapping[str, Any]:
        section = self._section(document)
        if section is None:
            return {}
        return {name: _plain(value) for name, value in section.items()}

    def entries_for_update(self, document: Any) -> MutableMapping[str, Any]:
        import tomlkit

        section = self._section(document)
        if section is None:
            section = tomlkit.table(is_super_table=True)
            document["mcp_servers"] = section
        return _Guarded(section, self.path)

    # -- the dialect ------------------------------------------------------------------------

    def to_essence(self, entry: str, native: Any) -> Essence:
        if not isinstance(native, dict):
            raise TargetFormatError(f"{self.path}: 'mcp_servers.{entry}' is not a table")
        raw: dict[str, Any] = {"enabled": native.get("enabled", True)}
        if "command" in native or "url" not in native:
            raw["transport"] = "stdio"
            raw["command"] = _text(native.get("command"))
            args = native.get("args")
            if args is not None:
                raw["args"] = [_text(a) for a in args] if isinstance(args, list) else [_text(args)]
            env = _string_map(native.get("env"))
            for item in native.get("env_vars") or []:
                name = item.get("name") if isinstance(item, dict) else item
                if isinstance(name, str):
                    env.setdefault(name, env_reference(name))
            raw["env"] = env
            raw["cwd"] = _text(native.get("cwd"))
        else:
            raw["transport"] = "http"
            raw["url"] = _text(native.get("url"))
            headers = _string_map(native.get("http_headers"))
            for name, variable in _string_map(native.get("env_http_headers")).items():
                headers[name] = env_reference(variable)
            bearer = native.get("bearer_token_env_var")
            if isinstance(bearer, str):
                headers["Authorization"] = f"Bearer {env_reference(bearer)}"
            raw["headers"] = headers
        return normalize({k: v for k, v in raw.items() if v is not None})

    def to_native(self, essence: Essence, existing: Any) -> Any:
        import tomlkit

        new = not isinstance(existing, MutableMapping)
        table = tomlkit.table() if new else existing
        fields = _native_fields(essence, {} if new else existing)
        try:
            for name in MANAGED:
                if name not in fields and name in table:
                    _refuse_if_commented(table[name], f"removing '{name}'")
                    del table[name]
            for name, value in fields.items():
                _assign(table, name, value)
        except _DropsComment as e:
            raise TargetFormatError(f"{self.path}: {e}; make this change by hand") from None
        if new:  # a blank line after the new table (or its last sub-table), as Codex writes
            last = table[next(reversed(list(table)))] if table else None
            (last if isinstance(last, tomlkit.items.Table) else table).add(tomlkit.nl())
        return table


def _native_fields(essence: Essence, existing: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if essence["transport"] == "stdio":
        fields["command"] = essence["command"]
        if "args" in essence:
            fields["args"] = essence["args"]
        literal: dict[str, str] = {}
        passed: list[str] = []
        for key, value in essence.get("env", {}).items():
            if referenced_env(value) == key:
                passed.append(key)
            else:
                literal[key] = value
        if literal:
            fields["env"] = literal
        if passed:
            fields["env_vars"] = _env_vars(passed, existing.get("env_vars"))
        if "cwd" in essence:
            fields["cwd"] = essence["cwd"]
    else:
        fields["url"] = essence["url"]
        plain: dict[str, str] = {}
        by_name: dict[str, str] = {}
        for key, value in essence.get("headers", {}).items():
            bearer = BEARER_ENV.fullmatch(value)
            if key.lower() == "authorization" and bearer:
                fields["bearer_token_env_var"] = bearer.group(1)
            elif referenced_env(value) is not None:
                by_name[key] = referenced_env(value) or ""
            else:
                plain[key] = value
        if plain:
            fields["http_headers"] = plain
        if by_name:
            fields["env_http_headers"] = by_name
    enabled = essence.get("enabled", True)
    if enabled is False:
        fields["enabled"] = False
    elif "enabled" in existing:
        fields["enabled"] = enabled
    return fields


def _env_vars(names: list[str], existing: Any) -> list[Any]:
    """The names to pass through, keeping the form (``{name, source}``) each already has."""
    kept: list[Any] = []
    if isinstance(existing, list):
        for item in existing:
            name = item.get("name") if isinstance(item, Mapping) else item
            if name in names and name not in [_name(k) for k in kept]:
                kept.append(item)  # the item itself: an inline table keeps its spacing
    have = {_name(k) for k in kept}
    return kept + [n for n in names if n not in have]


def _name(item: Any) -> Any:
    return item.get("name") if isinstance(item, Mapping) else item


def _assign(table: MutableMapping[str, Any], name: str, value: Any) -> None:
    """Set one key, touching the document only where the value really changes."""
    import tomlkit

    current = table.get(name)
    if _plain(current) == value:
        return
    if isinstance(value, dict) and isinstance(current, MutableMapping):
        for key in [k for k in current if k not in value]:
            _refuse_if_commented(current[key], f"removing '{name}.{key}'")
            del current[key]
        for key, item in value.items():
            if _plain(current.get(key)) != item:
                current[key] = item
        return
    if isinstance(value, list) and isinstance(current, list):
        have = _plain(current)
        if value[: len(have)] == have:  # only appended to: keep the items as written
            for item in value[len(have) :]:
                current.append(item)
            return
    if isinstance(current, (list, dict)) and _COMMENT.search(_STRINGS.sub("", _text_of(current))):
        raise _DropsComment(f"rewriting '{name}' would drop the comment inside it")
    if isinstance(value, dict):
        inline = isinstance(table, tomlkit.items.InlineTable) or name != "env"
        container: Any = tomlkit.inline_table() if inline else tomlkit.table()
        for key, item in value.items():
            container[key] = item
        table[name] = container
        return
    table[name] = value


class _DropsComment(Exception):
    """An edit would lose a comment written by a person: refused, like a JSONC edit."""


_STRINGS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'')
_COMMENT = re.compile("#")


def _text_of(item: Any) -> str:
    as_string = getattr(item, "as_string", None)
    return str(as_string()) if callable(as_string) else ""


def _trailing_trivia(table: Any) -> tuple[Any, list[Any]]:
    """The innermost last table of ``table`` and the blank and comment lines it ends with."""
    import tomlkit

    node = table
    while isinstance(node, tomlkit.items.Table):
        body = node.value.body
        if body and isinstance(body[-1][1], tomlkit.items.Table):
            node = body[-1][1]
            continue
        run: list[Any] = []
        for name, item in reversed(body):
            if name is not None or not isinstance(
                item, (tomlkit.items.Whitespace, tomlkit.items.Comment)
            ):
                break
            run.insert(0, item)
        return node, run
    return node, []


def _refuse_if_commented(item: Any, what: str) -> None:
    trivia = getattr(item, "trivia", None)
    if (trivia is not None and trivia.comment) or _COMMENT.search(_STRINGS.sub("", _text_of(item))):
        raise _DropsComment(f"{what} would drop a comment written in it")


class _Guarded(MutableMapping[str, Any]):
    """The ``mcp_servers`` table, refusing to delete a server table that holds a comment."""

    def __init__(self, table: MutableMapping[str, Any], path: Path) -> None:
        self.table = table
        self.path = path

    def __getitem__(self, key: str) -> Any:
        return self.table[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if self.table.get(key) is not value:
            self.table[key] = value

    def __delitem__(self, key: str) -> None:
        import tomlkit

        table = self.table[key]
        # Comment lines at the very end of a table are the next table's heading (tomlkit
        # files them under the table above): they move to the table before, not away.
        _, tail = _trailing_trivia(table)
        moved = tail if any(isinstance(item, tomlkit.items.Comment) for item in tail) else []
        text = _text_of(table)
        own = text[: len(text) - len("".join(i.as_string() for i in moved))]
        keys = list(self.table)
        previous = keys[keys.index(key) - 1] if keys.index(key) > 0 else None
        try:
            trivia = getattr(table, "trivia", None)
            if (trivia is not None and trivia.comment) or _COMMENT.search(_STRINGS.sub("", own)):
                raise _DropsComment(f"removing server '{key}' would drop a comment written in it")
            if moved and previous is None:
                raise _DropsComment(f"removing server '{key}' would drop the comment after it")
        except _DropsComment as e:
            raise TargetFormatError(f"{self.path}: {e}; make this change by hand") from None
        if moved and previous is not None:
            target, target_tail = _trailing_trivia(self.table[previous])
            items = moved
            if target_tail:  # it already ends with a blank line: no second one
                while items and isinstance(items[0], tomlkit.items.Whitespace):
                    items = items[1:]
            for item in items:
                target.add(item)
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


# The kinds this family declares (read by the registry in ``targets/__init__``).
KIND_CLASSES: tuple[type[FileTarget], ...] = (Codex,)
