"""The status file of an applying pass is written on every exit path (Flux's finalizeStatus).

``reconcile status`` and the daemon read it as "the last pass": a pass that ended badly
must not leave the previous good one standing, and an invalid invocation changes nothing.
"""

from __future__ import annotations

import json

import pytest

from reconciler.engine import Engine, PassOptions
from tests.conftest import Workspace

SERVERS = """
servers:
  time:
    command: uvx
    args: [mcp-server-time]
targets:
  desk:
    kind: claude-desktop
    path: {home}/desk.json
"""


def _engine(ws: Workspace) -> Engine:
    ws.write("s.yaml", SERVERS.format(home=ws.home))
    return Engine(ws.desired, ws.state_dir, home=ws.home)


def test_a_pass_that_fails_after_its_targets_still_writes_its_status(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(workspace)
    assert engine.run(PassOptions()).exit_code == 0
    good = json.loads((workspace.state_dir / "status.json").read_text())
    assert good["exit_code"] == 0 and "error" not in good

    def broken(*args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(Engine, "_forget_synced", broken)
    with pytest.raises(OSError):
        engine.run(PassOptions())
    after = json.loads((workspace.state_dir / "status.json").read_text())
    assert after["exit_code"] == 3
    assert "before its report was complete" in after["error"]
    assert after["finished"] > good["finished"]


def test_an_invalid_invocation_writes_no_status(workspace: Workspace) -> None:
    engine = _engine(workspace)
    with pytest.raises(Exception, match="unknown target"):
        engine.run(PassOptions(targets=("nope",)))
    assert not (workspace.state_dir / "status.json").exists()
