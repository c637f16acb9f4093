"""``reconcile adopt`` and ``reconcile import``: live entries written back into desired state.

Adopt is the second answer to drift (ANCHORS 2.4): instead of reverting the target, make git
say what the target says. Import bootstraps a desired repository from a target. Both edit the
YAML files in place with ruamel's round-trip mode, so every comment, the key order and the
indentation of the file survive, and both commit exactly the files they wrote.

No secret value ever reaches desired state: every value the secrets module detects as a
secret (every ``env``/``headers`` value when it cannot tell) is replaced by an
``${env:NAME}`` reference, and the names are listed so that the user can export them. Where
desired state already referenced a secret there, the reference is kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import targets as registry
from reconciler.app.discover import Found, discover
from reconciler.core import divergence
from reconciler.core.compare import diff, pointer_parts
from reconciler.core.errors import DesiredStateError, ReconcilerError, UsageError
from reconciler.core.essence import Essence, from_server
from reconciler.core.model import TargetSpec, server_name_problem
from reconciler.engine.passdata import PassOptions
from reconciler.secrets import (
    ENV,
    ENV_NAME,
    REDACTOR,
    find_references,
    redact,
    scan_essence,
    template_url_secrets,
)
from reconciler.store import fsutil, gitlog, recordfiles
from reconciler.store.desired import display_path, is_glob
from reconciler.store.yamlio import YamlDocument, load_document

if TYPE_CHECKING:
    from reconciler.engine import Engine
    from reconciler.store.desired import DesiredState

FILE_MODE = 0o644
_ARG_KEY = re.compile(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)=(.*)$", re.S)
_FLAG = re.compile(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)$")


@dataclass(frozen=True)
class Moved:
    """A secret moved out of a live entry into a reference: where it was and its variable."""

    server: str
    path: str  # JSON Pointer into the entry
    variable: str


@dataclass(frozen=True)
class Result:
    action: str  # adopt | import
    target: str
    servers: tuple[str, ...]
    files: tuple[str, ...]
    commit: str | None
    moved: tuple[Moved, ...] = ()
    notes: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    # Other targets the next pass will change because of this, each with its servers.
    spreads: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "exit_code": 0,
            "action": self.action,
            "target": self.target,
            "servers": list(self.servers),
            "files": list(self.files),
            "commit": self.commit,
            "secrets": [
                {"server": m.server, "path": m.path, "reference": f"${{env:{m.variable}}}"}
                for m in self.moved
            ],
            "skipped": list(self.skipped),
            "next_pass": {t: list(s) for t, s in self.spreads},
            "notes": list(self.notes),
        }

    def render(self) -> str:
        verb = "adopted" if self.action == "adopt" else "imported"
        if not self.files:
            if self.action == "adopt":
                what = ", ".join(self.servers)
                first = f"nothing to adopt: {what} on {self.target} already matches desired state"
            else:
                first = f"nothing to import from {self.target}: its entries are declared and placed"
            lines = [first]
        else:
            lines = [
                f"{verb} {', '.join(self.servers) or 'nothing'} from {self.target} "
                f"into {', '.join(self.files)}"
            ]
        if self.commit:
            lines.append(f"commit {self.commit}")
        if self.skipped:
            lines.append(f"skipped (already declared; use adopt): {', '.join(self.skipped)}")
        if self.moved:
            lines.append("inline secrets moved to references; export them before the next pass:")
            for variable in sorted({m.variable for m in self.moved}):
                where = ", ".join(
                    f"{m.server}{m.path}" for m in self.moved if m.variable == variable
                )
                lines.append(f"  {variable}  (from {where})")
        if self.spreads:
            lines.append("the next pass also changes these targets:")
            lines += [f"  {t}: {', '.join(s)}" for t, s in self.spreads]
            if self.action == "import":
                lines.append("(import --only-target keeps new servers to their target)")
        elif self.files:
            lines.append(f"the next pass changes no other target than {self.target}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def spreads(
    engine: Engine, source: str, servers: Sequence[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The other targets a dry run finds to change for ``servers``, after the commit."""
    if not servers:
        return ()
    try:
        state = engine.load()
        wanted = tuple(s for s in servers if s in state.servers)
        report = engine.run(PassOptions(dry_run=True, servers=wanted))
    except ReconcilerError:
        return ()  # a preview only: the commit is made either way
    out = []
    for t in report.targets:
        names = sorted({c.server for c in t.pending if c.server in wanted})
        if t.name != source and names:
            out.append((t.name, tuple(names)))
    return tuple(out)


# -- secrets out of a live entry -----------------------------------------------------------


def _env_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).upper().strip("_") or "SECRET"


def _findings(essence: Essence) -> list[tuple[str, str]]:
    """(pointer, literal) of every secret in the entry, by the secrets module's detection."""
    return [(f.path, f.value) for f in scan_essence(essence)]


def _register(value: str) -> None:
    REDACTOR.add(value)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def without_secrets(
    server: str, essence: Essence, keep: Mapping[str, str] | None = None
) -> tuple[Essence, list[Moved]]:
    """The entry with each secret replaced by a reference; ``keep`` maps pointers to the
    reference desired state already had there (kept as it is)."""
    keep = keep or {}
    out: Essence = {
        k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
        for k, v in essence.items()
    }
    moved: list[Moved] = []
    for pointer, value in _findings(essence):
        _register(value)
        parts = pointer_parts(pointer)
        if pointer in keep:
            reference = keep[pointer]
            variable = _variable_of(reference) or reference
        else:
            reference, variable = _reference_for(server, parts, value, essence)
        _put(out, parts, reference)
        moved += [Moved(server, pointer, name) for name in variable.split(",")]
    return out, moved


def _variable_of(reference: str) -> str | None:
    names = (r.name for r in find_references(reference) if r.scheme == ENV)
    return next((name for name in names if ENV_NAME.fullmatch(name)), None)


def _reference_for(server: str, parts: list[str], value: str, essence: Essence) -> tuple[str, str]:
    field = parts[0] if parts else ""
    prefix = _env_name(server)
    if "://" in value:  # a URL (url, an argument, an env value): only its secret parts
        templated, variables = template_url_secrets(value, prefix)
        if variables and not scan_essence({"url": templated}, known=False):
            return templated, ",".join(dict.fromkeys(variables))  # split by without_secrets
    if field == "env" and len(parts) == 2:
        variable = parts[1] if ENV_NAME.fullmatch(parts[1]) else f"{prefix}_{_env_name(parts[1])}"
        return f"${{env:{variable}}}", variable
    if field == "headers" and len(parts) == 2:
        if parts[1].lower() == "authorization":
            scheme, _, rest = value.partition(" ")
            variable = f"{prefix}_TOKEN"
            if rest and scheme.lower() in ("bearer", "token", "basic"):
                return f"{scheme} ${{env:{variable}}}", variable
            return f"${{env:{variable}}}", variable
        variable = f"{prefix}_{_env_name(parts[1])}"
        return f"${{env:{variable}}}", variable
    if field == "args" and len(parts) == 2 and parts[1].isdigit():
        args = essence.get("args", [])
        index = int(parts[1])
        match = _ARG_KEY.match(value)
        if match:
            variable = f"{prefix}_{_env_name(match.group(1))}"
            return value[: match.start(2)] + f"${{env:{variable}}}", variable
        flag = _FLAG.match(args[index - 1]) if index > 0 else None
        variable = f"{prefix}_{_env_name(flag.group(1))}" if flag else f"{prefix}_SECRET"
        return f"${{env:{variable}}}", variable
    if field == "url":
        variable = f"{prefix}_PASSWORD"
        return (
            re.sub(r"(://[^:/@]*:)[^@/]*@", lambda m: f"{m.group(1)}${{env:{variable}}}@", value),
            variable,
        )
    variable = f"{prefix}_SECRET"
    return f"${{env:{variable}}}", variable


def _put(node: Any, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def definition(essence: Essence) -> dict[str, Any]:
    """Server fields (desired-state spelling) for an essence, defaults left out."""
    out: dict[str, Any] = {}
    if "command" in essence:
        out["command"] = essence["command"]
        if essence.get("args"):
            out["args"] = list(essence["args"])
        if essence.get("env"):
            out["env"] = dict(essence["env"])
        if essence.get("cwd"):
            out["cwd"] = essence["cwd"]
    else:
        out["url"] = essence.get("url", "")
        if essence.get("transport") == "sse":
            out["transport"] = "sse"
        if essence.get("headers"):
            out["headers"] = dict(essence["headers"])
    if essence.get("enabled") is False:
        out["enabled"] = False
    return out


# -- round-trip YAML -----------------------------------------------------------------------


def _flow_list(items: Sequence[Any]) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq(list(items))
    seq.fa.set_flow_style()
    return seq


def _block_map(items: Mapping[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    return CommentedMap(items)


def new_server_node(fields: Mapping[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    node = CommentedMap()
    for key, value in fields.items():
        if key == "args":
            node[key] = _flow_list(value)
        elif isinstance(value, dict):
            node[key] = _block_map(value)
        else:
            node[key] = value
    return node


SERVER_FIELDS = ("command", "args", "env", "cwd", "url", "transport", "headers", "enabled")


def update_server_node(node: Any, fields: Mapping[str, Any], managed: frozenset[str]) -> None:
    """Change ``node`` in place to carry ``fields`` for the managed keys, touching nothing else."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    for key in SERVER_FIELDS:
        if key not in managed:
            continue
        want = fields.get(key)
        if want is None:
            if key in node:
                del node[key]
            continue
        have = node.get(key)
        if key == "args":
            if isinstance(have, CommentedSeq):
                # In place: unchanged items keep their quoting and comments.
                for index, value in enumerate(want):
                    if index >= len(have):
                        have.append(value)
                    elif str(have[index]) != value:
                        have[index] = value
                del have[len(want) :]
            else:
                _set_key(node, key, _flow_list(want))
        elif isinstance(want, dict):
            if isinstance(have, CommentedMap):
                for name in [k for k in have if k not in want]:
                    del have[name]
                for name, value in want.items():
                    if name not in have:
                        append_key(have, name, value)
                    elif have.get(name) != value:
                        have[name] = value
            else:
                _set_key(node, key, _block_map(want))
        elif have != want:
            _set_key(node, key, want)


def append_key(mapping: Any, key: str, value: Any) -> None:
    """Add ``key`` at the end of ``mapping``, before the blank lines and comments that
    followed its old last entry (ruamel attaches those to the deepest last node)."""
    import copy

    token = _trailing_comment(mapping)
    mapping[key] = value
    if token is None:
        return
    first, _, rest = token.value.partition("\n")
    if not rest.strip("\n "):
        return
    token.value = first + "\n"
    moved = copy.copy(token)
    moved.value = "\n" + rest
    target, last = _deepest_last(mapping)
    target.ca.items[last] = [None, None, moved, None]


def _deepest_last(node: Any) -> tuple[Any, Any]:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    while True:
        if isinstance(node, CommentedMap) and len(node):
            last: Any = list(node)[-1]
        elif isinstance(node, CommentedSeq) and len(node) and not node.fa.flow_style():
            last = len(node) - 1
        else:
            return node, None
        child = node[last]
        if isinstance(child, (CommentedMap, CommentedSeq)) and len(child):
            if isinstance(child, CommentedSeq) and child.fa.flow_style():
                return node, last
            node = child
            continue
        return node, last


def _trailing_comment(node: Any) -> Any:
    parent, last = _deepest_last(node)
    if last is None or not hasattr(parent, "ca"):
        return None
    entry = parent.ca.items.get(last)
    if not entry:
        return None
    for index in (2, 0):
        token = entry[index] if len(entry) > index else None
        if token is not None and hasattr(token, "value") and isinstance(token.value, str):
            return token
    return None


def _set_key(node: Any, key: str, value: Any) -> None:
    if key in node:
        node[key] = value
        return
    # New keys go where the field order puts them, not after description/tools/aliases.
    order = {k: i for i, k in enumerate(SERVER_FIELDS)}
    position = len(node)
    for index, existing in enumerate(node):
        if existing in order and order[existing] > order[key]:
            position = index
            break
    node.insert(position, key, value)


# -- adopt ---------------------------------------------------------------------------------


def _server_file(state: DesiredState, name: str) -> Path:
    for path in state.files:
        document = load_document(path)
        servers = document.data.get("servers") if hasattr(document.data, "get") else None
        if servers is not None and name in servers:
            return path
    raise UsageError(f"server '{name}' is not declared in desired state")


def _managed_keys(kind: str) -> frozenset[str]:
    capability = registry.CAPABILITIES[kind]
    keys = set(capability.fields) - {"transport"}
    if "url" in keys:
        keys.add("transport")
    if capability.enabled_switch:
        keys.add("enabled")
    # Switching a server between stdio and remote drops the other kind's fields.
    return frozenset(keys)


def adopt(engine: Engine, server: str, target: str) -> Result:
    """Write the live entry of ``server`` on ``target`` into desired state, and commit it."""
    root = _require_repository(engine)
    state = engine.load()
    if target not in state.targets:
        raise UsageError(
            f"unknown target: {target} (declared: {', '.join(state.targets) or 'none'})"
        )
    spec = state.targets[target]
    if server not in state.servers:
        raise UsageError(
            f"server '{server}' is not declared in desired state; "
            f"`reconcile import --target {target} --server {server}` adds it"
        )
    declared = state.servers[server]
    observation = engine.observe(target, spec, state)
    entry = next((n for n in (server, *declared.aliases) if n in observation.entries), None)
    if entry is None:
        raise UsageError(f"{target} holds no entry for server '{server}': nothing to adopt")
    live = dict(observation.entries[entry])
    if spec.bridge == "mcp-remote" and declared.url is not None:
        raise UsageError(
            f"{target} carries '{server}' through mcp-remote; adopt it from a target that "
            "holds the remote entry itself"
        )
    current = from_server(declared)
    keep = {}
    for name in ("env", "headers"):
        for key, value in current.get(name, {}).items():
            if find_references(value):
                keep[f"/{name}/{_escape(key)}"] = value
    clean, moved = without_secrets(server, live, keep)
    fields = definition(clean)
    managed = _managed_keys(spec.kind)
    if "command" in fields:
        managed |= {"url", "headers", "transport"}
    else:
        managed |= {"command", "args", "env", "cwd"}

    path = _server_file(state, server)
    records = [
        r for r in recordfiles.load(engine.desired_dir) if r.target == target and r.server == server
    ]
    with gitlog.open_repository(engine.desired_dir) as repo:
        _refuse_dirty(repo, [path])
        document = load_document(path)
        update_server_node(document.data["servers"][server], fields, managed)
        changed = _write_validated(engine, [document], remove=[r.file for r in records])
        body = (
            f"The live entry of {server} on {target} becomes desired state, so that the "
            "target is in sync without being reverted."
        )
        if moved:
            names = ", ".join(sorted({m.variable for m in moved}))
            body += f"\n\nSecrets stay out of git: they are referenced as {names}."
        if records:
            body += f"\n\nRemoved divergence record(s): {', '.join(r.id for r in records)}."
        paths = sorted({f.path for f in _fields_changed(current, clean)})
        message = gitlog.build_message(
            f"adopt: {server} from {target}",
            body,
            [
                ("Action", "adopt"),
                ("Target", target),
                ("Server", server),
                ("Paths", ", ".join(paths) if paths else divergence.WHOLE_ENTRY),
            ],
            redact=_redact(),
        )
        sha = repo.commit(changed, message, author=repo.identity()) if changed else None
    notes = []
    for m in moved:
        if m.path in keep:
            notes.append(
                f"{m.path} keeps its reference {keep[m.path]}; if the live value is new, update "
                "the secret behind it"
            )
    return Result(
        "adopt",
        target,
        (server,),
        tuple(_shown(root, p) for p in changed),
        sha,
        tuple(moved),
        tuple(notes),
        spreads=spreads(engine, target, [server]) if changed else (),
    )


def _fields_changed(old: Essence, new: Essence) -> Sequence[Any]:
    return diff(old, new)


# -- import --------------------------------------------------------------------------------


def import_target(
    engine: Engine, target: str, only: Sequence[str], only_target: bool = False
) -> Result:
    """Declare the servers a target holds (and the target's placement), and commit.

    ``only_target``: the new servers stay on ``target``: every other target that would
    place them (by a glob, ``"*"`` by default) gets an exclusion ``!NAME``.
    """
    root = _require_repository(engine)
    engine.desired_dir.mkdir(parents=True, exist_ok=True)
    state = engine.load()
    declared_target = target in state.targets
    if declared_target:
        spec = state.targets[target]
    else:
        kind = target
        if kind not in registry.DECLARABLE:
            raise UsageError(
                f"unknown target: {target} (declared: {', '.join(state.targets) or 'none'}); "
                f"or give a kind to declare one: {', '.join(registry.DECLARABLE)}"
            )
        spec = TargetSpec(kind=kind, servers=())
    observation = engine.observe(target, spec, state)
    missing = [s for s in only if s not in observation.entries]
    if missing:
        raise UsageError(
            f"{target} holds no entry named {', '.join(missing)} "
            f"(it holds: {', '.join(observation.entries) or 'nothing'})"
        )
    names = [n for n in observation.entries if not only or n in only]
    if not names:
        raise UsageError(f"{target} holds no MCP server entries: nothing to import")
    bad = [(n, why) for n in names if (why := server_name_problem(n))]
    if bad:
        raise UsageError(
            "cannot import entries whose names are not portable server names: "
            + "; ".join(f"'{n}': {why}" for n, why in bad)
        )
    skipped = [n for n in names if n in state.servers]
    fresh = [n for n in names if n not in state.servers]

    moved: list[Moved] = []
    definitions: dict[str, dict[str, Any]] = {}
    for name in fresh:
        clean, found = without_secrets(name, dict(observation.entries[name]))
        definitions[name] = definition(clean)
        moved += found

    with gitlog.open_repository(engine.desired_dir) as repo:
        servers_path = _section_file(state, "servers", engine.desired_dir / "servers.yaml")
        targets_path = (
            _target_file(state, target)
            if declared_target
            else _section_file(state, "targets", engine.desired_dir / "targets.yaml")
        )
        _refuse_dirty(repo, sorted({servers_path, targets_path}))
        documents: dict[Path, YamlDocument] = {}

        def doc(path: Path) -> YamlDocument:
            if path not in documents:
                documents[path] = load_document(path)
            return documents[path]

        if fresh:
            servers = _section(doc(servers_path), "servers")
            for name in fresh:
                append_key(servers, name, new_server_node(definitions[name]))
        placed = list(state.placements(target)) if declared_target else []
        to_place = [n for n in names if n not in placed]
        if to_place:
            targets_node = _section(doc(targets_path), "targets")
            if declared_target:
                node = targets_node[target]
                if "servers" in node:
                    node["servers"].extend(to_place)
                else:
                    pass  # no servers key: the default "*" already places everything
            else:
                from ruamel.yaml.comments import CommentedMap

                node = CommentedMap()
                node["kind"] = spec.kind
                node["servers"] = _flow_list(to_place)
                append_key(targets_node, target, node)
        if only_target and fresh:
            for other, other_spec in state.targets.items():
                if other == target:
                    continue
                items = [i if isinstance(i, str) else i.name for i in other_spec.servers]
                if not any(is_glob(i) and not i.startswith("!") for i in items):
                    continue  # names only: it places none of the new servers
                path = _target_file(state, other)
                if path not in documents:
                    _refuse_dirty(repo, [path])
                node = _section(doc(path), "targets")[other]
                excluded = [f"!{n}" for n in fresh]
                if "servers" in node:
                    node["servers"].extend(excluded)
                else:
                    node["servers"] = _flow_list(["*", *excluded])
        changed = _write_validated(engine, list(documents.values()))
        body = f"Bootstrapped from what {target} holds: {', '.join(names)}."
        if moved:
            body += (
                "\n\nInline secrets were moved out into environment references: "
                + ", ".join(sorted({m.variable for m in moved}))
                + "."
            )
        message = gitlog.build_message(
            f"import: {len(fresh)} server{'s' if len(fresh) != 1 else ''} from {target}",
            body,
            [
                ("Action", "import"),
                ("Target", target),
                ("Server", ", ".join(names)),
                ("Paths", divergence.WHOLE_ENTRY),
            ],
            redact=_redact(),
        )
        sha = repo.commit(changed, message, author=repo.identity()) if changed else None
    return Result(
        "import",
        target,
        tuple(fresh),
        tuple(_shown(root, p) for p in changed),
        sha,
        tuple(moved),
        (),
        tuple(skipped),
        spreads(engine, target, fresh) if changed else (),
    )


def _section(document: YamlDocument, key: str) -> Any:
    from ruamel.yaml.comments import CommentedMap

    if key not in document.data or document.data[key] is None:
        document.data[key] = CommentedMap()
    return document.data[key]


def _section_file(state: DesiredState, section: str, default: Path) -> Path:
    for (kind, _name), located in state.origins.items():
        if kind == section:
            for path in state.files:
                if _same(path, located.file):
                    return path
    return default


def _target_file(state: DesiredState, target: str) -> Path:
    located = state.origins.get(("targets", target))
    if located is not None:
        for path in state.files:
            if _same(path, located.file):
                return path
    raise UsageError(f"cannot find the file that declares target '{target}'")


def _same(path: Path, shown: str) -> bool:
    return display_path(path) == shown


# -- shared --------------------------------------------------------------------------------


def _require_repository(engine: Engine) -> Path:
    return gitlog.require_repository(engine.desired_dir)


def _redact() -> Any:
    return redact


def _shown(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _refuse_dirty(repo: gitlog.Repository, paths: Sequence[Path]) -> None:
    """A file about to be edited must be committed as it is: its commit holds only our edit."""
    dirty = repo.is_modified([p for p in paths if p.exists()])
    if dirty:
        raise UsageError(
            f"{', '.join(dirty)}: uncommitted changes; commit or stash them first, so that "
            "this commit holds only the reconciler's edit"
        )


def _write_validated(
    engine: Engine, documents: Sequence[YamlDocument], remove: Sequence[Path] = ()
) -> list[Path]:
    """Write the documents, then validate desired state; restore everything if it fails."""
    changed: list[Path] = []
    saved: list[tuple[Path, bytes | None]] = []
    try:
        for document in documents:
            data = document.dump()
            if data == document.original:
                continue
            saved.append((document.path, document.original))
            fsutil.atomic_write(document.path, data, mode=None if document.original else FILE_MODE)
            changed.append(document.path)
        for path in remove:
            if path.exists():
                saved.append((path, path.read_bytes()))
                path.unlink()
                changed.append(path)
        engine.load()
        recordfiles.load(engine.desired_dir)
    except DesiredStateError:
        for path, original in reversed(saved):
            if original is None:
                path.unlink(missing_ok=True)
            else:
                fsutil.atomic_write(path, original)
        raise
    return changed


# -- import --discover ---------------------------------------------------------------------


def _target_name(found: Found, taken: set[str]) -> str:
    base = found.kind if found.scope in (None, "user") else f"{found.kind}-{found.scope}"
    if found.spec.profile is not None:
        base = f"{base}-{found.spec.profile.strip('-')}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _project_field(engine: Engine, project: Path) -> str:
    try:
        return "~/" + project.relative_to(engine.home).as_posix()
    except ValueError:
        return str(project)


def import_discovered(engine: Engine, cwd: Path | None = None) -> Result:
    """Declare every server of every discovered client config, and each client as a target.

    The same server in several clients becomes one declaration (the first config's entry,
    in discovery order); where another client's entry differs, the difference is named in a
    note (its paths, never its values). Secrets become ``${env:NAME}`` references. Servers
    already declared are skipped; a config that a target already declares gets the new
    servers placed on it when its ``servers:`` is a list of names.
    """
    _require_repository(engine)
    engine.desired_dir.mkdir(parents=True, exist_ok=True)
    state = engine.load()
    found = [f for f in discover(engine, state, cwd).found if f.error is None and f.entries]
    if not found:
        raise UsageError("no discovered MCP client config holds servers: nothing to import")
    definitions: dict[str, dict[str, Any]] = {}
    clean_of: dict[str, tuple[str, Essence]] = {}
    moved: list[Moved] = []
    notes: list[str] = []
    placements: list[tuple[Found, list[str]]] = []
    taken = set(state.targets)
    for config in found:
        capability = registry.CAPABILITIES[config.kind]
        names: list[str] = []
        for name, essence in sorted(config.entries.items()):
            why = server_name_problem(name)
            if why:
                notes.append(f"{config.name}: '{name}' is not a portable server name: {why}")
                continue
            if not capability.expresses(str(essence.get("transport"))):
                notes.append(f"{config.name}: '{name}' is not a server this client can carry")
                continue
            names.append(name)
            if name in state.servers:
                continue
            clean, found_secrets = without_secrets(name, dict(essence))
            if name not in clean_of:
                clean_of[name] = (config.name, clean)
                definitions[name] = definition(clean)
                moved += found_secrets
            else:
                first, kept = clean_of[name]
                paths = sorted({d.path for d in diff(kept, clean)})
                if paths:
                    notes.append(
                        f"'{name}' differs between {first} (declared from it) and "
                        f"{config.name}: {', '.join(paths)}; the next pass changes {config.name}"
                    )
                moved += found_secrets
        if names:
            placements.append((config, names))
    fresh = list(definitions)
    with gitlog.open_repository(engine.desired_dir) as repo:
        servers_path = _section_file(state, "servers", engine.desired_dir / "servers.yaml")
        targets_path = _section_file(state, "targets", engine.desired_dir / "targets.yaml")
        _refuse_dirty(repo, sorted({servers_path, targets_path}))
        documents: dict[Path, YamlDocument] = {}

        def doc(path: Path) -> YamlDocument:
            if path not in documents:
                documents[path] = load_document(path)
            return documents[path]

        if fresh:
            servers = _section(doc(servers_path), "servers")
            for name in fresh:
                append_key(servers, name, new_server_node(definitions[name]))
        created: list[str] = []
        for config, names in placements:
            if config.declared is not None:
                node_path = _target_file(state, config.declared)
                if node_path not in documents:
                    _refuse_dirty(repo, [node_path])
                node = _section(doc(node_path), "targets")[config.declared]
                placed = state.placements(config.declared)
                missing = [n for n in names if n not in placed]
                if missing and "servers" in node:
                    node["servers"].extend(missing)
                continue
            target = _target_name(config, taken)
            node = _block_map({})
            node["kind"] = config.kind
            if config.scope not in (None, "user"):
                node["scope"] = config.scope
                if config.project is not None:
                    node["project"] = _project_field(engine, config.project)
            if config.spec.profile is not None:
                node["profile"] = config.spec.profile
            node["servers"] = _flow_list(names)
            append_key(_section(doc(targets_path), "targets"), target, node)
            created.append(target)
        # A new server stays on the clients that held it: a declared target that places
        # by a glob ("*" by default) gets an exclusion for each new server it did not hold.
        held = {c.declared: set(n) for c, n in placements if c.declared is not None}
        for other, other_spec in state.targets.items():
            items = [i if isinstance(i, str) else i.name for i in other_spec.servers]
            if other_spec.servers and not any(is_glob(i) and not i.startswith("!") for i in items):
                continue  # names only: it places none of the new servers
            excluded = [f"!{n}" for n in fresh if n not in held.get(other, set())]
            if not excluded:
                continue
            path = _target_file(state, other)
            if path not in documents:
                _refuse_dirty(repo, [path])
            node = _section(doc(path), "targets")[other]
            if "servers" in node:
                node["servers"].extend(excluded)
            else:
                node["servers"] = _flow_list(["*", *excluded])
            notes.append(
                f"target {other} places servers by a pattern; it keeps what it has: "
                + ", ".join(excluded)
            )
        changed = _write_validated(engine, list(documents.values()))
        body = (
            f"Bootstrapped from {len(placements)} MCP client config(s) found on this machine: "
            f"servers {', '.join(fresh) or 'none new'}; targets {', '.join(created) or 'none new'}."
        )
        if moved:
            body += (
                "\n\nInline secrets were moved out into environment references: "
                + ", ".join(sorted({m.variable for m in moved}))
                + "."
            )
        message = gitlog.build_message(
            f"import: {len(fresh)} server{'s' if len(fresh) != 1 else ''} from "
            f"{len(placements)} discovered config(s)",
            body,
            [
                ("Action", "import"),
                ("Target", ", ".join(created)),
                ("Server", ", ".join(fresh)),
                ("Paths", divergence.WHOLE_ENTRY),
            ],
            redact=_redact(),
        )
        sha = repo.commit(changed, message, author=repo.identity()) if changed else None
    root = _require_repository(engine)
    unique: dict[tuple[str, str], Moved] = {(m.server, m.variable): m for m in moved}
    return Result(
        "import",
        f"{len(placements)} discovered config(s) (new targets: {', '.join(created) or 'none'})",
        tuple(fresh),
        tuple(_shown(root, p) for p in changed),
        sha,
        tuple(unique.values()),
        tuple(notes),
    )
