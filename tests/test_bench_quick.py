"""The benchmark suite still runs: ``python bench/run.py --quick`` writes a report with every row.

Why: bench/run.py drives the tool only through its CLI, so a change of options, output or
files it relies on would otherwise break the suite unnoticed until the next full run. This
checks that it runs and reports every row; it asserts nothing about speed (--quick sizes are too
small for the bars to mean anything).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"

ROWS = (
    "no-op dry run vs floor, small",
    "no-op dry run vs floor, large",
    "no-op dry run time, large",
    "growth, large / medium",
    "peak memory, large dry run",
    "start-up: import reconciler.cli.main",
    "apply vs the clients' own CLIs",
    "MCPJungle no-op: HTTP requests",
    "MCPJungle no-op: share of pass in HTTP",
    "daemon: save to target written",
    "daemon: save to target written, CPU load beside",
    "daemon: idle CPU",
    "probe: 20 servers, 5 hanging",
    "mirror no-op",
    "watch soak",
)


@pytest.mark.timeout(300)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the suite reads /proc")
def test_quick_suite_writes_every_row(tmp_path: Path) -> None:
    report = tmp_path / "REPORT.md"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = report.read_text()
    assert "## Suite (bench/run.py)" in text and "Python 3." in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    names = [line.split(" | ")[0].removeprefix("| ") for line in table]
    assert [n for n in ROWS if n not in names] == []


def test_quick_never_writes_the_committed_report() -> None:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "--report" in proc.stderr
