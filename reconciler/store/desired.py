"""Load ``desired/``: every YAML file, validated, merged, with file:line:column on every error.

A GitOps source of truth is edited by people in review, so the loader's job is as much to
explain as to parse: it collects every problem in every file before giving up (one run shows
them all), points at the key or value at fault, and suggests the likely fix ("did you mean").

The YAML module (``yamlio``) gives plain data with a map from each path to its position;
the data is validated by the schema derived from the value types (``schema``), and
pydantic's error locations are translated back to lines. Cross-file and cross-object rules
(a name defined twice, a placement of an undeclared server, a transport a target cannot
carry) are checked here because only here are locations known.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import hashlib
import hmac
import importlib.util
import os
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from reconciler.core import model
from reconciler.core.errors import DesiredStateError, Problem, ReconcilerError
from reconciler.core.essence import Essence, from_server
from reconciler.core.model import DesiredFile, Server, TargetSpec
from reconciler.core.tools import merge_policy
from reconciler.store import fsutil, yamlio
from reconciler.store.schema import keys, schema
from reconciler.store.toollock import LOCK_FILE
from reconciler.store.yamlio import Loc, Located

DIVERGENCES_DIR = "divergences"


@dataclass(frozen=True)
class Placement:
    """A server placed on a target, with its requiredness there resolved."""

    server: str
    required: bool


@dataclass(frozen=True)
class DesiredState:
    """The merged, validated desired state, with where each named object was defined."""

    root: Path  # the desired directory
    servers: Mapping[str, Server]
    targets: Mapping[str, TargetSpec]
    mirrors: Mapping[str, model.Mirror] = field(default_factory=dict)
    secrets: Mapping[str, model.Resolver] = field(default_factory=dict)
    origins: Mapping[tuple[str, str], Located] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    # ``defaults:`` as written; each server's ``tools`` already has the defaults merged in.
    defaults: model.Defaults = field(default_factory=model.Defaults)
    # The validated-state cache's key for these files (``Cache``), and whether this state was
    # read from it; neither is desired state, so neither takes part in comparisons.
    digest: bytes = field(default=b"", compare=False)
    cached: bool = field(default=False, compare=False)

    @cached_property
    def essences(self) -> Mapping[str, Essence]:
        """Each server's full essence (``essence.from_server``), normalized once for every
        target and pass that renders from this state. Shared: read it, never change it."""
        return {name: from_server(server) for name, server in self.servers.items()}

    def placements(self, target: str) -> dict[str, Placement]:
        """The servers a target must carry, globs expanded, in declaration order.

        ``!NAME`` (or ``!GLOB``) takes servers out again: ``["*", "!media"]``. Expanded once
        per target for this state (the loader's checks, every pass and every command ask).
        """
        found = self._placements.get(target)
        if found is None:
            found = self._placements[target] = self._expand(target)
        return dict(found)

    @cached_property
    def _placements(self) -> dict[str, dict[str, Placement]]:
        return {}

    def _expand(self, target: str) -> dict[str, Placement]:
        spec = self.targets[target]
        placed: dict[str, Placement] = {}
        for item in spec.servers:
            name, required = (item, None) if isinstance(item, str) else (item.name, item.required)
            if name.startswith("!"):
                pattern = name[1:]
                for server in fnmatch.filter(placed, pattern) if is_glob(pattern) else [pattern]:
                    placed.pop(server, None)
                continue
            names = fnmatch.filter(self.servers, name) if is_glob(name) else [name]
            for server in names:
                if server in self.servers:
                    req = self.servers[server].required if required is None else required
                    placed[server] = Placement(server, req)
        return placed


# Finds where a key of desired state was written: ``at("targets", name, "servers", 0)``.
Locator = Callable[..., Located]
# A rule of a layer above this one, run over the whole loaded state.
Check = Callable[["DesiredState", Locator], list[Problem]]


def is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def desired_files(root: Path) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under ``root`` except divergence records and the tool
    lock, sorted."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        if rel.parts[:1] == (DIVERGENCES_DIR,):
            continue
        found += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if f.endswith((".yaml", ".yml")) and not (rel == Path() and f == LOCK_FILE)
        ]
    return found


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, RuntimeError, OSError):  # outside the cwd, or a symlink loop
        return str(path)


@dataclass(frozen=True)
class Cache:
    """Where a validated desired state is kept between runs, and the key that signs it.

    Why: loading a large desired/ (YAML with positions, the schema, every layer's checks) is
    a quarter of a no-op pass, and desired/ rarely changes between passes. The cache is keyed
    by the bytes of every desired file, the desired and working directories (problems name
    files relative to the latter), and the code that validated it (the size and mtime of
    each of the package's source files, Python's and pydantic's versions), so any change
    under desired/ or of the code misses it. Only a state that loaded without a problem is
    kept: desired files hold references, never resolved secrets (a literal secret is a
    problem), so the cache holds nothing a desired file does not. It is signed with the
    state directory's fingerprint key (HMAC-SHA256): a file only that key's reader could
    make is unpickled, and anything else is a miss. Written (one atomic write) by an applying
    pass, never by a dry run or a reading command.
    """

    path: Path
    key: bytes


def load(
    root: Path,
    *,
    checks: Sequence[Check] = (),
    on_invalid: Callable[[Any], None] | None = None,
    cache: Cache | None = None,
) -> DesiredState:
    """Load and validate ``root``; raise DesiredStateError listing every problem found.

    The schema and the rules of names and placements are checked here; ``checks`` add the
    rules the layers above know (each target kind's fields, secret references), so every
    problem is still listed in one run. ``on_invalid`` sees each document that fails the
    schema (the secrets layer registers the literal tokens in it, never to be echoed).
    """
    if not root.is_dir():
        raise DesiredStateError(
            [
                Problem(
                    display_path(root),
                    0,
                    0,
                    "desired directory not found",
                    "pass --desired DIR or set RECONCILER_DESIRED",
                )
            ]
        )
    problems: list[Problem] = []
    parsed: list[tuple[Path, DesiredFile, dict[Loc, Located], dict[Loc, Located]]] = []
    files = desired_files(root)
    texts = {path: _read(path, problems) for path in files}  # each file read once
    digest = b"" if problems else _cache_key(root, texts)
    if cache is not None and digest:
        kept = _cached(cache, digest)
        if kept is not None:
            return replace(kept, cached=True)
    invalid: set[tuple[str, str]] = set()  # (section, name) of objects the schema refused
    for path in files:
        text = texts[path]
        if text is None:
            continue
        result = _load_file(path, text, problems, on_invalid, invalid)
        if result is not None:
            parsed.append((path, *result))

    servers: dict[str, Server] = {}
    targets: dict[str, TargetSpec] = {}
    mirrors: dict[str, model.Mirror] = {}
    secrets: dict[str, model.Resolver] = {}
    origins: dict[tuple[str, str], Located] = {}
    value_locs: dict[tuple[str, str], dict[Loc, Located]] = {}
    defaults = model.Defaults()
    for path, document, keylocs, vallocs in parsed:
        if document.defaults is not None:
            here = keylocs.get(("defaults",)) or Located(display_path(path), 0, 0)
            first = origins.get(("defaults", ""))
            if first is not None:
                problems.append(
                    Problem(
                        here.file,
                        here.line,
                        here.column,
                        "'defaults' is defined twice",
                        f"first defined at {first.file}:{first.line}:{first.column}",
                    )
                )
            else:
                defaults = document.defaults
                origins[("defaults", "")] = here
        # Value positions grouped by (section, name) once per file: linear, not per object.
        grouped: dict[tuple[str, str], dict[Loc, Located]] = {}
        for loc, where in vallocs.items():
            if len(loc) >= 2:
                grouped.setdefault((str(loc[0]), str(loc[1])), {})[loc[2:]] = where
        for section, into in (
            ("servers", servers),
            ("targets", targets),
            ("mirrors", mirrors),
            ("secrets", secrets),
        ):
            for name, value in getattr(document, section).items():
                here = keylocs.get((section, name)) or Located(display_path(path), 0, 0)
                first = origins.get((section, name))
                if first is not None:
                    problems.append(
                        Problem(
                            here.file,
                            here.line,
                            here.column,
                            f"{section[:-1]} '{name}' is defined twice",
                            f"first defined at {first.file}:{first.line}:{first.column}",
                        )
                    )
                    continue
                into[name] = value
                origins[(section, name)] = here
                value_locs[(section, name)] = grouped.get((section, name), {}) | {("@key",): here}

    if defaults.tools is not None:
        servers = {
            name: replace(server, tools=merge_policy(defaults.tools, server.tools))
            for name, server in servers.items()
        }
    state = DesiredState(
        root, servers, targets, mirrors, secrets, origins, tuple(files), defaults, digest=digest
    )
    # Cross-references run over every object the schema accepted, so that both kinds of
    # problem come in one run; a placement of a server the schema refused is no news.
    refused = [f"undeclared server '{n}'" for s, n in invalid if s == "servers"]
    problems += [
        p
        for p in _cross_check(state, value_locs, checks)
        if not any(r in p.message for r in refused)
    ]
    if problems:
        raise DesiredStateError(problems)
    if mirrors:  # each mirror copy is a target of its own (DESIGN section 3)
        state = replace(state, targets={**targets, **model.mirror_targets(mirrors)})
    return state


def _read(path: Path, problems: list[Problem]) -> str | None:
    try:
        return fsutil.read_text(path)
    except ReconcilerError as e:
        shown = display_path(path)
        problems.append(Problem(shown, 0, 0, f"cannot read: {str(e).removeprefix(f'{path}: ')}"))
    except UnicodeDecodeError as e:
        problems.append(Problem(display_path(path), 0, 0, f"not UTF-8 text (byte {e.start})"))
    return None


# -- the validated-state cache (Cache) ------------------------------------------------------

_CACHE_FORMAT = b"reconciler-desired-cache-1"
_PACKAGE = Path(__file__).resolve().parent.parent


def _validator_stamp() -> str:
    """Which pydantic is installed, without importing it (a cached pass never does): the
    size and mtime of its version module, which an upgrade rewrites."""
    spec = importlib.util.find_spec("pydantic")
    if spec is None or spec.origin is None:
        return ""
    try:
        stat = Path(spec.origin).with_name("version.py").stat()
    except OSError:
        return ""
    return f"pydantic:{stat.st_size}:{stat.st_mtime_ns}"


def _cache_key(root: Path, texts: Mapping[Path, str | None]) -> bytes:
    digest = hashlib.sha256(_CACHE_FORMAT)
    for part in (sys.version, _validator_stamp(), str(root.resolve()), str(Path.cwd())):
        digest.update(part.encode() + b"\0")
    for source in sorted(_PACKAGE.rglob("*.py")):  # the code that validated it
        stat = source.stat()
        digest.update(f"{source}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    for path, text in texts.items():
        digest.update(f"{path}\0".encode() + (text or "").encode() + b"\0")
    return digest.digest()


def _cached(cache: Cache, digest: bytes) -> DesiredState | None:
    try:
        data = fsutil.read_bounded(cache.path)
    except ReconcilerError:
        return None
    size = hashlib.sha256().digest_size
    if data is None or len(data) < 2 * size or data[size : 2 * size] != digest:
        return None
    signature = hmac.new(cache.key, data[size:], hashlib.sha256).digest()
    if not hmac.compare_digest(signature, data[:size]):
        return None  # not written with this state directory's key: never unpickled
    try:
        state = pickle.loads(data[2 * size :])
    except Exception:  # a cache from other code that slipped through: load afresh
        return None
    return state if isinstance(state, DesiredState) else None


def keep(cache: Cache, state: DesiredState) -> None:
    """Write ``state`` to ``cache`` for the next runs, unless it came from there (or from a
    loader that did not key it). Called by an applying pass once it is done."""
    if state.cached or not state.digest:
        return
    body = state.digest + pickle.dumps(replace(state, cached=True), pickle.HIGHEST_PROTOCOL)
    signature = hmac.new(cache.key, body, hashlib.sha256).digest()
    # a cache that cannot be written costs the next run a load, nothing else
    with contextlib.suppress(OSError, ReconcilerError):
        fsutil.atomic_write(cache.path, signature + body, mode=0o600)


def _load_file(
    path: Path,
    text: str,
    problems: list[Problem],
    on_invalid: Callable[[Any], None] | None,
    invalid: set[tuple[str, str]] | None = None,
) -> tuple[DesiredFile, dict[Loc, Located], dict[Loc, Located]] | None:
    shown = display_path(path)
    found = yamlio.read(text, shown, problems)
    if found is None:
        return None
    plain, keylocs, vallocs = found.data, found.keys, found.values
    if plain is None:
        return DesiredFile(), {}, {}
    if not isinstance(plain, dict):
        problems.append(
            Problem(
                shown,
                1,
                1,
                "a desired-state file must be a mapping",
                "top-level keys: servers, targets, mirrors, secrets, defaults",
            )
        )
        return None
    validator = schema()
    try:
        return validator.validate(plain), keylocs, vallocs
    except validator.error as e:
        problems += translate(e, plain, shown, keylocs, vallocs)
        if on_invalid is not None:
            on_invalid(plain)  # a token in a mistyped field is never echoed
        salvaged, refused = _salvage(plain)
        if invalid is not None:
            invalid |= refused
        return salvaged, keylocs, vallocs


SECTIONS = ("servers", "targets", "mirrors", "secrets")


def _salvage(plain: dict[Any, Any]) -> tuple[DesiredFile, set[tuple[str, str]]]:
    """The objects of a file that failed the schema which are valid on their own, so that
    the cross-reference checks still run over them (every problem in one run)."""
    validator = schema()
    kept: dict[str, dict[Any, Any]] = {}
    refused: set[tuple[str, str]] = set()
    for section in SECTIONS:
        items = plain.get(section)
        if not isinstance(items, dict):
            continue
        kept[section] = {}
        for name, value in items.items():
            try:
                validator.validate({section: {name: value}})
            except validator.error:
                refused.add((section, str(name)))
                continue
            kept[section][name] = value
    try:
        validator.validate({"defaults": plain.get("defaults")})
    except validator.error:
        pass
    else:
        kept["defaults"] = plain.get("defaults")  # type: ignore[assignment]
    try:
        return validator.validate(kept), refused
    except validator.error:
        return DesiredFile(), refused


_SECTION_MODELS: dict[str, type] = {
    "servers": model.Server,
    "targets": model.TargetSpec,
    "mirrors": model.Mirror,
    "secrets": model.Resolver,
}


def _model_at(loc: Loc) -> type | None:
    """The value type whose fields are valid keys at ``loc`` (for "did you mean")."""
    if len(loc) == 0:
        return DesiredFile
    section = loc[0]
    if len(loc) == 2 and isinstance(section, str):
        return _SECTION_MODELS.get(section)
    if len(loc) == 3 and section == "servers" and loc[2] == "tools":
        return model.ToolPolicy
    if len(loc) == 1 and section == "defaults":
        return model.Defaults
    if len(loc) == 2 and section == "defaults" and loc[1] == "tools":
        return model.ToolPolicy
    if len(loc) == 4 and section == "targets" and loc[2] == "servers":
        return model.PlacementRef
    return None


def _keys_at(loc: Loc) -> list[str] | None:
    found = _model_at(loc)
    return None if found is None else keys(found)


def _data_loc(raw: tuple[Any, ...], data: Any) -> Loc:
    """Drop pydantic's union tags from an error location, keeping only real data keys."""
    loc: list[str | int] = []
    node = data
    for part in raw:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            loc.append(part)
            node = node[part]
        elif (
            isinstance(node, dict)
            and isinstance(part, str)
            and part not in node
            and raw[-1] == part
        ):
            loc.append(part)  # the key itself is the problem (missing or extra)
    return tuple(loc)


def _position(
    loc: Loc,
    keylocs: Mapping[Loc, Located],
    vallocs: Mapping[Loc, Located],
    *,
    key: bool,
    file: str,
) -> Located:
    table = keylocs if key else vallocs
    for end in range(len(loc), -1, -1):
        found = table.get(loc[:end]) or keylocs.get(loc[:end])
        if found:
            return found
    return Located(file, 1, 1)


def translate(
    error: Any,
    data: Any,
    file: str,
    keylocs: Mapping[Loc, Located],
    vallocs: Mapping[Loc, Located],
    keys_at: Callable[[Loc], Sequence[str] | None] | None = None,
) -> list[Problem]:
    """Pydantic's errors (a ``ValidationError``) as located problems: each at the key or
    value at fault, with a hint ("did you mean"). ``keys_at`` gives the keys valid at a
    location (desired state's by default; divergence records pass their own)."""
    keys_at = keys_at or _keys_at
    problems: list[Problem] = []
    seen: set[Loc] = set()
    for item in error.errors(include_url=False):
        raw = tuple(item["loc"])
        loc = _data_loc(raw, data)
        kind = item["type"]
        union_member = any(p in ("str", "PlacementRef") for p in raw if isinstance(p, str)) and (
            len(loc) >= 3 and loc[0] == "targets" and loc[2] == "servers"
        )
        if union_member:
            loc = loc[:4]
            item_value = data["targets"][loc[1]]["servers"][loc[3]] if len(loc) == 4 else None
            if isinstance(item_value, dict) and "str" in raw:
                continue  # a mapping placement: the PlacementRef errors say more
            if loc in seen:
                continue
            seen.add(loc)
            if kind == "extra_forbidden":
                key = str(raw[-1])
                where = _position((*loc, key), keylocs, vallocs, key=True, file=file)
                problems.append(
                    Problem(
                        where.file,
                        where.line,
                        where.column,
                        f"unknown key '{key}' in a placement",
                        _did_you_mean(key, keys(model.PlacementRef)),
                    )
                )
                continue
            where = _position(loc, keylocs, vallocs, key=False, file=file)
            problems.append(
                Problem(
                    where.file,
                    where.line,
                    where.column,
                    "a placement is a server name or {name: NAME, required: BOOL}",
                    "for example: servers: [time, {name: github, required: false}]",
                )
            )
            continue
        if loc in seen and kind != "extra_forbidden":
            continue
        seen.add(loc)
        path = ".".join(str(p) for p in loc)
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else str(raw[-1])
            where = _position(loc, keylocs, vallocs, key=True, file=file)
            owner = keys_at(loc[:-1])
            problems.append(
                Problem(
                    where.file,
                    where.line,
                    where.column,
                    f"unknown key '{key}'"
                    + (f" in {'.'.join(map(str, loc[:-1]))}" if len(loc) > 1 else ""),
                    _did_you_mean(key, owner),
                )
            )
        elif kind == "missing":
            where = _position(loc[:-1], keylocs, vallocs, key=True, file=file)
            problems.append(
                Problem(
                    where.file,
                    where.line,
                    where.column,
                    f"missing required key '{loc[-1] if loc else raw[-1]}'"
                    + (f" in {'.'.join(map(str, loc[:-1]))}" if len(loc) > 1 else ""),
                )
            )
        elif kind == "value_error":
            where = _position(loc, keylocs, vallocs, key=True, file=file)
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(
                Problem(
                    where.file, where.line, where.column, f"{path}: {message}" if path else message
                )
            )
        elif kind in ("enum", "literal_error"):
            where = _position(loc, keylocs, vallocs, key=False, file=file)
            value = item.get("input")
            expected = item.get("ctx", {}).get("expected", "")
            hint = f"expected {expected}"
            problems.append(
                Problem(
                    where.file, where.line, where.column, f"{path}: invalid value {value!r}", hint
                )
            )
        else:
            where = _position(loc, keylocs, vallocs, key=False, file=file)
            got = type(item.get("input")).__name__
            hint = _TYPE_HINTS.get(kind, f"got {_yaml_type(got)}")
            problems.append(
                Problem(
                    where.file,
                    where.line,
                    where.column,
                    f"{path}: {str(item['msg']).lower().replace('tuple', 'list')}",
                    hint,
                )
            )
    return problems


_TYPE_HINTS = {
    "bool_type": "use true or false (YAML 1.2: yes/no/on/off are strings)",
    "string_type": "quote the value if it is meant as text",
}


def _yaml_type(python_type: str) -> str:
    return {
        "dict": "a mapping",
        "list": "a list",
        "str": "a string",
        "int": "a number",
        "float": "a number",
        "bool": "a boolean",
        "NoneType": "nothing",
    }.get(python_type, python_type)


def _did_you_mean(key: str, known: Sequence[str] | None) -> str:
    if known is None:
        return ""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"known keys: {', '.join(known)}"


def _cross_check(
    state: DesiredState,
    locs: Mapping[tuple[str, str], Mapping[Loc, Located]],
    checks: Sequence[Check],
) -> list[Problem]:
    problems: list[Problem] = []

    def at(section: str, name: str, *path: str | int) -> Located:
        table = locs.get((section, name), {})
        for end in range(len(path), 0, -1):
            found = table.get(tuple(path[:end]))
            if found:
                return found
        return table.get(("@key",), Located("desired", 0, 0))

    for name in state.servers:
        why = model.server_name_problem(name)
        if why:
            where = at("servers", name)
            problems.append(
                Problem(where.file, where.line, where.column, f"invalid server name '{name}'", why)
            )

    for section, names in (("targets", state.targets), ("mirrors", state.mirrors)):
        for name in names:
            why = model.path_name_problem(name)
            if why:
                where = at(section, name)
                problems.append(
                    Problem(
                        where.file,
                        where.line,
                        where.column,
                        f"invalid {section[:-1]} name {name!r}",
                        why,
                    )
                )

    for check in checks:
        problems += check(state, at)
    return problems
