"""The tool lock end to end: ``reconcile probe`` classifies, keeps the inventory and holds
the surface to ``desired/tools.lock.yaml``; ``probe --lock`` accepts it as a commit.

The servers are real processes: ``tests/servers/governed.py`` (the seed story's server,
with unannotated and wrongly annotated tools) and ``tools_server.py`` (the SDK server); git
is real, without a global configuration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Workspace
from tests.gitrepo import commit_all, commit_count, files_in, git, init_repo, isolate_git, trailers
from tests.servers import DIR

PY = sys.executable
CANARY = "canary-" + "Lk7q" * 8  # a token the server quotes in a tool description
LOCK = "desired/tools.lock.yaml"

GOVERNED_CLASSES = {
    "library_search": "read-only",
    "library_audit": "destructive",  # unannotated
    "library_stats": "destructive",  # a title, no hints
    "media_tag": "mutating",
    "media_delete": "destructive",
    # readOnlyHint "true" (a string): the SDK's parse coerces it to true before we see it
    "media_purge": "read-only",
    "bulk_delete": "read-only",  # claims read-only: only a deny catches it
}


def servers_yaml(description: str | None = None, other: str | None = None) -> str:
    env = {"LEAK": "${env:MEDIA_TOKEN}"}
    if description is not None:
        env["TOOL_DESCRIPTION"] = description
    tools_env = {"TOOL_DESCRIPTION": other} if other is not None else {}
    return f"""
    servers:
      media:
        command: {PY}
        args: [{json.dumps(str(DIR / "governed.py"))}]
        env: {json.dumps(env)}
      things:
        command: {PY}
        args: [{json.dumps(str(DIR / "tools_server.py"))}]
        env: {json.dumps(tools_env)}
    """


@pytest.fixture
def repo(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    isolate_git(tmp_path, monkeypatch)
    monkeypatch.setenv("MEDIA_TOKEN", CANARY)
    init_repo(workspace.root)
    workspace.write("servers.yaml", servers_yaml())
    commit_all(workspace.root)
    return workspace


def probe(ws: Workspace, *args: str) -> Any:
    result = ws.run("probe", "--timeout", "30", *args)
    assert CANARY not in result.stdout + result.stderr
    return result


def no_canary_anywhere(ws: Workspace) -> None:
    for path in [*ws.state_dir.rglob("*"), *ws.desired.rglob("*")]:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    objects = subprocess.run(
        ["git", "log", "--all", "-p", "--format=%B"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert CANARY not in objects


def test_probe_classifies_and_keeps_the_inventory(repo: Workspace) -> None:
    result = probe(repo, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    servers = {s["server"]: s for s in result.json["servers"]}
    classes = {t["name"]: t["class"] for t in servers["media"]["tools"]}
    assert classes == GOVERNED_CLASSES
    assert servers["media"]["tool_classes"] == {"read-only": 3, "mutating": 1, "destructive": 3}
    assert servers["things"]["tool_classes"] == {"read-only": 2, "mutating": 1, "destructive": 2}
    # No lock yet: nothing was reviewed, so no drift, and each server is said to be unlocked.
    assert result.json["tool_surface"]["drift"] == []
    assert sorted(result.json["tool_surface"]["unlocked"]) == ["media", "things"]

    inventory = json.loads((repo.state_dir / "tools.json").read_text())
    kept = inventory["servers"]["media"]
    assert {n: t["class"] for n, t in kept["tools"].items()} == GOVERNED_CLASSES
    assert kept["counts"] == {"read-only": 3, "mutating": 1, "destructive": 3}
    assert kept["probed_at"].endswith("Z")

    text = probe(repo)
    assert "RO/MUT/DES" in text.stdout
    assert any(line.startswith("media ") and " 7 " in line and "3/1/3" in line
               for line in text.stdout.splitlines())  # fmt: skip
    assert "no tool lock entry for media, things" in text.stdout
    assert not (repo.root / LOCK).exists()  # a probe without --lock writes no desired state

    status = repo.run("status", "--json")  # never probes: reads the kept inventory
    assert status.json["tools"]["media"]["counts"] == {
        "read-only": 3,
        "mutating": 1,
        "destructive": 3,
    }
    latest = json.loads((repo.state_dir / "tools.json").read_text())["servers"]["media"]
    assert status.json["tools"]["media"]["probed_at"] == latest["probed_at"]
    shown = repo.run("status").stdout
    assert "  media: 3 read-only, 1 mutating, 3 destructive (probed " in shown
    no_canary_anywhere(repo)


def test_status_says_when_a_server_was_never_probed(workspace: Workspace) -> None:
    workspace.write("servers.yaml", servers_yaml())
    status = workspace.run("status", "--json")
    assert status.json["tools"] == {"media": None, "things": None}
    assert "  media: not probed yet (`reconcile probe`)" in workspace.run("status").stdout


def test_lock_is_a_commit_of_the_lock_only_and_a_changed_description_is_drift(
    repo: Workspace,
) -> None:
    (repo.root / "unrelated.txt").write_text("work in progress\n")  # never committed by us
    before = commit_count(repo.root)
    locked = probe(repo, "--lock")
    assert locked.exit_code == 0, locked.stdout + locked.stderr
    assert commit_count(repo.root) == before + 1
    assert files_in(repo.root) == [LOCK]
    assert "?? unrelated.txt" in git(repo.root, "status", "--porcelain")
    found = trailers(repo.root)
    assert found["Reconciler-Action"] == "lock"
    assert found["Reconciler-Server"] == "media, things"
    assert "media/library_search" in found["Reconciler-Tools"]
    assert "things/read_thing" in found["Reconciler-Tools"]
    lock_text = (repo.root / LOCK).read_text()
    assert "library_audit:\n      class: destructive" in lock_text
    assert "Search the library" not in lock_text  # hashes, never the texts

    again = probe(repo, "--lock")  # nothing changed: no commit
    assert again.exit_code == 0 and "the tool lock is up to date" in again.stdout
    assert commit_count(repo.root) == before + 1
    assert probe(repo).exit_code == 0

    repo.write("servers.yaml", servers_yaml(description="Search, then mail the results out"))
    commit_all(repo.root, "media changes upstream")
    drift = probe(repo, "--json")
    assert drift.exit_code == 1
    (change,) = drift.json["tool_surface"]["drift"]
    assert (change["server"], change["tool"], change["change"]) == (
        "media",
        "library_search",
        "changed",
    )
    assert change["fields"] == ["description"]
    text = probe(repo)
    assert text.exit_code == 1
    assert (
        "drift: tool surface changed upstream: tool 'library_search' of server 'media'"
        " changed (description)"
    ) in text.stdout
    no_canary_anywhere(repo)


def test_lock_with_server_accepts_only_that_servers_surface(repo: Workspace) -> None:
    assert probe(repo, "--lock").exit_code == 0
    repo.write("servers.yaml", servers_yaml(description="changed", other="changed too"))
    commit_all(repo.root, "both change upstream")
    both = probe(repo, "--json")
    assert both.exit_code == 1
    assert {(d["server"], d["tool"]) for d in both.json["tool_surface"]["drift"]} == {
        ("media", "library_search"),
        ("things", "read_thing"),
    }
    accepted = probe(repo, "--lock", "--server", "things", "--json")
    assert accepted.exit_code == 0
    assert [a["tool"] for a in accepted.json["tool_surface"]["lock"]["accepted"]] == ["read_thing"]
    assert trailers(repo.root)["Reconciler-Server"] == "things"
    assert trailers(repo.root)["Reconciler-Tools"] == "things/read_thing"
    left = probe(repo, "--json")
    assert left.exit_code == 1
    assert [(d["server"], d["tool"]) for d in left.json["tool_surface"]["drift"]] == [
        ("media", "library_search")
    ]


def test_a_removed_and_an_added_tool_are_drift(repo: Workspace) -> None:
    assert probe(repo, "--lock").exit_code == 0
    lock = repo.root / LOCK
    text = lock.read_text()
    # As if the lock had been reviewed with one more tool and without media_purge.
    text = text.replace("  media_purge:", "  media_gone:")
    lock.write_text(text)
    commit_all(repo.root, "edited lock")
    result = probe(repo, "--json")
    assert result.exit_code == 1
    assert {(d["tool"], d["change"]) for d in result.json["tool_surface"]["drift"]} == {
        ("media_gone", "removed"),
        ("media_purge", "added"),
    }


@pytest.mark.parametrize("case", ["no-git", "dirty-lock", "with-target"])
def test_lock_refusals_are_exit_2_and_probe_nothing(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    isolate_git(tmp_path, monkeypatch)
    marker = tmp_path / "started"
    workspace.write(
        "servers.yaml",
        f"""
        servers:
          s:
            command: {PY}
            args: [-c, "open({str(marker)!r}, 'w').close()"]
        targets:
          desk: {{kind: claude-desktop, path: {workspace.home}/desk.json}}
        """,
    )
    args = ["--lock"]
    if case != "no-git":
        init_repo(workspace.root)
        workspace.write("tools.lock.yaml", "lock: 1\nservers: {}\n")
        commit_all(workspace.root)
    if case == "dirty-lock":
        workspace.write("tools.lock.yaml", "lock: 1\nservers: {s: {}}\n")
    if case == "with-target":
        args += ["--target", "desk"]
    result = workspace.run("probe", *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert not marker.exists()


def test_lock_with_every_probe_failing_writes_nothing(repo: Workspace) -> None:
    repo.write("servers.yaml", "servers:\n  gone: {command: /nonexistent/mcp-gone}\n")
    commit_all(repo.root, "a server that cannot start")
    before = commit_count(repo.root)
    result = probe(repo, "--lock", "--json")
    assert result.exit_code == 0  # an optional server's failure is a warning
    assert result.json["tool_surface"]["lock"] == {"commit": None, "servers": [], "accepted": []}
    assert not (repo.root / LOCK).exists() and commit_count(repo.root) == before
