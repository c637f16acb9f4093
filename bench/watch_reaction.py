"""Reaction time of ``reconcile watch``: from a saved file to the written target.

Starts the daemon as a subprocess in a temp HOME (as a user would run it), then repeatedly:
saves desired state (an editor-style atomic save) and times until the Claude Desktop file
holds the change; and hand-edits the client file and times until it is reverted. Reaction
includes the debounce (the quiet time the daemon waits for a burst to end); the DESIGN bar
is "within 100 ms after the debounce", so the report shows both.

    python bench/watch_reaction.py                        # debounce 200 ms and 50 ms
    python bench/watch_reaction.py --samples 100 --debounce 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.daemon_harness import DaemonProcess

SERVERS = "servers:\n" + "".join(
    f"  s{i}:\n    command: uvx\n    args: [mcp-server-{i}, --v=0]\n" for i in range(10)
)
TARGETS = "targets:\n  desktop:\n    kind: claude-desktop\n"


def atomic_save(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def poll(condition: object, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return time.monotonic()
        time.sleep(0.0005)
    raise TimeoutError("the daemon did not react")


def args_of(config: Path, server: str) -> list[str] | None:
    try:
        result: list[str] = json.loads(config.read_text())["mcpServers"][server]["args"]
    except (FileNotFoundError, ValueError, KeyError):
        return None
    return result


def measure(debounce_ms: int, samples: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="watch-reaction-") as tmp:
        root = Path(tmp)
        home, desired = root / "home", root / "repo" / "desired"
        home.mkdir()
        desired.mkdir(parents=True)
        (desired / "servers.yaml").write_text(SERVERS)
        (desired / "targets.yaml").write_text(TARGETS)
        config = home / ".config" / "Claude" / "claude_desktop_config.json"
        proc = DaemonProcess(
            desired,
            root / "state",
            home,
            root / "daemon.log",
            ["--debounce", str(debounce_ms), "--flap-limit", "0"],  # edits follow reverts
        )
        saves: list[float] = []
        reverts: list[float] = []
        with proc:
            proc.wait_for_passes(1, timeout=30)  # the start pass, logged: the daemon is idle
            for k in range(1, samples + 1):
                wall = time.time()
                atomic_save(desired / "servers.yaml", SERVERS.replace("--v=0", f"--v={k}"))
                t0 = time.monotonic()
                try:
                    t1 = poll(lambda k=k: (a := args_of(config, "s0")) and a[-1] == f"--v={k}")
                except TimeoutError:
                    print(proc.tail(), file=sys.stderr)
                    raise
                saves.append(t1 - t0)
                settle(proc, wall, "desired")

                wall = time.time()
                data = json.loads(config.read_text())
                data["mcpServers"]["s5"]["args"] = ["hand-edited"]
                atomic_save(config, json.dumps(data, indent=2))
                t0 = time.monotonic()
                try:
                    t1 = poll(lambda: (a := args_of(config, "s5")) and a[0] != "hand-edited")
                except TimeoutError:
                    print(proc.tail(), file=sys.stderr)
                    raise
                reverts.append(t1 - t0)
                settle(proc, wall, "target")
            durations = [p["duration_s"] for p in proc.passes()[1:]]
            failed = [p for p in proc.passes() if p["errors"]]
            if failed:
                print(f"debounce {debounce_ms}: {len(failed)} failed pass(es):", file=sys.stderr)
                for p in failed:
                    print(f"  {p['trigger']}: {p['errors']}", file=sys.stderr)
            assert proc.terminate() == 0
    return {
        "save_to_target": stats(saves, debounce_ms),
        "hand_edit_to_revert": stats(reverts, debounce_ms),
        "pass_duration": stats(durations, 0),
    }


def settle(proc: DaemonProcess, since: float, trigger: str) -> None:
    """Wait for the pass that handled the last step to be logged, so steps never overlap."""
    proc.wait_for(
        lambda: any(p["finished"] >= since and p["trigger"] == trigger for p in proc.passes()),
        f"the {trigger} pass log line",
    )


def stats(values: list[float], debounce_ms: int) -> dict[str, float]:
    ordered = sorted(v * 1000 for v in values)
    p99 = ordered[max(0, round(len(ordered) * 0.99) - 1)]
    median = statistics.median(ordered)
    return {
        "n": len(ordered),
        "min_ms": round(ordered[0], 1),
        "median_ms": round(median, 1),
        "p99_ms": round(p99, 1),
        "max_ms": round(ordered[-1], 1),
        "median_after_debounce_ms": round(median - debounce_ms, 1),
        "p99_after_debounce_ms": round(p99 - debounce_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--debounce", type=int, action="append")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {d: measure(d, args.samples) for d in (args.debounce or [200, 50])}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| debounce | what | n | median | p99 | max | median - debounce | p99 - debounce |")
    print("|---|---|---|---|---|---|---|---|")
    for debounce, result in results.items():
        for what, s in result.items():
            print(
                f"| {debounce} ms | {what.replace('_', ' ')} | {s['n']:g} | {s['median_ms']} ms "
                f"| {s['p99_ms']} ms | {s['max_ms']} ms | {s['median_after_debounce_ms']} ms "
                f"| {s['p99_after_debounce_ms']} ms |"
            )


if __name__ == "__main__":
    main()
