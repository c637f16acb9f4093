"""``reconcile discover``: every MCP client config on this machine, declared or not.

For each client kind the tool knows (each family class in ``targets.FAMILIES`` with its
``scopes`` and ``default_path``), a target spec is built per scope: the user file at the
family's default location for this platform, and, for project-scoped kinds, the project
files of the git repository around the current directory (Claude Code's ``local`` scope:
that repository's entry in ``~/.claude.json``). Each is located and observed read only, with
a context that has no lock directory: nothing is ever created. A config is listed when its
file exists (for ``local``, when the file holds servers for the repository).

A declared target of desired state "points at" a config when it has the same kind, the same
file and the same scope (and, for ``local``, the same project). MCPJungle and mirror copies
are not files of a client: they are never discovered, only declared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import targets
from reconciler.core.errors import ReconcilerError
from reconciler.core.essence import Essence
from reconciler.core.model import TargetSpec
from reconciler.secrets import redact
from reconciler.store.desired import DesiredState
from reconciler.targets import Context, paths
from reconciler.targets.files import FileTarget

if TYPE_CHECKING:
    from reconciler.engine import Engine

# Kinds without a client file of their own.
NOT_DISCOVERED = frozenset({targets.MCPJUNGLE, targets.MIRROR})


@dataclass(frozen=True)
class Found:
    """One client config on the machine."""

    kind: str
    scope: str | None  # None for a kind with one file and no scopes (Claude Desktop)
    path: Path
    project: Path | None  # the repository, for project and local scopes
    servers: tuple[str, ...]
    declared: str | None  # the declared target that points at it, if any
    spec: TargetSpec = field(compare=False, repr=False)
    entries: Mapping[str, Essence] = field(default_factory=dict, compare=False, repr=False)
    error: str | None = None  # the file exists but could not be read

    @property
    def name(self) -> str:
        """How the config is named in reports: its target, or ``kind:path``."""
        if self.declared is not None:
            return self.declared
        where = f"{self.kind}:{self.path}"
        return f"{where}#{self.project}" if self.scope == "local" else where

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "scope": self.scope,
            "path": str(self.path),
            "project": None if self.project is None else str(self.project),
            "servers": list(self.servers),
            "declared": self.declared,
            "error": self.error,
        }


@dataclass(frozen=True)
class Discovery:
    found: tuple[Found, ...]

    def to_json(self) -> dict[str, Any]:
        return {"schema": 1, "exit_code": 0, "configs": [f.to_json() for f in self.found]}


def desired_or_nothing(engine: Engine) -> DesiredState:
    """Desired state, or an empty one where there is no desired directory yet: a machine
    can be discovered and audited before anything is declared."""
    if not engine.desired_dir.is_dir():
        return DesiredState(engine.desired_dir, {}, {})
    return engine.load()


def git_root(folder: Path) -> Path | None:
    """The git repository around ``folder`` (a ``.git`` folder or file), or None."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def candidates(project: Path | None) -> list[TargetSpec]:
    """A target spec for every kind and scope the tool knows (project ones need a project)."""
    specs: list[TargetSpec] = []
    for kind, family in targets.FAMILIES.items():
        if kind in NOT_DISCOVERED:
            continue
        if not family.scopes:
            specs.append(TargetSpec(kind=kind, servers=()))
            continue
        for scope in family.scopes:
            fields: dict[str, Any] = {"kind": kind, "scope": scope, "servers": ()}
            if scope != "user":
                if project is None:
                    continue
                fields["project"] = str(project)
            specs.append(TargetSpec(**fields))
    return specs


def _variants(specs: list[TargetSpec], context: Context) -> list[TargetSpec]:
    """Each candidate, and its variants on this machine (a VS Code profile's own file)."""
    out: list[TargetSpec] = []
    for spec in specs:
        family = targets.FAMILIES[spec.kind]
        assert issubclass(family, FileTarget)
        out += family.variants(spec, context)
    return out


def _key(kind: str, scope: str | None, path: Path, project: Path | None) -> tuple[Any, ...]:
    return (kind, scope, _real(path), _real(project) if scope == "local" and project else None)


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _scope(spec: TargetSpec) -> str | None:
    scopes = targets.SCOPES.get(spec.kind, ())
    return (spec.scope or scopes[0]) if scopes else None


def _project(spec: TargetSpec, context: Context) -> Path | None:
    if spec.project is None:
        return None
    folder = paths.expand(spec.project, context).absolute()
    return git_root(folder) or folder


def declared_keys(state: DesiredState, context: Context) -> dict[tuple[Any, ...], str]:
    """Each declared client target's (kind, scope, file, project) -> its name."""
    out: dict[tuple[Any, ...], str] = {}
    for name, spec in state.targets.items():
        family = targets.FAMILIES.get(spec.kind)
        if spec.kind in NOT_DISCOVERED or family is None or not issubclass(family, FileTarget):
            continue
        try:
            path = family.locate(spec, context)
            project = _project(spec, context)
        except ReconcilerError:
            continue
        out.setdefault(_key(spec.kind, _scope(spec), path, project), name)
    return out


def discover(engine: Engine, state: DesiredState, cwd: Path | None = None) -> Discovery:
    """Every client config that exists on this machine, observed read only."""
    context = engine.context()  # no lock directory: nothing may be created
    project = git_root((cwd or Path.cwd()).absolute())
    declared = declared_keys(state, context)
    found: list[Found] = []
    seen: set[tuple[Any, ...]] = set()
    for spec in _variants(candidates(project), context):
        family = targets.FAMILIES[spec.kind]
        assert issubclass(family, FileTarget)
        scope = _scope(spec)
        try:
            path = family.locate(spec, context)
        except ReconcilerError:
            continue
        if not path.is_file():
            continue
        where = project if scope in ("project", "local") else None
        key = _key(spec.kind, scope, path, where)
        if key in seen:
            continue
        seen.add(key)
        entries: Mapping[str, Essence] = {}
        error = None
        try:
            target = family(f"{spec.kind}:{path}", spec, context)
            try:
                entries = target.observe().entries
            finally:
                target.close()
        except ReconcilerError as e:
            error = redact(str(e))
        if scope == "local" and not entries and error is None:
            continue  # the user file holds nothing for this repository
        found.append(
            Found(
                spec.kind,
                scope,
                path,
                where,
                tuple(sorted(entries)),
                declared.get(key),
                spec,
                entries,
                error,
            )
        )
    return Discovery(tuple(found))


def render_text(discovery: Discovery) -> str:
    if not discovery.found:
        return "no MCP client config found on this machine"
    rows = [["kind", "scope", "path", "servers", "declared as"]]
    for f in discovery.found:
        servers = f"error: {f.error}" if f.error else (", ".join(f.servers) or "-")
        rows.append(
            [
                f.kind,
                f.scope or "-",
                str(f.path) + (f" [project {f.project}]" if f.scope == "local" else ""),
                servers,
                f.declared or "-",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    undeclared = [f for f in discovery.found if f.declared is None]
    lines.append(f"{len(discovery.found)} config(s), {len(undeclared)} not declared as a target")
    return "\n".join(lines)
