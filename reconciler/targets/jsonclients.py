"""Clients whose MCP servers live under ``mcpServers`` in a JSON file: each client's dialect.

The JSON format itself is ``jsonfile``; here each client's spelling of an entry is mapped
to the essence and back, enforcing only the fields we manage and keeping every field the
client owns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.core.errors import ReconcilerError, TargetFormatError
from reconciler.core.essence import (
    REMOTE_FIELDS,
    STDIO_FIELDS,
    TRANSPORTS,
    Capability,
    Essence,
    normalize,
)
from reconciler.core.model import TargetSpec
from reconciler.store import fsutil
from reconciler.targets import (
    nodelock,
    paths,
    references,
)
from reconciler.targets.base import Context
from reconciler.targets.jsonfile import JsonFileTarget, plain_fields, sanitized, transport_of


class ClaudeDesktop(JsonFileTarget):
    """Claude Desktop's ``claude_desktop_config.json``: stdio entries, no enabled switch."""

    kind = "claude-desktop"
    # Claude Desktop's file carries stdio servers only (remote ones are app connectors).
    capability = Capability(frozenset({"stdio"}), STDIO_FIELDS)
    scopes: tuple[str, ...] = ()
    title = "Claude Desktop"
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
        return normalize(plain_fields(raw))

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        return {k: essence[k] for k in ("command", "args", "env") if k in essence}


class ClaudeCode(JsonFileTarget):
    """Claude Code: ``~/.claude.json`` (user and local scopes) or a project's ``.mcp.json``.

    ``scope: user`` is the top-level ``mcpServers``; ``scope: local`` is
    ``projects.<absolute project path>.mcpServers`` in the same file (the path of the git
    repository around the project, as Claude Code keys it); ``scope: project`` is
    ``<project>/.mcp.json``. Claude Code rewrites ``~/.claude.json`` constantly, so there the
    write takes Claude Code's own lock and merges around any change it made meanwhile.

    Governed tools are ``permissions.deny`` entries ``mcp__<server>__<tool>`` (names
    sanitized as Claude Code does) in the settings file of the scope: user
    ``${CLAUDE_CONFIG_DIR:-~/.claude}/settings.json``, project ``.claude/settings.json``,
    local ``.claude/settings.local.json``; a deny removes the tool from what the model is
    offered. The file is edited in place: every other key and the user's own rules stay.
    """

    kind = "claude-code"
    capability = Capability(
        frozenset(TRANSPORTS), STDIO_FIELDS | REMOTE_FIELDS, env_references=True, tool_rules=True
    )
    scopes: tuple[str, ...] = ("user", "local", "project")
    tool_control = "permissions.deny"  # mcp__<server>__<tool> in settings.json, not here
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

    def tools_path(self) -> Path | None:
        if self.scope == "user":
            config_dir = self.context.environ.get("CLAUDE_CONFIG_DIR")
            folder = Path(config_dir) if config_dir else self.context.home / ".claude"
            return folder / "settings.json"
        # The project's folder; a project file given by ``path`` alone is in it.
        if self.spec.project:
            project = paths.project_dir(self.spec, self.context)
        else:
            project = self.path.parent
        name = "settings.local.json" if self.scope == "local" else "settings.json"
        return project / ".claude" / name

    def parse_tools(self, content: bytes) -> Any:
        side = self.tools_path()
        assert side is not None
        return self.parse_at(content, side)

    def tool_rule(self, entry: str, tool: str) -> str:
        return f"mcp__{sanitized(entry)}__{sanitized(tool)}"

    def read_tool_rules(self, document: Any) -> frozenset[str]:
        permissions = document.get("permissions")
        deny = permissions.get("deny") if isinstance(permissions, dict) else None
        if not isinstance(deny, list):
            return frozenset()
        return frozenset(rule for rule in deny if isinstance(rule, str))

    def write_tool_rules(
        self, document: Any, entry: str, deny: Sequence[str], release: Sequence[str]
    ) -> None:
        side = self.tools_path()
        permissions = document.setdefault("permissions", {})
        if not isinstance(permissions, dict):
            raise TargetFormatError(f"{side}: 'permissions' is not a JSON object")
        rules = permissions.get("deny", [])
        if not isinstance(rules, list):
            raise TargetFormatError(f"{side}: 'permissions.deny' is not a list")
        gone = {self.tool_rule(entry, tool) for tool in release}
        kept = [rule for rule in rules if rule not in gone]
        kept += [r for r in (self.tool_rule(entry, t) for t in deny) if r not in kept]
        if kept:
            permissions["deny"] = kept
        else:
            permissions.pop("deny", None)
        if not permissions:
            document.pop("permissions", None)

    def describe(self) -> str:
        if self.scope == "local":
            return f"{self.path} [project {self.servers_key[1]}]"
        return str(self.path)

    def client_lock(self) -> AbstractContextManager[None]:
        if self.scope == "project":
            return super().client_lock()
        return nodelock.held(self.path, owners=self.context.lock_dir)

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

    kind = "cursor"
    # Cursor keeps its on/off toggle in app state, not in mcp.json: no switch in the file.
    capability = Capability(
        frozenset(TRANSPORTS), STDIO_FIELDS | REMOTE_FIELDS, env_references=True
    )
    scopes: tuple[str, ...] = ("user", "project")
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
    """VS Code: the user's ``mcp.json`` or ``<project>/.vscode/mcp.json``, key ``servers``.

    The file is JSONC: comments are kept (an edit that would drop one is refused). A
    ``profile:`` is one of VS Code's profiles: ``User/profiles/<id>/mcp.json``, by the id
    (the folder's name) or by the profile's name as VS Code lists it in
    ``User/globalStorage/storage.json`` (``userDataProfiles``). Source: microsoft/vscode
    ``src/vs/platform/userDataProfile/common/userDataProfile.ts``.
    """

    kind = "vscode"
    capability = Capability(
        frozenset(TRANSPORTS), STDIO_FIELDS | REMOTE_FIELDS | {"cwd"}, env_references=True
    )
    scopes: tuple[str, ...] = ("user", "project")
    servers_key = ("servers",)
    jsonc = True
    profiles = True
    managed_fields = ("type", "command", "args", "env", "cwd", "url", "headers")
    app_folder = "Code"

    @classmethod
    def user_dir(cls, context: Context) -> Path:
        return paths.user_config(context) / cls.app_folder / "User"

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".vscode" / "mcp.json"
        user = cls.user_dir(context)
        if spec.profile is not None:
            return user / "profiles" / _profile_folder(user, spec.profile) / "mcp.json"
        return user / "mcp.json"

    @classmethod
    def variants(cls, spec: TargetSpec, context: Context) -> tuple[TargetSpec, ...]:
        if paths.scope(spec) != "user" or spec.profile is not None:
            return (spec,)
        folder = cls.user_dir(context) / "profiles"
        profiles = (
            sorted(p.parent.name for p in folder.glob("*/mcp.json")) if folder.is_dir() else []
        )
        return (spec, *(replace(spec, profile=p) for p in profiles))

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        return {"type": essence["transport"], **super().written_fields(essence)}


class VSCodeInsiders(VSCode):
    """VS Code Insiders: the same files in its own ``Code - Insiders`` folder.

    Only the user scope: a project's ``.vscode/mcp.json`` is shared with VS Code (kind
    ``vscode``, scope project).
    """

    kind = "vscode-insiders"
    scopes: tuple[str, ...] = ("user",)
    title = "VS Code Insiders"
    app_folder = "Code - Insiders"


def _profile_folder(user: Path, profile: str) -> str:
    """The folder of a VS Code profile given by its id (folder name) or its name."""
    if (user / "profiles" / profile).is_dir():
        return profile
    storage = user / "globalStorage" / "storage.json"
    try:
        listed = json.loads(fsutil.read_text(storage)).get("userDataProfiles", [])
    except (OSError, ValueError, AttributeError, ReconcilerError):
        listed = []
    for item in listed if isinstance(listed, list) else ():
        if isinstance(item, dict) and item.get("name") == profile:
            location = item.get("location")
            if isinstance(location, str) and "/" not in location and "\\" not in location:
                return location
    return profile  # not created yet: the id as given (validated as one path component)


class Windsurf(JsonFileTarget):
    """Windsurf: ``~/.codeium/windsurf/mcp_config.json``; remote servers use ``serverUrl``.

    Windsurf tells streamable http from sse by itself; an sse server also gets
    ``"type": "sse"`` so that it reads back as declared. The switch is ``disabled``.
    """

    kind = "windsurf"
    # Windsurf's switch is an inverted ``disabled`` flag inside the entry.
    capability = Capability(
        frozenset(TRANSPORTS), STDIO_FIELDS | REMOTE_FIELDS | {"enabled"}, True, env_references=True
    )
    scopes: tuple[str, ...] = ("user",)
    tool_control = "disabledTools"  # third-party pages only (TOOLCONTROLS.md 1)
    managed_fields = ("type", "command", "args", "env", "serverUrl", "url", "headers", "disabled")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        return context.home / ".codeium" / "windsurf" / "mcp_config.json"

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        raw = dict(native)
        raw["url"] = native.get("serverUrl", native.get("url"))
        raw["transport"] = transport_of(native.get("type"))
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

    kind = "gemini"
    capability = Capability(
        frozenset(TRANSPORTS),
        STDIO_FIELDS | REMOTE_FIELDS | {"cwd"},
        env_references=True,
        tool_rules=True,
    )
    scopes: tuple[str, ...] = ("user", "project")
    tool_control = "excludeTools"
    syntax = references.GEMINI
    # Governed tools: ``excludeTools`` on the entry, exact names (it wins over includeTools).
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
            raw["transport"] = transport_of(native.get("type")) or "http"
        else:
            raw["transport"] = None if "command" in native else transport_of(native.get("type"))
        return self.essence_of(raw)

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        fields = super().written_fields(essence)
        if essence["transport"] == "http":
            fields = {"httpUrl" if k == "url" else k: v for k, v in fields.items()}
        elif essence["transport"] == "sse":
            fields = {"type": "sse", **fields}
        return fields


# The kinds this family declares (read by the registry in ``targets/__init__``).
KIND_CLASSES: tuple[type[JsonFileTarget], ...] = (
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    VSCode,
    VSCodeInsiders,
    Windsurf,
    Gemini,
)
