"""Acceptance of the status page in a real browser: headless Chromium (Debian's package,
installed by ``.ci/run``) loads the page a real ``reconcile watch --ui`` serves in a sandbox
HOME with a real git desired repository, and the DOM is checked: the matrix with a drifted,
an allowed and an error cell; the detail view of the drifted cell; a divergence record with
its commit; probe health; and the page after the daemon reverted a hand edit.

Every wait polls an observable condition (the daemon's status file, the target file) until a
deadline. ``UPDATE_SCREENSHOTS=1`` copies the screenshots into ``docs/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Workspace
from tests.daemon_harness import DaemonProcess, child_env
from tests.gitrepo import commit_all, git, init_repo, isolate_git
from tests.servers import command

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS = Path(__file__).resolve().parent.parent / "docs"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def _desired() -> str:
    cmd, args = command("minimal")
    return f"""
    servers:
      time:
        command: /nonexistent/mcp-time
        args: [--local-timezone=UTC]
      fetch:
        command: /nonexistent/mcp-fetch
        args: [--max-length=5000]
      echo:
        command: {json.dumps(cmd)}
        args: {json.dumps(list(args))}
    targets:
      desktop:
        kind: claude-desktop
        on_drift: report
        servers: [time, echo]
      cursor:
        kind: cursor
        servers: [time, fetch]
      windsurf:
        kind: windsurf
        servers: [fetch]
    """


class Browser:
    """Headless Chromium, one process per page load, its profile in a temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runs = 0
        self.env = child_env(tmp / "browser-home")
        (tmp / "browser-home").mkdir(exist_ok=True)

    def _run(self, *args: str) -> str:
        assert CHROMIUM is not None
        self.runs += 1  # a fresh profile each time: no wait on a previous run's profile lock
        profile = self.tmp / f"chromium-profile-{self.runs}"
        argv = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=self.env)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def dom(self, url: str) -> str:
        return self._run("--dump-dom", url)

    def screenshot(self, url: str, name: str, size: str = "1280,1000") -> Path:
        path = self.tmp / name
        self._run(f"--screenshot={path}", f"--window-size={size}", "--hide-scrollbars", url)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("UPDATE_SCREENSHOTS"):
            shutil.copyfile(path, DOCS / name)
        return path


def _cell(dom: str, server: str, target: str) -> str:
    """The class of one matrix cell, read from the DOM Chromium built."""
    found = re.search(rf'<td class="([^"]+)" data-server="{server}" data-target="{target}">', dom)
    assert found, f"no cell {server} x {target} in the page"
    return found.group(1)


def _status(ws: Workspace) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((ws.state_dir / "daemon.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data


def _edit(path: Path, server: str, args: list[str]) -> None:
    data = json.loads(path.read_text())
    data["mcpServers"][server]["args"] = args
    path.write_text(json.dumps(data, indent=2) + "\n")


@pytest.fixture
def scene(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, DaemonProcess, str, str]]:
    ws = workspace
    isolate_git(tmp_path, monkeypatch)
    init_repo(ws.root)
    ws.write("desired.yaml", _desired())
    commit_all(ws.root)
    first = ws.run()
    assert first.exit_code == 0, first.stdout + first.stderr
    cursor = ws.home / ".cursor" / "mcp.json"
    _edit(ws.desktop_config, "time", ["--local-timezone=Asia/Tokyo"])  # drift, reported
    _edit(cursor, "time", ["--local-timezone=Europe/Paris"])
    allowed = ws.run("allow", "time", "--target", "cursor", "--reason", "Paris office")
    assert allowed.exit_code == 0, allowed.stdout + allowed.stderr
    sha = git(ws.root, "log", "-1", "--format=%H").strip()
    (ws.home / ".codeium" / "windsurf" / "mcp_config.json").write_text("{ not json")
    log = tmp_path / "daemon.log"
    args = ("--ui", "127.0.0.1:0", "--probe-interval", "600", "--debounce", "50")
    with DaemonProcess(ws.desired, ws.state_dir, ws.home, log, args) as proc:
        status = proc.wait_for(
            lambda: (s := _status(ws)) and s.get("ui") and s.get("last_probe") and s,
            "the first pass and probe, and the page's address",
            timeout=60,
        )
        yield ws, proc, str(status["ui"]), sha


def test_the_status_page_in_a_browser(
    scene: tuple[Workspace, DaemonProcess, str, str], tmp_path: Path
) -> None:
    ws, proc, url, sha = scene
    browser = Browser(tmp_path)

    page = browser.dom(f"{url}/")
    assert _cell(page, "time", "desktop") == "drift"
    assert "drift (live)" in page
    assert _cell(page, "time", "cursor") == "allowed"
    assert _cell(page, "fetch", "windsurf") == "error"
    assert _cell(page, "echo", "desktop") == "in_sync"
    record = re.search(r'<tr data-record="cursor--time">(.*?)</tr>', page, re.S)
    assert record, "the divergence record is on the page"
    assert sha[:10] in record.group(1) and "Paris office" in record.group(1)
    probe = re.search(r'<table id="probe">(.*?)</table>', page, re.S)
    assert probe
    echo = re.search(r'<tr data-server="echo">(.*?)</tr>', probe.group(1), re.S)
    time_row = re.search(r'<tr data-server="time">(.*?)</tr>', probe.group(1), re.S)
    assert echo and '<td class="up">up</td>' in echo.group(1)
    assert time_row and '<td class="down">down</td>' in time_row.group(1)
    assert "spawn:" in time_row.group(1)
    browser.screenshot(f"{url}/", "status-page.png", "1280,1150")

    detail = browser.dom(f"{url}/cell/desktop/time")
    diff = re.search(r'<table id="diff">(.*?)</table>', detail, re.S)
    assert diff and "/args/0" in diff.group(1)
    assert "Asia/Tokyo" in diff.group(1) and "--local-timezone=UTC" in diff.group(1)
    assert "update (origin live)" in detail
    browser.screenshot(f"{url}/cell/desktop/time", "status-cell.png", "1000,420")

    # A hand edit on cursor's fetch: the daemon reverts it, and the page shows that pass.
    before = proc.wait_for(_status_passes(ws), "the status file")
    cursor = ws.home / ".cursor" / "mcp.json"
    _edit(cursor, "fetch", ["--max-length=1"])
    proc.wait_for(
        lambda: (
            json.loads(cursor.read_text())["mcpServers"]["fetch"]["args"] == ["--max-length=5000"]
        ),
        "the hand edit to be reverted",
    )
    proc.wait_for(
        lambda: (n := _status_passes(ws)()) and n > before and n,
        "the reverting pass to be recorded",
    )
    after = browser.dom(f"{url}/")
    timeline = re.search(r'<table id="passes">(.*?)</table>', after, re.S)
    assert timeline
    rows = re.findall(r'<tr data-pass="(\d+)">(.*?)</tr>', timeline.group(1), re.S)
    reverted = [n for n, row in rows if int(n) > before and "cursor/fetch update" in row]
    assert reverted, "the pass that reverted the edit is on the timeline"
    # (windsurf's failures are retried with backoff: those passes are there too)
    assert 'id="backoffs"' in after and "windsurf" in after
    assert _cell(after, "fetch", "cursor") == "in_sync"
    assert _cell(after, "time", "cursor") == "allowed"  # the allowed edit stays


def _status_passes(ws: Workspace) -> Any:
    def passes() -> int | None:
        status = _status(ws)
        return int(status["passes"]) if status else None

    return passes
