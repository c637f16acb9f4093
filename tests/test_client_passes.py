"""The skeleton's scenarios on every client kind and scope, through the command line.

One table describes each client (its target in desired state, a file as the client would
have left it, with a foreign key, an unmanaged entry and a field only the client uses); the
scenarios are written once and run for every row: create, idempotent second pass (no
rewrite, mtime unchanged), update, delete with prune, unmanaged entries untouched, and a
live edit reverted. Each also checks that an environment reference reaches the file in the
client's own syntax.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler import targets
from reconciler.core.essence import from_server, mask
from reconciler.engine import load_desired
from reconciler.targets import Context
from reconciler.targets.files import FileTarget
from tests.conftest import Workspace, snapshot_tree


@dataclass(frozen=True)
class Client:
    id: str
    target: str  # the target's mapping in desired state (flow YAML)
    seed: Callable[[Path], str]  # the file's content before the first pass (project dir in)
    reference: str  # how ``${env:TIME_TOKEN}`` must be spelled in the file
    sse: bool = True
    resolved: bool = False  # the client expands no references: values go into the file


# The values of the variables SERVERS references, for the kinds that get them resolved.
VALUES = {"TIME_TOKEN": "time-token-value-0001", "API_TOKEN": "api-token-value-0002"}


def _json(data: Any) -> Callable[[Path], str]:
    return lambda project: json.dumps(data, indent=2) + "\n"


HAND = {"type": "stdio", "command": "hand-made", "args": ["x"]}

CLIENTS = [
    Client(
        "claude-desktop",
        "{kind: claude-desktop}",
        _json({"globalShortcut": "Ctrl+Space", "mcpServers": {"hand-made": {"command": "hm"}}}),
        "",  # no references: Claude Desktop cannot expand them (resolved by the secrets layer)
        sse=False,
    ),
    Client(
        "claude-code-user",
        "{kind: claude-code}",
        _json({"numStartups": 3, "mcpServers": {"hand-made": HAND}, "projects": {}}),
        "${TIME_TOKEN}",
    ),
    Client(
        "claude-code-local",
        "{kind: claude-code, scope: local, project: proj}",
        lambda project: json.dumps(
            {
                "numStartups": 3,
                "mcpServers": {"user-level": HAND},
                "projects": {
                    str(project.resolve()): {
                        "allowedTools": [],
                        "mcpServers": {"hand-made": HAND},
                        "hasTrustDialogAccepted": True,
                    }
                },
            },
            indent=2,
        ),
        "${TIME_TOKEN}",
    ),
    Client(
        "claude-code-project",
        "{kind: claude-code, scope: project, project: proj}",
        _json({"mcpServers": {"hand-made": HAND}}),
        "${TIME_TOKEN}",
    ),
    Client(
        "cursor",
        "{kind: cursor}",
        _json({"mcpServers": {"hand-made": {"command": "hm", "envFile": ".env"}}}),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "cursor-project",
        "{kind: cursor, scope: project, project: proj}",
        _json({"mcpServers": {"hand-made": {"command": "hm"}}}),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "vscode",
        "{kind: vscode}",
        lambda project: (
            '{\n  // inputs are prompted once\n  "inputs": [],\n  "servers": {\n'
            '    "hand-made": {"type": "stdio", "command": "hm"} // mine\n  }\n}\n'
        ),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "vscode-project",
        "{kind: vscode, scope: project, project: proj}",
        _json({"servers": {"hand-made": {"type": "stdio", "command": "hm"}}}),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "vscode-profile",
        "{kind: vscode, profile: -6f3a2b1c}",
        _json({"servers": {"hand-made": {"type": "stdio", "command": "hm"}}}),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "vscode-insiders",
        "{kind: vscode-insiders}",
        lambda project: (
            '{\n  // mine\n  "servers": {"hand-made": {"type": "stdio", "command": "hm"}}\n}\n'
        ),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "windsurf",
        "{kind: windsurf}",
        _json({"mcpServers": {"hand-made": {"command": "hm", "disabledTools": ["a"]}}}),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "codex",
        "{kind: codex}",
        lambda project: (
            '# mine\nmodel = "o3"\n\n[mcp_servers.hand-made]\ncommand = "hm"  # by hand\n'
            "startup_timeout_sec = 5\n"
        ),
        'env_vars = ["TIME_TOKEN"]',
        sse=False,
    ),
    Client(
        "codex-project",
        "{kind: codex, scope: project, project: proj}",
        lambda project: '[mcp_servers.hand-made]\ncommand = "hm"\n',
        'env_vars = ["TIME_TOKEN"]',
        sse=False,
    ),
    Client(
        "gemini",
        "{kind: gemini}",
        lambda project: (
            '{\n  // mine\n  "theme": "GitHub",\n'
            '  "mcpServers": {"hand-made": {"command": "hm", "trust": true}}\n}\n'
        ),
        "${TIME_TOKEN}",
    ),
    Client(
        "gemini-project",
        "{kind: gemini, scope: project, project: proj}",
        _json({"mcpServers": {"hand-made": {"command": "hm"}}}),
        "${TIME_TOKEN}",
    ),
    Client(
        "kiro",
        "{kind: kiro}",
        _json(
            {
                "powers": {},
                "mcpServers": {"hand-made": {"command": "hm", "disabledTools": ["a"]}},
            }
        ),
        "${TIME_TOKEN}",
        sse=False,
    ),
    Client(
        "kiro-project",
        "{kind: kiro, scope: project, project: proj}",
        _json({"mcpServers": {"hand-made": {"command": "hm", "autoApprove": []}}}),
        "${TIME_TOKEN}",
        sse=False,
    ),
    Client(
        "roo",
        "{kind: roo}",
        _json({"mcpServers": {"hand-made": {"command": "hm", "alwaysAllow": ["a"]}}}),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "roo-project",
        "{kind: roo, scope: project, project: proj}",
        _json({"mcpServers": {"hand-made": {"command": "hm", "timeout": 60}}}),
        "${env:TIME_TOKEN}",
    ),
    Client(
        "cline",
        "{kind: cline}",
        _json({"mcpServers": {"hand-made": {"type": "stdio", "command": "hm", "timeout": 60}}}),
        VALUES["TIME_TOKEN"],  # no references in Cline: resolved into the file
        resolved=True,
    ),
    Client(
        "lmstudio",
        "{kind: lmstudio}",
        _json({"mcpServers": {"hand-made": {"command": "hm"}}, "version": 1}),
        VALUES["TIME_TOKEN"],  # no documented references in LM Studio: resolved
        sse=False,
        resolved=True,
    ),
    Client(
        "warp",
        "{kind: warp}",
        _json({"mcpServers": {"hand-made": {"command": "hm", "working_directory": "/tmp"}}}),
        "${TIME_TOKEN}",
        sse=False,
    ),
    Client(
        "warp-project",
        "{kind: warp, scope: project, project: proj}",
        _json({"mcpServers": {"hand-made": {"serverUrl": "https://hm.example.com/mcp"}}}),
        "${TIME_TOKEN}",
        sse=False,
    ),
    Client(
        "zed",
        "{kind: zed}",
        lambda project: (
            '// Zed settings\n{\n  "theme": "One Dark",\n  "context_servers": {\n'
            '    "hand-made": {"source": "custom", "command": "hm", "args": []}, // mine\n'
            "  },\n}\n"
        ),
        VALUES["TIME_TOKEN"],  # no references in Zed: resolved into the file
        sse=False,
        resolved=True,
    ),
    Client(
        "zed-project",
        "{kind: zed, scope: project, project: proj}",
        _json({"context_servers": {"hand-made": {"command": {"path": "hm", "args": []}}}}),
        VALUES["TIME_TOKEN"],
        sse=False,
        resolved=True,
    ),
    Client(
        "crush",
        "{kind: crush}",
        _json(
            {
                "options": {"debug": False},
                "mcp": {"hand-made": {"type": "stdio", "command": "hm", "timeout": 60}},
            }
        ),
        "${TIME_TOKEN}",
    ),
    Client(
        "crush-project",
        "{kind: crush, scope: project, project: proj}",
        _json({"mcp": {"hand-made": {"type": "stdio", "command": "hm", "disabled_tools": []}}}),
        "${TIME_TOKEN}",
    ),
    Client(
        "goose",
        "{kind: goose}",
        lambda project: (
            "# mine\nGOOSE_PROVIDER: anthropic\nextensions:\n"
            "  developer:\n    enabled: true\n    name: developer\n    type: builtin\n"
            "  hand-made:\n    name: hand-made\n    type: stdio\n    cmd: hm\n"
            "    args: []\n    enabled: true\n    timeout: 300\n"
        ),
        VALUES["TIME_TOKEN"],  # Goose expands no references in the file: resolved
        sse=False,
        resolved=True,
    ),
    Client(
        "continue",
        "{kind: continue}",
        lambda project: (
            "# mine\nname: Local\nversion: 0.0.1\nschema: v1\nmcpServers:\n"
            "  - name: hand-made\n    command: hm\n    connectionTimeout: 2000\n"
        ),
        "${{ secrets.TIME_TOKEN }}",
    ),
    Client(
        "continue-project",
        "{kind: continue, scope: project, project: proj}",
        lambda project: (
            "name: Block\nversion: 0.0.1\nschema: v1\nmcpServers:\n"
            "  - name: hand-made\n    type: stdio\n    command: hm\n"
        ),
        "${{ secrets.TIME_TOKEN }}",
    ),
    Client(
        "opencode",
        "{kind: opencode}",
        lambda project: (
            '{\n  "$schema": "https://opencode.ai/config.json",\n  // mine\n'
            '  "mcp": {"hand-made": {"type": "local", "command": ["hm"], "timeout": 5000}},\n}\n'
        ),
        "{env:TIME_TOKEN}",
        sse=False,
    ),
    Client(
        "opencode-v2",  # the file's own layout: mcp.servers with "disabled"
        "{kind: opencode}",
        _json(
            {
                "$schema": "https://opencode.ai/config.json",
                "mcp": {"servers": {"hand-made": {"type": "local", "command": ["hm"]}}},
            }
        ),
        "{env:TIME_TOKEN}",
        sse=False,
    ),
    Client(
        "opencode-project",
        "{kind: opencode, scope: project, project: proj}",
        _json({"mcp": {"hand-made": {"type": "local", "command": ["hm"]}}}),
        "{env:TIME_TOKEN}",
        sse=False,
    ),
]

SERVERS = """
servers:
  time:
    command: uvx
    args: [mcp-server-time, --local-timezone=UTC]
    env: {TZ: UTC, TIME_TOKEN: "${env:TIME_TOKEN}"}
  api:
    url: https://api.example.com/mcp
    headers: {Authorization: "Bearer ${env:API_TOKEN}", X-Team: platform}
  events:
    url: https://events.example.com/sse
    transport: sse
"""
DESKTOP_SERVERS = """
servers:
  time:
    command: uvx
    args: [mcp-server-time, --local-timezone=UTC]
    env: {TZ: UTC}
  fetch:
    command: uvx
    args: [mcp-server-fetch]
"""


def placed(client: Client) -> list[str]:
    if client.id == "claude-desktop":
        return ["time", "fetch"]
    return ["time", "api", "events"] if client.sse else ["time", "api"]


class Setup:
    """A workspace with one client target, seeded as the client would have left its file."""

    def __init__(self, ws: Workspace, client: Client) -> None:
        self.ws = ws
        self.client = client
        self.project = ws.root / "proj"
        self.project.mkdir()
        self.servers = DESKTOP_SERVERS if client.id == "claude-desktop" else SERVERS
        ws.write("servers.yaml", self.servers)
        self.set_placement(placed(client))
        self.path = self.target().path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(client.seed(self.project))
        self.seeded = self.native()

    def set_placement(self, names: list[str], *, prune: bool = False) -> None:
        self.ws.write(
            "targets.yaml",
            f"targets:\n  t: {self.client.target[:-1]}, servers: {names}, "
            f"prune: {str(prune).lower()}}}\n",
        )

    def target(self) -> FileTarget:
        state = load_desired(self.ws.desired)
        context = Context(
            home=self.ws.home, platform=sys.platform, root=self.ws.root, lock_dir=None
        )
        target = targets.build("t", state.targets["t"], context)
        assert isinstance(target, FileTarget)
        return target

    def essences(self) -> dict[str, Any]:
        return dict(self.target().observe().entries)

    def native(self) -> dict[str, Any]:
        target = self.target()
        return json.loads(json.dumps(dict(target.entries(target.parse(self.path.read_bytes())))))

    def expected(self) -> dict[str, Any]:
        state = load_desired(self.ws.desired)
        capability = self.target().capability
        expected = {
            name: mask(from_server(state.servers[name]), capability)
            for name in state.placements("t")
        }
        if not self.client.resolved:
            return expected
        text = json.dumps(expected)
        for name, value in VALUES.items():
            text = text.replace("${env:" + name + "}", value)
        resolved: dict[str, Any] = json.loads(text)
        return resolved

    def trees(self) -> dict[str, tuple[bytes, int]]:
        return {**snapshot_tree(self.ws.home), **snapshot_tree(self.project)}


@pytest.fixture(params=CLIENTS, ids=lambda c: c.id)
def setup(
    request: pytest.FixtureRequest, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> Setup:
    client: Client = request.param
    for name, value in VALUES.items():
        monkeypatch.setenv(name, value)
    return Setup(workspace, client)


def test_create_writes_the_client_spelling_and_keeps_the_rest(setup: Setup) -> None:
    result = setup.ws.run("--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    (report,) = result.json["targets"]
    assert [(c["server"], c["action"]) for c in report["changes"]] == [
        (name, "create") for name in placed(setup.client)
    ]
    assert report["unmanaged"] == ["hand-made"]
    live = setup.essences()
    for name, essence in setup.expected().items():
        assert live[name] == essence
    native = setup.native()
    assert native["hand-made"] == setup.seeded["hand-made"], "unmanaged entry untouched"
    text = setup.path.read_text()
    assert setup.client.reference in text
    assert "${env:" not in text or setup.client.reference.startswith("${env:")
    if setup.client.resolved:
        assert stat.S_IMODE(setup.path.stat().st_mode) == 0o600, "resolved values: private file"
        assert all(value not in result.stdout for value in VALUES.values()), "shown redacted"
        assert '"secret":' in result.stdout  # the diff names a secret by its fingerprint
    for marker in ("// ", "# mine", "numStartups", "globalShortcut", '"theme"', "user-level"):
        if marker in setup.client.seed(setup.project):
            assert marker in text, f"{marker!r} kept"


def test_second_pass_plans_nothing_and_writes_nothing(setup: Setup) -> None:
    assert setup.ws.run().exit_code == 0
    before = setup.trees()

    again = setup.ws.run("--json")

    assert again.exit_code == 0
    assert again.json["targets"][0]["changes"] == []
    assert again.json["targets"][0]["status"] == "in_sync"
    assert setup.trees() == before, "no file rewritten (bytes and mtime)"
    assert setup.ws.run("--dry-run").exit_code == 0


def test_update_changes_only_that_entry(setup: Setup) -> None:
    assert setup.ws.run().exit_code == 0
    others = {k: v for k, v in setup.native().items() if k != "time"}
    changed = setup.servers.replace("--local-timezone=UTC", "--local-timezone=CET")
    setup.ws.write("servers.yaml", changed)

    result = setup.ws.run("--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    (change,) = result.json["targets"][0]["changes"]
    assert (change["server"], change["action"], change["origin"]) == ("time", "update", "desired")
    assert change["paths"] == ["/args/1"]
    assert setup.essences()["time"]["args"] == ["mcp-server-time", "--local-timezone=CET"]
    assert {k: v for k, v in setup.native().items() if k != "time"} == others


def test_prune_deletes_only_what_it_created(setup: Setup) -> None:
    assert setup.ws.run().exit_code == 0
    keep = placed(setup.client)[:1]
    gone = placed(setup.client)[1:]
    setup.set_placement(keep, prune=True)

    result = setup.ws.run("--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(c["server"] for c in result.json["targets"][0]["changes"]) == sorted(gone)
    assert {c["action"] for c in result.json["targets"][0]["changes"]} == {"delete"}
    native = setup.native()
    assert set(native) == {*keep, *(k for k in setup.seeded if k != "time")}
    assert native["hand-made"] == setup.seeded["hand-made"]


def test_without_prune_a_removed_server_stays_and_is_reported(setup: Setup) -> None:
    assert setup.ws.run().exit_code == 0
    setup.set_placement(placed(setup.client)[:1])

    result = setup.ws.run("--json")

    assert result.exit_code == 0
    assert result.json["targets"][0]["changes"] == []
    assert set(placed(setup.client)) <= set(setup.native())


def test_live_edit_is_reverted_and_unmanaged_edit_is_left(setup: Setup) -> None:
    assert setup.ws.run().exit_code == 0
    target = setup.target()
    observation = target.observe()
    edited = dict(observation.entries["time"], args=["mcp-server-time"])
    hand = dict(observation.entries["hand-made"], command="hand-edited")
    from reconciler.core.plan import Action
    from reconciler.targets import Write

    target.apply(
        observation,
        [Write("time", edited, Action.UPDATE), Write("hand-made", hand, Action.UPDATE)],
    )

    result = setup.ws.run("--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    (change,) = result.json["targets"][0]["changes"]
    assert (change["server"], change["origin"]) == ("time", "live")
    live = setup.essences()
    assert live["time"] == setup.expected()["time"]
    assert live["hand-made"]["command"] == "hand-edited"


def test_disable_turns_the_switch_off_or_removes_the_entry(setup: Setup) -> None:
    assert setup.ws.run().exit_code == 0
    others = {k: v for k, v in setup.native().items() if k != "time"}
    off = setup.servers.replace(
        "--local-timezone=UTC]", "--local-timezone=UTC]\n    enabled: false"
    )
    setup.ws.write("servers.yaml", off)

    result = setup.ws.run("--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    changes = result.json["targets"][0]["changes"]
    assert [(c["server"], c["action"]) for c in changes] == [("time", "disable")]
    if setup.target().capability.enabled_switch:
        assert setup.essences()["time"] == setup.expected()["time"]
        assert setup.essences()["time"]["enabled"] is False
    else:
        assert "time" not in setup.native()  # no switch in the file: disabled is absent
    assert {k: v for k, v in setup.native().items() if k != "time"} == others
    again = setup.ws.run("--json")
    assert again.json["targets"][0]["changes"] == []
