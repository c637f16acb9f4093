"""The watch loop's decisions, tested in-process one iteration at a time (no watcher, no sleeps).

``Daemon.iteration(paths)`` is what the daemon runs for one debounced batch of changed paths;
a fake clock drives resync and backoff. The file watcher and signals are covered by
``test_watch_daemon.py`` against a real subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest

from reconciler.app.metrics import Metrics, MetricsServer, parse_address
from reconciler.app.pull import Outcome, pull
from reconciler.app.watch import (
    AlreadyRunning,
    Backoff,
    Daemon,
    Debouncer,
    WatchOptions,
    WatchSet,
    acquire_lock,
    read_daemon_status,
    setup_logging,
    target_paths,
)
from reconciler.core.errors import UsageError
from reconciler.engine import Engine
from reconciler.store import fsutil
from tests.conftest import Workspace

SERVERS = """
servers:
  time:
    command: uvx
    args: [mcp-server-time]
"""

TARGETS = """
targets:
  desktop:
    kind: claude-desktop
"""

TWO_TARGETS = """
targets:
  desktop:
    kind: claude-desktop
  other:
    kind: claude-desktop
    path: ~/other/claude.json
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_daemon(
    ws: Workspace, clock: Clock | None = None, **options: object
) -> tuple[Daemon, Clock]:
    clock = clock or Clock()
    engine = Engine(ws.desired, ws.state_dir, home=ws.home)
    daemon = Daemon(engine, WatchOptions(**options), clock=clock)  # type: ignore[arg-type]
    return daemon, clock


def desktop_servers(ws: Workspace) -> dict[str, object]:
    data = json.loads(ws.desktop_config.read_text())
    servers: dict[str, object] = data["mcpServers"]
    return servers


def hand_edit(path: Path, server: str, args: list[str]) -> None:
    data = json.loads(path.read_text())
    data["mcpServers"][server]["args"] = args
    path.write_text(json.dumps(data, indent=2))


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    workspace.write("servers.yaml", SERVERS)
    workspace.write("targets.yaml", TARGETS)
    return workspace


# -- what is watched ---------------------------------------------------------------------


def test_watches_the_nearest_existing_parent_of_a_missing_target_file(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)  # creates ~/.config/Claude/claude_desktop_config.json
    fresh = WatchSet.build(ws.desired, {"desktop": [ws.home / "nowhere" / "deep" / "c.json"]})
    home = ws.home.resolve()
    assert home in fresh.dirs
    trigger = fresh.classify([home / "nowhere"])
    assert trigger.rewatch and trigger.targets == {"desktop"}
    assert not fresh.classify([home / "unrelated"])


def test_watches_folders_not_files_and_ignores_editor_temp_files(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    watchset = daemon.watchset
    config = ws.desktop_config.parent.resolve() / ws.desktop_config.name
    assert config.parent in watchset.dirs
    assert config not in watchset.dirs
    desired = ws.desired.resolve()
    assert watchset.classify([desired / "servers.yaml"]).desired
    assert watchset.classify([desired / "new.yml"]).desired
    for noise in (".servers.yaml.swp", "servers.yaml~", "4913", ".#servers.yaml", "notes.txt"):
        assert not watchset.classify([desired / noise]), noise
    assert watchset.classify([config]).files == {config}
    assert not watchset.classify([config.parent / "other-app.json"])
    assert not watchset.classify([config.parent / f".{config.name}.x1y2.tmp"])


def test_a_new_folder_in_desired_is_watched(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    sub = ws.desired / "more"
    sub.mkdir()
    trigger = daemon.watchset.classify([sub.resolve()])
    assert trigger.desired and trigger.rewatch
    daemon.iteration([sub.resolve()])
    assert sub.resolve() in daemon.watchset.dirs


def test_a_symlinked_target_is_watched_at_its_link_and_at_its_file(ws: Workspace) -> None:
    dotfiles = ws.home / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "claude.json"
    real.write_text("{}")
    link = ws.home / "claude.json"
    link.symlink_to(real)
    watchset = WatchSet.build(ws.desired, {"desktop": [link]})
    assert dotfiles.resolve() in watchset.dirs and ws.home.resolve() in watchset.dirs
    assert watchset.classify([real.resolve()]).files


def test_a_mirror_copy_is_watched_as_a_tree_and_its_hand_edits_are_synced(
    ws: Workspace,
) -> None:
    source, copy = ws.root / "tools/src", ws.root / "deploy/src"
    for root in (source, copy):
        (root / "lib").mkdir(parents=True)
        (root / "index.ts").write_text("main()\n")
        (root / "lib" / "util.ts").write_text("x = 1\n")
    (copy / "node_modules").mkdir()
    ws.write(
        "mirrors.yaml",
        """
        mirrors:
          tools:
            source: tools/src
            copies: [deploy/src]
            on_drift: sync
        """,
    )
    daemon, _ = make_daemon(ws)
    assert daemon.iteration(start=True) is not None
    watchset = daemon.watchset
    assert {copy.resolve(), (copy / "lib").resolve(), (source / "lib").resolve()} <= set(
        watchset.dirs
    )
    assert (copy / "node_modules").resolve() not in watchset.dirs
    edited = (copy / "lib" / "util.ts").resolve()
    edited.write_text("x = 2\n")
    assert watchset.classify([edited]).files == {edited}
    assert not watchset.classify([edited.parent / ".util.ts.a1b2.tmp"])
    record = daemon.iteration([edited])
    assert record is not None and record.targets == ("tools",)
    assert edited.read_text() == "x = 1\n"
    assert daemon.iteration([edited]) is None  # our own copy of the file: no second pass
    new_folder = (copy / "extra").resolve()
    new_folder.mkdir()
    trigger = daemon.watchset.classify([new_folder])
    assert trigger.rewatch and trigger.targets == {"tools"}


def test_target_paths_come_from_the_targets(ws: Workspace) -> None:
    ws.write("targets.yaml", TWO_TARGETS)
    engine = Engine(ws.desired, ws.state_dir, home=ws.home)
    paths = target_paths(engine, engine.load())
    assert paths == {"desktop": (ws.desktop_config,), "other": (ws.home / "other/claude.json",)}


# -- one iteration ---------------------------------------------------------------------------


def test_start_converges_and_our_own_write_does_not_trigger_a_pass(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    record = daemon.iteration(start=True)
    assert record is not None and record.trigger == "start"
    assert record.actions == {"create": 1} and record.result == "converged"
    assert "time" in desktop_servers(ws)
    # the write's own file event arrives after the pass: same content as we left, so no pass
    assert daemon.iteration([ws.desktop_config.resolve()]) is None
    assert daemon.passes == 1


def test_a_hand_edit_is_reverted_on_the_next_iteration(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    hand_edit(ws.desktop_config, "time", ["hacked"])
    record = daemon.iteration([ws.desktop_config.resolve()])
    assert record is not None and record.trigger == "target"
    assert record.actions == {"update": 1}
    assert desktop_servers(ws)["time"] == {"command": "uvx", "args": ["mcp-server-time"]}


def test_a_client_rewriting_its_file_without_changing_entries_costs_one_quiet_pass(
    ws: Workspace,
) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    data = json.loads(ws.desktop_config.read_text())
    data["clientState"] = {"windows": 2}
    ws.desktop_config.write_text(json.dumps(data, indent=4))
    before = ws.desktop_config.read_bytes()
    record = daemon.iteration([ws.desktop_config.resolve()])
    assert record is not None and record.actions == {}
    assert ws.desktop_config.read_bytes() == before  # nothing written: no event, no loop
    assert daemon.iteration([ws.desktop_config.resolve()]) is None


def test_a_target_event_reconciles_only_that_target(ws: Workspace) -> None:
    ws.write("targets.yaml", TWO_TARGETS)
    daemon, _ = make_daemon(ws)
    assert daemon.iteration(start=True).targets == ("desktop", "other")  # type: ignore[union-attr]
    other = ws.home / "other" / "claude.json"
    hand_edit(other, "time", ["hacked"])
    record = daemon.iteration([other.resolve()])
    assert record is not None and record.targets == ("other",)


def test_a_desired_change_reconciles_every_target(ws: Workspace) -> None:
    ws.write("targets.yaml", TWO_TARGETS)
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    path = ws.write("servers.yaml", SERVERS.replace("mcp-server-time]", "mcp-server-time, -v]"))
    record = daemon.iteration([path.resolve()])
    assert record is not None and record.trigger == "desired"
    assert record.targets == ("desktop", "other") and record.actions == {"update": 2}


def test_a_save_that_does_not_change_desired_content_runs_no_pass(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    path = ws.desired / "servers.yaml"
    path.write_bytes(path.read_bytes())  # an editor's save without changes
    assert daemon.iteration([path.resolve()]) is None


def test_invalid_desired_state_touches_nothing_and_recovers_when_fixed(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    broken = ws.write("broken.yaml", "servers: {time: {command: uvx}}\n")  # defined twice
    assert daemon.iteration([broken.resolve()]) is None
    assert not daemon.valid and daemon.desired_errors
    status = read_daemon_status(ws.state_dir)
    assert status is not None and status["desired_valid"] is False
    # a hand edit while desired is invalid is left alone: nothing is touched
    hand_edit(ws.desktop_config, "time", ["hacked"])
    edited = ws.desktop_config.read_bytes()
    assert daemon.iteration([ws.desktop_config.resolve()]) is None
    assert ws.desktop_config.read_bytes() == edited
    # the last good state is kept: its watch set still covers the target
    assert daemon.state is not None and "desktop" in daemon.state.targets
    assert daemon.deadline() == daemon.next_resync  # no retry timer spins meanwhile
    broken.unlink()
    record = daemon.iteration([broken.resolve()])
    assert record is not None and record.trigger == "desired" and daemon.valid
    assert desktop_servers(ws)["time"] == {"command": "uvx", "args": ["mcp-server-time"]}


def test_invalid_desired_state_at_start_waits_for_a_fix(ws: Workspace) -> None:
    ws.write("targets.yaml", "targets: {desktop: {kind: claude-desktop, typo: 1}}\n")
    daemon, _ = make_daemon(ws)
    assert daemon.iteration(start=True) is None
    assert not ws.desktop_config.exists()
    path = ws.write("targets.yaml", TARGETS)
    assert daemon.iteration([path.resolve()]) is not None
    assert ws.desktop_config.exists()


def test_debounce_waits_for_quiet_and_caps_a_burst_that_never_pauses() -> None:
    burst = Debouncer(quiet=0.2, cap=2.0)
    assert burst.wait(0.0) == float("inf") and burst.take(0.0) == set()
    burst.add([Path("/a")], 10.0)
    burst.add([Path("/b")], 10.1)
    assert burst.wait(10.1) == pytest.approx(0.2)
    assert burst.take(10.25) == set()  # only 0.15 s of quiet
    assert burst.take(10.3) == {Path("/a"), Path("/b")}
    for i in range(100):  # a save every 50 ms, for 5 s
        burst.add([Path(f"/s{i}")], 20.0 + i * 0.05)
        if (batch := burst.take(20.0 + i * 0.05)) and i < 99:
            assert 20.0 + i * 0.05 >= 22.0 - 1e-9 and len(batch) > 1
            break
    else:
        raise AssertionError("a never-ending burst was never flushed")


# -- resync and backoff --------------------------------------------------------------------


def test_backoff_doubles_from_one_second_up_to_five_minutes_and_resets() -> None:
    backoff = Backoff()
    delays = [backoff.failed("t", 0.0) for _ in range(12)]
    assert delays[:5] == [1, 2, 4, 8, 16]
    assert max(delays) == 300 and delays[-1] == 300
    assert backoff.blocked("t", 299.0) and not backoff.blocked("t", 300.0)
    assert backoff.due(300.0) == {"t"}
    backoff.succeeded("t")
    assert backoff.failed("t", 0.0) == 1


def test_resync_runs_every_target_at_a_jittered_interval(ws: Workspace) -> None:
    daemon, clock = make_daemon(ws, interval=100.0, jitter=0.1)
    daemon.iteration(start=True)
    assert 1090.0 <= daemon.deadline() <= 1110.0
    assert daemon.iteration() is None  # not yet due
    clock.now = daemon.deadline()
    record = daemon.iteration()
    assert record is not None and record.trigger == "resync"
    assert daemon.deadline() >= clock.now + 90.0


def test_resync_catches_a_change_that_no_event_reported(ws: Workspace) -> None:
    daemon, clock = make_daemon(ws, interval=60.0)
    daemon.iteration(start=True)
    hand_edit(ws.desktop_config, "time", ["missed"])
    clock.now = daemon.deadline()
    record = daemon.iteration()
    assert record is not None and record.actions == {"update": 1}


def test_a_failing_target_backs_off_and_is_retried_until_it_recovers(ws: Workspace) -> None:
    ws.write("targets.yaml", TWO_TARGETS)
    daemon, clock = make_daemon(ws)
    broken = ws.desktop_config
    broken.mkdir(parents=True)  # a folder where the file should be: the target fails
    record = daemon.iteration(start=True)
    assert record is not None and set(record.errors) == {"desktop"}
    assert daemon.backoff.failures == {"desktop": 1}
    assert daemon.deadline() == clock.now + 1.0
    # an event during the backoff does not hammer the failing target
    assert daemon.iteration([broken.resolve()]) is None
    clock.now += 1.0
    retry = daemon.iteration()
    assert retry is not None and retry.trigger == "retry" and retry.targets == ("desktop",)
    assert daemon.deadline() == clock.now + 2.0
    broken.rmdir()
    clock.now += 2.0
    recovered = daemon.iteration()
    assert recovered is not None and not recovered.errors
    assert daemon.backoff.failures == {} and daemon.backoff.next_due() is None


def test_a_writer_that_undoes_every_sync_is_backed_off(ws: Workspace) -> None:
    daemon, clock = make_daemon(ws, flap_limit=3)
    daemon.iteration(start=True)
    records = []
    for i in range(3):
        clock.now += 1.0
        hand_edit(ws.desktop_config, "time", [f"fight-{i}"])
        records.append(daemon.iteration([ws.desktop_config.resolve()]))
    assert [r.errors for r in records if r] == [{}, {}, {"desktop": "flapping"}]
    assert daemon.backoff.blocked("desktop", clock.now)
    hand_edit(ws.desktop_config, "time", ["fight-3"])
    assert daemon.iteration([ws.desktop_config.resolve()]) is None  # held back


def test_a_change_right_after_our_write_is_looked_at_again_not_backed_off(
    ws: Workspace,
) -> None:
    daemon, clock = make_daemon(ws)
    daemon.iteration(start=True)
    config = ws.desktop_config
    interfered: list[bool] = []

    def client_rewrites(path: Path, data: bytes) -> None:
        if path.name == config.name and not interfered:  # between our write and read-back
            interfered.append(True)
            hand_edit(config, "time", ["client-was-faster"])

    ws.write("servers.yaml", SERVERS.replace("mcp-server-time]", "mcp-server-time, -v]"))
    with fsutil.observe_writes(client_rewrites):
        record = daemon.iteration([(ws.desired / "servers.yaml").resolve()])
    assert record is not None and record.errors == {"desktop": ANY}
    assert daemon.backoff.failures == {} and daemon.deadline() == clock.now
    again = daemon.iteration()
    assert again is not None and again.trigger == "retry" and again.actions == {"update": 1}
    assert desktop_servers(ws)["time"] == {"command": "uvx", "args": ["mcp-server-time", "-v"]}


def test_a_recheck_finds_changes_that_produced_no_event(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    assert daemon.iteration(recheck=True) is None  # nothing differs from what we left
    ws.write("servers.yaml", SERVERS.replace("mcp-server-time]", "mcp-server-time, -q]"))
    record = daemon.iteration(recheck=True)
    assert record is not None and record.trigger == "desired"
    hand_edit(ws.desktop_config, "time", ["unseen"])
    record = daemon.iteration(recheck=True)
    assert record is not None and record.trigger == "target" and record.actions == {"update": 1}


# -- status, lock -------------------------------------------------------------------------------


def test_status_shows_the_daemons_last_pass(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    result = ws.run("status", "--json")
    assert result.exit_code == 0
    last = result.json["daemon"]["last_pass"]
    assert last["trigger"] == "start" and last["actions"] == {"create": 1}
    assert result.json["daemon"]["running"] is True  # this test process is the "daemon"
    text = ws.run("status")
    assert "daemon: running" in text.stdout and "last pass #1 (start)" in text.stdout


def test_one_daemon_per_state_directory(tmp_path: Path) -> None:
    lock = acquire_lock(tmp_path / "state")
    try:
        with pytest.raises(AlreadyRunning, match="already running"):
            acquire_lock(tmp_path / "state")
    finally:
        lock.release()
    acquire_lock(tmp_path / "state").release()


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_address_defaults_to_loopback() -> None:
    assert parse_address("9100") == ("127.0.0.1", 9100)
    assert parse_address(":9100") == ("127.0.0.1", 9100)
    assert parse_address("0.0.0.0:9100") == ("0.0.0.0", 9100)
    assert parse_address("[::1]:9100") == ("::1", 9100)
    with pytest.raises(UsageError):
        parse_address("nope")


def test_metrics_render_passes_duration_drift_and_last_success(ws: Workspace) -> None:
    daemon, _ = make_daemon(ws)
    daemon.iteration(start=True)
    text = daemon.metrics.render()
    assert 'reconciler_passes_total{result="converged"} 1' in text
    assert 'reconciler_pass_duration_seconds_bucket{le="+Inf"} 1' in text
    assert "reconciler_pass_duration_seconds_count 1" in text
    assert 'reconciler_target_drift{target="desktop"} 0' in text
    assert "reconciler_last_success_timestamp_seconds " in text
    assert "reconciler_desired_valid 1" in text


def test_metrics_server_serves_metrics_and_healthz_on_loopback() -> None:
    metrics = Metrics()
    metrics.observe_pass("drift", 0.02)
    server = MetricsServer(":0", metrics, lambda: (True, "ok"))
    try:
        assert server.host == "127.0.0.1"
        with httpx.Client(base_url=server.url, trust_env=False, timeout=5) as client:
            body = client.get("/metrics")
            assert body.status_code == 200 and body.headers["content-type"].startswith(
                "text/plain; version=0.0.4"
            )
            assert 'reconciler_passes_total{result="drift"} 1' in body.text
            assert client.get("/healthz").text == "ok\n"
            assert client.get("/other").status_code == 404
    finally:
        server.close()


# -- pull -------------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An upstream repository (bare) and a clone of it: the fleet model."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    origin = tmp_path / "origin.git"
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "desired").mkdir()
    (seed / "desired" / "servers.yaml").write_text(SERVERS.lstrip())
    (seed / "desired" / "targets.yaml").write_text(TARGETS.lstrip())
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "seed")
    git(seed, "remote", "add", "origin", str(origin))
    git(seed, "push", "-q", "-u", "origin", "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return seed, clone


def push_change(seed: Path, arg: str) -> None:
    path = seed / "desired" / "servers.yaml"
    path.write_text(SERVERS.lstrip().replace("mcp-server-time]", f"mcp-server-time, {arg}]"))
    git(seed, "commit", "-q", "-am", f"arg {arg}")
    git(seed, "push", "-q")


def test_pull_fast_forwards_to_the_upstream(fleet: tuple[Path, Path]) -> None:
    seed, clone = fleet
    assert pull(clone / "desired").outcome is Outcome.UP_TO_DATE
    push_change(seed, "--v2")
    result = pull(clone / "desired")
    assert result.outcome is Outcome.FAST_FORWARDED and result.changed
    assert "--v2" in (clone / "desired" / "servers.yaml").read_text()


def test_pull_keeps_local_commits_and_reports_a_diverged_branch(fleet: tuple[Path, Path]) -> None:
    seed, clone = fleet
    (clone / "desired" / "local.yaml").write_text("servers: {}\n")
    git(clone, "add", "desired/local.yaml")
    git(clone, "commit", "-q", "-m", "local")
    local_head = git(clone, "rev-parse", "HEAD")
    assert pull(clone / "desired").outcome is Outcome.AHEAD
    push_change(seed, "--v2")
    result = pull(clone / "desired")
    assert result.outcome is Outcome.DIVERGED and "not merged" in result.message
    assert git(clone, "rev-parse", "HEAD") == local_head  # nothing merged, nothing lost
    assert len(git(clone, "rev-list", "--merges", "HEAD").split()) == 0


def test_pull_without_a_remote_or_repository_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert pull(tmp_path / "plain").outcome is Outcome.SKIPPED
    git(tmp_path, "init", "-q", "-b", "main", str(tmp_path / "repo"))
    (tmp_path / "repo" / "desired").mkdir()
    result = pull(tmp_path / "repo" / "desired")
    assert result.outcome is Outcome.SKIPPED and "detached" not in result.message


def test_pull_errors_never_show_credentials_of_a_remote_url(fleet: tuple[Path, Path]) -> None:
    _seed, clone = fleet
    git(clone, "remote", "set-url", "origin", "https://ana:ghp_s3cr3tT0ken@127.0.0.1:9/x.git")
    result = pull(clone / "desired")
    assert result.outcome is Outcome.FAILED
    assert "ghp_s3cr3tT0ken" not in result.message and "ana:" not in result.message


def test_resync_with_pull_applies_what_was_pushed_upstream(
    fleet: tuple[Path, Path], home: Path
) -> None:
    seed, clone = fleet
    engine = Engine(clone / "desired", clone.parent / "state", home=home)
    clock = Clock()
    daemon = Daemon(engine, WatchOptions(interval=30.0, pull=True), clock=clock)
    daemon.iteration(start=True)
    push_change(seed, "--from-upstream")
    clock.now = daemon.deadline()
    record = daemon.iteration()
    assert record is not None and record.trigger == "desired"
    config = home / ".config" / "Claude" / "claude_desktop_config.json"
    assert "--from-upstream" in config.read_text()
    assert "fast-forwarded" in (daemon.last_pull or "")


# -- what the daemon says ------------------------------------------------------------------


def test_the_daemon_logs_each_change_as_target_server_action(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    daemon, _ = make_daemon(ws)
    with caplog.at_level(logging.INFO, logger="reconciler.app.watch"):
        daemon.iteration(start=True)
        hand_edit(ws.desktop_config, "time", ["hacked"])
        daemon.iteration([ws.desktop_config.resolve()])
    messages = [r.getMessage() for r in caplog.records]
    assert "desktop time create" in messages
    assert "desktop time update" in messages


@pytest.mark.parametrize(
    ("verbosity", "level"),
    [(-1, logging.WARNING), (0, logging.WARNING), (1, logging.WARNING), (2, logging.DEBUG)],
)
def test_library_request_logging_stays_off_below_vv(verbosity: int, level: int) -> None:
    root = logging.getLogger()
    kept = list(root.handlers), root.level
    try:
        setup_logging("text", verbosity)
        assert logging.getLogger("httpx").level == level
        assert logging.getLogger("httpx").isEnabledFor(logging.INFO) == (verbosity >= 2)
    finally:
        root.handlers[:] = kept[0]
        root.setLevel(kept[1])
        logging.getLogger("httpx").setLevel(logging.NOTSET)
