"""Soak the watch loop in-process: N passes, and no growth in fds, child processes or memory.

Each iteration is what the daemon runs for one debounced batch (``Daemon.iteration``), with
real work every time: even iterations hand-edit the client file (the pass reverts it), odd
ones change desired state (reload, re-watch, update), and every 100th resync pulls from a
local upstream with git (child processes that must not outlive it). Linux only (/proc).

    python bench/watch_soak.py                  # 10,000 passes, prints a Markdown table
    python bench/watch_soak.py --passes 500 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.app.review import record_drafts
from reconciler.app.watch import Daemon, WatchOptions
from reconciler.engine import Engine

SERVERS = """servers:
  time:
    command: uvx
    args: [mcp-server-time, --n={n}]
  fetch:
    command: uvx
    args: [mcp-server-fetch]
"""
TARGETS = """targets:
  desktop:
    kind: claude-desktop
  recorded:
    kind: claude-desktop
    path: ~/recorded/claude.json
    on_drift: record
"""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def children() -> int:
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as handle:
                count += len(handle.read().split())
        except OSError:
            pass
    return count


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def sample() -> dict[str, float]:
    return {"fds": open_fds(), "children": children(), "rss_mb": round(rss_mb(), 2)}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "soak",
        "GIT_AUTHOR_EMAIL": "soak@example.invalid",
        "GIT_COMMITTER_NAME": "soak",
        "GIT_COMMITTER_EMAIL": "soak@example.invalid",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def soak(root: Path, passes: int, warmup: int = 200) -> dict[str, Any]:
    """Run ``passes`` iterations under ``root``; return samples and timings."""
    home, origin, repo = root / "home", root / "origin.git", root / "repo"
    home.mkdir(parents=True)
    _git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(root, "init", "-q", "-b", "main", str(repo))
    desired = repo / "desired"
    desired.mkdir()
    (desired / "servers.yaml").write_text(SERVERS.format(n=0))
    (desired / "targets.yaml").write_text(TARGETS)
    _git(repo, "add", "desired")
    _git(repo, "commit", "-q", "-m", "seed")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "-u", "origin", "main")

    engine = Engine(
        desired, root / "state", home=home, environ={"HOME": str(home)}, recorder=record_drafts
    )
    clock = Clock()
    daemon = Daemon(engine, WatchOptions(interval=1e9, pull=True, flap_limit=0), clock=clock)
    config = home / ".config" / "Claude" / "claude_desktop_config.json"
    assert daemon.iteration(start=True) is not None
    servers_file = (desired / "servers.yaml").resolve()
    config_key = config.parent.resolve() / config.name
    recorded = home / "recorded" / "claude.json"
    recorded_key = recorded.parent.resolve() / recorded.name

    durations: list[float] = []
    actions: dict[str, int] = {}
    samples: dict[str, dict[str, float]] = {"start": sample()}
    started = time.perf_counter()
    for i in range(1, passes + 1):
        clock.now += 1.0
        t0 = time.perf_counter()
        if i % 50 == 25:  # a live edit on a record target: a divergence commit (GitPython)
            data = json.loads(recorded.read_text())
            data["mcpServers"]["fetch"]["args"] = [f"kept-{i}"]
            recorded.write_text(json.dumps(data))
            record = daemon.iteration([recorded_key])
        elif i % 100 == 0:
            clock.now = daemon.next_resync  # a resync: pull (git children), then all targets
            record = daemon.iteration()
        elif i % 2 == 0:
            data = json.loads(config.read_text())
            data["mcpServers"]["fetch"]["args"] = [f"hand-{i}"]
            config.write_text(json.dumps(data))
            record = daemon.iteration([config_key])
        else:
            (desired / "servers.yaml").write_text(SERVERS.format(n=i))
            record = daemon.iteration([servers_file])
        durations.append(time.perf_counter() - t0)
        if record is None or record.errors:
            raise AssertionError(f"iteration {i}: {record}")
        for action, count in record.actions.items():
            actions[action] = actions.get(action, 0) + count
        if i == warmup:
            samples["after_warmup"] = sample()
    samples["end"] = sample()
    elapsed = time.perf_counter() - started
    commits = subprocess.run(
        ["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    base = samples.get("after_warmup", samples["start"])
    end = samples["end"]
    return {
        "passes": passes,
        "elapsed_s": round(elapsed, 1),
        "actions": actions,
        "commits": int(commits or 0),
        "pass_ms_median": round(statistics.median(durations) * 1000, 2),
        "pass_ms_p99": round(sorted(durations)[int(len(durations) * 0.99) - 1] * 1000, 2),
        "samples": samples,
        "growth": {
            "fds": end["fds"] - base["fds"],
            "children": end["children"] - base["children"],
            "rss_mb": round(end["rss_mb"] - base["rss_mb"], 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # one log line per pass would only measure the terminal
    with tempfile.TemporaryDirectory(prefix="watch-soak-") as tmp:
        result = soak(Path(tmp), args.passes, args.warmup)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    s = result["samples"]
    print(f"{result['passes']} passes in {result['elapsed_s']} s")
    print(f"applied: {result['actions']}; commits in the desired repository: {result['commits']}")
    print(f"pass: median {result['pass_ms_median']} ms, p99 {result['pass_ms_p99']} ms\n")
    print("| sample | open fds | child processes | RSS (MB) |")
    print("|---|---|---|---|")
    for name in ("start", "after_warmup", "end"):
        if name in s:
            print(f"| {name} | {s[name]['fds']} | {s[name]['children']} | {s[name]['rss_mb']} |")
    g = result["growth"]
    print(
        f"\ngrowth after warm-up: fds {g['fds']:+d}, children {g['children']:+d}, "
        f"RSS {g['rss_mb']:+.2f} MB"
    )


if __name__ == "__main__":
    main()
