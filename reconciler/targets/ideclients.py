"""More clients with their servers in a JSON file (IDEs and agents): each client's dialect.

The JSON format is ``jsonfile`` (JSONC, comments kept, for the clients that accept it);
each class maps its client's spelling of an entry to the essence and back. These kinds are
proven from the clients' source and documentation only (``reference/TOOLCONTROLS.md``
section 3): no CLI of theirs reads its config offline here (Crush's npm package downloads
its binary from GitHub at install time, which this machine cannot reach).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.core.essence import (
    REMOTE_FIELDS,
    STDIO_FIELDS,
    Capability,
    Essence,
)
from reconciler.core.model import TargetSpec
from reconciler.targets import paths, references
from reconciler.targets.base import Context
from reconciler.targets.jsonfile import JsonFileTarget, transport_of

# A remote entry the client skips because it has no (valid) ``type``: read so, it shows as
# drift rather than as a server the client would call.
UNTYPED = "untyped (skipped by the client)"


class DisabledFlag(JsonFileTarget):
    """A client whose on/off switch is an inverted ``disabled`` flag inside the entry."""

    def enabled_of(self, native: Mapping[str, Any]) -> Any:
        disabled = native.get("disabled", False)
        return not disabled if isinstance(disabled, bool) else disabled

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        raw = dict(native)
        raw["transport"] = transport_of(native.get("type"))
        raw["enabled"] = self.enabled_of(native)
        return self.essence_of(raw)

    def switch_fields(self, enabled: Any, existing: Mapping[str, Any]) -> dict[str, Any]:
        if enabled is False:
            return {"disabled": True}
        return {"disabled": False} if "disabled" in existing else {}


def _existing_or_legacy(current: Path, legacy: Path) -> Path:
    """The current location, or the legacy one when only that exists (the client reads both)."""
    return legacy if legacy.exists() and not current.exists() else current


# Where each client expands a reference (the rest of an entry goes out as written; the
# secrets layer resolves a reference there into the file). Kinds not named here expand
# references in every string of an entry: Roo (``injectVariables`` over the whole config,
# src/services/mcp/McpHub.ts), Warp (``substitute_env_vars`` over the server's JSON,
# app/src/ai/mcp/parsing.rs).
KIRO_SYNTAX = references.BRACED.only_in("command", "env", "headers")
# Crush reads Gemini CLI's spellings (the shell's ``$VAR`` and ``${VAR}``, written braced);
# a literal dollar is refused in every field, since its newer releases expand args and url.
CRUSH_SYNTAX = references.Syntax(
    "$NAME",
    references.GEMINI.to_essence,
    references.GEMINI.to_native,
    writable=references.GEMINI.writable,
    why_not=(
        "Crush runs shell expansion on the command, env and headers (and, in its newer "
        "releases, on args and url): a literal '$' before a name or '{' would not read back "
        "as written"
    ),
    fields=frozenset({"command", "env", "headers"}),
)


class Kiro(DisabledFlag):
    """Kiro (IDE and CLI, formerly Amazon Q Developer CLI): ``~/.kiro/settings/mcp.json``.

    The workspace file is ``<project>/.kiro/settings/mcp.json``. Kiro still reads the Amazon Q
    locations (``~/.aws/amazonq/mcp.json``, ``<project>/.amazonq/mcp.json``) when the new one
    is absent; then that file is the one edited. Remote servers are ``"type": "http"`` with
    ``url``; stdio entries need no type. References are expanded in the command
    (``shellexpand``), ``env`` values (``process_env_vars``) and header values, never in
    ``args`` or ``url``: a reference there is resolved into the file. (The Amazon Q code
    reads ``${env:VAR}`` in env and headers, Kiro's docs ``${VAR}``.) Source:
    aws/amazon-q-developer-cli
    ``crates/chat-cli/src/cli/chat/tools/custom_tool.rs`` and
    ``crates/chat-cli/src/mcp_client/client.rs``, kiro.dev/docs/mcp/configuration.
    """

    kind = "kiro"
    syntax = KIRO_SYNTAX
    # No sse and no cwd: Kiro's server config has neither.
    capability = Capability(
        frozenset({"stdio", "http"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"enabled"},
        True,
        env_references=True,
        tool_rules=True,
        reference_fields=KIRO_SYNTAX.fields,
    )
    scopes: tuple[str, ...] = ("user", "project")
    tool_control = "disabledTools"
    managed_fields = ("type", "command", "args", "env", "url", "headers", "disabled")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            folder = paths.project_dir(spec, context)
            return _existing_or_legacy(
                folder / ".kiro" / "settings" / "mcp.json", folder / ".amazonq" / "mcp.json"
            )
        return _existing_or_legacy(
            context.home / ".kiro" / "settings" / "mcp.json",
            context.home / ".aws" / "amazonq" / "mcp.json",
        )

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        fields = super().written_fields(essence)
        return {"type": "http", **fields} if essence["transport"] == "http" else fields


class Roo(DisabledFlag):
    """Roo Code: its VS Code global storage's ``mcp_settings.json``, or ``<project>/.roo/mcp.json``.

    A remote entry needs ``type``, ``streamable-http`` or ``sse``; one with a url and no type
    is rejected by Roo, and read here as untyped. Stdio entries need no type. Source:
    RooCodeInc/Roo-Code ``src/services/mcp/McpHub.ts`` (``${env:VAR}``, ``disabled``).
    """

    kind = "roo"
    capability = Capability(
        frozenset({"stdio", "http", "sse"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"cwd", "enabled"},
        True,
        env_references=True,
        tool_rules=True,
    )
    scopes: tuple[str, ...] = ("user", "project")
    tool_control = "disabledTools"
    managed_fields = ("type", "command", "args", "env", "cwd", "url", "headers", "disabled")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".roo" / "mcp.json"
        storage = paths.user_config(context) / "Code" / "User" / "globalStorage"
        return storage / "rooveterinaryinc.roo-cline" / "settings" / "mcp_settings.json"

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        if "type" not in native and "command" not in native and "url" in native:
            return self.essence_of(
                {**native, "transport": UNTYPED, "enabled": self.enabled_of(native)}
            )
        return super().native_to_essence(native)

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        fields = super().written_fields(essence)
        remote = {"http": "streamable-http", "sse": "sse"}.get(essence["transport"])
        return {"type": remote, **fields} if remote else fields


class Cline(DisabledFlag):
    """Cline (CLI and VS Code extension): ``~/.cline/data/settings/cline_mcp_settings.json``.

    ``type`` is ``stdio``, ``sse`` or ``streamableHttp``; a url without type is sse. Cline
    expands no references: they are resolved into the file (mode 0600). Source: cline/cline
    ``src/services/mcp/schemas.ts`` (``disabled``, ``autoApprove``, timeout in seconds).
    """

    kind = "cline"
    capability = Capability(
        frozenset({"stdio", "http", "sse"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"cwd", "enabled"},
        True,
    )
    scopes: tuple[str, ...] = ("user",)
    managed_fields = ("type", "command", "args", "env", "cwd", "url", "headers", "disabled")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        return context.home / ".cline" / "data" / "settings" / "cline_mcp_settings.json"

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        if "type" not in native and "command" not in native and "url" in native:
            return self.essence_of(
                {**native, "transport": "sse", "enabled": self.enabled_of(native)}
            )
        return super().native_to_essence(native)

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        spelling = {"stdio": "stdio", "http": "streamableHttp", "sse": "sse"}
        return {"type": spelling[essence["transport"]], **super().written_fields(essence)}


class LMStudio(JsonFileTarget):
    """LM Studio: ``~/.lmstudio/mcp.json`` in Cursor's notation (command, args, env; url, headers).

    No transport field (a url is a remote server), no documented switch (disabled means
    absent) and no documented reference expansion (references are resolved into the file,
    mode 0600). Source: lmstudio-ai/docs ``0_app/2_mcp/index.mdx``.
    """

    kind = "lmstudio"
    capability = Capability(frozenset({"stdio", "http"}), STDIO_FIELDS | REMOTE_FIELDS)
    scopes: tuple[str, ...] = ("user",)
    title = "LM Studio"
    managed_fields = ("command", "args", "env", "url", "headers")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        return context.home / ".lmstudio" / "mcp.json"

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        return self.essence_of(dict(native, transport=None))  # inferred: command or url


class Warp(JsonFileTarget):
    """Warp: ``~/.warp/.mcp.json`` or ``<project>/.warp/.mcp.json``.

    The working directory is ``working_directory``; a remote server is a ``url`` (or its
    alias ``serverUrl``, kept where the file uses it) with no type. References are
    ``${VAR}`` (Warp refuses a missing or empty one). No switch in the file. Source:
    warpdotdev/warp ``app/src/ai/mcp/parsing.rs``.
    """

    kind = "warp"
    capability = Capability(
        frozenset({"stdio", "http"}), STDIO_FIELDS | REMOTE_FIELDS | {"cwd"}, env_references=True
    )
    scopes: tuple[str, ...] = ("user", "project")
    syntax = references.BRACED
    managed_fields = ("command", "args", "env", "working_directory", "url", "serverUrl", "headers")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".warp" / ".mcp.json"
        return context.home / ".warp" / ".mcp.json"

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        raw = dict(native, transport=None)  # inferred: command or url
        raw["url"] = native.get("url", native.get("serverUrl"))
        raw["cwd"] = native.get("working_directory")
        return self.essence_of(raw)

    def to_native(self, essence: Essence, existing: Any) -> Any:
        native = super().to_native(essence, existing)
        alias = isinstance(existing, dict) and "serverUrl" in existing and "url" not in existing
        if alias and "url" in native:
            return {"serverUrl" if k == "url" else k: v for k, v in native.items()}
        return native

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        fields = super().written_fields(essence)
        return {"working_directory" if k == "cwd" else k: v for k, v in fields.items()}


class Zed(JsonFileTarget):
    """Zed: ``context_servers`` in ``~/.config/zed/settings.json`` (``%APPDATA%\\Zed`` on
    Windows) or ``<project>/.zed/settings.json``.

    The settings file is JSONC (edited in place, comments kept). A stdio server is flat
    ``command``, ``args`` (required, written even when empty), ``env`` (older releases nest
    ``command: {path, args, env}``, read too and rewritten flat); a remote one is ``url``
    with ``headers``, no type. The switch is ``enabled`` (default true). Zed expands no
    references: they are resolved into the file (mode 0600). Source: zed-industries/zed
    ``crates/settings_content/src/project.rs`` (``ContextServerSettingsContent``),
    zed.dev/docs/ai/mcp.
    """

    kind = "zed"
    capability = Capability(
        frozenset({"stdio", "http"}), STDIO_FIELDS | REMOTE_FIELDS | {"enabled"}, True
    )
    scopes: tuple[str, ...] = ("user", "project")
    servers_key = ("context_servers",)
    jsonc = True
    managed_fields = ("command", "args", "env", "url", "headers", "enabled")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            return paths.project_dir(spec, context) / ".zed" / "settings.json"
        if context.platform == "win32":
            return paths.appdata(context) / "Zed" / "settings.json"
        return paths.xdg_config(context) / "zed" / "settings.json"  # macOS too

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        raw = dict(native, transport=None)  # inferred: command or url
        command = native.get("command")
        if isinstance(command, dict):  # the nested form of older releases
            raw["command"] = command.get("path")
            raw["args"] = command.get("args")
            raw["env"] = command.get("env")
        raw["enabled"] = native.get("enabled", True)
        return self.essence_of(raw)

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        fields = super().written_fields(essence)
        if essence["transport"] == "stdio":  # Zed requires ``args`` (``ContextServerCommand``)
            fields = {"command": fields.pop("command"), "args": fields.pop("args", []), **fields}
        return fields

    def switch_fields(self, enabled: Any, existing: Mapping[str, Any]) -> dict[str, Any]:
        if enabled is False:
            return {"enabled": False}
        return {"enabled": True} if "enabled" in existing else {}


class Crush(DisabledFlag):
    """Crush (Charm): ``mcp`` in ``.crush.json`` or ``crush.json`` of a project, or
    ``~/.config/crush/crush.json``.

    ``type`` (required) is ``stdio``, ``http`` or ``sse``; the switch is ``disabled``; single
    tools are turned off with ``disabled_tools``. Crush expands shell references (``$VAR``,
    ``${VAR}``) in ``env`` values and ``headers`` (``ResolvedEnv``, ``ResolvedHeaders``),
    and in the command; written as ``${VAR}``. Its releases before ``ResolvedArgs`` and
    ``ResolvedURL`` expand nothing in ``args`` and ``url``, so a reference there is
    resolved into the file (mode 0600, with the plan note), which every release reads as
    written. In a project the file that exists is edited
    (``.crush.json`` first, as Crush reads it); a new one is ``.crush.json``. Source:
    charmbracelet/crush ``internal/config/config.go`` (``MCPConfig``),
    ``internal/config/load.go``.
    """

    kind = "crush"
    capability = Capability(
        frozenset({"stdio", "http", "sse"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"enabled"},
        True,
        env_references=True,
        tool_rules=True,
        reference_fields=CRUSH_SYNTAX.fields,
    )
    scopes: tuple[str, ...] = ("user", "project")
    tool_control = "disabled_tools"  # governed tools, exact names (internal/config/config.go)
    servers_key = ("mcp",)
    syntax = CRUSH_SYNTAX
    managed_fields = ("type", "command", "args", "env", "url", "headers", "disabled")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            folder = paths.project_dir(spec, context)
            hidden, plain = folder / ".crush.json", folder / "crush.json"
            return plain if plain.exists() and not hidden.exists() else hidden
        if context.platform == "win32":
            local = context.environ.get("LOCALAPPDATA")
            base = Path(local) if local else context.home / "AppData" / "Local"
            return base / "crush" / "crush.json"
        return paths.xdg_config(context) / "crush" / "crush.json"

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        return {"type": essence["transport"], **super().written_fields(essence)}


# The kinds this family declares (read by the registry in ``targets/__init__``).
KIND_CLASSES: tuple[type[JsonFileTarget], ...] = (Kiro, Roo, Cline, LMStudio, Warp, Zed, Crush)
