"""Clients whose MCP servers live in a JSON file: the JSON format, and each client's dialect.

The format part keeps what a person would notice: key order (Python dicts keep it), the
indentation style (spaces or tabs, and how many), non-ASCII text as written, and the final
newline. The dialect part maps a client's spelling of an entry to the essence and back,
enforcing only the fields we manage and keeping every field the client owns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler.core.errors import TargetFormatError
from reconciler.core.essence import CAPABILITIES, Essence, normalize
from reconciler.core.model import Kind
from reconciler.core.model import Target as TargetSpec
from reconciler.targets import nodelock, paths, references
from reconciler.targets.base import Context
from reconciler.targets.files import FileTarget

_INDENT = re.compile(rb"^[{\[][^\n]*\n([ \t]+)\S", re.MULTILINE)


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

    def _text(self, content: bytes) -> str:
        try:
            return content.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise TargetFormatError(f"{self.path}: not UTF-8 text (byte {e.start})") from e

    def parse(self, content: bytes) -> Any:
        text = self._text(content)
        if not text.strip():
            return {}
        try:
            document = json.loads(text)
        except json.JSONDecodeError as e:
            if not self.jsonc:
                raise TargetFormatError(
                    f"{self.path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}"
                ) from e
            from reconciler.targets import jsonc  # only files with comments need it

            try:
                document = jsonc.parse(text).value
            except jsonc.JsoncError as error:
                raise TargetFormatError(
                    f"{self.path}:{error.line}:{error.column}: invalid JSON: {error.message}"
                ) from error
        if not isinstance(document, dict):
            raise TargetFormatError(f"{self.path}: the top level is not a JSON object")
        return document

    def render(self, document: Any, original: bytes | None) -> bytes:
        if self.jsonc and original is not None and original.strip():
            from reconciler.targets import jsonc

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
        raw["transport"] = _transport(native.get("type"))
        return self.essence_of(raw)

    def essence_of(self, raw: Mapping[str, Any]) -> Essence:
        """The essence of loosely typed fields, references turned into the canonical form."""
        return normalize(references.convert(_plain_fields(raw), self.syntax.to_essence))

    def to_native(self, essence: Essence, existing: Any) -> Any:
        native = dict(existing) if isinstance(existing, dict) else {}
        essence = references.convert(essence, self.syntax.to_native)
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


def _transport(kind: Any) -> str | None:
    """A ``type`` field as a transport; absent means inferred (command: stdio, else http)."""
    if kind is None:
        return None
    return _TRANSPORTS.get(kind, kind) if isinstance(kind, str) else json.dumps(kind)


def _plain_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
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


class ClaudeDesktop(JsonFileTarget):
    """Claude Desktop's ``claude_desktop_config.json``: stdio entries, no enabled switch."""

    kind = Kind.CLAUDE_DESKTOP
    capability = CAPABILITIES[Kind.CLAUDE_DESKTOP]
    managed_fields = ("command", "args", "env")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        name = "claude_desktop_config.json"
        env = context.environ
        if context.platform == "darwin":
            return context.home / "Library" / "Application Support" / "Claude" / name
        if context.platform == "win32":
            # MSIX builds (the default installer since Feb 2026) read a virtualized path;
            # a write to the classic one goes unseen (reference/CLIENTS.md 1.1).
            local = Path(env.get("LOCALAPPDATA", context.home / "AppData" / "Local"))
            for package in sorted((local / "Packages").glob("Claude_*")):
                return package / "LocalCache" / "Roaming" / "Claude" / name
            roaming = Path(env.get("APPDATA", context.home / "AppData" / "Roaming"))
            return roaming / "Claude" / name
        config = env.get("XDG_CONFIG_HOME") or str(context.home / ".config")
        return Path(config) / "Claude" / name

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        # The file has no transport field; an entry with a url is still read as remote so
        # that it shows as drift rather than as a command-less stdio server.
        raw = dict(native)
        raw["transport"] = "stdio" if "command" in native or "url" not in native else "http"
        return normalize(_plain_fields(raw))

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        return {k: essence[k] for k in ("command", "args", "env") if k in essence}


class ClaudeCode(JsonFileTarget):
    """Claude Code: ``~/.claude.json`` (user and local scopes) or a project's ``.mcp.json``.

    ``scope: user`` is the top-level ``mcpServers``; ``scope: local`` is
    ``projects.<absolute project path>.mcpServers`` in the same file (the path of the git
    repository around the project, as Claude Code keys it); ``scope: project`` is
    ``<project>/.mcp.json``. Claude Code rewrites ``~/.claude.json`` constantly, so there the
    write takes Claude Code's own lock and merges around any change it made meanwhile.
    """

    kind = Kind.CLAUDE_CODE
    capability = CAPABILITIES[Kind.CLAUDE_CODE]
    syntax = references.CLAUDE_CODE
    managed_fields = ("type", "command", "args", "env", "url", "headers")

    def __init__(self, name: str, spec: TargetSpec, context: Context) -> None:
        super().__init__(name, spec, context)
        self.scope = paths.scope(spec)
        if self.scope == "local":
            project = str(_git_root(paths.project_dir(spec, context).resolve()))
            self.servers_key = ("projects", project, "mcpServers")
        if self.scope in ("user", "local"):
            self.cas_scope = "entries"

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".mcp.json"
        config_dir = context.environ.get("CLAUDE_CONFIG_DIR")
        return (Path(config_dir) if config_dir else context.home) / ".claude.json"

    def describe(self) -> str:
        if self.scope == "local":
            return f"{self.path} [project {self.servers_key[1]}]"
        return str(self.path)

    def client_lock(self) -> AbstractContextManager[None]:
        if self.scope == "project":
            return super().client_lock()
        return nodelock.held(self.path)

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        if "type" not in native and "command" not in native and "url" in native:
            # Claude Code skips a remote entry without ``type`` (2.1.329: "has a url but no
            # type"); reading it as http would call a server it never loads in sync.
            return self.essence_of({**native, "transport": UNTYPED})
        return super().native_to_essence(native)

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        return {"type": essence["transport"], **super().written_fields(essence)}


UNTYPED = "untyped (skipped by the client)"


def _git_root(folder: Path) -> Path:
    """Claude Code keys a project by the git root around it (verified with 2.1.329)."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


class Cursor(JsonFileTarget):
    """Cursor: ``~/.cursor/mcp.json`` or ``<project>/.cursor/mcp.json``; the type is inferred."""

    kind = Kind.CURSOR
    capability = CAPABILITIES[Kind.CURSOR]
    managed_fields = ("type", "command", "args", "env", "url", "headers")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".cursor" / "mcp.json"
        return context.home / ".cursor" / "mcp.json"

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        fields = super().written_fields(essence)
        if essence["transport"] == "sse":  # a url alone is streamable http (sse fallback)
            fields = {"type": "sse", **fields}
        return fields


class VSCode(JsonFileTarget):
    """VS Code: the user profile's ``mcp.json`` or ``<project>/.vscode/mcp.json``, key ``servers``.

    The file is JSONC: comments are kept (an edit that would drop one is refused).
    """

    kind = Kind.VSCODE
    capability = CAPABILITIES[Kind.VSCODE]
    servers_key = ("servers",)
    jsonc = True
    managed_fields = ("type", "command", "args", "env", "cwd", "url", "headers")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".vscode" / "mcp.json"
        return paths.user_config(context) / "Code" / "User" / "mcp.json"

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        return {"type": essence["transport"], **super().written_fields(essence)}


class Windsurf(JsonFileTarget):
    """Windsurf: ``~/.codeium/windsurf/mcp_config.json``; remote servers use ``serverUrl``.

    Windsurf tells streamable http from sse by itself; an sse server also gets
    ``"type": "sse"`` so that it reads back as declared. The switch is ``disabled``.
    """

    kind = Kind.WINDSURF
    capability = CAPABILITIES[Kind.WINDSURF]
    managed_fields = ("type", "command", "args", "env", "serverUrl", "url", "headers", "disabled")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        return context.home / ".codeium" / "windsurf" / "mcp_config.json"

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        raw = dict(native)
        raw["url"] = native.get("serverUrl", native.get("url"))
        raw["transport"] = _transport(native.get("type"))
        disabled = native.get("disabled", False)
        raw["enabled"] = not disabled if isinstance(disabled, bool) else disabled
        return self.essence_of(raw)

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        fields = {
            "serverUrl" if k == "url" else k: v for k, v in super().written_fields(essence).items()
        }
        if essence["transport"] == "sse":
            fields = {"type": "sse", **fields}
        return fields

    def switch_fields(self, enabled: Any, existing: Mapping[str, Any]) -> dict[str, Any]:
        if enabled is False:
            return {"disabled": True}
        return {"disabled": False} if "disabled" in existing else {}


class Gemini(JsonFileTarget):
    """Gemini CLI: ``~/.gemini/settings.json`` or ``<project>/.gemini/settings.json``.

    Streamable http is written as ``httpUrl``; sse as ``url`` with ``"type": "sse"`` (older
    releases take any ``url`` as sse, 0.61 takes a ``url`` without type as http with an sse
    fallback: the explicit type means sse for both). The file accepts comments.
    """

    kind = Kind.GEMINI
    capability = CAPABILITIES[Kind.GEMINI]
    syntax = references.GEMINI
    jsonc = True
    managed_fields = ("type", "command", "args", "env", "cwd", "url", "httpUrl", "headers")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".gemini" / "settings.json"
        home = context.environ.get("GEMINI_CLI_HOME")
        return (Path(home) if home else context.home) / ".gemini" / "settings.json"

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        raw = dict(native)
        if "httpUrl" in native:
            raw["url"], raw["transport"] = native["httpUrl"], "http"
        elif "url" in native:
            raw["transport"] = _transport(native.get("type")) or "http"
        else:
            raw["transport"] = None if "command" in native else _transport(native.get("type"))
        return self.essence_of(raw)

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        fields = super().written_fields(essence)
        if essence["transport"] == "http":
            fields = {"httpUrl" if k == "url" else k: v for k, v in fields.items()}
        elif essence["transport"] == "sse":
            fields = {"type": "sse", **fields}
        return fields
