"""Benchmark: the cost of a no-op pass (DESIGN section 9 speed bars).

1. A no-op `reconcile --dry-run` on 20 servers x 6 file targets, as a user runs it (a new
   process, start-up included), against a bare Python script that only parses the same files.
2. An in-process pass on 2,000 servers x 8 targets, and the same at other sizes to show the
   cost is linear in servers x targets.

Run: python bench/bench_pass.py [--update-report]
Everything happens in a temp dir with HOME pointed into it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from reportfile import update_section

ROOT = Path(__file__).resolve().parent.parent
KINDS = ["claude-desktop"]  # file-target kinds used; more kinds spread the work the same way


def make_desired(root: Path, servers: int, targets: int) -> Path:
    desired = root / "desired"
    desired.mkdir(parents=True)
    lines = ["servers:"]
    for i in range(servers):
        lines += [f"  s{i}:", "    command: uvx", f"    args: [pkg-{i}, --flag={i}]",
                  f"    env: {{VAR_{i}: value-{i}}}"]
    (desired / "servers.yaml").write_text("\n".join(lines) + "\n")
    lines = ["targets:"]
    for t in range(targets):
        kind = KINDS[t % len(KINDS)]
        lines += [f"  t{t}:", f"    kind: {kind}", f"    path: {root}/clients/t{t}.json"]
    (desired / "targets.yaml").write_text("\n".join(lines) + "\n")
    return desired


def run_cli(args: list[str], root: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "RECONCILER_"))}
    env["HOME"] = str(root / "home")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "reconciler", *args, "--desired",
                             str(root / "desired"), "--state-dir", str(root / "state")],
                            env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(result.stdout + result.stderr)
    return elapsed


BARE = textwrap.dedent("""
    import json, sys, pathlib
    from ruamel.yaml import YAML
    root = pathlib.Path(sys.argv[1])
    yaml = YAML()
    for p in sorted((root / "desired").glob("*.yaml")):
        yaml.load(p.read_text())
    for p in sorted((root / "clients").glob("*.json")):
        json.loads(p.read_text())
""")


def run_bare(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", BARE, str(root)], check=True)
    return time.perf_counter() - start


def median_of(fn: object, repeat: int) -> float:
    samples = [fn() for _ in range(repeat)]  # type: ignore[operator]
    return statistics.median(samples)


def in_process_pass(servers: int, targets: int) -> tuple[float, float]:
    from reconciler.engine import Engine, PassOptions

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_desired(root, servers, targets)
        engine = Engine(root / "desired", root / "state", home=root / "home", environ={})
        start = time.perf_counter()
        first = engine.run(PassOptions())
        apply_s = time.perf_counter() - start
        assert first.exit_code == 0, first.to_json()
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            report = engine.run(PassOptions(dry_run=True))
            samples.append(time.perf_counter() - start)
            assert report.exit_code == 0
        return apply_s, statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--update-report", action="store_true")
    args = parser.parse_args()
    lines = ["## No-op pass (bench/bench_pass.py)", ""]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_desired(root, 20, 6)
        run_cli([], root)  # apply once, so the dry run below is a no-op
        cli = median_of(lambda: run_cli(["--dry-run"], root), 7)
        bare = median_of(lambda: run_bare(root), 7)
    lines.append(f"- 20 servers x 6 targets, `reconcile --dry-run` as a new process: "
                 f"median {cli * 1000:.0f} ms; bare parse of the same files: "
                 f"{bare * 1000:.0f} ms; ratio {cli / bare:.2f} (bar: <= 2)")
    lines.append("")
    lines.append("| servers x targets | first apply (s) | no-op dry run in process (s) |")
    lines.append("|---|---|---|")
    for servers, targets in ((250, 8), (500, 8), (1000, 8), (2000, 8)):
        apply_s, noop_s = in_process_pass(servers, targets)
        lines.append(f"| {servers} x {targets} | {apply_s:.3f} | {noop_s:.3f} |")
    lines.append("")
    lines.append("Bar: 2,000 x 8 under 1.5 s; cost linear in servers x targets.")
    text = "\n".join(lines)
    print(text)
    if args.update_report:
        update_section("## No-op pass", text)


if __name__ == "__main__":
    main()
