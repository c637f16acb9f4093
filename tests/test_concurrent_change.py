"""A file that changes between observe and apply: the write is refused and the pass retried."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.targets.base import Observation
from reconciler.targets.jsonclients import ClaudeDesktop
from tests.conftest import Workspace


def test_change_after_observe_is_not_lost(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.write(
        "desired.yaml",
        """
        servers:
          time: {command: uvx}
        targets:
          desktop: {kind: claude-desktop}
    """,
    )
    config = workspace.desktop_config
    config.parent.mkdir(parents=True)
    config.write_text('{"mcpServers": {}}\n')
    original = ClaudeDesktop.observe
    calls: list[int] = []

    def observe_then_app_writes(self: ClaudeDesktop) -> Observation:
        seen = original(self)
        if not calls:  # the app saves its own setting right after our first read
            data: dict[str, Any] = json.loads(config.read_text())
            data["globalShortcut"] = "Alt+Space"
            config.write_text(json.dumps(data))
        calls.append(1)
        return seen

    monkeypatch.setattr(ClaudeDesktop, "observe", observe_then_app_writes)

    result = workspace.run()

    assert result.exit_code == 0, result.stdout
    data = json.loads(config.read_text())
    assert data["globalShortcut"] == "Alt+Space", "the app's write survived"
    assert data["mcpServers"] == {"time": {"command": "uvx"}}
    assert len(calls) >= 3, "observed, refused, observed again, verified"
