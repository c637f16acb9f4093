"""opencode: ``opencode.json`` (JSONC), servers under ``mcp``, command and args as one array.

An entry is ``{"type": "local", "command": [cmd, *args], "environment": {...}, "cwd": ...}``
or ``{"type": "remote", "url": ..., "headers": {...}}``, both with ``enabled``. A remote
server negotiates streamable http or sse by itself, so only http is declared. Fields the
client owns (``timeout``, ``oauth``) are kept. opencode expands ``{env:NAME}`` anywhere.

Governed tools go to the top-level ``tools`` map as ``"<server>_<tool>": false`` (opencode
turns it into ``permission: deny``), one exact name per tool: its prefix globs would also
catch another server whose name starts the same way, or a built-in tool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.core.errors import TargetFormatError
from reconciler.core.essence import REMOTE_FIELDS, STDIO_FIELDS, Capability, Essence
from reconciler.core.model import Kind, TargetSpec
from reconciler.targets import paths, references
from reconciler.targets.base import Context
from reconciler.targets.jsonfile import JsonFileTarget, sanitized


class OpenCode(JsonFileTarget):
    kind = Kind.OPENCODE
    # opencode: ``remote`` negotiates http or sse itself, so sse cannot be declared.
    capability = Capability(
        frozenset({"stdio", "http"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"cwd", "enabled"},
        True,
        env_references=True,
        tool_rules=True,
    )
    scopes: tuple[str, ...] = ("user", "project")
    servers_key = ("mcp",)
    jsonc = True
    syntax = references.OPENCODE
    managed_fields = ("type", "command", "environment", "cwd", "url", "headers", "enabled")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            folder = paths.project_dir(spec, context)
        else:
            folder = paths.xdg_config(context) / "opencode"
        # opencode reads opencode.json and opencode.jsonc; write the one that exists.
        plain, commented = folder / "opencode.json", folder / "opencode.jsonc"
        return commented if commented.exists() and not plain.exists() else plain

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        kind = native.get("type")
        raw: dict[str, Any] = {"enabled": native.get("enabled", True)}
        if kind == "local":
            raw["transport"] = "stdio"
            command = native.get("command")
            if isinstance(command, list) and command:
                raw["command"], raw["args"] = command[0], command[1:]
            elif command is not None:  # malformed: shown as drift, never guessed
                raw["command"] = command if isinstance(command, str) else json.dumps(command)
            raw["env"] = native.get("environment")
            raw["cwd"] = native.get("cwd")
        else:
            raw["transport"] = "http" if kind == "remote" else kind
            raw["url"] = native.get("url")
            raw["headers"] = native.get("headers")
        return self.essence_of(raw)

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        if essence["transport"] == "stdio":
            fields: dict[str, Any] = {
                "type": "local",
                "command": [essence["command"], *essence.get("args", [])],
            }
            if "env" in essence:
                fields["environment"] = essence["env"]
            if "cwd" in essence:
                fields["cwd"] = essence["cwd"]
            return fields
        fields = {"type": "remote", "url": essence["url"]}
        if "headers" in essence:
            fields["headers"] = essence["headers"]
        return fields

    def switch_fields(self, enabled: Any, existing: Mapping[str, Any]) -> dict[str, Any]:
        return {"enabled": enabled is not False}

    # -- governed tools: the ``tools`` map ------------------------------------------------

    def tool_rule(self, entry: str, tool: str) -> str:
        return f"{sanitized(entry)}_{sanitized(tool)}"

    def read_tool_rules(self, document: Any) -> frozenset[str]:
        tools = document.get("tools")
        if not isinstance(tools, Mapping):
            return frozenset()
        return frozenset(str(name) for name, on in tools.items() if on is False)

    def write_tool_rules(
        self, document: Any, entry: str, deny: Sequence[str], release: Sequence[str]
    ) -> None:
        tools = document.get("tools")
        if tools is not None and not isinstance(tools, MutableMapping):
            raise TargetFormatError(f"{self.path}: 'tools' is not a JSON object")
        tools = {} if tools is None else tools
        for tool in release:
            if tools.get(self.tool_rule(entry, tool)) is False:
                del tools[self.tool_rule(entry, tool)]
        for tool in deny:
            tools[self.tool_rule(entry, tool)] = False
        if tools:
            document["tools"] = tools
        else:
            document.pop("tools", None)
