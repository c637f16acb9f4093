"""``~/.claude.json`` is rewritten by Claude Code all the time: no update of either side is lost.

A second process plays Claude Code: in a loop it takes Claude Code's lock on the file (a
``~/.claude.json.lock`` directory, as proper-lockfile makes it), reads the file, bumps two
keys of its own and replaces the file atomically. Meanwhile 50 passes run, each changing
the desired state (user and local scope targets on the same file). Afterwards the file must
hold the writer's last counter and every entry the last pass wrote, and no read, by the
writer or by a reader that takes no lock at all, may ever have seen invalid JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import Workspace

PASSES = 50

WRITER = r"""
import json, os, sys, time
path, stop, out = sys.argv[1:4]
lock = path + ".lock"
count = 0
while not os.path.exists(stop):
    while True:  # Claude Code's lock: mkdir is atomic; wait while another process holds it
        try:
            os.mkdir(lock)
            break
        except FileExistsError:
            time.sleep(0.0005)
    try:
        with open(path) as handle:
            data = json.load(handle)  # raises (and fails the test) on a torn file
        count += 1
        data["numStartups"] = count
        data.setdefault("tipsHistory", {})["writer"] = count
        with open(path + ".writer.tmp", "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(path + ".writer.tmp", path)
    finally:
        os.rmdir(lock)
    time.sleep(0.001)  # pacing, not synchronisation: a busy app saves often, not nonstop
with open(out, "w") as handle:
    json.dump({"last": count}, handle)
"""


def desired(k: int) -> str:
    servers = "\n".join(f"  p{i}: {{command: srv, args: ['{i}']}}" for i in range(k + 1))
    return (
        "servers:\n"
        f"  counter: {{command: counter, args: ['--pass', '{k}']}}\n"
        f"{servers}\n"
        "targets:\n"
        "  user: {kind: claude-code}\n"
        "  local: {kind: claude-code, scope: local, project: proj, servers: [counter]}\n"
    )


def test_no_update_lost_under_a_concurrent_writer(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.home / ".claude.json"
    config.write_text(json.dumps({"numStartups": 0, "projects": {}}, indent=2))
    (workspace.root / "proj").mkdir()
    project = str((workspace.root / "proj").resolve())
    stop, out = tmp_path / "stop", tmp_path / "writer.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(config), str(stop), str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    torn: list[str] = []
    reads = 0
    done = threading.Event()

    def read_without_lock() -> None:
        nonlocal reads
        while not done.is_set():
            text = config.read_text()
            reads += 1
            try:
                json.loads(text)
            except ValueError:
                torn.append(text)

    reader = threading.Thread(target=read_without_lock)
    reader.start()
    try:
        for k in range(PASSES):
            workspace.write("desired.yaml", desired(k))
            result = workspace.run()
            assert result.exit_code == 0, result.stdout + result.stderr
            data = json.loads(config.read_text())
            assert data["mcpServers"]["counter"]["args"] == ["--pass", str(k)]
            assert set(data["mcpServers"]) == {"counter", *(f"p{i}" for i in range(k + 1))}
            local = data["projects"][project]["mcpServers"]
            assert local["counter"]["args"] == ["--pass", str(k)]
    finally:
        stop.touch()
        done.set()
        reader.join()
        _, errors = writer.communicate(timeout=60)
    assert writer.returncode == 0, errors
    assert torn == [], "a reader saw a torn file"
    assert reads > 0

    final = json.loads(config.read_text())
    last = json.loads(out.read_text())["last"]
    assert last > 0, "the writer ran"
    assert final["numStartups"] == last, "the writer's last update survived"
    assert final["tipsHistory"]["writer"] == last
    assert final["mcpServers"]["counter"]["args"] == ["--pass", str(PASSES - 1)]
    assert len(final["mcpServers"]) == PASSES + 1, "every entry of the last pass is there"
    assert not (workspace.home / ".claude.json.lock").exists(), "the lock was released"
