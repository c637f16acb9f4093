"""Benchmark: a no-op pass over a mirror of 20,000 files (issue 8).

A source tree and an identical copy (20,000 files each, 1-4 KiB, 200 folders) in a temp dir.
Measured in process (`Engine.run`), each the median of several runs:

- cold: no hash cache yet, every file of both trees is read and hashed;
- warm: the cache in the state directory vouches for every file, only `lstat` remains.

Baselines: a bare script that only walks and `lstat`s both trees (the floor of a warm pass),
and one that walks and hashes them (the floor of a cold pass).

The tree is generated, then the benchmark waits 2.5 s: the cache does not trust files
modified within 2 s of the scan that hashed them (git's racy-clean rule), and real trees
are older than that. Run: python bench/bench_mirror.py [--files N] [--update-report] [--json]
(bench/run.py runs it as its "mirror no-op" row.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from reportfile import REPORT, update_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_tree(root: Path, files: int, seed: int = 8) -> None:
    rng = random.Random(seed)
    per_folder = 100
    for i in range(files):
        folder = root / f"pkg{i // per_folder:03d}" / ("lib" if i % 3 else "src")
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1024, 4096)
        line = f"export const value{i} = {i}; // padding to make lines\n"
        text = (line * (size // len(line) + 1))[:size]
        (folder / f"file{i:05d}.ts").write_text(text)


def declare(root: Path) -> None:
    desired = root / "desired"
    desired.mkdir()
    (desired / "mirrors.yaml").write_text(
        "mirrors:\n  big:\n    source: source\n    copies: [copy]\n    on_drift: sync\n"
    )


def engine_pass(root: Path, state: Path, *, dry_run: bool) -> float:
    from reconciler.engine import Engine, PassOptions

    engine = Engine(root / "desired", state, home=root / "home", environ={})
    start = time.perf_counter()
    report = engine.run(PassOptions(dry_run=dry_run))
    elapsed = time.perf_counter() - start
    assert report.exit_code == 0, report.to_json()
    return elapsed


def bare_walk(root: Path, *, hash_files: bool) -> float:
    start = time.perf_counter()
    for tree in (root / "source", root / "copy"):
        for dirpath, _, filenames in os.walk(tree):
            for name in filenames:
                path = os.path.join(dirpath, name)
                os.lstat(path)
                if hash_files:
                    with open(path, "rb") as handle:
                        hashlib.sha256(handle.read()).hexdigest()
    return time.perf_counter() - start


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--update-report", action="store_true")
    parser.add_argument("--report", type=Path, default=REPORT, help="the report to update")
    parser.add_argument("--json", action="store_true", help="print the samples as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_tree(root / "source", args.files)
        shutil.copytree(root / "source", root / "copy")
        declare(root)
        time.sleep(2.5)  # older than the racy window, like any tree not edited this second

        cold_dry, cold_apply = [], []
        for i in range(args.repeat):
            cold_dry.append(engine_pass(root, root / f"state-dry-{i}", dry_run=True))
            state = root / f"state-{i}"
            cold_apply.append(engine_pass(root, state, dry_run=False))
        state = root / "state-0"
        warm_apply = [engine_pass(root, state, dry_run=False) for _ in range(args.repeat)]
        warm_dry = [engine_pass(root, state, dry_run=True) for _ in range(args.repeat)]
        cache = state / "mirror-cache"
        cache_bytes = sum(p.stat().st_size for p in cache.glob("*.json"))
        walks = [bare_walk(root, hash_files=False) for _ in range(args.repeat)]
        hashes = [bare_walk(root, hash_files=True) for _ in range(args.repeat)]
        walk, hashed = median(walks), median(hashes)

    n = args.files
    lines = [
        "## Mirror no-op pass (bench/bench_mirror.py)",
        "",
        f"{n:,} files (1-4 KiB) in the source and the same in one copy; in process "
        f"(`Engine.run`), median of {args.repeat}; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (other "
        "work on the machine inflates every row alike; compare rows with the baselines).",
        "",
        "| pass | time (s) |",
        "|---|---|",
        f"| cold, dry run (no cache; hashes {2 * n:,} files) | {median(cold_dry):.3f} |",
        f"| cold, apply (no cache; hashes and writes the cache) | {median(cold_apply):.3f} |",
        f"| warm, apply (cache vouches for every file) | {median(warm_apply):.3f} |",
        f"| warm, dry run (reads the cache, writes nothing) | {median(warm_dry):.3f} |",
        f"| baseline: bare walk + lstat of both trees | {walk:.3f} |",
        f"| baseline: bare walk + read + sha256 of both trees | {hashed:.3f} |",
        "",
        f"Cache size: {cache_bytes / 1024:.0f} KiB for both trees. A no-op pass writes "
        "nothing: neither the copy nor the cache (rewritten only when an entry changed).",
    ]
    text = "\n".join(lines)
    if args.json:
        samples = {
            "cold_dry": cold_dry,
            "cold_apply": cold_apply,
            "warm_apply": warm_apply,
            "warm_dry": warm_dry,
            "bare_walk": walks,
            "bare_hash": hashes,
        }
        print(json.dumps({"files": n, "cache_bytes": cache_bytes, "samples_s": samples}))
    else:
        print(text)
    if args.update_report:
        update_section("## Mirror no-op pass", text, args.report)


if __name__ == "__main__":
    main()
