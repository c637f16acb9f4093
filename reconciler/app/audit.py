"""``reconcile audit``: every inline secret in the live targets, by fingerprint, never by value,
and the governance of tools (``app.toolgov.audit_governance``).

By default the audit is machine-wide: every declared target, and every client config that
``reconcile discover`` finds and no target declares (named ``kind:path``); ``--declared``
keeps it to the declared targets. Each config is observed (read only, nothing is created)
and every string of every entry, managed or not, is scanned by ``secrets.scan_essence``:
known token shapes, ``Bearer <literal>``, credentials in URLs (a password or a token in the
userinfo, a query parameter such as ``api_key``), random-looking values under secret-like
keys. A
finding names the target, the entry, the field (a JSON Pointer), the kind and the keyed
fingerprint of the value.

A value this tool itself resolved from a reference into a client that cannot reference
(Claude Desktop, MCPJungle) is listed as ``managed``: it matches the last-applied record and
its source in git is a reference. Only the other findings (literals someone put there) make
the exit code 1, unless ``strict`` counts every inline value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import targets
from reconciler.app.discover import Found, desired_or_nothing, discover
from reconciler.app.toolgov import GovernanceAudit, audit_governance
from reconciler.core.compare import pointer_parts, resolve_pointer
from reconciler.core.errors import ReconcilerError, UsageError
from reconciler.core.essence import Sealer, display, fingerprint_with, from_server
from reconciler.core.report import ExitCode, ResolvedValue
from reconciler.secrets import (
    REDACTOR,
    essence_strings,
    explain,
    find_references,
    redact,
    reference_mode,
    scan_essence,
    url_secret_parts,
)
from reconciler.store.desired import DesiredState

if TYPE_CHECKING:
    from reconciler.engine import Engine


@dataclass(frozen=True)
class AuditFinding:
    target: str
    server: str  # the entry's name on the target
    field: str  # JSON Pointer into the entry's essence: /env/GITHUB_TOKEN, /args/2
    kind: str  # github-token, bearer-token, high-entropy...
    fingerprint: str  # hmac-sha256:<hex>, keyed by the state directory's key
    managed: bool  # resolved by this tool from a reference in desired state
    # For a managed value: which references it came from, why, and how to keep it out.
    resolved: ResolvedValue | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "server": self.server,
            "field": self.field,
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "managed": self.managed,
        } | ({"resolved": self.resolved.to_json()} if self.resolved is not None else {})


@dataclass(frozen=True)
class AuditFailure:
    target: str
    error: str
    required: bool


@dataclass(frozen=True)
class AuditReport:
    findings: tuple[AuditFinding, ...]
    failures: tuple[AuditFailure, ...] = ()
    strict: bool = False
    audited: tuple[str, ...] = ()
    declared: frozenset[str] = frozenset()  # entry names desired state declares (and aliases)
    # The file mode checked for each audited file (never for a target without a file).
    modes: tuple[tuple[str, int], ...] = ()
    undeclared: frozenset[str] = frozenset()  # audited configs no target declares
    governance: GovernanceAudit = field(default_factory=GovernanceAudit)

    @property
    def counted(self) -> tuple[AuditFinding, ...]:
        """The findings that make the exit code 1."""
        return tuple(f for f in self.findings if self.strict or not f.managed)

    @property
    def exit_code(self) -> ExitCode:
        if any(f.required for f in self.failures):
            return ExitCode.FAILED
        drift = self.counted or self.governance.findings
        return ExitCode.DRIFT if drift else ExitCode.CONVERGED

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "exit_code": int(self.exit_code),
            "audited": list(self.audited),
            "undeclared": sorted(self.undeclared),
            "findings": [f.to_json() for f in self.findings],
            "file_modes": {name: f"{mode:04o}" for name, mode in self.modes},
            "governance": self.governance.to_json(),
            "degraded": [
                {"target": f.target, "phase": "observe", "required": f.required, "error": f.error}
                for f in self.failures
            ],
        }


def audit(
    engine: Engine,
    names: Sequence[str] = (),
    *,
    strict: bool = False,
    declared_only: bool = False,
    cwd: Path | None = None,
) -> AuditReport:
    """Observe the selected targets and list their inline secrets.

    Without ``names``: every declared target, and (unless ``declared_only``) every
    discovered client config no target declares. A name may be a declared target, a
    discovered config's ``kind:path``, or a kind (its undeclared configs).
    """
    state = engine.load() if declared_only else desired_or_nothing(engine)
    found: list[Found] = []
    if not declared_only and (not names or any(n not in state.targets for n in names)):
        found = [f for f in discover(engine, state, cwd).found if f.declared is None]
    kinds = {f.kind for f in found}
    unknown = [
        n
        for n in names
        if n not in state.targets and n not in kinds and all(n != f.name for f in found)
    ]
    if unknown:
        hint = "" if declared_only else "; or a kind or kind:path that `reconcile discover` lists"
        raise UsageError(
            f"unknown target{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
            f"(declared: {', '.join(state.targets) or 'none'}{hint})"
        )
    selected = [n for n in names if n in state.targets] if names else list(state.targets)
    extra = [f for f in found if not names or f.name in names or f.kind in names]
    fingerprint = fingerprint_with(engine.store.fingerprint_key(create=False))
    REDACTOR.use_fingerprint(fingerprint)
    context = engine.context(state)

    def one(name: str) -> tuple[list[AuditFinding], AuditFailure | None, int | None]:
        spec = state.targets[name]
        try:
            target = targets.build(name, spec, context)
            try:
                observation = target.observe()
            finally:
                target.close()
            mode = _mode(target) if observation.exists else None
            why = _explainer(state, name)
            return _scan(name, observation.entries, engine, fingerprint, why=why), None, mode
        except ReconcilerError as e:
            return [], AuditFailure(name, redact(str(e)), not spec.optional), None

    if len(selected) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(selected))) as pool:
            results = list(pool.map(one, selected))
    else:
        results = [one(n) for n in selected]
    for config in extra:  # already observed by discovery
        if config.error is not None:
            results.append(([], AuditFailure(config.name, config.error, False), None))
        else:
            scanned = _scan(config.name, config.entries, engine, fingerprint, inventory=False)
            results.append((scanned, None, _file_mode(config.path)))
    findings = tuple(f for found_, _, _ in results for f in found_)
    failures = tuple(failure for _, failure, _ in results if failure is not None)
    audited = (*selected, *(f.name for f in extra))
    modes = tuple(
        (name, mode)
        for name, (_, _, mode) in zip(audited, results, strict=True)
        if mode is not None
    )
    declared = frozenset(state.servers) | frozenset(
        alias for server in state.servers.values() for alias in server.aliases
    )
    failed = {f.target for f in failures}
    governance = audit_governance(engine, state, [n for n in selected if n not in failed])
    return AuditReport(
        findings,
        failures,
        strict,
        audited,
        declared,
        modes,
        frozenset(f.name for f in extra),
        governance,
    )


def _mode(target: Any) -> int | None:
    """The permission bits of a target's file; None for a target without one (MCPJungle)."""
    path = getattr(target, "path", None)
    return _file_mode(path) if isinstance(path, Path) else None


def _file_mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


Explainer = Callable[[str, str], ResolvedValue | None]


def _explainer(state: DesiredState, name: str) -> Explainer:
    """How a value resolved into target ``name`` came there: the references desired state
    holds at that place, and the kind's reasons (``secrets.explain``)."""
    spec = state.targets[name]
    capability = targets.capability(spec.kind)
    by_entry = {
        entry: server
        for server_name, server in state.servers.items()
        for entry in (server_name, *server.aliases)
    }

    def why(entry: str, pointer: str) -> ResolvedValue | None:
        server = by_entry.get(entry)
        if server is None or capability is None:
            return None
        value = resolve_pointer(from_server(server), pointer)
        refs = [r for r in find_references(value) if r.is_secret] if isinstance(value, str) else []
        if not refs:
            return None  # bridged or reshaped on the way: the pass's plan names it
        parts = pointer_parts(pointer)
        key = parts[1] if len(parts) > 1 and parts[0] in ("env", "headers") else None
        reason, avoid = explain(
            capability,
            parts[0],
            key,
            refs,
            keep_env=reference_mode(capability, spec.secrets),
            kind=spec.kind,
        )
        names = tuple(dict.fromkeys(r.canonical for r in refs))
        return ResolvedValue(entry, pointer, names, reason, avoid)

    return why


def _scan(
    name: str,
    entries: Any,
    engine: Engine,
    fingerprint: Sealer,
    *,
    inventory: bool = True,
    why: Explainer | None = None,
) -> list[AuditFinding]:
    last_applied: Any = {}
    if inventory:  # only a declared target has a last-applied record
        try:
            last_applied = engine.store.inventory(name).entries
        except ReconcilerError:
            last_applied = {}
    found: list[AuditFinding] = []
    for entry, essence in sorted(entries.items()):
        shaped = scan_essence(essence, known=False)  # by shape only: deterministic
        last = last_applied.get(entry)
        skip = {f.path for f in shaped}
        found += _resolved_here(name, entry, essence, last, fingerprint, why, skip=skip)
        for finding in shaped:
            REDACTOR.add(finding.value)
            for part in url_secret_parts(finding.value):
                REDACTOR.add(part)
            sealed = fingerprint(finding.value)
            last = last_applied.get(entry)
            managed = last is not None and resolve_pointer(last, finding.path) == sealed
            resolved = why(entry, finding.path) if managed and why is not None else None
            found.append(
                AuditFinding(name, entry, finding.path, finding.kind, sealed, managed, resolved)
            )
    return found


def _resolved_here(
    name: str,
    entry: str,
    essence: Any,
    last: Any,
    fingerprint: Sealer,
    why: Explainer | None,
    *,
    skip: set[str],
) -> list[AuditFinding]:
    """The values this tool resolved from references into the entry, whatever they look
    like: the last-applied record holds their fingerprint at that place, and desired state
    a secret reference there."""
    if last is None or why is None:
        return []
    found = []
    for pointer, _field, _key, value in essence_strings(essence):
        if pointer in skip or find_references(value):
            continue  # found by shape already, or still a reference the client expands
        if resolve_pointer(last, pointer) != fingerprint(value):
            continue
        resolved = why(entry, pointer)
        if resolved is not None:
            REDACTOR.add(value)
            sealed = fingerprint(value)
            found.append(
                AuditFinding(name, entry, pointer, "resolved-reference", sealed, True, resolved)
            )
    return found


def render_text(report: AuditReport) -> str:
    lines: list[str] = []
    rows = [["target", "server", "field", "kind", "fingerprint", ""]]
    for f in report.findings:
        note = "managed: resolved from a reference" if f.managed else ""
        rows.append([f.target, f.server, f.field, f.kind, display(f.fingerprint), note])
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    for f in report.findings:
        if f.resolved is not None and not report.strict:
            lines.append(f"  {f.target}: {f.resolved.note}")
    for failure in report.failures:
        optional = "" if failure.required else " (optional target: warning only)"
        lines.append(f"error on {failure.target}: {failure.error}{optional}")
    counted = report.counted
    if counted:
        where = sorted({f.target for f in counted})
        lines.append(
            f"{len(counted)} inline secret(s) in {len(where)} target(s). To move them into "
            "references (the entry goes into desired/ with each secret turned into a "
            "${env:NAME} reference; then set the variables and run `reconcile`):"
        )
        for target, server in sorted({(f.target, f.server) for f in counted}):
            if target in report.undeclared:
                continue
            if server in report.declared:
                lines.append(f"  reconcile adopt {server} --target {target}")
            else:
                lines.append(f"  reconcile import --target {target} --server {server}")
        loose = sorted({f.target for f in counted if f.target in report.undeclared})
        if loose:
            lines.append(
                "  not declared as targets: " + ", ".join(loose) + " (`reconcile import "
                "--discover` declares every client as a target, secrets as references)"
            )
    managed = len(report.findings) - len(counted)
    if managed and not report.strict:
        modes = dict(report.modes)
        holders = sorted({f.target for f in report.findings if f.managed})
        checked = [
            f"{t} {modes[t]:04o}" + (" (readable by others)" if modes[t] & 0o077 else "")
            for t in holders
            if t in modes
        ]
        mode_note = f" (file mode checked: {', '.join(checked)})" if checked else ""
        lines.append(
            f"{managed} value(s) resolved from references by mcp-reconciler into clients that "
            f"cannot reference them{mode_note}; use --strict to count them too."
        )
    lines += render_governance(report.governance)
    if not report.findings and not report.failures:
        undeclared = len(report.undeclared)
        lines.append(
            f"no inline secret found in {len(report.audited)} config(s)"
            + (f" ({undeclared} not declared as targets)" if undeclared else "")
        )
    return "\n".join(lines)


def render_governance(found: GovernanceAudit) -> list[str]:
    """The governance section: one line per finding, then the notes."""
    lines = []
    if found.findings:
        lines.append(f"governance: {len(found.findings)} finding(s)")
        lines += [f"  {f.finding.value}: {f.message}" for f in found.findings]
    lines += [f"governance note: {note}" for note in found.notes]
    return lines
