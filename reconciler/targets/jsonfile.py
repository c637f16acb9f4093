"""The JSON file format shared by the JSON client families (the ``mcpServers`` clients, opencode).

It keeps what a person would notice: key order (Python dicts keep it), the indentation style
(spaces or tabs, and how many), non-ASCII text as written, and the final newline. A file
with comments is edited in place through the JSONC editor so that every comment stays. Each
client's dialect (its spelling of an entry) lives in its family module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from reconciler.core.errors import TargetFormatError
from reconciler.core.essence import Essence, normalize
from reconciler.store import fsutil
from reconciler.targets import jsonc, references
from reconciler.targets.files import FileTarget

_INDENT = re.compile(rb"^[{\[][^\n]*\n([ \t]+)\S", re.MULTILINE)
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def sanitized(name: str) -> str:
    """A server or tool name as Claude Code and opencode spell it in a tool's full name:
    every character outside ``[a-zA-Z0-9_-]`` becomes ``_`` (reference/TOOLCONTROLS.md)."""
    return _UNSAFE.sub("_", name)


class _DuplicateKey(ValueError):
    """A key appears twice in one JSON object."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json``'s object hook: the object, unless a key appears twice in it."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def detect_indent(content: bytes | None) -> str | int:
    """The document's indentation unit: a tab, or a number of spaces (default 2)."""
    if content:
        match = _INDENT.search(content)
        if match:
            unit = match.group(1).decode()
            return "\t" if unit.startswith("\t") else len(unit)
    return 2


class JsonFileTarget(FileTarget):
    """A JSON document with the server map at ``servers_key`` (a path of object keys).

    ``jsonc``: the client accepts comments and trailing commas; such a file is read, and
    edited in place so that every comment stays (see ``jsonc.py``). ``syntax``: how the
    client spells an environment reference.
    """

    servers_key: tuple[str, ...] = ("mcpServers",)
    jsonc: bool = False
    syntax: references.Syntax = references.ENV_COLON

    def _text(self, content: bytes, path: Path | None = None) -> str:
        path = path or self.path
        try:
            return content.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise TargetFormatError(f"{path}: not UTF-8 text (byte {e.start})") from e

    def parse(self, content: bytes) -> Any:
        return self.parse_at(content, self.path)

    def parse_at(self, content: bytes, path: Path) -> Any:
        """Parse ``content`` of the file at ``path`` (named in every error)."""
        text = self._text(content, path)
        if not text.strip():
            raise TargetFormatError(f"{path}: {fsutil.EMPTY_FILE}", recoverable=True)
        parsed = fsutil.checked_json(text, object_pairs_hook=_unique)
        if parsed is not None and isinstance(parsed[0], dict):
            return parsed[0]  # what the checks and the parse below return, without their scan
        deep = fsutil.too_deep(text)
        if deep is not None:
            raise TargetFormatError(f"{path}:{fsutil.depth_message(deep)}")
        lone = fsutil.lone_surrogate(text)
        if lone is not None:
            raise TargetFormatError(
                f"{path}:{lone[0]}:{lone[1]}: invalid JSON: a lone UTF-16 surrogate escape"
            )
        try:
            document = json.loads(text, object_pairs_hook=_unique)
        except _DuplicateKey:
            # Rewriting would keep only one of them: the file is refused until a person
            # chooses. The JSONC parser says where the second one is.
            try:
                jsonc.parse(text)
            except jsonc.JsoncError as error:
                raise TargetFormatError(
                    f"{self.path}:{error.line}:{error.column}: {error.message}"
                ) from error
            raise TargetFormatError(f"{self.path}: a duplicate key ({jsonc.DUPLICATE})") from None
        except json.JSONDecodeError as e:
            if fsutil.truncated(text, e.pos) or e.msg.startswith("Unterminated string"):
                raise TargetFormatError(
                    f"{path}:{e.lineno}:{e.colno}: invalid JSON: {fsutil.TRUNCATED}",
                    recoverable=True,
                ) from e
            if not self.jsonc:
                raise TargetFormatError(
                    f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}"
                ) from e

            try:
                document = jsonc.parse(text).value
            except jsonc.JsoncError as error:
                raise TargetFormatError(
                    f"{path}:{error.line}:{error.column}: invalid JSON: {error.message}"
                ) from error
            except (RecursionError, ValueError) as error:
                raise self._unreadable(text, error, path) from error
        except (RecursionError, ValueError) as e:
            raise self._unreadable(text, e, path) from e
        if not isinstance(document, dict):
            raise TargetFormatError(f"{path}: the top level is not a JSON object")
        return document

    def _unreadable(self, text: str, error: Exception, path: Path) -> TargetFormatError:
        """A parser's own limit hit (a huge integer, deep nesting): one located line."""
        huge = fsutil.huge_integer(text)
        if huge is not None:
            return TargetFormatError(
                f"{path}:{huge[0]}:{huge[1]}: invalid JSON: an integer too large"
            )
        deep = fsutil.too_deep(text) or (1, 1)
        if isinstance(error, RecursionError):
            return TargetFormatError(f"{path}:{fsutil.depth_message(deep)}")
        return TargetFormatError(f"{path}: invalid JSON: {str(error).splitlines()[0]}")

    def render(self, document: Any, original: bytes | None) -> bytes:
        if self.jsonc and original is not None and original.strip():
            text = self._text(original)
            parsed = jsonc.parse(text)
            if not parsed.plain:  # comments or trailing commas: edit the text in place
                unit = detect_indent(original)
                try:
                    edited = jsonc.edit(parsed, document, "\t" if unit == "\t" else " " * int(unit))
                except jsonc.JsoncError as e:
                    where = f"{self.path}:{e.line}" if e.line else str(self.path)
                    raise TargetFormatError(f"{where}: {e.message}") from e
                return edited.encode("utf-8")
        text = json.dumps(document, indent=detect_indent(original), ensure_ascii=False)
        if original is None or original.endswith(b"\n") or not original.strip():
            text += "\n"
        return text.encode("utf-8")

    def _section(self, document: Any, *, create: bool) -> Any:
        node = document
        for depth, key in enumerate(self.servers_key):
            if key not in node:
                if not create:
                    return {}
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                where = ".".join(self.servers_key[: depth + 1])
                raise TargetFormatError(f"{self.path}: '{where}' is not a JSON object")
        return node

    def entries(self, document: Any) -> Mapping[str, Any]:
        section: Mapping[str, Any] = self._section(document, create=False)
        return section

    def entries_for_update(self, document: Any) -> MutableMapping[str, Any]:
        section: MutableMapping[str, Any] = self._section(document, create=True)
        return section

    # The common dialect (Claude Desktop, Claude Code, Cursor): command/args/env, url/headers,
    # ``type`` as the transport discriminator. Subclasses override the spellings.

    managed_fields: tuple[str, ...] = ("type", "command", "args", "env", "cwd", "url", "headers")

    def to_essence(self, entry: str, native: Any) -> Essence:
        if not isinstance(native, dict):
            where = ".".join((*self.servers_key, entry))
            raise TargetFormatError(f"{self.path}: '{where}' is not a JSON object")
        return self.native_to_essence(native)

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        raw = dict(native)
        raw["transport"] = transport_of(native.get("type"))
        return self.essence_of(raw)

    def essence_of(self, raw: Mapping[str, Any]) -> Essence:
        """The essence of loosely typed fields, references turned into the canonical form."""
        return normalize(self.syntax.read(plain_fields(raw)))

    def to_native(self, essence: Essence, existing: Any) -> Any:
        native = dict(existing) if isinstance(existing, dict) else {}
        essence = self.syntax.write(essence)
        written = self.written_fields(essence)
        written.update(self.switch_fields(essence.get("enabled", True), native))
        # Existing keys keep their place; a new managed key takes the place of the first one
        # dropped (``httpUrl`` becoming ``url``), or goes last. Other keys stay as they are.
        new_keys = {k: v for k, v in written.items() if k not in native}
        result: dict[str, Any] = {}
        for key, value in native.items():
            if key in written:
                result[key] = written[key]
            elif key not in self.managed_fields:
                result[key] = value
            elif new_keys:
                result.update(new_keys)
                new_keys = {}
        result.update(new_keys)
        return result

    def switch_fields(self, enabled: Any, existing: Mapping[str, Any]) -> dict[str, Any]:
        """The native fields of the enabled switch, for kinds that have one."""
        return {}

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        """The managed native fields for an essence, in the client's spelling."""
        fields: dict[str, Any] = {}
        for name in ("command", "args", "env", "cwd", "url", "headers"):
            if name in essence:
                fields[name] = essence[name]
        return fields


_TRANSPORTS = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamableHttp": "http",
    "sse": "sse",
}


def transport_of(kind: Any) -> str | None:
    """A ``type`` field as a transport; absent means inferred (command: stdio, else http)."""
    if kind is None:
        return None
    return _TRANSPORTS.get(kind, kind) if isinstance(kind, str) else json.dumps(kind)


def plain_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Only well-typed essence fields; a malformed field is kept so that it shows as drift."""
    out: dict[str, Any] = {}
    for name in ("transport", "command", "cwd", "url"):
        value = raw.get(name)
        if value is not None:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    args = raw.get("args")
    if isinstance(args, list):
        out["args"] = [a if isinstance(a, str) else json.dumps(a) for a in args]
    elif args is not None:
        out["args"] = [json.dumps(args)]
    for name in ("env", "headers"):
        value = raw.get(name)
        if isinstance(value, dict):
            out[name] = {
                str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()
            }
    if "enabled" in raw:
        out["enabled"] = raw["enabled"]
    return out
