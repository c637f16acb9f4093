"""bench/REPORT.md: each benchmark owns one ``## `` section and rewrites only that one."""

from __future__ import annotations

from pathlib import Path

REPORT = Path(__file__).resolve().parent / "REPORT.md"


def update_section(heading: str, text: str, report: Path = REPORT) -> None:
    """Replace the section whose heading starts with ``heading`` by ``text``, where it stands
    (or append it), so the report keeps its order."""
    existing = report.read_text() if report.exists() else "# Benchmarks\n"
    start = existing.find(heading)
    if start == -1:
        report.write_text(existing.rstrip() + "\n\n" + text.rstrip() + "\n")
        return
    end = existing.find("\n## ", start + 1)
    rest = existing[end + 1 :] if end != -1 else ""
    report.write_text(existing[:start] + text.rstrip() + "\n" + ("\n" + rest if rest else ""))
