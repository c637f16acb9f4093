"""Governed tools compiled into every client's own per-tool control (DESIGN.md 6B).

One table describes each kind with a control (where its rules live, how it spells one, a
file as the user left it with a rule of their own), and the scenarios run for every row,
through the command line: the first pass writes exactly the matching native entries and
keeps the user's; a second pass writes nothing; a rule removed by hand is drift with origin
``live`` that a sync puts back and ``on_drift: report`` leaves; a tool the policy no longer
disables is released, the user's rule staying. Kinds without a control say so, never silent.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler import targets
from reconciler.core.enforce import Governed, NativeTools
from reconciler.core.model import OnDrift, ToolPolicy
from reconciler.core.plan import Slot, changed_tools, plan_native_tools
from reconciler.core.tools import ServerTools, tool_record
from reconciler.engine import load_desired
from reconciler.store.state import StateStore
from reconciler.targets import Context
from reconciler.targets.mcpjungle import MCPJungleTarget
from tests.conftest import Workspace, snapshot_tree
from tests.fakes.mcpjungle import FakeMCPJungle, Upstream, UpstreamTool
from tests.gitrepo import commit_all, init_repo, isolate_git
from tests.servers import DIR

SERVERS = """
servers:
  files:
    command: no-such-files-server
    args: [--root, /srv]
    tools:
      deny: [write_file, delete_file]
  time:
    command: no-such-time-server
"""


@dataclass(frozen=True)
class Kind:
    id: str
    target: str  # the target's mapping in desired state (flow YAML)
    file: Callable[[Workspace], Path]  # where the control lives
    seed: str  # the control's file before the first pass: a user rule for tool 'mine'
    denied: Callable[[Path, str], set[str]]  # the tools of a server the control denies
    remove: Callable[[Path, str, str], None]  # a person deletes one rule by hand


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _save(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# -- Claude Code: permissions.deny in the scope's settings file ------------------------------


def _claude_denied(path: Path, server: str) -> set[str]:
    prefix = f"mcp__{server}__"
    return {r[len(prefix) :] for r in _load(path)["permissions"]["deny"] if r.startswith(prefix)}


def _claude_remove(path: Path, server: str, tool: str) -> None:
    data = _load(path)
    data["permissions"]["deny"].remove(f"mcp__{server}__{tool}")
    _save(path, data)


CLAUDE_SEED = json.dumps(
    {"theme": "dark", "permissions": {"deny": ["mcp__files__mine", "Bash(rm:*)"], "allow": []}}
)

# -- entry-level lists: Codex disabled_tools, Gemini excludeTools, Kiro/Roo disabledTools ----


def _entry_list(
    key: str, section: str = "mcpServers"
) -> tuple[Callable[[Path, str], set[str]], Callable[..., None]]:
    def denied(path: Path, server: str) -> set[str]:
        return set(_load(path)[section][server].get(key, []))

    def remove(path: Path, server: str, tool: str) -> None:
        data = _load(path)
        data[section][server][key].remove(tool)
        _save(path, data)

    return denied, remove


def _entry_seed(key: str, section: str = "mcpServers", **extra: Any) -> str:
    entry = {"command": "old-command", key: ["mine"], **extra}
    return json.dumps({section: {"files": entry}, "ui": {"theme": "x"}}, indent=2)


def _codex_denied(path: Path, server: str) -> set[str]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return set(data["mcp_servers"][server].get("disabled_tools", []))


def _codex_remove(path: Path, server: str, tool: str) -> None:
    text = path.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("disabled_tools"))
    names = [n for n in tomllib.loads(line)["disabled_tools"] if n != tool]
    path.write_text(text.replace(line, f"disabled_tools = {json.dumps(names)}"), encoding="utf-8")


CODEX_SEED = (
    "model = 'o4'\n\n"
    "[mcp_servers.files]\n"
    'command = "old-command"\n'
    'disabled_tools = ["mine"]  # mine, not the tool\'s\n'
)

# -- opencode: the tools map -----------------------------------------------------------------


def _opencode_denied(path: Path, server: str) -> set[str]:
    prefix = f"{server}_"
    return {
        k[len(prefix) :]
        for k, v in _load(path)["tools"].items()
        if v is False and k.startswith(prefix)
    }


def _opencode_remove(path: Path, server: str, tool: str) -> None:
    data = _load(path)
    del data["tools"][f"{server}_{tool}"]
    _save(path, data)


OPENCODE_SEED = json.dumps(
    {"$schema": "https://opencode.ai/config.json", "tools": {"files_mine": False, "bash": True}}
)

GEMINI = _entry_list("excludeTools")
KIRO = _entry_list("disabledTools")

KINDS = [
    Kind(
        "claude-code-user",
        "{kind: claude-code}",
        lambda ws: ws.home / ".claude" / "settings.json",
        CLAUDE_SEED,
        _claude_denied,
        _claude_remove,
    ),
    Kind(
        "claude-code-project",
        "{kind: claude-code, scope: project, project: proj}",
        lambda ws: ws.root / "proj" / ".claude" / "settings.json",
        CLAUDE_SEED,
        _claude_denied,
        _claude_remove,
    ),
    Kind(
        "claude-code-local",
        "{kind: claude-code, scope: local, project: proj}",
        lambda ws: ws.root / "proj" / ".claude" / "settings.local.json",
        CLAUDE_SEED,
        _claude_denied,
        _claude_remove,
    ),
    Kind(
        "codex",
        "{kind: codex}",
        lambda ws: ws.home / ".codex" / "config.toml",
        CODEX_SEED,
        _codex_denied,
        _codex_remove,
    ),
    Kind(
        "gemini",
        "{kind: gemini}",
        lambda ws: ws.home / ".gemini" / "settings.json",
        _entry_seed("excludeTools"),
        *GEMINI,
    ),
    Kind(
        "opencode",
        "{kind: opencode}",
        lambda ws: ws.home / ".config" / "opencode" / "opencode.json",
        OPENCODE_SEED,
        _opencode_denied,
        _opencode_remove,
    ),
    Kind(
        "kiro",
        "{kind: kiro}",
        lambda ws: ws.home / ".kiro" / "settings" / "mcp.json",
        _entry_seed("disabledTools"),
        *KIRO,
    ),
    Kind(
        "crush",
        "{kind: crush}",
        lambda ws: ws.home / ".config" / "crush" / "crush.json",
        _entry_seed("disabled_tools", "mcp", type="stdio"),
        *_entry_list("disabled_tools", "mcp"),
    ),
    Kind(
        "roo",
        "{kind: roo, scope: project, project: proj}",
        lambda ws: ws.root / "proj" / ".roo" / "mcp.json",
        _entry_seed("disabledTools"),
        *KIRO,
    ),
]


def target_yaml(target: str, **extra: str) -> str:
    fields = "".join(f", {k}: {v}" for k, v in extra.items())
    return f"targets:\n  client: {target[:-1]}, servers: [files, time]{fields}}}\n"


def setup(ws: Workspace, kind: Kind, servers: str = SERVERS, **extra: str) -> Path:
    ws.write("servers.yaml", servers)
    ws.write("targets.yaml", target_yaml(kind.target, **extra))
    path = kind.file(ws)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kind.seed, encoding="utf-8")
    return path


def tool_changes(report: dict[str, Any]) -> list[tuple[str, str, str, bool, list[str]]]:
    (target,) = report["targets"]
    return [
        (c["server"], c["action"], c["origin"], c["applied"], c["paths"])
        for c in target["changes"]
        if c["action"].startswith("tool-")
    ]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
def test_exact_denies_become_native_entries_owned_like_server_entries(
    workspace: Workspace, kind: Kind
) -> None:
    path = setup(workspace, kind)
    first = workspace.run("--json")
    assert first.exit_code == 0, first.stdout
    # Exactly the matching native entries, and the user's own rule kept.
    assert kind.denied(path, "files") == {"write_file", "delete_file", "mine"}
    ((server, action, origin, applied, paths),) = tool_changes(first.json)
    assert (server, action, applied) == ("files", "tool-disable", True)
    assert paths == ["/tools/delete_file", "/tools/write_file"]
    assert origin in ("new", "desired")  # with the entry it comes with, or on its own
    text = path.read_text(encoding="utf-8")
    assert ("theme" in text) or ("model = 'o4'" in text) or ("$schema" in text)

    # A second pass is a no-op: nothing planned, nothing written.
    before = snapshot_tree(workspace.root) | snapshot_tree(workspace.home)
    second = workspace.run("--json")
    assert second.exit_code == 0 and tool_changes(second.json) == []
    assert snapshot_tree(workspace.root) | snapshot_tree(workspace.home) == before

    # Re-enabled by hand: drift with origin live; a dry run reports it, a sync reverts it.
    kind.remove(path, "files", "delete_file")
    dry = workspace.run("--dry-run", "--json")
    assert dry.exit_code == 1
    assert tool_changes(dry.json) == [
        ("files", "tool-disable", "live", False, ["/tools/delete_file"])
    ]
    synced = workspace.run("--json")
    assert synced.exit_code == 0
    assert tool_changes(synced.json) == [
        ("files", "tool-disable", "live", True, ["/tools/delete_file"])
    ]
    assert kind.denied(path, "files") == {"write_file", "delete_file", "mine"}

    # The policy no longer disables write_file: the rule this tool wrote is released; the
    # user's rule for 'mine' is never touched.
    workspace.write("servers.yaml", SERVERS.replace("[write_file, delete_file]", "[delete_file]"))
    third = workspace.run("--json")
    assert tool_changes(third.json) == [
        ("files", "tool-enable", "desired", True, ["/tools/write_file"])
    ]
    assert kind.denied(path, "files") == {"delete_file", "mine"}

    # No policy at all: every rule this tool wrote goes, the user's stays.
    workspace.write(
        "servers.yaml", SERVERS.replace("    tools:\n      deny: [write_file, delete_file]\n", "")
    )
    assert workspace.run().exit_code == 0
    assert kind.denied(path, "files") == {"mine"}
    assert workspace.run("--json").json["targets"][0]["changes"] == []


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
def test_on_drift_report_leaves_a_rule_removed_by_hand(workspace: Workspace, kind: Kind) -> None:
    path = setup(workspace, kind, on_drift="report")
    assert workspace.run().exit_code == 0
    kind.remove(path, "files", "write_file")
    result = workspace.run("--json")
    assert result.exit_code == 1
    assert tool_changes(result.json) == [
        ("files", "tool-disable", "live", False, ["/tools/write_file"])
    ]
    assert kind.denied(path, "files") == {"delete_file", "mine"}


@pytest.mark.parametrize(
    "target",
    [
        "{kind: cursor}",
        "{kind: claude-desktop}",
        "{kind: windsurf}",
        "{kind: vscode}",
        "{kind: zed}",
        "{kind: goose}",
        "{kind: continue}",
    ],
)
def test_kinds_without_a_control_say_not_enforceable(workspace: Workspace, target: str) -> None:
    workspace.write("servers.yaml", SERVERS)
    workspace.write("targets.yaml", target_yaml(target))
    kind = target.removeprefix("{kind: ").removesuffix("}")
    note = f"tools of 'files' not enforceable on {kind}"
    dry = workspace.run("--dry-run")
    assert note in dry.stdout
    applied = workspace.run("--json")
    assert any(note in n for n in applied.json["targets"][0]["notes"])
    status = workspace.run("status")
    assert note in status.stdout
    (shown,) = workspace.run("status", "--json").json["governance"]["client"]
    assert shown.startswith(note)
    # An ungoverned server gets no such note.
    assert "'time' not enforceable" not in dry.stdout + status.stdout


# -- block: mutating, from the last probe's inventory -----------------------------------------

GOVERNED_SERVER = f"""
servers:
  media:
    command: {sys.executable}
    args: [{json.dumps(str(DIR / "governed.py"))}]
    tools:
      block: mutating
      allow: [library_audit]   # read-only in fact, but unannotated
      deny: [bulk_*]           # claims read-only although it deletes
"""
# What that policy disables on the governed test server (its classes: tests/servers/governed.py).
BLOCKED = {"library_stats", "media_tag", "media_delete", "bulk_delete"}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.id)
def test_block_mutating_writes_exactly_the_non_read_only_tools(
    workspace: Workspace, kind: Kind
) -> None:
    workspace.write("servers.yaml", GOVERNED_SERVER)
    workspace.write("targets.yaml", target_yaml(kind.target).replace("[files, time]", "[media]"))
    path = kind.file(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kind.seed.replace("files", "media"), encoding="utf-8")

    # Without an inventory the pass says what it cannot enforce yet, and writes no rule.
    blind = workspace.run("--json")
    assert blind.exit_code == 0, blind.stdout
    (note,) = [n for n in blind.json["targets"][0]["notes"] if "tool inventory" in n]
    assert "no tool inventory for 'media'" in note and "block: mutating" in note
    assert kind.denied(path, "media") == {"mine"}

    probed = workspace.run("probe", "--timeout", "30", "--json")
    assert probed.exit_code == 0, probed.stdout
    applied = workspace.run("--json")
    assert applied.exit_code == 0, applied.stdout
    assert kind.denied(path, "media") == BLOCKED | {"mine"}
    assert not [n for n in applied.json["targets"][0]["notes"] if "tool inventory" in n]
    before = snapshot_tree(workspace.root) | snapshot_tree(workspace.home)
    assert workspace.run().exit_code == 0
    assert snapshot_tree(workspace.root) | snapshot_tree(workspace.home) == before


# -- MCPJungle: its tool flags, classes from the annotations it keeps -------------------------

ANNOTATED = Upstream(
    tools=[
        UpstreamTool("search", annotations={"readOnlyHint": True}),
        UpstreamTool("tag", annotations={"destructiveHint": False}),
        UpstreamTool("purge", annotations={"readOnlyHint": False, "destructiveHint": True}),
        UpstreamTool("audit"),  # unannotated: destructive
    ]
)


def test_block_mutating_on_mcpjungle_and_a_tool_re_enabled_by_hand(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MCPJungleTarget, "retry_delays", (0.0, 0.0))
    with FakeMCPJungle({"media": ANNOTATED}) as jungle:
        workspace.write(
            "servers.yaml",
            "servers:\n  media:\n    url: https://media.example.test/mcp\n"
            "    tools: {block: mutating}\n",
        )
        workspace.write(
            "targets.yaml", f"targets:\n  jungle: {{kind: mcpjungle, url: {jungle.url}}}\n"
        )
        assert workspace.run().exit_code == 0
        off = {n for n, t in jungle.tools.items() if not t.enabled}
        assert off == {"media__tag", "media__purge", "media__audit"}
        jungle.reset_log()
        assert workspace.run().exit_code == 0 and jungle.mutations == []  # a no-op

        jungle.tools["media__purge"].enabled = True  # re-enabled by hand
        dry = workspace.run("--dry-run", "--json")
        assert dry.exit_code == 1
        assert tool_changes(dry.json) == [
            ("media", "tool-disable", "live", False, ["/tools/purge"])
        ]
        assert workspace.run().exit_code == 0
        assert not jungle.tools["media__purge"].enabled
    assert jungle.errors == []


# -- on_change: block: a tool changed upstream stays off until the lock accepts it ------------


def things_yaml(description: str | None = None) -> str:
    env = f"    env: {{TOOL_DESCRIPTION: {json.dumps(description)}}}\n" if description else ""
    return (
        "servers:\n  things:\n"
        f"    command: {sys.executable}\n"
        f"    args: [{json.dumps(str(DIR / 'tools_server.py'))}]\n"
        + env
        + "    tools: {on_change: block}\n"
    )


@pytest.mark.parametrize("kind", [KINDS[0], KINDS[3]], ids=lambda k: k.id)
def test_on_change_block_holds_a_changed_tool_until_the_lock_accepts_it(
    workspace: Workspace, kind: Kind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    workspace.write("servers.yaml", things_yaml())
    workspace.write("targets.yaml", target_yaml(kind.target).replace("[files, time]", "[things]"))
    path = kind.file(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kind.seed.replace("files", "things"), encoding="utf-8")
    commit_all(workspace.root)
    assert workspace.run("probe", "--lock", "--timeout", "30").exit_code == 0
    assert workspace.run().exit_code == 0
    assert kind.denied(path, "things") == {"mine"}  # every tool reviewed: nothing held

    workspace.write("servers.yaml", things_yaml("Reads a thing, then mails it out"))
    commit_all(workspace.root, "things changes upstream")
    drift = workspace.run("probe", "--timeout", "30")
    assert drift.exit_code == 1 and "read_thing" in drift.stdout
    held = workspace.run("--json")
    assert held.exit_code == 0, held.stdout
    assert kind.denied(path, "things") == {"read_thing", "mine"}

    accepted = workspace.run("probe", "--lock", "--timeout", "30")
    assert accepted.exit_code == 0, accepted.stdout
    released = workspace.run("--json")
    assert tool_changes(released.json) == [
        ("things", "tool-enable", "desired", True, ["/tools/read_thing"])
    ]
    assert kind.denied(path, "things") == {"mine"}


# -- names, a stale inventory, a malformed control file ---------------------------------------


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("{kind: claude-code}", "mcp__files__get_thing_v2"),
        ("{kind: opencode}", "files_get_thing_v2"),
    ],
)
def test_full_tool_names_are_sanitized_as_the_client_does(
    workspace: Workspace, target: str, rule: str
) -> None:
    """Claude Code and opencode replace every character outside [a-zA-Z0-9_-] with '_':
    a rule spelled with the raw name would not match (reference/TOOLCONTROLS.md)."""
    workspace.write("servers.yaml", SERVERS.replace("[write_file, delete_file]", "[get.thing/v2]"))
    workspace.write("targets.yaml", target_yaml(target))
    assert workspace.run().exit_code == 0
    if "claude" in target:
        rules = _load(workspace.home / ".claude" / "settings.json")["permissions"]["deny"]
    else:
        rules = list(_load(workspace.home / ".config" / "opencode" / "opencode.json")["tools"])
    assert rules == [rule]
    assert workspace.run("--dry-run").exit_code == 0  # and it reads back as in sync


def test_a_stale_inventory_is_enforced_and_said(workspace: Workspace) -> None:
    workspace.write(
        "servers.yaml", SERVERS.replace("deny: [write_file, delete_file]", "block: mutating")
    )
    workspace.write("targets.yaml", target_yaml("{kind: codex}"))
    records = {
        "read_file": tool_record("read_file", "", {}, {"readOnlyHint": True}),
        "write_file": tool_record("write_file", "", {}, None),
    }
    old = ServerTools("files", records, "2026-01-02T03:04:05Z")
    StateStore(workspace.state_dir).save_tool_inventory({"files": old})
    result = workspace.run("--json")
    assert result.exit_code == 0, result.stdout
    notes = result.json["targets"][0]["notes"]
    assert any("tool inventory for 'files' is stale" in n for n in notes)
    assert _codex_denied(workspace.home / ".codex" / "config.toml", "files") == {"write_file"}
    status = workspace.run("status")
    assert "governance on client: tool inventory for 'files' is stale" in status.stdout


def test_a_malformed_settings_file_is_a_located_error_and_nothing_is_written(
    workspace: Workspace,
) -> None:
    workspace.write("servers.yaml", SERVERS)
    workspace.write("targets.yaml", target_yaml("{kind: claude-code}"))
    settings = workspace.home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"permissions": {"deny": [}\n', encoding="utf-8")
    result = workspace.run("--json")
    assert result.exit_code == 3
    assert f"{settings}:1:" in result.json["targets"][0]["error"]
    assert settings.read_text(encoding="utf-8") == '{"permissions": {"deny": [}\n'
    assert not (workspace.home / ".claude.json").exists()


# -- ownership across switches, --server and prune --------------------------------------------


def test_a_server_switched_off_and_on_gets_its_rules_back_as_desired(
    workspace: Workspace,
) -> None:
    kind = next(k for k in KINDS if k.id == "codex")
    path = setup(workspace, kind, on_drift="report")
    assert workspace.run().exit_code == 0
    workspace.write("servers.yaml", SERVERS.replace("  files:\n", "  files:\n    enabled: false\n"))
    off = workspace.run("--json")
    assert off.exit_code == 0, off.stdout
    assert kind.denied(path, "files") == {"mine"}  # a server switched off offers no tools
    workspace.write("servers.yaml", SERVERS)
    on = workspace.run("--json")
    assert on.exit_code == 0, on.stdout  # desired, so applied although on_drift is report
    assert (
        "files",
        "tool-disable",
        "desired",
        True,
        ["/tools/delete_file", "/tools/write_file"],
    ) in (tool_changes(on.json))
    assert kind.denied(path, "files") == {"write_file", "delete_file", "mine"}


def test_a_pass_for_another_server_keeps_what_this_tool_owns(workspace: Workspace) -> None:
    kind = KINDS[0]  # claude-code, user scope
    path = setup(workspace, kind)
    assert workspace.run().exit_code == 0
    assert workspace.run("--server", "time").exit_code == 0
    kind.remove(path, "files", "write_file")
    dry = workspace.run("--dry-run", "--json")
    assert tool_changes(dry.json) == [
        ("files", "tool-disable", "live", False, ["/tools/write_file"])
    ]


@pytest.mark.parametrize("kind", [KINDS[0], KINDS[3], KINDS[5]], ids=lambda k: k.id)
def test_a_pruned_server_leaves_no_rule_of_ours(workspace: Workspace, kind: Kind) -> None:
    path = setup(workspace, kind, prune="true")
    assert workspace.run().exit_code == 0
    workspace.write("servers.yaml", "servers:\n  time:\n" + SERVERS.split("  time:\n")[1])
    workspace.write("targets.yaml", target_yaml(kind.target, prune="true").replace("files, ", ""))
    pruned = workspace.run("--json")
    assert pruned.exit_code == 0, pruned.stdout
    text = path.read_text(encoding="utf-8")
    assert "write_file" not in text and "delete_file" not in text
    assert "mine" in text  # the user's rule stays (with the entry, where it lives in one)
    assert workspace.run("--json").json["targets"][0]["changes"] == []


# -- the pure planning of a client's tool control ----------------------------------------------

F = frozenset


@pytest.mark.parametrize(
    ("desired", "owned", "off", "on_drift", "expected"),
    [
        # first pass: every desired tool is added, as desired
        (F({"a", "b"}), F(), F(), "sync", [("tool-disable", "desired", True, ["a", "b"])]),
        # in sync, whoever wrote the rule (the user's own rule for 'b' counts)
        (F({"a", "b"}), F({"a"}), F({"a", "b"}), "sync", []),
        # ours, removed by hand: live; sync applies it, report and record leave it
        (F({"a"}), F({"a"}), F(), "sync", [("tool-disable", "live", True, ["a"])]),
        (F({"a"}), F({"a"}), F(), "report", [("tool-disable", "live", False, ["a"])]),
        (F({"a"}), F({"a"}), F(), "record", [("tool-disable", "live", False, ["a"])]),
        # the policy no longer disables an owned tool: released, whatever on_drift says
        (F(), F({"a"}), F({"a"}), "report", [("tool-enable", "desired", True, ["a"])]),
        # owned, released by hand already: nothing to do
        (F(), F({"a"}), F(), "sync", []),
    ],
)
def test_plan_native_tools(
    desired: frozenset[str],
    owned: frozenset[str],
    off: frozenset[str],
    on_drift: str,
    expected: list[tuple[str, str, bool, list[str]]],
) -> None:
    slot = Slot("s", "s", {"transport": "stdio", "command": "x"}, tools=Governed(ToolPolicy()))
    changes = plan_native_tools(slot, None, NativeTools(desired, owned, off), OnDrift(on_drift))
    assert [(c.action.value, c.origin.value, c.apply, list(changed_tools(c))) for c in changes] == (
        expected
    )


def test_a_symlinked_settings_file_stays_a_link(workspace: Workspace) -> None:
    """Dotfiles managers link ~/.claude/settings.json: the rules land in the file behind it."""
    workspace.write("servers.yaml", SERVERS)
    workspace.write("targets.yaml", target_yaml("{kind: claude-code}"))
    real = workspace.root / "dotfiles" / "claude-settings.json"
    real.parent.mkdir()
    real.write_text(CLAUDE_SEED, encoding="utf-8")
    link = workspace.home / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)
    applied = workspace.run("--json")
    assert applied.exit_code == 0
    assert f"governed tools are written to {link}" in applied.json["targets"][0]["notes"]
    assert link.is_symlink()
    assert _claude_denied(real, "files") == {"write_file", "delete_file", "mine"}


@pytest.mark.parametrize(
    ("target", "settings"),
    [
        ("{kind: claude-code}", ".claude/settings.json"),
        ("{kind: claude-code, scope: local, project: proj}", "proj/.claude/settings.local.json"),
    ],
)
def test_the_daemon_watches_the_settings_file_too(
    workspace: Workspace, target: str, settings: str
) -> None:
    """A rule removed by hand in the settings file must wake ``reconcile watch``."""
    workspace.write("servers.yaml", SERVERS)
    workspace.write("targets.yaml", target_yaml(target))
    state = load_desired(workspace.desired)
    context = Context(
        home=workspace.home, platform=sys.platform, root=workspace.root, lock_dir=None
    )
    built = targets.build("client", state.targets["client"], context)
    base = workspace.home if settings.startswith(".claude") else workspace.root
    assert (base / settings).absolute() in [p.absolute() for p in built.watch_paths()]


def test_a_malformed_settings_file_does_not_stop_ungoverned_servers(
    workspace: Workspace,
) -> None:
    workspace.write("servers.yaml", "servers:\n  time:\n    command: no-such-time-server\n")
    workspace.write("targets.yaml", "targets:\n  client: {kind: claude-code, servers: [time]}\n")
    settings = workspace.home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text("{not json\n", encoding="utf-8")
    result = workspace.run("--json")
    assert result.exit_code == 0, result.stdout
    assert any(
        str(settings) in n and "governed tools cannot be read" in n
        for n in result.json["targets"][0]["notes"]
    )
    assert "time" in _load(workspace.home / ".claude.json")["mcpServers"]
    assert settings.read_text(encoding="utf-8") == "{not json\n"
