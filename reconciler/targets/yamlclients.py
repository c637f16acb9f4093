"""Clients whose MCP servers live in a YAML file (Goose, Continue): each client's dialect.

The format is the one YAML module's (``store.yamlio``): a pass observes through its fast
reader, and a write goes through ruamel's round-trip mode, so comments, key order, quoting
and the file's own indentation stay as the person or the client left them. Only the managed
keys of a managed entry change; an entry's other keys (Goose's ``timeout`` and
``available_tools``, Continue's ``connectionTimeout``) and every other part of the file are
kept. Neither client expands environment references in the file the way the JSON clients
do, so references are resolved into it (mode 0600), except Continue's own
``${{ secrets.NAME }}`` form. Proven from the clients' source and documentation only
(reference/TOOLCONTROLS.md section 3): neither CLI reads its config offline here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from reconciler.core.errors import Problem, TargetFormatError
from reconciler.core.essence import REMOTE_FIELDS, STDIO_FIELDS, Capability, Essence
from reconciler.core.model import TargetSpec
from reconciler.secrets import ENV_NAME_PATTERN, ONLY_ENV, env_reference
from reconciler.store import yamlio
from reconciler.targets import paths, references
from reconciler.targets.base import Context
from reconciler.targets.jsonfile import JsonFileTarget, transport_of


class YamlFileTarget(JsonFileTarget):
    """A YAML document holding server entries; the entry dialect is ``jsonfile``'s.

    A subclass says where the section is (``servers_key``) and how entries are keyed in it
    (``section_view``: a mapping keyed by entry name over the client's own layout).
    """

    def _yaml_text(self, content: bytes) -> str:
        return self._text(content)

    def read(self, content: bytes) -> Any:
        """Observing only: the fast reader's plain data (never written back)."""
        problems: list[Problem] = []
        positioned = yamlio.read(self._yaml_text(content), str(self.path), problems)
        if positioned is None:
            problem = problems[0]
            where = f":{problem.line}:{problem.column}" if problem.line else ""
            message = problem.message.removeprefix("invalid YAML: ")
            raise TargetFormatError(f"{self.path}{where}: invalid YAML: {message}")
        return self._top(positioned.data)

    def parse(self, content: bytes) -> Any:
        """For writing: ruamel's round-trip document (comments and layout kept)."""
        from ruamel.yaml.error import MarkedYAMLError, YAMLError

        text = self._yaml_text(content)
        try:
            data = yamlio.make_yaml().load(text)
        except MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            raise TargetFormatError(f"{self.path}{where}: invalid YAML: {e.problem}") from e
        except (YAMLError, RecursionError, ValueError) as e:
            raise TargetFormatError(f"{self.path}: invalid YAML: {e}") from e
        return self._top(data)

    def _top(self, data: Any) -> Any:
        if data is None:
            return self.empty_document()
        if not isinstance(data, dict):
            raise TargetFormatError(f"{self.path}: the top level is not a YAML mapping")
        return data

    def render(self, document: Any, original: bytes | None) -> bytes:
        indent = (2, 4, 2)
        if original is not None and original.strip():
            indent = yamlio.guess_indent(self._yaml_text(original))
        return yamlio.YamlDocument(self.path, original, document, indent).dump()

    def empty_document(self) -> Any:
        from ruamel.yaml.comments import CommentedMap

        return CommentedMap()

    def to_native(self, essence: Essence, existing: Any) -> Any:
        """The entry, edited in place when it exists, so that its comments stay."""
        wanted = super().to_native(essence, existing)
        if not isinstance(existing, MutableMapping):
            return wanted
        for key in [k for k in existing if k not in wanted]:
            del existing[key]
        for key, value in wanted.items():
            if key not in existing or existing[key] != value:
                existing[key] = value
        return existing

    def entries(self, document: Any) -> Mapping[str, Any]:
        return self.section_view(self._section(document, create=False))

    def entries_for_update(self, document: Any) -> MutableMapping[str, Any]:
        return self.section_view(self._section(document, create=True))

    def section_view(self, section: Any) -> MutableMapping[str, Any]:
        """The section as a mapping keyed by entry name."""
        if not isinstance(section, MutableMapping):
            raise TargetFormatError(f"{self.path}: '{'.'.join(self.servers_key)}' is malformed")
        return section

    def to_essence(self, entry: str, native: Any) -> Essence:
        if not isinstance(native, dict):
            where = ".".join((*self.servers_key, entry))
            raise TargetFormatError(f"{self.path}: '{where}' is not a YAML mapping")
        return self.native_to_essence(native)


# -- Goose -----------------------------------------------------------------------------------


def goose_key(name: str) -> str:
    """Goose's key for an extension (``config/extensions.rs`` ``name_to_key``): whitespace
    dropped, ASCII letters, digits, ``_`` and ``-`` kept, anything else ``_``, lowercased."""
    kept = "".join(
        c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in name if not c.isspace()
    )
    return kept.lower()


# Extension types that are MCP servers; the others (builtin, platform, frontend,
# inline_python) are Goose's own and stay out of view.
GOOSE_SERVER_TYPES = frozenset({"stdio", "streamable_http", "sse"})


class _GooseExtensions(MutableMapping[str, Any]):
    """Goose's ``extensions`` keyed by each extension's ``name``, stored under its key."""

    def __init__(self, section: MutableMapping[str, Any]) -> None:
        self.section = section

    def _servers(self) -> dict[str, str]:
        """Entry name -> key in the section, for the extensions that are MCP servers."""
        out: dict[str, str] = {}
        for key, value in self.section.items():
            if isinstance(value, Mapping) and value.get("type") not in GOOSE_SERVER_TYPES:
                continue
            name = value.get("name") if isinstance(value, Mapping) else None
            out.setdefault(name if isinstance(name, str) and name else str(key), str(key))
        return out

    def __getitem__(self, name: str) -> Any:
        return self.section[self._servers()[name]]

    def __setitem__(self, name: str, value: Any) -> None:
        key = self._servers().get(name, goose_key(name))
        if isinstance(value, MutableMapping) and value.get("name") != name:
            if key in self.section and self.section[key] is value:
                value["name"] = name  # edited in place: its comments stay
            else:
                value = {"name": name, **{k: v for k, v in value.items() if k != "name"}}
        self.section[key] = value

    def __delitem__(self, name: str) -> None:
        del self.section[self._servers()[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._servers())

    def __len__(self) -> int:
        return len(self._servers())


class Goose(YamlFileTarget):
    """Goose: ``extensions`` in ``~/.config/goose/config.yaml`` (``%APPDATA%\\Block\\goose``
    on Windows).

    An extension is keyed by its name (Goose's ``name_to_key``: whitespace dropped, other
    characters outside letters, digits, ``_`` and ``-`` turned into ``_``, lowercased) and
    carries the ``name`` too; an entry is found by its ``name``, or by its key where it has
    none (Goose takes the key then). A stdio server is ``type: stdio`` with ``cmd``,
    ``args`` (required, written even when empty), ``envs`` and ``env_keys`` (variables
    Goose takes from its environment or keyring); no working directory. A remote one is
    ``type: streamable_http`` with ``uri`` and ``headers`` (Goose dropped sse). ``enabled``
    is required. Single tools are limited with the
    ``available_tools`` allow-list. ``env_keys`` read as references to the variable of the
    same name; Goose expands nothing else, so other references are resolved into ``envs``.
    Source: aaif-goose/goose ``crates/goose/src/agents/extension.rs`` (``ExtensionConfig``,
    commit 20f87d1), ``crates/goose/src/config/extensions.rs`` (``name_to_key``,
    ``inject_name_if_missing``, commit 05a3515).
    """

    kind = "goose"
    capability = Capability(
        frozenset({"stdio", "http"}), STDIO_FIELDS | REMOTE_FIELDS | {"enabled"}, True
    )
    scopes: tuple[str, ...] = ("user",)
    tool_control = "available_tools"  # an allow-list: the tools not in it are off
    servers_key = ("extensions",)
    managed_fields = ("type", "cmd", "args", "envs", "env_keys", "uri", "headers")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if context.platform == "win32":
            return paths.appdata(context) / "Block" / "goose" / "config" / "config.yaml"
        return paths.xdg_config(context) / "goose" / "config.yaml"

    def section_view(self, section: Any) -> MutableMapping[str, Any]:
        return _GooseExtensions(super().section_view(section))

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        kind = native.get("type")
        raw: dict[str, Any] = {"enabled": native.get("enabled", True)}
        env = dict(native.get("envs") or {}) if isinstance(native.get("envs"), dict) else {}
        keys = native.get("env_keys")
        for key in keys if isinstance(keys, list) else ():
            if isinstance(key, str):
                env[key] = env_reference(key)
        raw["env"] = env or native.get("envs")
        if kind == "stdio":
            raw["transport"] = "stdio"
            raw["command"] = native.get("cmd")
            raw["args"] = native.get("args")
        else:
            raw["transport"] = "http" if kind == "streamable_http" else transport_of(kind)
            raw["url"] = native.get("uri")
            raw["headers"] = native.get("headers")
        essence = self.essence_of(raw)
        if essence.get("transport") != "stdio":  # envs of a remote extension: not in the mask
            essence.pop("env", None)
        return essence

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        env = essence.get("env", {})
        by_name = [k for k, v in env.items() if v == env_reference(k)]
        if essence["transport"] == "stdio":
            fields: dict[str, Any] = {"type": "stdio", "cmd": essence["command"]}
            fields["args"] = essence.get("args", [])
            fields["envs"] = {k: v for k, v in env.items() if k not in by_name}
            fields["env_keys"] = by_name
            return fields
        fields = {"type": "streamable_http", "uri": essence["url"]}
        fields["headers"] = essence.get("headers", {})
        return fields

    def switch_fields(self, enabled: Any, existing: Mapping[str, Any]) -> dict[str, Any]:
        return {"enabled": enabled is not False}  # required by Goose

    def to_native(self, essence: Essence, existing: Any) -> Any:
        # A remote extension's ``envs``/``env_keys`` are not part of its essence: kept.
        kept: dict[str, Any] = {}
        if essence.get("transport") != "stdio" and isinstance(existing, Mapping):
            kept = {k: existing[k] for k in ("envs", "env_keys") if k in existing}
        native = super().to_native(essence, existing)
        for key, value in kept.items():
            if key not in native:
                native[key] = value
        return native


# -- Continue --------------------------------------------------------------------------------

# ``${{ secrets.NAME }}``: Continue fills it from its secret store (the hub, or the ``.env``
# files in ``~/.continue`` and the workspace's ``.continue``, or the process environment).
_CONTINUE_IN = re.compile(r"\$\{\{\s*secrets\.(" + ENV_NAME_PATTERN + r")\s*\}\}")
CONTINUE_SECRETS = references.Syntax(
    "${{ secrets.NAME }}",
    references.rewriter(_CONTINUE_IN, "${{", lambda m: env_reference(m.group(1))),
    references.rewriter(ONLY_ENV, "${env:", lambda m: "${{ secrets." + m.group(1) + " }}"),
)


class _NamedList(MutableMapping[str, Any]):
    """A YAML list of objects with ``name``, as a mapping by name (Continue's ``mcpServers``)."""

    def __init__(self, items: list[Any]) -> None:
        self.listed = items

    def _index(self, name: str) -> int | None:
        for index, item in enumerate(self.listed):
            if isinstance(item, Mapping) and item.get("name") == name:
                return index
        return None

    def __getitem__(self, name: str) -> Any:
        index = self._index(name)
        if index is None:
            raise KeyError(name)
        return self.listed[index]

    def __setitem__(self, name: str, value: Any) -> None:
        if isinstance(value, MutableMapping) and value.get("name") != name:
            value = {"name": name, **{k: v for k, v in value.items() if k != "name"}}
        index = self._index(name)
        if index is None:
            self.listed.append(value)
        elif self.listed[index] is not value:
            self.listed[index] = value

    def __delitem__(self, name: str) -> None:
        index = self._index(name)
        if index is None:
            raise KeyError(name)
        del self.listed[index]

    def __iter__(self) -> Iterator[str]:
        for item in self.listed:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                yield item["name"]

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Continue(YamlFileTarget):
    """Continue: ``mcpServers`` in ``~/.continue/config.yaml``, a YAML list of objects.

    Each server is an item with ``name``; stdio has ``type: stdio``, ``command``, ``args``,
    ``env``, ``cwd``; a remote one ``type: sse`` or ``streamable-http`` with ``url`` and
    its headers under ``requestOptions.headers`` (the other request options are kept).
    References are ``${{ secrets.NAME }}``, filled in every field (``fillTemplateVariables``
    runs over the whole YAML text). No switch: a disabled server is absent. A
    project's servers are a block file, ``<project>/.continue/mcpServers/mcp-reconciler.yaml``,
    in the same layout. Source: continuedev/continue
    ``packages/config-yaml/src/schemas/mcp/index.ts``, docs.continue.dev/reference.
    """

    kind = "continue"
    capability = Capability(
        frozenset({"stdio", "http", "sse"}),
        STDIO_FIELDS | REMOTE_FIELDS | {"cwd"},
        env_references=True,
    )
    scopes: tuple[str, ...] = ("user", "project")
    syntax = CONTINUE_SECRETS
    # ``requestOptions`` is shared with the client (timeouts, TLS): only its ``headers`` is
    # managed, by ``to_native``.
    managed_fields = ("type", "command", "args", "env", "cwd", "url")

    @classmethod
    def default_path(cls, spec: TargetSpec, context: Context) -> Path:
        if paths.scope(spec) == "project":
            folder = paths.project_dir(spec, context) / ".continue" / "mcpServers"
            return folder / "mcp-reconciler.yaml"
        home = context.environ.get("CONTINUE_GLOBAL_DIR")
        return (Path(home) if home else context.home / ".continue") / "config.yaml"

    def empty_document(self) -> Any:
        document = super().empty_document()
        # Continue refuses a config without these three (a block file needs them too).
        document.update({"name": "mcp-reconciler", "version": "0.0.1", "schema": "v1"})
        return document

    def _servers(self, document: Any, *, create: bool) -> _NamedList:
        section = document.get("mcpServers") if isinstance(document, Mapping) else None
        if section is None:
            if not create:
                return _NamedList([])
            from ruamel.yaml.comments import CommentedSeq

            section = document["mcpServers"] = CommentedSeq()
        if not isinstance(section, list):
            raise TargetFormatError(f"{self.path}: 'mcpServers' is not a YAML list")
        return _NamedList(section)

    def entries(self, document: Any) -> Mapping[str, Any]:
        return self._servers(document, create=False)

    def entries_for_update(self, document: Any) -> MutableMapping[str, Any]:
        return self._servers(document, create=True)

    def native_to_essence(self, native: Mapping[str, Any]) -> Essence:
        raw = dict(native)
        raw["transport"] = transport_of(native.get("type"))
        options = native.get("requestOptions")
        raw["headers"] = options.get("headers") if isinstance(options, Mapping) else None
        return self.essence_of(raw)

    def to_native(self, essence: Essence, existing: Any) -> Any:
        native = super().to_native(essence, existing)
        headers = self.syntax.write(essence).get("headers")
        options = native.get("requestOptions")
        if headers:
            if not isinstance(options, MutableMapping):
                native["requestOptions"] = {"headers": headers}
            elif options.get("headers") != headers:
                options["headers"] = headers
        elif isinstance(options, MutableMapping) and "headers" in options:
            del options["headers"]
            if not options:
                del native["requestOptions"]
        return native

    def written_fields(self, essence: Essence) -> dict[str, Any]:
        remote = {"http": "streamable-http", "sse": "sse"}.get(essence["transport"])
        fields: dict[str, Any] = {"type": remote or "stdio"}
        for name in ("command", "args", "env", "cwd", "url"):
            if name in essence:
                fields[name] = essence[name]
        return fields


# The kinds this family declares (read by the registry in ``targets/__init__``).
KIND_CLASSES: tuple[type[YamlFileTarget], ...] = (Goose, Continue)
