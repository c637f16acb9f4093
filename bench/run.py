"""The benchmark suite: every speed bar of issue 14 (DESIGN section 9) in one run, one report.

    python bench/run.py                                # full run (~15 min): bench/REPORT.md
    python bench/run.py --quick --report /tmp/r.md     # tiny sizes, one round, well under 60 s
    python bench/run.py --only dry-runs --report /tmp/r.md   # some groups (see --help)

Why it is built this way: users meet the tool as a process (in shells, pre-commit hooks, CI, and
as a daemon), so every row drives ``python -m reconciler`` as a subprocess in a temp HOME with
``--desired`` and ``--state-dir`` in temp dirs, never the package's internals; the numbers stay
comparable across refactorings of reconciler/. A bar that is a ratio is measured as one, in the
same run, its two sides alternated (A B A B) so the machine's load cancels out. The report
(written through reportfile.py) gives the machine, then per row the median and min–max of its
runs, the bar, and PASS/MISS with by how much; a full run adds profiles of the no-op passes, so
a miss comes with where the time goes.

``--quick`` shows only that the suite runs and writes its report (tests/test_bench_quick.py); at
its sizes the bars mean nothing. The mirror and soak rows take minutes and run in full mode only.
Exit status: 1 when a row could not be measured (its result says ERROR), else 0, bars met or not.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ helpers

import fixtures
from measure import (
    BENCH,
    ROOT,
    Row,
    Sample,
    alternate,
    at_least,
    at_most,
    bench_env,
    checked,
    ratios,
    run_process,
    summary,
    worst,
)
from reportfile import REPORT, update_section

from tests import realclients
from tests.daemon_harness import DaemonProcess
from tests.fakes.mcpjungle import Delay, FakeMCPJungle

HEADING = "## Suite (bench/run.py)"


@dataclass(frozen=True)
class Sizes:
    """How much each row does; FULL is what the bars are about."""

    small: tuple[int, int] = (20, 6)  # servers x targets
    medium: tuple[int, int] = (200, 8)
    large: tuple[int, int] = (2000, 8)
    rounds: int = 7
    apply_servers: int = 20
    apply_rounds: int = 3
    jungle_servers: int = 500
    reaction_debounce_ms: int = 200  # the daemon's default
    reaction_samples: int = 60
    idle_windows: int = 6
    idle_window_s: float = 10.0
    probe: tuple[int, int] = (20, 5)  # servers, of which hanging
    probe_timeout_s: int = 10  # the command's default
    probe_rounds: int = 3
    long_rows: bool = True  # mirror and soak (minutes each)
    profile: bool = True


FULL = Sizes()
QUICK = Sizes(
    small=(5, 6),
    medium=(10, 8),
    large=(40, 8),
    rounds=1,
    apply_servers=2,
    apply_rounds=1,
    jungle_servers=20,
    reaction_debounce_ms=50,
    reaction_samples=3,
    idle_windows=1,
    idle_window_s=3.0,
    probe=(4, 1),
    probe_timeout_s=3,
    probe_rounds=1,
    long_rows=False,
    profile=False,
)


@dataclass
class Context:
    """What every group gets: a work dir, the sizes, and how to run the tool there."""

    work: Path
    sizes: Sizes
    report: Path
    profiles: list[str] = field(default_factory=list)  # report lines of profile()

    @property
    def pycache(self) -> Path:
        return self.work / "pycache"

    def env(self, root: Path) -> dict[str, str]:
        return bench_env(root / "home", self.pycache)

    def reconcile(self, root: Path, *args: str, timeout: float = 600) -> Sample:
        """``python -m reconciler ARGS --desired root/desired --state-dir root/state``."""
        argv = [sys.executable, "-m", "reconciler", *args]
        argv += ["--desired", str(root / "desired"), "--state-dir", str(root / "state")]
        return run_process(argv, env=self.env(root), cwd=root, timeout=timeout)


@dataclass(frozen=True)
class Group:
    key: str
    rows: tuple[str, ...]  # the row names it reports, also when it fails
    run: Callable[[Context], list[Row]]


GROUPS: list[Group] = []


def group(key: str, *rows: str) -> Callable[[Callable[[Context], list[Row]]], Any]:
    def register(fn: Callable[[Context], list[Row]]) -> Callable[[Context], list[Row]]:
        GROUPS.append(Group(key, rows, fn))
        return fn

    return register


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def size(pair: tuple[int, int]) -> str:
    return f"{pair[0]:,} x {pair[1]}"


# --------------------------------------------------------------------------- rows


@group(
    "dry-runs",
    "no-op dry run vs floor, small",
    "no-op dry run vs floor, large",
    "no-op dry run time, large",
    "growth, large / medium",
    "peak memory, large dry run",
)
def dry_runs(ctx: Context) -> list[Row]:
    """No-op `reconcile --dry-run` (whole process) after one apply, on the first T kinds of
    the mix (bench/fixtures.py), against the floor: a bare script that parses the same desired
    files with PyYAML's C loader and the same client files with json/tomllib. One round runs
    small, its floor, large, its floor, medium; ratios are per round. Peak memory is the dry
    run's own ru_maxrss."""
    s = ctx.sizes
    roots: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for label, (servers, targets) in (("small", s.small), ("medium", s.medium), ("large", s.large)):
        root = fixtures.write_desired(ctx.work / f"dry-{label}", servers, fixtures.KINDS[:targets])
        checked(ctx.reconcile(root), f"the first apply of {servers} x {targets}")
        roots[label] = (root, fixtures.KINDS[:targets])

    def dry(label: str) -> Callable[[], Sample]:
        root, _ = roots[label]
        return lambda: checked(ctx.reconcile(root, "--dry-run"), f"the {label} no-op dry run")

    def floor(label: str) -> Callable[[], Sample]:
        root, kinds = roots[label]
        argv = fixtures.floor_argv(root, kinds)
        return lambda: checked(run_process(argv, env=ctx.env(root)), f"the {label} floor")

    commands = {
        "small": dry("small"),
        "small floor": floor("small"),
        "large": dry("large"),
        "large floor": floor("large"),
        "medium": dry("medium"),
    }
    runs = alternate(commands, s.rounds)
    wall = {name: [x.wall_s for x in samples] for name, samples in runs.items()}
    med = {name: statistics.median(values) for name, values in wall.items()}
    small_r = ratios(wall["small"], wall["small floor"])
    large_r = ratios(wall["large"], wall["large floor"])
    growth = ratios(wall["large"], wall["medium"])
    rss = [x.maxrss_mb for x in runs["large"]]
    profile(ctx, f"no-op dry run, {size(s.small)}", roots["small"][0], "--dry-run")
    profile(ctx, f"no-op dry run, {size(s.large)}", roots["large"][0], "--dry-run")
    small_kinds = ", ".join(roots["small"][1])
    return [
        Row(
            "no-op dry run vs floor, small",
            f"{size(s.small)} ({small_kinds}): dry run {ms(med['small'])}, "
            f"floor {ms(med['small floor'])}",
            *summary(small_r, ".2f"),
            "≤ 2x the floor",
            at_most(statistics.median(small_r), 2),
        ),
        Row(
            "no-op dry run vs floor, large",
            f"{size(s.large)} (every kind): dry run {ms(med['large'])}, "
            f"floor {ms(med['large floor'])}",
            *summary(large_r, ".2f"),
            "≤ 2.5x the floor",
            at_most(statistics.median(large_r), 2.5),
        ),
        Row(
            "no-op dry run time, large",
            f"{size(s.large)}, whole process (s)",
            *summary(wall["large"], ".3f"),
            "< 0.8 s",
            at_most(med["large"], 0.8),
        ),
        Row(
            "growth, large / medium",
            f"time({size(s.large)}) / time({size(s.medium)}); medium {ms(med['medium'])}",
            *summary(growth, ".2f"),
            "≤ 10",
            at_most(statistics.median(growth), 10),
        ),
        Row(
            "peak memory, large dry run",
            f"{size(s.large)}, ru_maxrss of the process (MB)",
            *summary(rss, ".1f"),
            "< 100 MB",
            at_most(statistics.median(rss), 100),
        ),
    ]


@group("start-up", "start-up: import reconciler.cli.main")
def startup(ctx: Context) -> list[Row]:
    """`python -c "import reconciler.cli.main"` minus a bare `python -c pass`, alternated: the
    share of every command's time spent before it does anything. No bar of its own."""
    root = ctx.work / "start-up"
    (root / "home").mkdir(parents=True)

    def python(code: str) -> Callable[[], Sample]:
        argv = [sys.executable, "-c", code]
        return lambda: checked(run_process(argv, env=ctx.env(root)), code)

    runs = alternate(
        {"import": python("import reconciler.cli.main"), "bare": python("pass")}, ctx.sizes.rounds
    )
    bare = [x.wall_s for x in runs["bare"]]
    cost = [a.wall_s - b for a, b in zip(runs["import"], bare, strict=True)]
    return [
        Row(
            "start-up: import reconciler.cli.main",
            f"import time (ms) over a bare interpreter ({ms(statistics.median(bare))})",
            *summary([c * 1000 for c in cost], ".0f"),
            "none (part of every row)",
            "info",
        )
    ]


APPLY_KINDS = ("claude-code", "codex", "gemini", "opencode")
CLIENT_OF = {"claude-code": "claude", "codex": "codex", "gemini": "gemini", "opencode": "opencode"}


def client_add(kind: str, name: str, spec: dict[str, Any]) -> list[str]:
    """The client's own non-interactive command adding server ``name`` at user scope."""
    if kind == "claude-code":
        entry = {"type": "http", **spec} if "url" in spec else {"type": "stdio", **spec}
        return ["mcp", "add-json", "-s", "user", name, json.dumps(entry)]
    env = [x for k, v in spec.get("env", {}).items() for x in ("--env", f"{k}={v}")]
    if kind == "gemini":
        if "url" in spec:
            return ["mcp", "add", "-s", "user", "-t", "http", name, spec["url"]]
        return ["mcp", "add", "-s", "user", *env, name, spec["command"], *spec["args"]]
    # codex and opencode: `mcp add NAME --url URL` or `mcp add NAME [--env K=V] -- CMD ARGS`
    if "url" in spec:
        return ["mcp", "add", name, "--url", spec["url"]]
    return ["mcp", "add", name, *env, "--", spec["command"], *spec["args"]]


def servers_in(home: Path, kind: str) -> int:
    """How many servers the kind's user-scope file holds (opencode's CLI writes .jsonc)."""
    path = home / fixtures.CLIENT_FILES[kind]
    if kind == "opencode" and not path.exists():
        path = path.with_suffix(".jsonc")
    text = path.read_text()
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    key = {"codex": "mcp_servers", "opencode": "mcp"}.get(kind, "mcpServers")
    return len(data.get(key, {}))


@group("apply", "apply vs the clients' own CLIs")
def apply_vs_clients(ctx: Context) -> list[Row]:
    """From nothing, in a fresh HOME each run: one `reconcile` applying N servers to Claude
    Code, Codex, Gemini CLI and opencode (user scope), against the clients' own commands adding
    the same servers one by one (`claude mcp add-json -s user`, `codex mcp add`, `gemini mcp add
    -s user`, `opencode mcp add NAME [--env K=V] -- CMD ARGS` / `--url URL`; opencode's add is
    non-interactive given a command after `--` or `--url`), run in the sandbox environment of
    tests/realclients.py. Both sides are checked to leave N servers in each file. http servers
    have no headers: `codex mcp add` cannot set any."""
    name = "apply vs the clients' own CLIs"
    n, bar = ctx.sizes.apply_servers, "≥ 50x faster"
    case = f"{n} servers to {', '.join(APPLY_KINDS)}"
    missing = [r for c in CLIENT_OF.values() if (r := realclients.missing_reason(c))]
    if missing:
        return [Row(name, case, "", "", "0", bar, f"skipped: {'; '.join(missing)}")]
    binaries = {c: str(realclients.client_binary(c)) for c in CLIENT_OF.values()}
    per_client: Counter[str] = Counter()
    runs_made = itertools.count()  # a fresh directory per run

    def tool() -> Sample:
        root = fixtures.write_desired(ctx.work / f"apply-{next(runs_made)}", n, APPLY_KINDS)
        sample = checked(ctx.reconcile(root), "reconcile applying to the four clients")
        check_counts(root / "home")
        return sample

    def clients() -> Sample:
        home = ctx.work / f"clients-{next(runs_made)}"
        home.mkdir()
        total = 0.0
        for kind, client in CLIENT_OF.items():
            for i in range(n):
                argv = [binaries[client], *client_add(kind, f"s{i}", fixtures.server(i))]
                env = realclients.client_env(home)
                sample = run_process(argv, env=env, cwd=home, timeout=120)
                checked(sample, " ".join([client, *argv[1:4]]))
                per_client[client] += sample.wall_s
                total += sample.wall_s
        check_counts(home)
        return Sample(total, 0.0, 0.0, 0, "")

    def check_counts(home: Path) -> None:
        counts = {kind: servers_in(home, kind) for kind in APPLY_KINDS}
        if set(counts.values()) != {n}:
            raise RuntimeError(f"expected {n} servers in every client file, found {counts}")

    warm = ctx.work / "apply-warm"
    (warm / "home").mkdir(parents=True)
    for binary in binaries.values():  # load each client from disk once (not measured)
        run_process([binary, "--version"], env=realclients.client_env(warm / "home"))
    runs = alternate({"tool": tool, "clients": clients}, ctx.sizes.apply_rounds, warmup=0)
    tool_s = [x.wall_s for x in runs["tool"]]
    clients_s = [x.wall_s for x in runs["clients"]]
    speedup = ratios(clients_s, tool_s)
    rounds_done = len(clients_s)
    shares = ", ".join(f"{c} {v / rounds_done:.1f} s" for c, v in per_client.items())
    return [
        Row(
            name,
            f"{case}: reconcile {ms(statistics.median(tool_s))}, their CLIs "
            f"{statistics.median(clients_s):.1f} s ({shares}); speed-up (x)",
            *summary(speedup, ".0f"),
            bar,
            at_least(statistics.median(speedup), 50),
        )
    ]


class TimedJungle(FakeMCPJungle):
    """The fake MCPJungle, recording how long it spends on each request (from reading it to
    the last byte of the answer), so that a pass's time in HTTP can be told apart."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spans: list[tuple[float, float]] = []

    def _serve(self, handler: Any) -> None:
        start = time.monotonic()
        try:
            super()._serve(handler)
        finally:
            self.spans.append((start, time.monotonic()))


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one span was open."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


JUNGLE_LATENCY_S = 0.005


@group("mcpjungle", "MCPJungle no-op: HTTP requests", "MCPJungle no-op: share of pass in HTTP")
def mcpjungle(ctx: Context) -> list[Row]:
    """A no-op pass (`reconcile`, not a dry run, so a write would show) on an MCPJungle target
    holding N servers (three tools each, one denied by policy), against tests/fakes/mcpjungle.py
    in this process with 5 ms added before every answer. Requests are counted from the fake's
    log; the time in them is the fake's handling time (overlaps counted once) over the pass's
    `duration_s` in status.json."""
    n = ctx.sizes.jungle_servers
    counts, shares, durations, walls = [], [], [], []
    with TimedJungle(fixtures.jungle_upstreams(n)) as fake:
        root = fixtures.write_jungle_desired(ctx.work / "jungle", n, fake.url)
        checked(ctx.reconcile(root), "the first apply to the fake MCPJungle")
        fake.inject("*", "*rest", *[Delay(JUNGLE_LATENCY_S)] * 20_000)
        for round_no in range(1 + ctx.sizes.rounds):
            fake.reset_log()
            fake.spans.clear()
            sample = checked(ctx.reconcile(root), "the no-op pass on MCPJungle")
            if fake.mutations:
                raise RuntimeError(f"the no-op pass changed MCPJungle: {fake.mutations[:3]}")
            if round_no == 0:
                continue  # warm-up
            status = json.loads((root / "state" / "status.json").read_text())
            counts.append(len(fake.requests))
            durations.append(status["duration_s"])
            shares.append(covered(fake.spans) / status["duration_s"] * 100)
            walls.append(sample.wall_s)
        profile(ctx, f"MCPJungle no-op pass, {n} servers", root)
    case = f"{n} servers, {ms(JUNGLE_LATENCY_S)} per request"
    return [
        Row(
            "MCPJungle no-op: HTTP requests",
            f"{case}: requests per pass",
            *summary(counts, "d"),
            "≤ 2",
            at_most(max(counts), 2),
        ),
        Row(
            "MCPJungle no-op: share of pass in HTTP",
            f"{case}: pass {ms(statistics.median(durations))} (process "
            f"{ms(statistics.median(walls))}); % of the pass in requests",
            *summary(shares, ".0f"),
            "≥ 50% (dominated by them)",
            at_least(statistics.median(shares), 50),
        ),
    ]


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """``processes`` busy loops beside the block (one per CPU: the machine is saturated)."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)
    ]
    try:
        yield
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()


@group(
    "daemon-reaction",
    "daemon: save to target written",
    "daemon: save to target written, CPU load beside",
)
def daemon_reaction(ctx: Context) -> list[Row]:
    """bench/watch_reaction.py: `reconcile watch` as a subprocess (10 servers, a Claude Desktop
    target); an editor-style atomic save of servers.yaml, timed until the client file holds the
    change; minus the debounce. The second row runs the same with one busy loop per CPU beside
    it (a saturated machine, harsher than another test suite)."""
    import watch_reaction

    d, n = ctx.sizes.reaction_debounce_ms, ctx.sizes.reaction_samples
    idle = watch_reaction.measure(d, n)["save_to_target"]
    with cpu_load(os.cpu_count() or 1):
        loaded = watch_reaction.measure(d, n)["save_to_target"]
    rows = []
    for name, s in (
        ("daemon: save to target written", idle),
        ("daemon: save to target written, CPU load beside", loaded),
    ):
        median, p99 = s["median_after_debounce_ms"], s["p99_after_debounce_ms"]
        rows.append(
            Row(
                name,
                f"debounce {d} ms, {s['n']:g} saves; ms after the debounce, p99 {p99:.0f} ms",
                f"{median:.0f}",
                f"{s['min_ms'] - d:.0f}–{s['max_ms'] - d:.0f}",
                f"{s['n']:g}",
                "median < 50 ms, p99 < 100 ms",
                worst(("median", at_most(median, 50)), ("p99", at_most(p99, 100))),
            )
        )
    return rows


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, all threads (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wakeups(pid: int) -> int:
    """Context switches of every thread so far: how often the process woke up."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as handle:
            for line in handle:
                if "ctxt_switches:" in line:  # voluntary and nonvoluntary
                    total += int(line.split()[1])
    return total


@group("daemon-idle", "daemon: idle CPU")
def daemon_idle(ctx: Context) -> list[Row]:
    """`reconcile watch` (default options) on the small fixture; after its start pass and a
    quiet second, its CPU time from /proc/PID/stat over idle windows. Bar: ~0, taken as at
    most one clock tick (10 ms) per 60 s."""
    s = ctx.sizes
    root = fixtures.write_desired(ctx.work / "idle", s.small[0], fixtures.KINDS[: s.small[1]])
    desired, state, home = root / "desired", root / "state", root / "home"
    windows = []
    with DaemonProcess(desired, state, home, root / "daemon.log") as proc:
        proc.wait_for_passes(1, timeout=60)
        proc.wait_quiet(1.0)
        passes, woke = len(proc.passes()), wakeups(proc.pid)
        for _ in range(s.idle_windows):
            before = cpu_seconds(proc.pid)
            time.sleep(s.idle_window_s)
            windows.append(cpu_seconds(proc.pid) - before)
        passes, woke = len(proc.passes()) - passes, wakeups(proc.pid) - woke
    idle_s = s.idle_windows * s.idle_window_s
    per_minute = sum(windows) / idle_s * 60
    return [
        Row(
            "daemon: idle CPU",
            f"{idle_s:.0f} s idle, {size(s.small)}: CPU s per {s.idle_window_s:.0f} s window; "
            f"{per_minute:.3f} s per 60 s, {woke} thread wake-ups, {passes} passes",
            *summary(windows, ".2f"),
            "≤ 0.01 s per 60 s",
            at_most(round(per_minute, 3), 0.01),
        )
    ]


@group("probe", "probe: 20 servers, 5 hanging")
def probe(ctx: Context) -> list[Row]:
    """`reconcile probe --timeout T --json` over stdio servers generated from the `mcp` SDK's
    MCPServer (bench/fixtures.py), some of which start and never answer (`required: false`);
    whole process. Run only when `reconcile probe --help` succeeds."""
    name = "probe: 20 servers, 5 hanging"
    (servers, hanging), timeout = ctx.sizes.probe, ctx.sizes.probe_timeout_s
    bar = f"≤ timeout + 2 s ({timeout + 2} s)"
    case = f"{servers} servers, {hanging} hanging, --timeout {timeout}"
    root = fixtures.write_probe_desired(ctx.work / "probe", servers, hanging)
    help_run = ctx.reconcile(root, "probe", "--help")
    if help_run.returncode != 0:
        reason = f"not run: command absent (`reconcile probe --help` exits {help_run.returncode})"
        return [Row(name, case, "", "", "0", bar, reason)]
    walls = []
    for _ in range(ctx.sizes.probe_rounds):
        sample = ctx.reconcile(root, "probe", "--timeout", str(timeout), "--json", timeout=120)
        walls.append(checked(sample, "reconcile probe", ok=(0, 1, 3)).wall_s)
    return [
        Row(
            name,
            f"{case}: whole process (s)",
            *summary(walls, ".2f"),
            bar,
            at_most(statistics.median(walls), timeout + 2),
        )
    ]


def long_row_skipped(name: str, ctx: Context) -> list[Row] | None:
    if ctx.sizes.long_rows:
        return None
    return [Row(name, "", "", "", "0", "", "not run: --quick (minutes long; full run only)")]


@group("mirror", "mirror no-op")
def mirror(ctx: Context) -> list[Row]:
    """bench/bench_mirror.py as a subprocess (20,000 files of 1-4 KiB and one copy, in process
    `Engine.run`, median of 5); it also rewrites its own section of the report. No bar in the
    issue: tracked against its floor, a bare walk + lstat of both trees."""
    name = "mirror no-op"
    if skipped := long_row_skipped(name, ctx):
        return skipped
    argv = [sys.executable, str(BENCH / "bench_mirror.py"), "--json", "--update-report"]
    argv += ["--report", str(ctx.report)]
    root = ctx.work / "mirror"
    (root / "home").mkdir(parents=True)
    sample = checked(run_process(argv, env=ctx.env(root), timeout=1800), "bench_mirror.py")
    result = json.loads(sample.output.strip().splitlines()[-1])
    warm, walk = result["samples_s"]["warm_dry"], result["samples_s"]["bare_walk"]
    cold = statistics.median(result["samples_s"]["cold_dry"])
    ratio = statistics.median(warm) / statistics.median(walk)
    return [
        Row(
            name,
            f"{result['files']:,} files, warm dry run (s); cold {cold:.2f} s, bare walk "
            f"{statistics.median(walk):.2f} s",
            *summary(warm, ".3f"),
            "none (tracked)",
            f"info: {ratio:.1f}x a bare walk + lstat",
        )
    ]


@group("soak", "watch soak")
def soak(ctx: Context) -> list[Row]:
    """bench/watch_soak.py as a subprocess: 10,000 iterations of the daemon's loop in process,
    each a real pass. Bar from tests/test_watch_soak.py: no fd or child growth after warm-up,
    RSS growth under 3 MB."""
    name = "watch soak"
    if skipped := long_row_skipped(name, ctx):
        return skipped
    root = ctx.work / "soak"
    (root / "home").mkdir(parents=True)
    argv = [sys.executable, str(BENCH / "watch_soak.py"), "--json"]
    sample = checked(run_process(argv, env=ctx.env(root), timeout=3600), "watch_soak.py")
    result = json.loads(sample.output[sample.output.index("{") :])
    g = result["growth"]
    return [
        Row(
            name,
            f"{result['passes']:,} passes in {result['elapsed_s']} s (pass median "
            f"{result['pass_ms_median']} ms, p99 {result['pass_ms_p99']} ms); RSS growth (MB), "
            f"fds {g['fds']:+d}, children {g['children']:+d}",
            f"{g['rss_mb']:+.2f}",
            "",
            "1",
            "fds +0, children +0, RSS < +3 MB",
            worst(
                ("fds", at_most(max(g["fds"], 0), 0)),
                ("children", at_most(max(g["children"], 0), 0)),
                ("RSS", at_most(max(g["rss_mb"], 0), 3)),
            ),
        )
    ]


# --------------------------------------------------------------------------- profile


PROFILE_INTRO = (
    "### Profiles (pyinstrument)\n\n"
    "One profiled run each (sampling overhead included: the shares are what counts). Self time "
    "groups frames by function; inclusive time counts a function once per stack and lists "
    "reconciler code only, leaving out the entry chain (>= 90%)."
)


def profile(ctx: Context, label: str, root: Path, *args: str) -> None:
    """Profile one ``reconcile ARGS`` on ``root`` with pyinstrument; its hot spots go into the
    report (when pyinstrument is installed)."""
    if not ctx.sizes.profile or importlib.util.find_spec("pyinstrument") is None:
        return
    out = ctx.work / f"profile-{len(ctx.profiles)}.json"
    argv = [sys.executable, "-m", "pyinstrument", "-r", "json", "-o", str(out), "-m"]
    argv += ["reconciler", *args, "--desired", str(root / "desired")]
    argv += ["--state-dir", str(root / "state")]
    checked(run_process(argv, env=ctx.env(root), cwd=root), f"pyinstrument ({label})")
    ctx.profiles += ["", *hot_spots(json.loads(out.read_text()), label)]


def hot_spots(profile: dict[str, Any], label: str, top: int = 8) -> list[str]:
    root = profile["root_frame"]
    total = root["time"]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    imports = 0.0

    def key(frame: dict[str, Any]) -> str:
        path = frame["file_path_short"].replace(str(ROOT) + "/", "")
        return f"`{frame['function']}` ({path}:{frame['line_no']})"

    def walk(frame: dict[str, Any], stack: frozenset[str], in_import: bool) -> None:
        nonlocal imports
        name = key(frame)
        children = frame.get("children", [])
        own[name] += frame["time"] - sum(c["time"] for c in children)
        if frame.get("is_application_code") and name not in stack:
            inclusive[name] += frame["time"]
        starts_import = frame["function"] == "<module>" and frame is not root
        if starts_import and not in_import:
            imports += frame["time"]
        for child in children:
            walk(child, stack | {name}, in_import or starts_import)

    walk(root, frozenset(), False)
    app = [(k, v) for k, v in inclusive.most_common() if v < 0.9 * total][:top]
    return [
        f"**{label}** ({total * 1000:.0f} ms profiled; module imports {imports / total:.0%}):",
        "",
        "| self time | function | | inclusive | reconciler function |",
        "|---|---|---|---|---|",
        *(
            f"| {a[1] / total:.0%} | {a[0]} | | {b[1] / total:.0%} | {b[0]} |"
            for a, b in zip(own.most_common(top), app, strict=False)
        ),
    ]


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 2**20:.1f} GiB RAM"
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = (
        " with uncommitted changes in reconciler/"
        if git("status", "--porcelain", "reconciler")
        else ""
    )
    return head + dirty


def report_text(ctx: Context, rows: list[Row], started: str, elapsed: float, load: str) -> str:
    command = "python bench/run.py --quick" if ctx.sizes == QUICK else "python bench/run.py"
    mode = " (sizes too small for the bars to mean anything)" if ctx.sizes == QUICK else ""
    lines = [
        HEADING,
        "",
        f"`{command}`{mode}, {started}, {elapsed / 60:.1f} min, code at {commit()}. "
        f"Machine: {machine()}; load average {load}.",
        "",
        "Each sample is a new process in a temp HOME; compared commands alternate within each "
        "round and ratios are per round; a warm-up round is dropped. Median and min–max are "
        "over the runs; bytecode is cached (PYTHONPYCACHEPREFIX), as on an installed machine. "
        "The sections after this one are single scripts' own runs with their analysis (the "
        "mirror's is rewritten by this run; the watch sections are older).",
        "",
        "| row | case | median | min–max | runs | bar | result |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r.name} | {r.case} | {r.median} | {r.spread} | {r.runs} | {r.bar} | {r.result} |"
            for r in rows
        ),
        "",
        "How each row is measured:",
        "",
        *(f"- **{'; '.join(g.rows)}**: {' '.join((g.run.__doc__ or '').split())}" for g in GROUPS),
    ]
    if ctx.profiles:
        lines += ["", PROFILE_INTRO, *ctx.profiles]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--report", type=Path, default=REPORT, help="report file to update")
    parser.add_argument("--only", action="append", choices=[g.key for g in GROUPS])
    args = parser.parse_args()
    if args.quick and args.report.resolve() == REPORT:
        parser.error("--quick never writes bench/REPORT.md: give --report PATH")
    rows: list[Row] = []
    errors = 0
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ctx = Context(Path(tmp), QUICK if args.quick else FULL, args.report)
        for g in GROUPS:
            if args.only and g.key not in args.only:
                rows += [Row(n, "", "", "", "0", "", "not run: --only") for n in g.rows]
                continue
            print(f"[{time.monotonic() - t0:6.1f} s] {g.key} ...", file=sys.stderr, flush=True)
            try:
                rows += g.run(ctx)
            except Exception as exc:
                errors += 1
                first = " ".join(str(exc).split())[:300]
                rows += [
                    Row(n, "", "", "", "0", "", f"ERROR: {type(exc).__name__}: {first}")
                    for n in g.rows
                ]
        load = f"{load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
        text = report_text(ctx, rows, started, time.monotonic() - t0, load)
    update_section(HEADING, text, args.report)
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
