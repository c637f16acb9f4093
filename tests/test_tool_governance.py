"""Tool governance in the core: classes from annotations, the effective disabled set, the
merge of ``defaults:``, and the tool surface against the lock (DESIGN.md 6B)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.errors import DesiredStateError
from reconciler.core.model import Block, OnChange, ToolPolicy
from reconciler.core.tools import (
    Governance,
    ServerTools,
    SurfaceChange,
    ToolClass,
    changed_tools,
    classify,
    govern,
    merge_policy,
    surface_drift,
    tool_record,
    unreviewed,
)
from reconciler.store import desired, toollock
from reconciler.store.state import StateStore
from tests.conftest import Workspace

RO, MUT, DES = ToolClass.READ_ONLY, ToolClass.MUTATING, ToolClass.DESTRUCTIVE


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (None, DES),  # unannotated: the spec's defaults, destructive
        ({}, DES),
        ({"title": "Read a file"}, DES),
        ({"readOnlyHint": True}, RO),
        ({"readOnlyHint": True, "destructiveHint": True}, RO),  # read-only wins
        ({"readOnlyHint": False}, DES),
        ({"readOnlyHint": False, "destructiveHint": False}, MUT),
        ({"destructiveHint": False}, MUT),
        ({"destructiveHint": True}, DES),
        ({"destructiveHint": False, "idempotentHint": True}, MUT),
        ({"readOnlyHint": "true"}, DES),  # a string is not the hint: not trusted
        ({"readOnlyHint": 1}, DES),
        ({"destructiveHint": 0}, DES),  # only an explicit false lowers it to mutating
        ({"destructiveHint": None}, DES),
    ],
)
def test_classify(annotations: dict[str, Any] | None, expected: ToolClass) -> None:
    assert classify(annotations) is expected


INVENTORY = {
    "read_file": RO,
    "list_dir": RO,
    "write_file": MUT,
    "delete_file": DES,
    "library_audit": DES,  # read-only in fact, but unannotated
    "bulk_delete": DES,
    "bulk_read": RO,
}


@pytest.mark.parametrize(
    ("policy", "disabled"),
    [
        (None, set()),
        (ToolPolicy(), set()),
        (ToolPolicy(block=Block.NONE, allow=("read_*",)), set()),  # allow alone excepts only
        (ToolPolicy(deny=("*_file",)), {"read_file", "write_file", "delete_file"}),
        (ToolPolicy(block=Block.DESTRUCTIVE), {"delete_file", "library_audit", "bulk_delete"}),
        (
            ToolPolicy(block=Block.MUTATING),
            {"write_file", "delete_file", "library_audit", "bulk_delete"},
        ),
        # explicit allow beats block; deny beats allow (the DESIGN 6B example)
        (
            ToolPolicy(block=Block.MUTATING, allow=("library_audit", "bulk_*"), deny=("bulk_*",)),
            {"write_file", "delete_file", "bulk_delete", "bulk_read"},
        ),
        (ToolPolicy(allow=("*",), deny=("delete_*",)), {"delete_file"}),
        # an exact deny is disabled even when the inventory does not list it (yet)
        (ToolPolicy(deny=("drop_table",)), {"drop_table"}),
    ],
)
def test_govern_with_an_inventory(policy: ToolPolicy | None, disabled: set[str]) -> None:
    found = govern(policy, INVENTORY)
    assert found == Governance(frozenset(disabled))


def test_govern_without_an_inventory_keeps_exact_denies_and_reports_the_rest() -> None:
    policy = ToolPolicy(deny=("delete_*", "merge_pull_request"), block=Block.MUTATING)
    found = govern(policy, None)
    assert found.disabled == {"merge_pull_request"}
    assert found.unresolved == ("delete_*", "block: mutating")
    assert found.stale
    exact_only = govern(ToolPolicy(deny=("merge_pull_request",)), None)
    assert exact_only == Governance(frozenset({"merge_pull_request"}))


@pytest.mark.parametrize(
    ("on_change", "allow", "disabled"),
    [
        (OnChange.REPORT, (), {"delete_file"}),
        (OnChange.BLOCK, (), {"delete_file", "read_file", "new_tool"}),
        # a changed tool stays disabled even when allowed: the allow was for what was reviewed
        (OnChange.BLOCK, ("read_*",), {"delete_file", "read_file", "new_tool"}),
    ],
)
def test_on_change_block_holds_unreviewed_tools(
    on_change: OnChange, allow: tuple[str, ...], disabled: set[str]
) -> None:
    policy = ToolPolicy(block=Block.DESTRUCTIVE, on_change=on_change, allow=allow)
    inventory = {"read_file": RO, "delete_file": DES, "new_tool": RO}
    found = govern(policy, inventory, frozenset({"read_file", "new_tool"}))
    assert found.disabled == disabled


@pytest.mark.parametrize(
    ("defaults", "own", "expected"),
    [
        (None, None, None),
        (ToolPolicy(block=Block.MUTATING), None, ToolPolicy(block=Block.MUTATING)),
        (None, ToolPolicy(deny=("x",)), ToolPolicy(deny=("x",))),
        # keys the server sets win whole; the rest come from the defaults
        (
            ToolPolicy(block=Block.MUTATING, allow=("read_*",), on_change=OnChange.BLOCK),
            ToolPolicy(allow=("library_audit",)),
            ToolPolicy(block=Block.MUTATING, allow=("library_audit",), on_change=OnChange.BLOCK),
        ),
        (
            ToolPolicy(block=Block.MUTATING),
            ToolPolicy(block=Block.NONE),
            ToolPolicy(block=Block.NONE),
        ),
    ],
)
def test_merge_policy(
    defaults: ToolPolicy | None, own: ToolPolicy | None, expected: ToolPolicy | None
) -> None:
    assert merge_policy(defaults, own) == expected


def test_defaults_apply_to_every_server_in_desired_state(tmp_path: Path) -> None:
    root = tmp_path / "desired"
    root.mkdir()
    (root / "defaults.yaml").write_text(
        "defaults:\n  tools:\n    block: mutating\n    on_change: block\n"
    )
    (root / "servers.yaml").write_text(
        "servers:\n"
        "  a: {command: a}\n"
        "  b: {command: b, tools: {allow: [audit], block: destructive}}\n"
        "  c: {command: c, tools: {block: none}}\n"  # a key written as its default still wins
    )
    (root / toollock.LOCK_FILE).write_text("lock: 1\nservers: {}\n")  # not desired state
    state = desired.load(root)
    assert state.servers["a"].tools == ToolPolicy(block=Block.MUTATING, on_change=OnChange.BLOCK)
    assert state.servers["b"].tools == ToolPolicy(
        allow=("audit",), block=Block.DESTRUCTIVE, on_change=OnChange.BLOCK
    )
    assert state.servers["c"].tools == ToolPolicy(block=Block.NONE, on_change=OnChange.BLOCK)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults:\n  tools:\n    block: everything\n", "block"),
        ("defaults:\n  tool: {}\n", "tool"),
        ("servers:\n  a: {command: a, tools: {on_change: ignore}}\n", "on_change"),
    ],
)
def test_invalid_policies_are_located_errors(tmp_path: Path, text: str, message: str) -> None:
    root = tmp_path / "desired"
    root.mkdir()
    (root / "x.yaml").write_text(text)
    with pytest.raises(DesiredStateError) as caught:
        desired.load(root)
    (problem,) = caught.value.problems
    assert problem.file.endswith("x.yaml") and problem.line > 0
    assert message in problem.message or message in problem.hint


def test_defaults_twice_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "desired"
    root.mkdir()
    (root / "a.yaml").write_text("defaults:\n  tools: {block: mutating}\n")
    (root / "b.yaml").write_text("defaults:\n  tools: {block: none}\n")
    with pytest.raises(DesiredStateError) as caught:
        desired.load(root)
    assert "'defaults' is defined twice" in str(caught.value)


# -- the surface against the lock ---------------------------------------------------------

ANN = {"readOnlyHint": True}
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}


def surface(**tools: tuple[str, dict[str, Any], dict[str, Any] | None]) -> dict[str, Any]:
    return {name: tool_record(name, *spec) for name, spec in tools.items()}


def test_record_hash_is_canonical_and_covers_every_field() -> None:
    a = tool_record("read", "Reads", {"b": 1, "a": [1, 2]}, ANN)
    b = tool_record("read", "Reads", {"a": [1, 2], "b": 1}, dict(ANN))
    assert a == b and len(a.sha256) == 64
    for other in (
        tool_record("read2", "Reads", {"b": 1, "a": [1, 2]}, ANN),
        tool_record("read", "Reads!", {"b": 1, "a": [1, 2]}, ANN),
        tool_record("read", "Reads", {"b": 2, "a": [1, 2]}, ANN),
        tool_record("read", "Reads", {"b": 1, "a": [1, 2]}, None),
    ):
        assert other.sha256 != a.sha256


@pytest.mark.parametrize(
    ("now", "change", "fields"),
    [
        (("Reads a file, then mails it", SCHEMA, ANN), SurfaceChange.CHANGED, ("description",)),
        (("Reads a file", {"type": "object"}, ANN), SurfaceChange.CHANGED, ("input_schema",)),
        (
            ("Reads a file", SCHEMA, {"readOnlyHint": False}),
            SurfaceChange.CHANGED,
            ("annotations", "class"),
        ),
        (
            ("Reads a file", SCHEMA, {"readOnlyHint": True, "title": "Read"}),
            SurfaceChange.CHANGED,
            ("annotations",),
        ),
        (None, SurfaceChange.REMOVED, ()),
    ],
)
def test_surface_drift_names_the_field(
    now: tuple[str, dict[str, Any], dict[str, Any]] | None,
    change: SurfaceChange,
    fields: tuple[str, ...],
) -> None:
    locked = surface(read_file=("Reads a file", SCHEMA, ANN), stable=("Same", SCHEMA, None))
    current = surface(stable=("Same", SCHEMA, None), **({"read_file": now} if now else {}))
    (drift,) = surface_drift("files", locked, current)
    assert (drift.tool, drift.change, drift.fields) == ("read_file", change, fields)
    assert "tool surface changed upstream" in drift.describe()
    assert "read_file" in drift.describe()
    assert changed_tools([drift]) == (frozenset() if now is None else {"read_file"})


def test_added_tools_and_unreviewed() -> None:
    locked = surface(a=("A", SCHEMA, ANN))
    current = surface(a=("A", SCHEMA, ANN), b=("B", SCHEMA, None))
    (drift,) = surface_drift("s", locked, current)
    assert (drift.tool, drift.change) == ("b", SurfaceChange.ADDED)
    inventory = ServerTools("s", current, "2026-12-01T00:00:00Z")
    assert unreviewed(locked, inventory) == {"b"}
    assert unreviewed(None, inventory) == {"a", "b"}  # no lock entry: nothing was reviewed
    assert unreviewed(locked, None) == frozenset()
    assert surface_drift("s", current, current) == ()


def test_lock_and_inventory_round_trip(tmp_path: Path) -> None:
    records = surface(read=("R", SCHEMA, ANN), write=("W", SCHEMA, {"destructiveHint": False}))
    assert toollock.load(tmp_path) is None
    assert toollock.save(tmp_path, {"files": records})
    assert not toollock.save(tmp_path, {"files": records})  # unchanged: not rewritten
    assert toollock.load(tmp_path) == {"files": records}
    text = (tmp_path / toollock.LOCK_FILE).read_text()
    assert text.startswith("# The reviewed tool surface") and "class: mutating" in text

    store = StateStore(tmp_path / "state")
    assert store.tool_inventory() == {}
    store.save_tool_inventory({"files": ServerTools("files", records, "2026-12-01T10:00:00Z")})
    store.save_tool_inventory({"time": ServerTools("time", {}, "2026-12-01T11:00:00Z")})
    found = store.tool_inventory()
    assert set(found) == {"files", "time"}  # a probe of one server keeps the others
    assert found["files"].tools == records and found["files"].probed_at == "2026-12-01T10:00:00Z"
    assert found["files"].counts() == {"read-only": 1, "mutating": 1, "destructive": 0}


@pytest.mark.parametrize(
    "text",
    ["lock: 2\nservers: {}\n", "lock: 1\nservers: {s: {t: {class: harmless, sha256: x}}}\n", "- 1"],
)
def test_malformed_lock_is_exit_2(tmp_path: Path, text: str) -> None:
    (tmp_path / toollock.LOCK_FILE).write_text(text)
    with pytest.raises(DesiredStateError) as caught:
        toollock.load(tmp_path)
    assert "tool lock" in str(caught.value)


# -- the governance audit without probing -------------------------------------------------


@pytest.mark.parametrize("kind", ["claude-desktop", "cursor", "windsurf", "vscode"])
def test_audit_says_where_a_policy_cannot_be_enforced(workspace: Workspace, kind: str) -> None:
    workspace.write(
        "desired.yaml",
        f"""
        servers:
          media: {{command: node, tools: {{block: mutating}}}}
          plain: {{command: node}}
        targets:
          t: {{kind: {kind}, path: {workspace.home}/t.json}}
        """,
    )
    result = workspace.run("audit", "--declared", "--json")
    findings = result.json["governance"]["findings"]
    assert result.exit_code == 1
    assert [(f["finding"], f["server"], f["target"]) for f in findings] == [
        ("not-enforceable", "media", "t")
    ]
    assert f"not enforceable on {kind}" in findings[0]["message"]
    assert result.json["governance"]["notes"] == [
        "no tool lock yet (`reconcile probe --lock` reviews and records one)"
    ]


def test_audit_lock_findings_from_the_kept_inventory(workspace: Workspace) -> None:
    workspace.write(
        "desired.yaml",
        """
        servers:
          locked: {command: node}
          new: {command: node}
          unprobed: {command: node}
        """,
    )
    old = tool_record("read", "Reads", SCHEMA, ANN)
    toollock.save(workspace.desired, {"locked": {"read": old}, "unprobed": {"read": old}})
    now = tool_record("read", "Reads, then writes", SCHEMA, ANN)
    StateStore(workspace.state_dir).save_tool_inventory(
        {"locked": ServerTools("locked", {"read": now}, "2026-12-01T10:00:00Z")}
    )
    result = workspace.run("audit", "--declared", "--json")
    assert result.exit_code == 1
    found = {(f["finding"], f["server"], f["tool"]) for f in result.json["governance"]["findings"]}
    assert found == {("lock-mismatch", "locked", "read"), ("no-lock", "new", None)}
    (mismatch,) = [f for f in result.json["governance"]["findings"] if f["tool"]]
    assert "changed (description)" in mismatch["message"]
    assert any("'unprobed' was never probed" in n for n in result.json["governance"]["notes"])


def test_validate_checks_the_tool_lock(workspace: Workspace) -> None:
    workspace.write("servers.yaml", "servers:\n  a: {command: a}\n")
    workspace.write(
        toollock.LOCK_FILE, "lock: 1\nservers: {a: {t: {class: read-only, sha256: x}}}\n"
    )
    assert workspace.run("validate").exit_code == 0
    workspace.write(toollock.LOCK_FILE, "lock: 1\nservers: {a: [not, a, mapping]}\n")
    result = workspace.run("validate")
    assert result.exit_code == 2
    assert "tools.lock.yaml:1:1: malformed tool lock" in result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["claude-code", "codex", "gemini", "opencode"])
def test_audit_finds_no_enforcement_gap_on_kinds_with_a_tool_control(
    workspace: Workspace, kind: str
) -> None:
    workspace.write(
        "desired.yaml",
        f"""
        servers:
          media: {{command: node, tools: {{deny: [delete_thing]}}}}
        targets:
          t: {{kind: {kind}}}
        """,
    )
    assert workspace.run().exit_code == 0
    result = workspace.run("audit", "--declared", "--json")
    assert result.json["governance"]["findings"] == [], result.stdout
    assert result.exit_code == 0


def test_audit_finds_a_denied_tool_re_enabled_by_hand_in_claude_code(workspace: Workspace) -> None:
    workspace.write(
        "desired.yaml",
        """
        servers:
          media: {command: node, tools: {deny: [delete_thing]}}
        targets:
          code: {kind: claude-code}
        """,
    )
    assert workspace.run().exit_code == 0
    settings = workspace.home / ".claude" / "settings.json"
    data = json.loads(settings.read_text())
    assert "mcp__media__delete_thing" in data["permissions"]["deny"]
    data["permissions"]["deny"].remove("mcp__media__delete_thing")  # re-enabled by hand
    settings.write_text(json.dumps(data))
    result = workspace.run("audit", "--declared", "--json")
    assert result.exit_code == 1
    assert [
        (f["finding"], f["server"], f["target"], f["tool"])
        for f in result.json["governance"]["findings"]
    ] == [("blocked-enabled", "media", "code", "delete_thing")]
