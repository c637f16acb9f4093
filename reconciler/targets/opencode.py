"""opencode: ``opencode.json`` (JSONC), servers under ``mcp``, command and args as one array.

An entry is ``{"type": "local", "command": [cmd, *args], "environment": {...}, "cwd": ...}``
or ``{"type": "remote", "url": ..., "headers": {...}}``, both with ``enabled``. A remote
server negotiates streamable http or sse by itself, so only http is declared. Fields the
client owns (``timeout``, ``oauth``) are kept. opencode expands ``{env:NAME}`` anywhere.

Two layouts, and the file tells which one it is: V1 (opencode 1.x) keeps the servers right
under ``mcp`` with an ``enabled`` switch; V2 (anomalyco/opencode ``specs/v2/config.md``)
under ``mcp.servers`` with ``disabled`` instead. A file whose ``mcp.servers`` is a map of
entries (not itself a V1 entry named ``servers``) is V2; any other file, and a new one, is
V1, which the released opencode reads (1.18.33 rejects ``mcp.servers``).

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
from reconciler.core.model import TargetSpec
from reconciler.targets import paths, references
from reconciler.targets.base import Context
from reconciler.targets.jsonfile import JsonFileTarget, sanitized


class OpenCode(JsonFileTarget):
    kind = "opencode"
    # opencode: ``remote`` negotiates http or sse itself, so sse cannot be declared.
    capability = Capability(
        frozenset({"stdio", "http"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"cwd", "enabled"},
        True,
        env_references=True,
        tool_rules=True,
    )
    scopes: tuple[str, ...] = ("user", "project")
    tool_control = "tools"  # top-level ``"<server>_<tool>": false`` (becomes permission deny)
    servers_key = ("mcp",)
    jsonc = True
    syntax = references.OPENCODE
    managed_fields = (
        "type",
        "command",
        "environment",
        "cwd",
        "url",
        "headers",
        "enabled",
        "disabled",
    )
    # The layout of the document last read (``_section`` decides it from the file).
    v2 = False

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            folder = paths.project_dir(spec, context)
        else:
            folder = paths.xdg_config(context) / "opencode"
        # opencode reads opencode.json and opencode.jsonc; write the one that exists.
        plain, commented = folder / "opencode.json", folder / "opencode.jsonc"
        return commented if commented.exists() and not plain.exists() else plain

    def _section(self, document: Any, *, create: bool) -> Any:
        mcp = document.get("mcp") if isinstance(document, dict) else None
        self.v2 = is_v2(mcp)
        if self.v2:
            assert isinstance(mcp, dict)
            return mcp["servers"]
        return super()._section(document, create=create)

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        kind = native.get("type")
        if "disabled" in native and "enabled" not in native:  # V2's switch
            disabled = native["disabled"]
            enabled = not disabled if isinstance(disabled, bool) else disabled
        else:
            enabled = native.get("enabled", True)
        raw: dict[str, Any] = {"enabled": enabled}
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
        if not self.v2:
            return {"enabled": enabled is not False}
        if enabled is False:
            return {"disabled": True}
        return {"disabled": False} if "disabled" in existing else {}

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


def is_v2(mcp: Any) -> bool:
    """Whether an ``mcp`` object is V2's: its ``servers`` is a map of entries."""
    if not isinstance(mcp, dict):
        return False
    servers = mcp.get("servers")
    return isinstance(servers, dict) and servers.get("type") not in ("local", "remote")


# The kinds this family declares (read by the registry in ``targets/__init__``).
KIND_CLASSES: tuple[type[JsonFileTarget], ...] = (OpenCode,)
