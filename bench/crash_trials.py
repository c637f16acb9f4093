"""The long crash suite: SIGKILL a real ``reconcile`` pass many times, at random moments and
at every named write point, over one client file of every file kind the targets registry
declares (``crashharness.EVERY_CLIENT``: JSON, Claude Code's with its lock, the JSONC ones
with a comment (VS Code, VS Code Insiders, Gemini, opencode, Zed), Codex TOML and the YAML
ones (Goose, Continue) with a comment). After each kill every client file must be the old
or the new content, whole (the new one checked once to be valid, with its foreign keys,
comment and unmanaged entry); the next pass must converge, leave no temp file and no copy
of the resolved secret outside the client files, and still own the entries it created.
Prints the figures for docs/RELIABILITY.md; exit 1 on any loss.

    PYTHONPATH=. python bench/crash_trials.py [TRIALS] [--seed N] [--minutes M] [--four]

``--minutes``: stop the random trials when the time is up (the count run is printed);
``--four``: the earlier sandbox of four clients (Claude Desktop, Claude Code, VS Code, Codex).
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
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--four", action="store_true")
    args = parser.parse_args()
    clients = crashharness.CLIENTS if args.four else crashharness.EVERY_CLIENT
    rng = random.Random(args.seed)
    started = time.monotonic()
    failures: list[str] = []
    killed = 0
    with tempfile.TemporaryDirectory() as scratch:
        sandbox = crashharness.make(Path(scratch), clients)
        duration = crashharness.pass_duration(sandbox)
        points = crashharness.crash_points(clients)
        for point in points:  # every named point once
            sandbox.reset()
            result = sandbox.run(crash_at=point)
            killed += result.returncode == -9
            problems = crashharness.check_files(sandbox) + crashharness.check_recovery(sandbox)
            failures += [f"{point}: {p}" for p in problems]
        print(f"{len(points)} named points, {len(failures)} failures", flush=True)
        deadline = None if args.minutes is None else started + args.minutes * 60
        trials = 0
        for trial in range(args.trials):
            if deadline is not None and time.monotonic() > deadline:
                break
            trials += 1
            sandbox.reset()
            code = sandbox.kill_after(rng.uniform(duration * 0.2, duration * 1.1))
            killed += code == -9
            problems = crashharness.check_files(sandbox) + crashharness.check_recovery(sandbox)
            failures += [f"trial {trial}: {p}" for p in problems]
            if (trial + 1) % 50 == 0:
                print(f"{trial + 1} random trials, {len(failures)} failures", flush=True)
    took = time.monotonic() - started
    print(
        f"client kinds: {len({kind for kind, _, _ in clients.values()})}; named points:"
        f" {len(points)}; random trials: {trials}; processes killed mid-pass: {killed};"
        f" client files checked: {len(clients) * (len(points) + trials)};"
        f" losses: {len(failures)}; one uninterrupted pass: {duration:.2f} s; {took:.0f} s"
    )
    for failure in failures[:20]:
        print("  " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
