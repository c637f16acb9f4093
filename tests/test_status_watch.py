"""``reconcile status --watch``: the matrix kept on screen with rich's Live display and
redrawn when the daemon records a pass (its status file) or, without a daemon, on a timer."""

from __future__ import annotations

import io
from typing import Any

from reconciler.app.status import PassWaiter, live_matrix
from reconciler.app.watch import Daemon, read_daemon_status
from reconciler.cli.status import _matrix_frame
from reconciler.engine import Engine
from tests.conftest import Workspace

DESIRED = """
servers:
  time:
    command: uvx
    args: [mcp-server-time]
targets:
  desktop:
    kind: claude-desktop
"""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


def test_the_matrix_is_redrawn_in_place_on_each_pass() -> None:
    frames = iter(["time  drift", "time  in_sync", "time  error"])
    screen = Terminal()
    waits: list[int] = []
    drawn = live_matrix(
        lambda: next(frames), lambda: waits.append(1) or True, file=screen, frames=3
    )
    assert drawn == 3 and len(waits) == 2
    text = screen.getvalue()
    assert text.index("drift") < text.index("in_sync") < text.index("error")
    assert "\x1b[" in text  # redrawn with cursor movements, not appended lines


def test_without_a_new_pass_the_wait_ends_at_the_interval() -> None:
    fake = FakeTime()
    waiter = PassWaiter(lambda: {"passes": 3}, 10.0, poll=0.5, clock=fake.clock, sleep=fake.sleep)
    assert waiter() is False
    assert fake.now == 10.0 and fake.sleeps == 20


def test_a_pass_of_the_daemon_ends_the_wait_and_the_next_frame_shows_it(
    workspace: Workspace,
) -> None:
    workspace.write("desired.yaml", DESIRED)
    engine = Engine(workspace.desired, workspace.state_dir, home=workspace.home)
    before = _matrix_frame(engine, ())
    assert "missing" in before and "daemon:" not in before
    assert "redrawn on every pass" in before.splitlines()[0]
    daemon = Daemon(engine)
    daemon.prepare()
    fake = FakeTime()

    def sleep(seconds: float) -> None:  # the daemon's pass lands while status --watch waits
        fake.sleep(seconds)
        if fake.sleeps == 2:
            daemon.iteration(start=True)

    waiter = PassWaiter(
        lambda: read_daemon_status(workspace.state_dir),
        60.0,
        poll=0.25,
        clock=fake.clock,
        sleep=sleep,
    )
    assert waiter() is True and fake.sleeps == 2  # no wait to the interval
    after = _matrix_frame(engine, ())
    assert "in_sync" in after and "last pass #1 (start)" in after


def test_an_invalid_desired_state_is_shown_not_raised(workspace: Workspace) -> None:
    workspace.write("desired.yaml", DESIRED.replace("claude-desktop", "nope"))
    engine = Engine(workspace.desired, workspace.state_dir, home=workspace.home)
    frame: Any = _matrix_frame(engine, ())
    assert frame.splitlines()[-1].startswith("error: ") and "nope" in frame


def test_watch_is_text_only(workspace: Workspace) -> None:
    workspace.write("desired.yaml", DESIRED)
    result = workspace.run("status", "--watch", "--format", "markdown")
    assert result.exit_code == 2 and "text only" in result.stderr
