"""The outcome of a pass, its exit code, and its two renderings (JSON schema 1, human text).

Exit codes are API (DESIGN section 7) and are decided in exactly one place,
``RunReport.exit_code``. Every value that reaches a rendering is sealed first, so neither
rendering can leak a secret: they show fingerprints as ``‹secret:4f1c2a›``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from reconciler.core.compare import Origin
from reconciler.core.divergence import Allowed
from reconciler.core.essence import Essence, display, is_sealed_value
from reconciler.core.plan import TOOL_ACTIONS, Action, Change

SCHEMA_VERSION = 1


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 problem``, ``2 problems``: the one way output counts things."""
    return f"{count} {word if count == 1 else many or word + 's'}"


# The past tense of each action, as an applying pass reports it.
PAST = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
    "enable": "enabled",
    "disable": "disabled",
    "tool-enable": "tool-enabled",
    "tool-disable": "tool-disabled",
    "record": "recorded",
    "copy": "copied",
}


def json_value(value: Any) -> Any:
    """A compared value as JSON: absent is null, sealed secrets ``{"secret": "‹fingerprint›"}``."""
    if is_sealed_value(value):
        return {"secret": value.split(":", 1)[1][:6]}
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


@dataclass(frozen=True)
class ResolvedValue:
    """A reference resolved into a target's file because the target cannot express it.

    Said for each value, in the plan, ``status`` and ``audit``: where it sits (the server and
    a JSON Pointer), which references it came from (their names, never a value), why the
    target cannot keep it, and how to keep it out of the file.
    """

    server: str
    pointer: str  # /env/GITHUB_TOKEN, /args/2
    references: tuple[str, ...]  # canonical spellings: ${infisical:GH}
    why: str
    avoid: str

    @property
    def note(self) -> str:
        refs = ", ".join(self.references)
        return (
            f"{self.server} {self.pointer}: {refs} is resolved into the file ({self.why}); "
            f"to keep it out: {self.avoid}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "path": self.pointer,
            "references": list(self.references),
            "why": self.why,
            "avoid": self.avoid,
        }


class ExitCode(int, Enum):
    CONVERGED = 0
    DRIFT = 1
    INVALID = 2
    FAILED = 3


class Phase(StrEnum):
    OBSERVE = "observe"
    PLAN = "plan"
    APPLY = "apply"
    VERIFY = "verify"


class TargetStatus(StrEnum):
    IN_SYNC = "in_sync"
    DRIFTED = "drifted"
    ABSENT = "absent"  # the client's file does not exist and the target says create: false
    ERROR = "error"


@dataclass(frozen=True)
class TargetReport:
    name: str
    kind: str
    location: str
    optional: bool
    changes: tuple[Change, ...] = ()
    applied: frozenset[str] = frozenset()  # entries whose change this pass carried out
    # Entries of ``applied`` whose tool flags are still to set (the server was registered or
    # enabled, its tool flags then failed): their tool changes were not carried out.
    flags_left: frozenset[str] = frozenset()
    in_sync: tuple[str, ...] = ()
    unmanaged: tuple[str, ...] = ()
    orphaned: tuple[str, ...] = ()
    error: str | None = None
    phase: Phase | None = None
    recoverable: bool = True
    notes: tuple[str, ...] = ()
    allowed: tuple[Allowed, ...] = ()  # drift covered by divergence records
    # Lines shown under one drifted path (a mirror's unified diff), keyed by JSON Pointer.
    details: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    held: Mapping[str, str] = field(default_factory=dict)  # entry -> why it is not applied
    # The live entries, sealed, as the plan compared them (the parity view reads them), and
    # the fields the target could not show (never compared).
    live: Mapping[str, Essence] = field(default_factory=dict)
    blind: frozenset[str] = frozenset()
    # Entries that failed one by one (an API target applies server by server), with their
    # errors: each failure weighs by its server's requiredness here, not the whole target.
    failed: Mapping[str, str] = field(default_factory=dict)
    absent: bool = False  # skipped: no file, and create: false
    # Values resolved into the file from references the target cannot express, each named.
    resolved: tuple[ResolvedValue, ...] = ()

    def was_applied(self, change: Change) -> bool:
        # ``apply`` False (on_drift: report) is never carried out, even when another change
        # of the same entry was (a tool-disable beside a tool-enable left to a person).
        if change.action in TOOL_ACTIONS and change.entry in self.flags_left:
            return False
        return change.apply and change.entry in self.applied

    @property
    def pending(self) -> tuple[Change, ...]:
        """Changes still to make: actionable drift that this pass did not carry out."""
        return tuple(c for c in self.changes if not self.was_applied(c))

    @property
    def status(self) -> TargetStatus:
        if self.error is not None:
            return TargetStatus.ERROR
        if self.absent:
            return TargetStatus.ABSENT
        return TargetStatus.DRIFTED if self.pending else TargetStatus.IN_SYNC

    @property
    def degraded(self) -> tuple[Degraded, ...]:
        """What failed here: the whole target, or each server that failed on its own (then
        required only where the target is required and the server's placement is)."""
        if self.error is None:
            return ()
        phase = self.phase.value if self.phase else None
        if not self.failed:
            return (
                Degraded(
                    None,
                    self.name,
                    phase,
                    not self.optional,
                    self.error,
                    self.recoverable,
                    self.location,
                ),
            )
        by_entry = {c.entry: c for c in self.changes}
        out = []
        for entry, error in self.failed.items():
            change = by_entry.get(entry)
            server = change.server if change is not None else entry
            # A delete is of an entry no longer placed (pruned): no server's requiredness
            # applies, so it weighs as the target does.
            required = not self.optional and (
                change is None or change.required or change.action is Action.DELETE
            )
            out.append(
                Degraded(server, self.name, phase, required, error, self.recoverable, self.location)
            )
        return tuple(out)


@dataclass(frozen=True)
class Degraded:
    """One failure of a pass, as the ``degraded`` list shows it: a target that failed as a
    whole (``server`` None), a server that failed on a target, or a server whose probe
    failed (``target`` None for its desired definition). ``required`` decides exit 3."""

    server: str | None
    target: str | None
    phase: str | None
    required: bool
    error: str | None
    recoverable: bool | None
    location: str | None = None
    context: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server": self.server,
            "target": self.target,
            "phase": self.phase,
            "required": self.required,
            "error": self.error,
            "recoverable": self.recoverable,
        }
        if self.location is not None:
            out["location"] = self.location
        if self.context is not None:
            out["context"] = dict(self.context)
        return out


@dataclass(frozen=True)
class RunReport:
    dry_run: bool
    targets: tuple[TargetReport, ...] = ()
    # Failures found after the pass by ``reconcile --probe`` (servers that do not answer).
    probed: tuple[Degraded, ...] = ()

    @property
    def degraded(self) -> tuple[Degraded, ...]:
        return tuple(d for t in self.targets for d in t.degraded) + self.probed

    @property
    def exit_code(self) -> ExitCode:
        if any(d.required for d in self.degraded):
            return ExitCode.FAILED
        if any(t.status is TargetStatus.DRIFTED for t in self.targets):
            return ExitCode.DRIFT
        return ExitCode.CONVERGED

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "exit_code": int(self.exit_code),
            "dry_run": self.dry_run,
            "targets": [_target_json(t) for t in self.targets],
            "degraded": [d.to_json() for d in self.degraded],
        }


def _target_json(t: TargetReport) -> dict[str, Any]:
    return {
        "name": t.name,
        "kind": t.kind,
        "location": t.location,
        "status": t.status.value,
        "error": t.error,
        "changes": [
            {
                "server": c.server,
                "entry": c.entry,
                "action": c.action.value,
                "origin": c.origin.value,
                "paths": c.paths,
                "applied": t.was_applied(c),
                "diff": [
                    {"path": f.path, "live": json_value(f.old), "desired": json_value(f.new)}
                    | ({"last_applied": json_value(f.last)} if c.origin is Origin.CONFLICT else {})
                    | ({"details": list(t.details[f.path])} if f.path in t.details else {})
                    for f in c.fields
                ],
            }
            for c in t.changes
        ],
        "allowed": [a.to_json() for a in t.allowed],
        "in_sync": list(t.in_sync),
        "unmanaged": list(t.unmanaged),
        "orphaned": list(t.orphaned),
        "blind_fields": sorted(t.blind),
        "notes": list(t.notes),
        "resolved": [r.to_json() for r in t.resolved],
    }


Style = Callable[[str, str], str]  # (text, role) -> text; roles: add change remove dim bad


def _plain(text: str, role: str) -> str:
    return text


_SIGIL = {
    "create": "+",
    "delete": "-",
    "disable": "-",
    "enable": "+",
    "record": "✎",
    "tool-disable": "-",
    "tool-enable": "+",
}


def _quiet_target(t: TargetReport) -> bool:
    """In sync with nothing to tell: shown only with -v."""
    return t.status is TargetStatus.IN_SYNC and not (
        t.changes or t.allowed or t.unmanaged or t.orphaned or t.notes or t.resolved
    )


def render_text(
    report: RunReport,
    style: Style = _plain,
    verbose: bool = False,
    *,
    quiet: bool = False,
    duration: float | None = None,
) -> str:
    """Per target a short plan with field-level differences; secrets shown as fingerprints.

    ``quiet`` (-q): only the targets' errors and the summary. By default, targets in sync
    with nothing to tell are left out; ``verbose`` (-v) shows them, their in-sync entries,
    and the pass's ``duration``.
    """
    lines: list[str] = []
    for t in report.targets:
        if quiet and t.error is None:
            continue
        if not verbose and _quiet_target(t):
            continue
        status = t.status.value.replace("_", " ")
        role = {"in_sync": "dim", "drifted": "change", "error": "bad"}.get(t.status.value, "dim")
        lines.append(f"{style(t.name, 'bold')} ({t.kind}, {t.location}): {style(status, role)}")
        if t.error is not None and not t.failed:
            optional = " (optional target: warning only)" if t.optional else ""
            lines.append(
                f"  {style('error', 'bad')} in {t.phase.value if t.phase else '?'}: "
                f"{t.error}{optional}"
            )
        for d in t.degraded if t.failed else ():
            level = style("error", "bad") if d.required else style("warning", "change")
            why = "" if d.required else " (optional server: warning only)"
            lines.append(f"  {level}: server {d.server}: {d.phase or '?'} failed: {d.error}{why}")
        if quiet:
            continue
        for c in t.changes:
            sigil = _SIGIL.get(c.action.value, "~")
            done = t.was_applied(c)
            verb = PAST.get(c.action.value, c.action.value) if done else c.action.value
            if not done and not report.dry_run and not c.apply:
                verb += f" (not applied: {t.held.get(c.entry, 'on_drift report')})"
            name = c.server if c.entry == c.server else f"{c.server} (as {c.entry})"
            role = {"+": "add", "-": "remove"}.get(sigil, "change")
            lines.append(f"  {style(sigil, role)} {name}: {verb}, origin {c.origin.value}")
            for f in c.fields:
                line = f"      ~ {f.path}: {display(f.old)} -> {display(f.new)}"
                if c.origin is Origin.CONFLICT:
                    line = (
                        f"      ~ {f.path}: desired {display(f.new)}, live {display(f.old)}, "
                        f"last applied {display(f.last)}"
                    )
                lines.append(line)
                lines.extend(f"          {line}" for line in t.details.get(f.path, ()))
        for a in t.allowed:
            name = a.server if a.entry == a.server else f"{a.server} (as {a.entry})"
            paths = ", ".join(a.paths)
            lines.append(f"  {style('=', 'dim')} {name}: allowed by {a.file} ({paths}), {a.state}")
        if verbose and t.in_sync:
            lines.append(f"  {style('in sync:', 'dim')} {', '.join(t.in_sync)}")
        if t.unmanaged:
            lines.append(f"  {style('unmanaged:', 'dim')} {', '.join(t.unmanaged)}")
        if t.orphaned:
            lines.append(
                f"  {style('orphaned:', 'dim')} {', '.join(t.orphaned)} "
                "(created by mcp-reconciler, no longer desired; set prune: true to delete)"
            )
        for note in t.notes:
            lines.append(f"  note: {note}")
        for value in t.resolved:
            lines.append(f"  note: {value.note}")
    for d in report.probed:
        level = style("error", "bad") if d.required else style("warning", "change")
        where = f" on {d.target}" if d.target else ""
        lines.append(f"{level}: probe of {d.server}{where}: {d.phase or '?'} failed: {d.error}")
    code = report.exit_code
    warnings = sum(1 for d in report.degraded if not d.required)
    summary = {
        ExitCode.CONVERGED: f"converged with {warnings} warning(s)" if warnings else "converged",
        ExitCode.DRIFT: "drift remains" if not report.dry_run else "drift found",
        ExitCode.FAILED: "a required target or server failed",
    }[code]
    verb = "would change" if report.dry_run else "changed"
    count = sum(len(t.pending) if report.dry_run else len(t.applied) for t in report.targets)
    across = plural(len(report.targets), "target")
    hidden = sum(1 for t in report.targets if _quiet_target(t))
    tail = f" ({hidden} in sync not shown; -v shows them)" if hidden and not verbose else ""
    if verbose and duration is not None:
        tail += f" in {duration:.3f}s"
    lines.append(style(f"{summary}: {count} {verb} across {across}{tail}", "bold"))
    return "\n".join(lines)
