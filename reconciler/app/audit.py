"""``reconcile audit``: every inline secret in the live targets, by fingerprint, never by value.

Each target of desired state is observed (read only, nothing is created) and every string of
every entry, managed or not, is scanned by ``secrets.scan_essence``: known token shapes,
``Bearer <literal>``, credentials in URLs, random-looking values under secret-like keys. A
finding names the target, the entry, the field (a JSON Pointer), the kind and the keyed
fingerprint of the value.

A value this tool itself resolved from a reference into a client that cannot reference
(Claude Desktop, MCPJungle) is listed as ``managed``: it matches the last-applied record and
its source in git is a reference. Only the other findings (literals someone put there) make
the exit code 1, unless ``strict`` counts every inline value.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler import targets
from reconciler.core.compare import resolve_pointer
from reconciler.core.errors import ReconcilerError, UsageError
from reconciler.core.essence import Sealer, display, fingerprint_with
from reconciler.core.report import ExitCode
from reconciler.secrets import REDACTOR, redact, scan_essence

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

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "server": self.server,
            "field": self.field,
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "managed": self.managed,
        }


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

    @property
    def counted(self) -> tuple[AuditFinding, ...]:
        """The findings that make the exit code 1."""
        return tuple(f for f in self.findings if self.strict or not f.managed)

    @property
    def exit_code(self) -> ExitCode:
        if any(f.required for f in self.failures):
            return ExitCode.FAILED
        return ExitCode.DRIFT if self.counted else ExitCode.CONVERGED

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "exit_code": int(self.exit_code),
            "findings": [f.to_json() for f in self.findings],
            "degraded": [
                {"target": f.target, "phase": "observe", "required": f.required, "error": f.error}
                for f in self.failures
            ],
        }


def audit(engine: Engine, names: Sequence[str] = (), *, strict: bool = False) -> AuditReport:
    """Observe the selected targets of desired state and list their inline secrets."""
    state = engine.load()
    unknown = [n for n in names if n not in state.targets]
    if unknown:
        raise UsageError(
            f"unknown target{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
            f"(declared: {', '.join(state.targets) or 'none'})"
        )
    selected = list(names) if names else list(state.targets)
    fingerprint = fingerprint_with(engine.store.fingerprint_key(create=False))
    REDACTOR.use_fingerprint(fingerprint)
    context = engine.context(state)

    def one(name: str) -> tuple[list[AuditFinding], AuditFailure | None]:
        spec = state.targets[name]
        try:
            target = targets.build(name, spec, context)
            try:
                observation = target.observe()
            finally:
                target.close()
            return _scan(name, observation.entries, engine, fingerprint), None
        except ReconcilerError as e:
            return [], AuditFailure(name, redact(str(e)), not spec.optional)

    if len(selected) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(selected))) as pool:
            results = list(pool.map(one, selected))
    else:
        results = [one(n) for n in selected]
    findings = tuple(f for found, _ in results for f in found)
    failures = tuple(failure for _, failure in results if failure is not None)
    declared = frozenset(state.servers) | frozenset(
        alias for server in state.servers.values() for alias in server.aliases
    )
    return AuditReport(findings, failures, strict, tuple(selected), declared)


def _scan(name: str, entries: Any, engine: Engine, fingerprint: Sealer) -> list[AuditFinding]:
    try:
        inventory = engine.store.inventory(name).entries
    except ReconcilerError:
        inventory = {}
    found: list[AuditFinding] = []
    for entry, essence in sorted(entries.items()):
        for finding in scan_essence(essence, known=False):  # by shape only: deterministic
            REDACTOR.add(finding.value)
            sealed = fingerprint(finding.value)
            last = inventory.get(entry)
            managed = last is not None and resolve_pointer(last, finding.path) == sealed
            found.append(AuditFinding(name, entry, finding.path, finding.kind, sealed, managed))
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
            if server in report.declared:
                lines.append(f"  reconcile adopt {server} --target {target}")
            else:
                lines.append(f"  reconcile import --target {target} --server {server}")
    managed = len(report.findings) - len(counted)
    if managed and not report.strict:
        lines.append(
            f"{managed} value(s) resolved from references by mcp-reconciler into clients that "
            "cannot reference them (file mode 0600); use --strict to count them too."
        )
    if not report.findings and not report.failures:
        lines.append(f"no inline secret found in {len(report.audited)} target(s)")
    return "\n".join(lines)
