"""Benchmark: an MCPJungle target against the fake MCPJungle (tests/fakes/mcpjungle.py).

For N servers (each with three tools, one of them denied by policy): the first applying pass
(register everything, disable governed tools, verify) and a no-op pass right after it, with
the number of HTTP requests each made (read from the fake's request log) and the wall time.
DESIGN section 9: a no-op pass costs at most 2 requests whatever the number of servers.

Run: python bench/bench_mcpjungle.py [N ...]     (default: 5 50 200 500)
The times include the fake itself (a Python ThreadingHTTPServer on 127.0.0.1).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.engine import Engine, PassOptions  # noqa: E402
from tests.fakes.mcpjungle import FakeMCPJungle  # noqa: E402


def desired(root: Path, servers: int, url: str) -> Path:
    path = root / "desired"
    path.mkdir(parents=True)
    lines = ["servers:"]
    for i in range(servers):
        lines += [
            f"  s{i}:",
            "    command: uvx",
            f"    args: [pkg-{i}, --flag={i}]",
            f"    env: {{VAR_{i}: value-{i}}}",
            "    tools: {deny: [delete_*]}",
        ]
    (path / "servers.yaml").write_text("\n".join(lines) + "\n")
    (path / "targets.yaml").write_text(
        f"targets:\n  jungle:\n    kind: mcpjungle\n    url: {url}\n"
    )
    return path


def measure(servers: int) -> tuple[float, int, float, int, int, float]:
    upstreams = {f"s{i}": ["read", "search", "delete_all"] for i in range(servers)}
    with tempfile.TemporaryDirectory() as tmp, FakeMCPJungle(upstreams) as fake:
        root = Path(tmp)
        engine = Engine(desired(root, servers, fake.url), root / "state", home=root)
        start = time.perf_counter()
        first = engine.run(PassOptions())
        apply_s = time.perf_counter() - start
        assert first.exit_code == 0, first.to_json()
        apply_requests = len(fake.requests)
        fake.reset_log()
        start = time.perf_counter()
        again = engine.run(PassOptions())
        noop_s = time.perf_counter() - start
        assert again.exit_code == 0 and not again.targets[0].changes
        start = time.perf_counter()
        engine.load()  # desired state alone: the part of a pass that is not the target's
        load_s = time.perf_counter() - start
        return apply_s, apply_requests, noop_s, len(fake.requests), len(fake.mutations), load_s


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [5, 50, 200, 500]
    os.environ.pop("HTTP_PROXY", None)
    print(
        f"{'servers':>8} {'apply s':>9} {'apply req':>10} {'no-op s':>9} {'no-op req':>10}"
        f" {'of which load s':>16}"
    )
    for n in sizes:
        apply_s, apply_req, noop_s, noop_req, noop_mut, load_s = measure(n)
        assert noop_mut == 0
        print(
            f"{n:>8} {apply_s:>9.3f} {apply_req:>10} {noop_s:>9.3f} {noop_req:>10} {load_s:>16.3f}"
        )


if __name__ == "__main__":
    main()
