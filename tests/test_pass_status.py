"""The status file of an applying pass is written on every exit path (Flux's finalizeStatus).

``reconcile status`` and the daemon read it as "the last pass": a pass that ended badly
must not leave the previous good one standing, and an invalid invocation changes nothing.
"""

from __future__ import annotations

import gc
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


def test_the_collector_is_off_during_a_pass_and_back_on_after_it_on_every_exit_path(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass runs without the cyclic collector (its allocations would be walked again
    and again), and leaves it as it found it, also when it raises; a caller that had
    turned it off keeps it off."""
    engine = _engine(workspace)
    seen: list[bool] = []
    observe = Engine._reconcile

    def spy(self: Engine, *args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return observe(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "_reconcile", spy)
    assert gc.isenabled()
    assert engine.run(PassOptions()).exit_code == 0
    assert seen == [False] and gc.isenabled()
    with pytest.raises(Exception, match="unknown target"):
        engine.run(PassOptions(targets=("nope",)))
    assert gc.isenabled()
    gc.disable()
    try:
        engine.run(PassOptions(dry_run=True))
        assert not gc.isenabled()
    finally:
        gc.enable()
