"""The plan as a pull-request comment: ``reconcile --dry-run --format markdown``.

A reviewer of a change to ``desired/`` wants to see, before merging, what it will do on each
machine. This module renders a dry-run ``RunReport`` as GitHub-flavoured markdown: a summary
table of the targets and their changes, one collapsible (``<details>``) field-level diff per
target, the divergences that expire soon, the targets that failed, and the validation errors
when desired state does not load.

Pure: text in, text out. Every name and value is user data, so each goes through ``cell``
(HTML-escaped, pipes neutralised) and never breaks the table or the comment around it; values
come sealed from the report, so secrets show only as fingerprints.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from reconciler.core.compare import Origin
from reconciler.core.divergence import State
from reconciler.core.essence import display
from reconciler.core.report import ExitCode, RunReport, TargetReport, TargetStatus, plural

TITLE = "mcp-reconciler plan"


def text(value: object) -> str:
    """Escape user data for markdown and HTML (pipes would end a table cell)."""
    return html.escape(str(value), quote=True).replace("|", "&#124;").replace("\n", " ")


def code(value: object) -> str:
    """User data as inline code that no backtick, pipe or tag inside can break."""
    return f"<code>{text(value)}</code>"


def _headline(report: RunReport) -> str:
    verb = "would change" if report.dry_run else "changed"
    count = sum(len(t.pending) if report.dry_run else len(t.applied) for t in report.targets)
    summary = {
        ExitCode.CONVERGED: "no changes",
        ExitCode.DRIFT: f"{count} {verb}",
        ExitCode.FAILED: "a required target or server failed",
    }[report.exit_code]
    return (
        f"**{summary}** across {plural(len(report.targets), 'target')} "
        f"(exit code {int(report.exit_code)})"
    )


def _changes_cell(t: TargetReport) -> str:
    counts: dict[str, int] = {}
    for c in t.pending:
        counts[c.action.value] = counts.get(c.action.value, 0) + 1
    if not counts:
        return "none"
    return ", ".join(f"{n} {text(a)}" for a, n in sorted(counts.items()))


_ICON = {
    TargetStatus.IN_SYNC: "✅ in sync",
    TargetStatus.DRIFTED: "✏️ changes",
    TargetStatus.ERROR: "❌ error",
    TargetStatus.ABSENT: "➖ absent",
}


def _summary(report: RunReport) -> list[str]:
    lines = [
        "| target | kind | status | changes | allowed | unmanaged |",
        "|---|---|---|---|---|---|",
    ]
    for t in report.targets:
        lines.append(
            f"| {code(t.name)} | {text(t.kind)} | {_ICON[t.status]} | {_changes_cell(t)} "
            f"| {len(t.allowed)} | {len(t.unmanaged)} |"
        )
    return lines


def _diff(t: TargetReport) -> list[str]:
    """One target's field-level diff, collapsed (``<details>``)."""
    pending = t.pending
    if not pending:
        return []
    lines = [
        "<details>",
        f"<summary>{code(t.name)}: {plural(len(pending), 'change')}</summary>",
        "",
        "| server | action | origin | field | live | desired |",
        "|---|---|---|---|---|---|",
    ]
    for c in pending:
        name = c.server if c.entry == c.server else f"{c.server} (as {c.entry})"
        head = f"| {code(name)} | {text(c.action.value)} | {text(c.origin.value)}"
        if not c.fields:
            lines.append(f"{head} | (whole entry) | | |")
        for f in c.fields:
            live = code(display(f.old))
            if c.origin is Origin.CONFLICT:
                live += f" (last applied {code(display(f.last))})"
            lines.append(f"{head} | {code(f.path)} | {live} | {code(display(f.new))} |")
            for detail in t.details.get(f.path, ()):
                lines.append(f"| | | | | {code(detail)} | |")
    lines += ["", "</details>"]
    return lines


def _expiring(report: RunReport) -> list[str]:
    rows = [(t, a) for t in report.targets for a in t.allowed if a.state is State.EXPIRING]
    if not rows:
        return []
    lines = [
        "#### Divergences expiring soon",
        "",
        "| target | server | fields | expires | record |",
        "|---|---|---|---|---|",
    ]
    for t, a in rows:
        paths = ", ".join(a.paths) or "(whole entry)"
        expires = a.expires.isoformat() if a.expires else "never"
        lines.append(
            f"| {code(t.name)} | {code(a.server)} | {code(paths)} | {text(expires)} "
            f"| {code(a.file)} |"
        )
    return lines


def _errors(report: RunReport) -> list[str]:
    failed = report.degraded
    if not failed:
        return []
    lines = [
        "#### Errors",
        "",
        "| target | server | phase | required | error |",
        "|---|---|---|---|---|",
    ]
    for d in failed:
        lines.append(
            f"| {code(d.target) if d.target else '(probe)'} "
            f"| {code(d.server) if d.server else '(whole target)'} | {text(d.phase or '?')} "
            f"| {'yes' if d.required else 'no'} | {text(d.error or '')} |"
        )
    return lines


def _matrix(matrix: Mapping[str, Mapping[str, str]]) -> list[str]:
    if not matrix:
        return []
    names = list(next(iter(matrix.values())))
    lines = [
        "| server | " + " | ".join(code(n) for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for server, cells in matrix.items():
        lines.append(f"| {code(server)} | " + " | ".join(text(cells[n]) for n in names) + " |")
    return lines


def render_plan(
    report: RunReport,
    *,
    title: str = TITLE,
    matrix: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """The pass (a dry run for a plan) as markdown; ``matrix`` adds the status matrix."""
    out = [f"### {text(title)}", "", _headline(report), ""]
    if matrix:
        out += [*_matrix(matrix), ""]
    out += [*_summary(report), ""]
    for t in report.targets:
        block = _diff(t)
        if block:
            out += [*block, ""]
    for section in (_expiring(report), _errors(report)):
        if section:
            out += [*section, ""]
    return "\n".join(out).rstrip() + "\n"


def render_invalid(problems: Sequence[str], *, title: str = TITLE) -> str:
    """Desired state that does not load: every problem, and nothing planned."""
    listed = "\n".join(html.escape(p) for p in problems)
    return (
        f"### {text(title)}\n\n"
        f"**desired state is invalid**: {plural(len(problems), 'problem')}; nothing planned "
        "(exit code 2)\n\n"
        f"<pre>\n{listed}\n</pre>\n"
    )
