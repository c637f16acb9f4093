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
from pathlib import Path
from typing import Any

from reconciler.errors import TargetFormatError
from reconciler.essence import CAPABILITIES, Essence, normalize
from reconciler.model import Kind
from reconciler.model import Target as TargetSpec
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
    """A JSON document with the server map at ``servers_key`` (a path of object keys)."""

    servers_key: tuple[str, ...] = ("mcpServers",)

    def parse(self, content: bytes) -> Any:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise TargetFormatError(f"{self.path}: not UTF-8 text (byte {e.start})") from e
        if not text.strip():
            return {}
        try:
            document = json.loads(text)
        except json.JSONDecodeError as e:
            raise TargetFormatError(
                f"{self.path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}"
            ) from e
        if not isinstance(document, dict):
            raise TargetFormatError(f"{self.path}: the top level is not a JSON object")
        return document

    def render(self, document: Any, original: bytes | None) -> bytes:
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
        kind = native.get("type")
        transport = {"stdio": "stdio", "http": "http", "streamable-http": "http", "sse": "sse"}
        raw = dict(native)
        raw["transport"] = transport.get(kind, kind) if isinstance(kind, str) else None
        return normalize(_plain_fields(raw))

    def to_native(self, essence: Essence, existing: Any) -> Any:
        native = dict(existing) if isinstance(existing, dict) else {}
        written = self.written_fields(essence)
        for name in self.managed_fields:
            if name not in written:
                native.pop(name, None)
        native.update(written)  # existing keys keep their place; new ones go last
        return native

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        """The managed native fields for an essence, in the client's spelling."""
        fields: dict[str, Any] = {}
        for name in ("command", "args", "env", "cwd", "url", "headers"):
            if name in essence:
                fields[name] = essence[name]
        return fields


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
