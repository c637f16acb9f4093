"""How bench/run.py measures: processes, alternation, statistics and verdicts.

Why one module: every row times the tool the way a user meets it, as a new process (wall clock
around fork, exec and wait; the child's own peak RSS and CPU time from ``wait4``), and every
comparison alternates its commands (A B A B ...) so that a change in the machine's load during
the run hits both sides alike. Rows only say what to run and what the bar is.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.daemon_harness import child_env  # noqa: E402

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass(frozen=True)
class Sample:
    """One finished process."""

    wall_s: float
    cpu_s: float  # user + system of the child itself
    maxrss_mb: float  # the child's peak resident set (ru_maxrss)
    returncode: int
    output: str  # stdout and stderr, interleaved


def run_process(
    argv: Sequence[str], *, env: dict[str, str], cwd: Path | None = None, timeout: float = 600
) -> Sample:
    """Run ``argv`` to its end in a new session; on timeout its whole process group is killed."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Sample(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        returncode=proc.returncode,
        output=text,
    )


def bench_env(home: Path, pycache: Path) -> dict[str, str]:
    """The environment of every measured child: HOME in the sandbox, no client location or
    proxy variable from the caller, and bytecode cached (in ``pycache``, outside the source
    tree) as on an installed machine, even when the caller sets PYTHONDONTWRITEBYTECODE."""
    env = child_env(home)
    for name in (*PROXY_VARS, "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def checked(sample: Sample, what: str, ok: Sequence[int] = (0,)) -> Sample:
    """``sample``, or an error naming ``what`` with the end of its output."""
    if sample.returncode not in ok:
        tail = "\n".join(sample.output.splitlines()[-15:])
        raise RuntimeError(f"{what} exited {sample.returncode}:\n{tail}")
    return sample


def alternate(
    commands: dict[str, Callable[[], Sample]], rounds: int, warmup: int = 1
) -> dict[str, list[Sample]]:
    """Run every command once per round, in the same order each round (A B C A B C ...);
    the ``warmup`` rounds fill caches and are dropped."""
    samples: dict[str, list[Sample]] = {name: [] for name in commands}
    for round_no in range(warmup + rounds):
        for name, command in commands.items():
            sample = command()
            if round_no >= warmup:
                samples[name].append(sample)
    return samples


def ratios(top: Sequence[float], bottom: Sequence[float]) -> list[float]:
    """Per-round ratios of two alternated series."""
    return [a / b for a, b in zip(top, bottom, strict=True)]


@dataclass(frozen=True)
class Row:
    """One line of the report's table."""

    name: str
    case: str
    median: str
    spread: str
    runs: str
    bar: str
    result: str


def summary(values: Sequence[float], fmt: str) -> tuple[str, str, str]:
    """(median, "min–max", run count) of ``values``, each number formatted with ``fmt``."""
    median = statistics.median(values)
    return (
        format(median, fmt),
        f"{format(min(values), fmt)}–{format(max(values), fmt)}",
        str(len(values)),
    )


def at_most(value: float, bar: float) -> str:
    """Verdict for a bar that ``value`` must not exceed."""
    if value == bar:
        return "PASS" if bar == 0 else "PASS (at the bar)"
    if value < bar:
        return f"PASS ({(1 - value / bar) * 100:.0f}% under the bar)"
    if bar == 0:
        return f"MISS (by {value:g})"
    return f"MISS by {(value / bar - 1) * 100:.0f}% ({value / bar:.2f}x the bar)"


def at_least(value: float, bar: float) -> str:
    """Verdict for a bar that ``value`` must reach."""
    if value >= bar:
        return f"PASS ({value / bar:.1f}x the bar)"
    return f"MISS by {bar / value:.1f}x (reaches {value / bar * 100:.0f}% of the bar)"


def worst(*checks: tuple[str, str]) -> str:
    """One verdict for a row with several bars, each given as (label, verdict): the misses,
    else one PASS naming each margin."""
    misses = [f"MISS {label}{v[4:]}" for label, v in checks if v.startswith("MISS")]
    if misses:
        return "; ".join(misses)
    margins = [f"{label} {v[6:-1]}" if "(" in v else label for label, v in checks]
    return f"PASS ({', '.join(margins)})"
