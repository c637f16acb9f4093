"""The tool surface of the servers: the inventory a probe keeps, the lock it is held to.

A probe lists every tool of a server; this module turns that listing into what governance
works from without probing again (the inventory in the state directory: classes and hashes
per tool), compares it with the reviewed surface in git (``desired/tools.lock.yaml``), and
writes ``reconcile probe --lock`` as a commit whose trailers say what was accepted: the
commit is the review record (DESIGN.md 6B, section 8).

Nothing here keeps a tool's description or schema text: only their hashes, so neither the
lock nor the inventory can carry a secret a server wrote into a description.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from reconciler.core.compare import pointer_unescape
from reconciler.core.enforce import has_effect, not_enforceable
from reconciler.core.errors import UsageError
from reconciler.core.model import OnChange
from reconciler.core.plan import Action
from reconciler.core.tools import (
    ServerTools,
    SurfaceChange,
    ToolDrift,
    ToolRecord,
    surface_drift,
    tool_record,
)
from reconciler.engine import Engine, PassOptions
from reconciler.probe import ProbeResult
from reconciler.secrets import redact
from reconciler.store import gitlog, toollock
from reconciler.store.desired import DesiredState
from reconciler.targets import CAPABILITIES


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def server_tools(result: ProbeResult, probed_at: str) -> ServerTools:
    """What one successful probe found, as the inventory and the lock keep it."""
    records = {
        t.name: tool_record(t.name, t.description, t.input_schema, t.annotations)
        for t in result.tools
    }
    return ServerTools(result.server, records, probed_at)


def inventory_of(
    results: Iterable[ProbeResult], probed_at: str | None = None
) -> dict[str, ServerTools]:
    """The inventory of every server whose desired definition answered (a live entry of a
    target may differ from desired state: it is not the server's surface)."""
    when = probed_at or now()
    return {r.server: server_tools(r, when) for r in results if r.ok and r.target is None}


@dataclass(frozen=True)
class LockCommit:
    """What ``probe --lock`` accepted: the servers written, the changes, the commit."""

    sha: str | None  # None when the lock was already up to date
    servers: tuple[str, ...]
    accepted: tuple[ToolDrift, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.sha,
            "servers": list(self.servers),
            "accepted": [d.to_json() for d in self.accepted],
        }


@dataclass(frozen=True)
class Surface:
    """The probed servers against the lock: drift, and the servers the lock does not hold."""

    drift: tuple[ToolDrift, ...] = ()
    unlocked: tuple[str, ...] = ()
    lock: LockCommit | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "drift": [d.to_json() for d in self.drift],
            "unlocked": list(self.unlocked),
            "lock": self.lock.to_json() if self.lock is not None else None,
        }


def compare(
    lock: Mapping[str, Mapping[str, ToolRecord]] | None, inventory: Mapping[str, ServerTools]
) -> Surface:
    """Each probed server against its lock entry. Without a lock file nothing was reviewed
    yet: no drift, and every server is unlocked."""
    drift: list[ToolDrift] = []
    unlocked: list[str] = []
    for name, found in inventory.items():
        if lock is None or name not in lock:
            unlocked.append(name)
            continue
        drift.extend(surface_drift(name, lock[name], found.tools))
    return Surface(tuple(drift), tuple(unlocked))


def require_lockable(engine: Engine) -> None:
    """Before probing: ``--lock`` commits, so the desired directory must be in git and the
    lock must hold no uncommitted edit (exit 2, nothing probed)."""
    gitlog.require_repository(engine.desired_dir)
    path = toollock.lock_path(engine.desired_dir)
    with gitlog.open_repository(engine.desired_dir) as repo:
        dirty = repo.is_modified([path]) if path.exists() else []
    if dirty:
        raise UsageError(
            f"{', '.join(dirty)}: uncommitted changes; commit or discard them first, so that "
            "the lock commit holds only what this probe accepted"
        )


def write_lock(
    engine: Engine,
    inventory: Mapping[str, ServerTools],
    declared: Sequence[str],
    *,
    everything: bool,
) -> LockCommit:
    """Accept the probed surface of the servers in ``inventory`` into the lock, as one
    commit staging only the lock file. ``everything`` (no ``--server``): entries of servers
    no longer declared are dropped too. A server that failed its probe keeps its entry."""
    old = toollock.load(engine.desired_dir) or {}
    new: dict[str, dict[str, ToolRecord]] = {k: dict(v) for k, v in old.items()}
    if everything:
        for name in [n for n in new if n not in declared]:
            del new[name]
    for name, found in inventory.items():
        new[name] = dict(found.tools)
    accepted: list[ToolDrift] = []
    for name in sorted(set(old) | set(new)):
        if name in new or everything:
            accepted.extend(surface_drift(name, old.get(name, {}), new.get(name, {})))
    servers = tuple(sorted({d.server for d in accepted}))
    path = toollock.lock_path(engine.desired_dir)
    # Nothing to accept (every probe failed, or the surface is as reviewed): no file is
    # created and no commit made.
    if not accepted or not toollock.save(engine.desired_dir, new):
        return LockCommit(None, tuple(sorted(inventory)), ())
    message = gitlog.build_message(
        f"lock: tool surface of {', '.join(servers) or 'no server'}",
        _body(accepted, first=not old),
        [
            ("Action", "lock"),
            ("Server", ", ".join(servers)),
            ("Tools", ", ".join(f"{d.server}/{d.tool}" for d in accepted)),
        ],
        redact=redact,
    )
    with gitlog.open_repository(engine.desired_dir) as repo:
        sha = repo.commit([path], message, author=repo.identity())
    return LockCommit(sha, servers, tuple(accepted))


def _body(accepted: Sequence[ToolDrift], *, first: bool) -> str:
    counts = {c: sum(1 for d in accepted if d.change is c) for c in SurfaceChange}
    head = (
        f"First review of the tool surface: {counts[SurfaceChange.ADDED]} tool(s) locked."
        if first
        else (
            "Reviewed tool surface accepted: "
            + ", ".join(f"{n} {c.value}" for c, n in counts.items() if n)
            + "."
        )
    )
    lines = [head, ""]
    for d in accepted:
        what = f" ({', '.join(d.fields)})" if d.fields else ""
        lines.append(f"- {d.server}/{d.tool}: {d.change.value}{what}")
    return "\n".join(lines)


# -- the governance section of ``reconcile audit`` -----------------------------------------


class Finding(StrEnum):
    """What the governance audit can find (each one makes the audit exit 1)."""

    BLOCKED_ENABLED = "blocked-enabled"  # a tool the policy disables is enabled on a target
    NOT_ENFORCEABLE = "not-enforceable"  # a governed server on a kind without a tool control
    NO_LOCK = "no-lock"  # a server the lock does not hold
    LOCK_MISMATCH = "lock-mismatch"  # the last probe's surface differs from the lock


@dataclass(frozen=True)
class GovernanceFinding:
    """One governance finding. ``target`` and ``tool`` are None where they do not apply (a
    lock finding has no target; a not-enforceable one names no tool). Target families that
    enforce in files report their enabled blocked tools through the same pass plan, so
    they arrive here as ``blocked-enabled`` like MCPJungle's."""

    finding: Finding
    server: str
    message: str
    target: str | None = None
    tool: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "finding": self.finding.value,
            "server": self.server,
            "target": self.target,
            "tool": self.tool,
            "message": self.message,
        }


@dataclass(frozen=True)
class GovernanceAudit:
    findings: tuple[GovernanceFinding, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"findings": [f.to_json() for f in self.findings], "notes": list(self.notes)}


def audit_governance(
    engine: Engine, state: DesiredState, targets: Sequence[str]
) -> GovernanceAudit:
    """Governance findings for the declared ``targets``, from what is kept (the inventory of
    the last probe, the lock) and one dry-run plan of those targets: nothing is probed or
    written."""
    findings: list[GovernanceFinding] = []
    notes: list[str] = []
    governed = {n: s.tools for n, s in state.servers.items() if has_effect(s.tools)}
    if targets:
        report = engine.run(PassOptions(dry_run=True, targets=tuple(targets)), state)
        for target in report.targets:
            spec = state.targets[target.name]
            placed = [s for s in state.placements(target.name) if s in governed]
            if placed and not CAPABILITIES[spec.kind].enforces_tools:
                for server in placed:
                    findings.append(
                        GovernanceFinding(
                            Finding.NOT_ENFORCEABLE,
                            server,
                            not_enforceable(spec.kind, server),
                            target.name,
                        )
                    )
            for change in target.changes:
                if change.action is not Action.TOOL_DISABLE:
                    continue
                for field in change.fields:
                    tool = _tool_of(field.path)
                    if tool is None or field.old is not True:
                        continue  # a server not there yet: nothing is enabled
                    findings.append(
                        GovernanceFinding(
                            Finding.BLOCKED_ENABLED,
                            change.server,
                            f"tool '{tool}' of '{change.server}' is blocked by policy but "
                            f"enabled on {target.name} (`reconcile` disables it)",
                            target.name,
                            tool,
                        )
                    )
    lock = toollock.load(engine.desired_dir)
    inventory = engine.store.tool_inventory()
    needs_lock = [n for n, p in governed.items() if p is not None and p.on_change is OnChange.BLOCK]
    if lock is None and not needs_lock:
        notes.append("no tool lock yet (`reconcile probe --lock` reviews and records one)")
    for server in state.servers:
        if lock is None and server not in needs_lock:
            continue
        if lock is None or server not in lock:
            findings.append(
                GovernanceFinding(
                    Finding.NO_LOCK,
                    server,
                    f"'{server}' has no tool lock entry (`reconcile probe --lock --server "
                    f"{server}` reviews its tools)",
                )
            )
            continue
        found = inventory.get(server)
        if found is None:
            notes.append(f"'{server}' was never probed: its tools are not checked against the lock")
            continue
        for drift in surface_drift(server, lock[server], found.tools):
            findings.append(
                GovernanceFinding(
                    Finding.LOCK_MISMATCH,
                    server,
                    f"{drift.describe()} (last probe {found.probed_at or '?'})",
                    tool=drift.tool,
                )
            )
    return GovernanceAudit(tuple(findings), tuple(notes))


def _tool_of(path: str) -> str | None:
    """The tool a ``/tools/<name>`` pointer names (JSON Pointer escapes undone)."""
    prefix = "/tools/"
    if not path.startswith(prefix) or len(path) == len(prefix):
        return None
    return pointer_unescape(path[len(prefix) :])
