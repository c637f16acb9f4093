"""Tool parity with MCPJungle: ``reconcile probe`` compares a live server's tools with the
list MCPJungle took at registration (the faithful fake), and names the fix when they differ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.targets.mcpjungle import MCPJungleTarget
from tests.conftest import Workspace
from tests.fakes.mcpjungle import FakeMCPJungle
from tests.servers import command

LISTED = ["read_thing", "unannotated", "contradictory", "not_destructive_only"]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MCPJungleTarget, "retry_delays", (0.0, 0.0))


@pytest.fixture
def jungle() -> Iterator[FakeMCPJungle]:
    # At registration, MCPJungle saw one tool fewer than the live server has now.
    with FakeMCPJungle({"things": LISTED}) as fake:
        yield fake
    assert fake.errors == []


def _desired(ws: Workspace, url: str) -> None:
    cmd, args = command("tools_server")
    ws.write(
        "servers.yaml",
        f"""
        servers:
          things:
            command: {cmd}
            args: [{", ".join(args)}]
        targets:
          jungle:
            kind: mcpjungle
            url: {url}
        """,
    )


def test_a_tool_missing_from_mcpjungles_list_is_drift_with_its_fix(
    workspace: Workspace, jungle: FakeMCPJungle
) -> None:
    _desired(workspace, jungle.url)
    assert workspace.run().exit_code == 0  # registered: the fake lists four tools
    assert sorted(n for n in jungle.tools if n.startswith("things__")) == sorted(
        f"things__{t}" for t in LISTED
    )

    result = workspace.run("probe", "--json", "--timeout", "20")
    assert result.exit_code == 1, result.stdout + result.stderr  # actionable drift
    (parity,) = result.json["parity"]
    assert parity["server"] == "things" and parity["target"] == "jungle"
    assert parity["missing"] == ["delete_thing"] and parity["stale"] == []
    assert parity["fix"] == "re-register: MCPJungle lists tools only at registration"
    assert result.json["degraded"] == []

    text = workspace.run("probe", "--timeout", "20")
    assert text.exit_code == 1
    assert "on the server, not listed by jungle: delete_thing" in text.stdout
    assert "fix: re-register: MCPJungle lists tools only at registration" in text.stdout


def test_the_same_tools_are_no_drift(workspace: Workspace, jungle: FakeMCPJungle) -> None:
    jungle.set_upstream("things", [*LISTED, "delete_thing"])
    _desired(workspace, jungle.url)
    assert workspace.run().exit_code == 0
    result = workspace.run("probe", "--json", "--timeout", "20")
    assert result.exit_code == 0, result.stdout
    assert result.json["parity"] == []
