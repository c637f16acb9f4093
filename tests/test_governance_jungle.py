"""``block``, ``allow`` and ``deny`` compiled into MCPJungle's tool switches, with the tools'
classes taken from the annotations the real servers send.

The tool lists behind the fake MCPJungle are what a real probe of
``@modelcontextprotocol/server-everything``, ``mcp-server-time`` and the seed story's
``tests/servers/governed.py`` returned, annotations included: the registry then holds
what it would hold had it listed them itself.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.app import toolgov
from reconciler.core.tools import ToolClass
from reconciler.probe import ProbeResult, ProbeSpec, probe_all
from reconciler.store import toollock
from reconciler.store.state import StateStore
from reconciler.targets.mcpjungle import MCPJungleTarget
from tests.conftest import Workspace
from tests.fakes.mcpjungle import FakeMCPJungle, UpstreamTool
from tests.servers import DIR, EVERYTHING

pytestmark = pytest.mark.skipif(
    not EVERYTHING.is_file()
    or shutil.which("node") is None
    or importlib.util.find_spec("mcp_server_time") is None,
    reason="server-everything or mcp-server-time is not installed (run .ci/install-servers)",
)

PY = sys.executable
SERVERS = {
    "everything": ("node", (str(EVERYTHING),)),
    "time": (PY, ("-m", "mcp_server_time", "--local-timezone=UTC")),
    "media": (PY, (str(DIR / "governed.py"),)),
}


@pytest.fixture(scope="module")
def probed() -> dict[str, ProbeResult]:
    specs = [ProbeSpec(n, "stdio", command=c, args=a) for n, (c, a) in SERVERS.items()]
    results = {r.server: r for r in probe_all(specs, timeout=30, redact=str)}
    assert all(r.ok for r in results.values()), {n: r.error for n, r in results.items()}
    return results


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MCPJungleTarget, "retry_delays", (0.0, 0.0))


@pytest.fixture
def jungle(probed: dict[str, ProbeResult]) -> Iterator[FakeMCPJungle]:
    upstreams = {
        name: [
            UpstreamTool(t.name, t.description or "", t.input_schema, t.annotations or {})
            for t in result.tools
        ]
        for name, result in probed.items()
    }
    with FakeMCPJungle(upstreams) as fake:
        yield fake
    assert fake.errors == []


def desired(ws: Workspace, url: str, policies: dict[str, dict[str, Any]]) -> None:
    lines = ["servers:"]
    for name, (command, args) in SERVERS.items():
        lines += [
            f"  {name}:",
            f"    command: {json.dumps(command)}",
            f"    args: {json.dumps(args)}",
        ]
        if name in policies:
            lines.append(f"    tools: {json.dumps(policies[name])}")
    lines += ["targets:", "  jungle:", "    kind: mcpjungle", f"    url: {url}"]
    ws.write("desired.yaml", "\n".join(lines) + "\n")


def disabled(fake: FakeMCPJungle) -> set[str]:
    return {name for name, tool in fake.tools.items() if not tool.enabled}


def not_read_only(result: ProbeResult) -> set[str]:
    return {
        f"{result.server}__{t.name}"
        for t in result.tools
        if t.tool_class is not ToolClass.READ_ONLY
    }


@pytest.mark.parametrize(
    ("server", "counts", "sample"),
    [
        # annotated throughout: the reads say read-only, the toggles and gzip only not destructive
        (
            "everything",
            {"read-only": 9, "mutating": 4, "destructive": 0},
            {"echo": ToolClass.READ_ONLY, "gzip-file-as-resource": ToolClass.MUTATING},
        ),
        ("time", {"read-only": 2, "mutating": 0, "destructive": 0}, {}),
        (
            "media",
            {"read-only": 3, "mutating": 1, "destructive": 3},
            {
                "library_audit": ToolClass.DESTRUCTIVE,  # unannotated
                "bulk_delete": ToolClass.READ_ONLY,  # wrongly annotated: trusted as it says
                "media_tag": ToolClass.MUTATING,
            },
        ),
    ],
)
def test_the_inventory_of_the_real_servers(
    probed: dict[str, ProbeResult],
    server: str,
    counts: dict[str, int],
    sample: dict[str, ToolClass],
) -> None:
    result = probed[server]
    assert result.tool_classes() == counts
    classes = {t.name: t.tool_class for t in result.tools}
    assert {name: classes[name] for name in sample} == sample


def test_block_mutating_disables_exactly_the_tools_that_are_not_read_only(
    workspace: Workspace, jungle: FakeMCPJungle, probed: dict[str, ProbeResult]
) -> None:
    block = {"block": "mutating"}
    desired(workspace, jungle.url, {"everything": block, "time": block, "media": block})
    result = workspace.run()
    assert result.exit_code == 0, result.stdout + result.stderr
    expected = set().union(*(not_read_only(r) for r in probed.values()))
    assert disabled(jungle) == expected
    assert "everything__gzip-file-as-resource" in expected  # mutating by its annotations
    assert "media__library_audit" in expected  # unannotated: destructive
    assert not any(t.startswith("time__") for t in expected)  # both tools say read-only
    jungle.reset_log()
    again = workspace.run("--json")
    assert again.exit_code == 0 and jungle.mutations == []  # a second pass is a no-op


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # block: destructive keeps the mutating media_tag
        ({"block": "destructive"}, {"library_audit", "library_stats", "media_delete"}),
        # the seed story: writes blocked, the read-only-but-unannotated tools allowed, and the
        # bulk tool that lies about being read-only denied
        (
            {
                "block": "mutating",
                "allow": ["library_*"],
                "deny": ["bulk_*"],
            },
            {"media_tag", "media_delete", "bulk_delete"},
        ),
        ({"allow": ["library_search"]}, set()),  # allow alone disables nothing
    ],
)
def test_allow_beats_block_and_deny_beats_allow(
    workspace: Workspace, jungle: FakeMCPJungle, policy: dict[str, Any], expected: set[str]
) -> None:
    desired(workspace, jungle.url, {"media": policy})
    result = workspace.run()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert disabled(jungle) == {f"media__{t}" for t in expected}


def test_a_blocked_tool_enabled_by_hand_is_disabled_again(
    workspace: Workspace, jungle: FakeMCPJungle
) -> None:
    desired(workspace, jungle.url, {"media": {"block": "mutating"}})
    assert workspace.run().exit_code == 0
    jungle.tools["media__media_delete"].enabled = True
    dry = workspace.run("--dry-run", "--json")
    assert dry.exit_code == 1
    (change,) = dry.json["targets"][0]["changes"]
    assert (change["action"], change["paths"]) == ("tool-disable", ["/tools/media_delete"])
    assert workspace.run().exit_code == 0
    assert not jungle.tools["media__media_delete"].enabled


def test_audit_finds_a_blocked_tool_enabled_on_mcpjungle(
    workspace: Workspace, jungle: FakeMCPJungle
) -> None:
    desired(workspace, jungle.url, {"media": {"block": "mutating"}})
    assert workspace.run().exit_code == 0
    clean = workspace.run("audit", "--declared", "--json")
    assert clean.exit_code == 0, clean.stdout
    assert clean.json["governance"]["findings"] == []
    jungle.tools["media__media_delete"].enabled = True
    jungle.reset_log()
    found = workspace.run("audit", "--declared", "--json")
    assert found.exit_code == 1
    (finding,) = found.json["governance"]["findings"]
    assert finding["finding"] == "blocked-enabled"
    assert (finding["server"], finding["target"], finding["tool"]) == (
        "media",
        "jungle",
        "media_delete",
    )
    assert jungle.mutations == []  # the audit changes nothing
    text = workspace.run("audit", "--declared")
    assert text.exit_code == 1
    assert (
        "blocked-enabled: tool 'media_delete' of 'media' is blocked by policy but enabled on jungle"
        in text.stdout
    )


def test_on_change_block_holds_a_tool_changed_upstream_on_mcpjungle(
    workspace: Workspace, jungle: FakeMCPJungle, probed: dict[str, ProbeResult]
) -> None:
    """The lock holds the reviewed surface of ``media``; the server then changes a tool's
    description. The probe says so (exit 1), and the next pass keeps that tool disabled on
    MCPJungle although the policy blocks nothing else, until the lock accepts it."""
    reviewed = toolgov.server_tools(probed["media"], "2026-12-01T00:00:00Z")
    toollock.save(workspace.desired, {"media": reviewed.tools})
    policy = {"on_change": "block"}
    desired(workspace, jungle.url, {"media": policy})
    text = (workspace.desired / "desired.yaml").read_text()
    changed = text.replace(
        "    tools:",
        '    env: {TOOL_DESCRIPTION: "Search, then mail the results out"}\n    tools:',
        1,
    )
    assert changed != text
    (workspace.desired / "desired.yaml").write_text(changed)

    drift = workspace.run("probe", "--server", "media", "--timeout", "30")
    assert drift.exit_code == 1 and "'library_search' of server 'media' changed" in drift.stdout
    assert workspace.run().exit_code == 0
    assert disabled(jungle) == {"media__library_search"}

    inventory = StateStore(workspace.state_dir).tool_inventory()["media"]
    toollock.save(workspace.desired, {"media": inventory.tools})  # what `probe --lock` writes
    assert workspace.run().exit_code == 0
    assert disabled(jungle) == set()
