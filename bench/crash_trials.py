"""The long crash suite: SIGKILL a real ``reconcile`` pass many times, at random moments and
at every named write point, over Claude Desktop (JSON), Claude Code (JSON, its lock), VS Code
(JSONC with a comment) and Codex (TOML with a comment). After each kill every client file
must be the old or the new content, whole; the next pass must converge, leave no temp file
and no copy of the resolved secret outside the client files, and still own the entries it
created. Prints the figures for docs/RELIABILITY.md; exit 1 on any loss.

    PYTHONPATH=. python bench/crash_trials.py [TRIALS] [--seed N]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import crashharness


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("trials", nargs="?", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    failures: list[str] = []
    killed = 0
    with tempfile.TemporaryDirectory() as scratch:
        sandbox = crashharness.make(Path(scratch))
        duration = crashharness.pass_duration(sandbox)
        points = crashharness.crash_points()
        for point in points:  # every named point once
            sandbox.reset()
            result = sandbox.run(crash_at=point)
            killed += result.returncode == -9
            problems = crashharness.check_files(sandbox) + crashharness.check_recovery(sandbox)
            failures += [f"{point}: {p}" for p in problems]
        for trial in range(args.trials):
            sandbox.reset()
            code = sandbox.kill_after(rng.uniform(duration * 0.2, duration * 1.1))
            killed += code == -9
            problems = crashharness.check_files(sandbox) + crashharness.check_recovery(sandbox)
            failures += [f"trial {trial}: {p}" for p in problems]
            if (trial + 1) % 50 == 0:
                print(f"{trial + 1} random trials, {len(failures)} failures", flush=True)
    took = time.monotonic() - started
    print(
        f"named points: {len(points)}; random trials: {args.trials}; processes killed"
        f" mid-pass: {killed}; client files checked: {4 * (len(points) + args.trials)};"
        f" losses: {len(failures)}; one uninterrupted pass: {duration:.2f} s; {took:.0f} s"
    )
    for failure in failures[:20]:
        print("  " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
