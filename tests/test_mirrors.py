"""Mirrors end to end: each copy is a target in the pass, with diffs, records, sync and prune.

Trees and the desired repository live in temp dirs; commands that commit run in a real temp
git repository. The mirror is the DESIGN example: a local agent's tools folder and the copy
deployed with the gateway.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import Workspace, snapshot_tree
from tests.gitrepo import commit_all, commit_count, git, init_repo, isolate_git, trailers
from tests.jsonschema1 import assert_report_schema

SOURCE = "agents/media/tools/src"
COPY = "infra/compose/mcpjungle/servers/media-stack/src"
INDEX = "export function main() {\n  return 'media';\n}\n"


def declare(ws: Workspace, extra: str = "", copies: tuple[str, ...] = (COPY,)) -> None:
    ws.write(
        "mirrors.yaml",
        f"""
        mirrors:
          media-agent:
            source: {SOURCE}
            copies: [{", ".join(copies)}]
        {extra}
        """,
    )


def put(root: Path, rel: str, text: str | bytes, mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(mode)
    return path


def trees(ws: Workspace, *, copies: tuple[str, ...] = (COPY,)) -> tuple[Path, list[Path]]:
    source = ws.root / SOURCE
    put(source, "index.ts", INDEX)
    put(source, "lib/util.ts", "export const x = 1;\n")
    put(source, "run.sh", "#!/bin/sh\nexec node index.js\n", 0o755)
    made = []
    for copy in copies:
        target = ws.root / copy
        put(target, "index.ts", INDEX)
        put(target, "lib/util.ts", "export const x = 1;\n")
        put(target, "run.sh", "#!/bin/sh\nexec node index.js\n", 0o755)
        made.append(target)
    return source, made


def digests(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            out[str(path.relative_to(root))] = (
                hashlib.sha256(data).hexdigest(),
                path.stat().st_mode & 0o777,
            )
    return out


@pytest.fixture
def repo(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    return workspace


# -- the acceptance story ------------------------------------------------------------------


def test_differing_file_is_drift_until_allowed_and_drift_again_when_it_moves(
    repo: Workspace,
) -> None:
    declare(repo)
    _, (copy,) = trees(repo)
    put(copy, "index.ts", INDEX.replace("'media'", "'media-v2'"))
    commit_all(repo.root)

    before = snapshot_tree(copy)
    dry = repo.run("--dry-run")
    assert dry.exit_code == 1, dry.stdout + dry.stderr
    assert "media-agent (mirror" in dry.stdout
    assert "--- copy/index.ts" in dry.stdout and "+++ source/index.ts" in dry.stdout
    assert "-  return 'media-v2';" in dry.stdout
    assert "+  return 'media';" in dry.stdout
    assert snapshot_tree(copy) == before  # a dry run writes nothing
    assert not (repo.state_dir / "mirror-cache").exists()

    commits = commit_count(repo.root)
    allowed = repo.run(
        "allow",
        "media-agent",
        "--target",
        "media-agent",
        "--path",
        "/index.ts",
        "--reason",
        "the gateway copy pins its own greeting",
    )
    assert allowed.exit_code == 0, allowed.stdout + allowed.stderr
    record = repo.desired / "divergences" / "media-agent--media-agent.yaml"
    text = record.read_text()
    assert "paths: [/index.ts]" in text and "observed: hmac-sha256:" in text
    assert commit_count(repo.root) == commits + 1
    found = trailers(repo.root)
    assert found["Reconciler-Target"] == "media-agent"
    assert found["Reconciler-Paths"] == "/index.ts"

    covered = repo.run("--dry-run", "--json")
    assert covered.exit_code == 0, covered.stdout
    report = covered.json
    assert_report_schema(report)
    (target,) = report["targets"]
    assert target["kind"] == "mirror" and target["status"] == "in_sync"
    assert target["allowed"][0]["paths"] == ["/index.ts"]

    put(copy, "index.ts", INDEX.replace("'media'", "'media-v3'"))
    again = repo.run("--dry-run")
    assert again.exit_code == 1
    assert "-  return 'media-v3';" in again.stdout


def test_sync_makes_the_copy_identical_and_prunes_only_when_asked(workspace: Workspace) -> None:
    workspace.write(
        "mirrors.yaml",
        f"""
        mirrors:
          media-agent:
            source: {SOURCE}
            copies: [{COPY}]
            on_drift: sync
        """,
    )
    source, (copy,) = trees(workspace)
    put(copy, "index.ts", "stale\n")
    (copy / "run.sh").chmod(0o644)
    (copy / "lib" / "util.ts").unlink()
    put(copy, "old/leftover.ts", "remove me only with prune\n")
    put(source, "assets/logo.bin", bytes(range(256)))

    first = workspace.run("--json")
    assert first.exit_code == 1, first.stdout  # the extra file is kept: drift remains
    (target,) = first.json["targets"]
    kept = [c for c in target["changes"] if not c["applied"]]
    assert [c["paths"] for c in kept] == [["/old/leftover.ts"]]
    assert (copy / "old" / "leftover.ts").exists()
    synced = digests(copy)
    del synced["old/leftover.ts"]
    assert synced == digests(source)  # hashes and modes equal

    workspace.write(
        "mirrors.yaml",
        f"""
        mirrors:
          media-agent:
            source: {SOURCE}
            copies: [{COPY}]
            on_drift: sync
            prune: true
        """,
    )
    pruned = workspace.run()
    assert pruned.exit_code == 0, pruned.stdout
    assert digests(copy) == digests(source)
    assert not (copy / "old").exists()

    before = snapshot_tree(copy)
    cache = snapshot_tree(workspace.state_dir / "mirror-cache")
    quiet = workspace.run()
    assert quiet.exit_code == 0
    assert snapshot_tree(copy) == before  # idempotent: nothing rewritten
    assert "0 changed" in quiet.stdout
    assert snapshot_tree(workspace.state_dir / "mirror-cache") == cache  # nor the cache


def test_report_mode_never_writes_and_explains_each_kind_of_drift(workspace: Workspace) -> None:
    declare(workspace)
    source, (copy,) = trees(workspace)
    put(copy, "extra.ts", "x\n")
    (copy / "lib" / "util.ts").unlink()
    (copy / "run.sh").chmod(0o644)
    put(source, "logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    put(copy, "logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDX")
    before = snapshot_tree(copy)
    result = workspace.run()  # not a dry run: on_drift report still leaves the copy alone
    assert result.exit_code == 1
    out = result.stdout
    assert "extra in the copy" in out and "missing in the copy" in out
    assert "mode 0644 -> 0755" in out
    assert "binary: 16 B, mode 0644, sha256:" in out
    assert "not applied: on_drift report" in out
    assert snapshot_tree(copy) == before


def test_symlinks_compared_as_links_never_followed_outside(workspace: Workspace) -> None:
    outside = workspace.root.parent / "outside"
    put(outside, "private.txt", "not part of any tree\n")
    workspace.write(
        "mirrors.yaml",
        f"""
        mirrors:
          media-agent:
            source: {SOURCE}
            copies: [{COPY}]
            on_drift: sync
            prune: true
        """,
    )
    source, (copy,) = trees(workspace)
    (source / "current.ts").symlink_to("index.ts")
    (source / "vendor").symlink_to(outside)  # a folder link out of the tree
    (copy / "current.ts").symlink_to("lib/util.ts")  # a link with another target
    (copy / "vendor").symlink_to(outside)

    dry = workspace.run("--dry-run", "--json")
    (target,) = dry.json["targets"]
    (change,) = target["changes"]
    assert change["paths"] == ["/current.ts"]  # the link text differs; vendor/* never walked
    assert change["diff"][0]["live"] == "symlink -> lib/util.ts"

    assert workspace.run().exit_code == 0
    assert os.readlink(copy / "current.ts") == "index.ts"
    assert os.readlink(copy / "vendor") == str(outside)
    assert sorted(p.name for p in outside.iterdir()) == ["private.txt"]


def test_include_exclude_and_always_skipped_folders(workspace: Workspace) -> None:
    workspace.write(
        "mirrors.yaml",
        f"""
        mirrors:
          media-agent:
            source: {SOURCE}
            copies: [{COPY}]
            include: ["**/*.ts"]
            exclude: [generated]
        """,
    )
    source, (copy,) = trees(workspace)
    put(source, "README.md", "only in the source, not included\n")
    put(copy, "notes.txt", "only in the copy, not included\n")
    put(source, "generated/api.ts", "excluded\n")
    put(copy, "node_modules/dep/index.ts", "always skipped\n")
    put(copy, ".git/HEAD", "ref: refs/heads/main\n")
    put(source, "__pycache__/x.ts", "always skipped\n")
    assert workspace.run("--dry-run").exit_code == 0
    put(copy, "lib/util.ts", "export const x = 2;\n")
    result = workspace.run("--dry-run", "--json")
    assert result.exit_code == 1
    (change,) = result.json["targets"][0]["changes"]
    assert change["paths"] == ["/lib/util.ts"]


def test_several_copies_are_named_mirror_colon_copy(workspace: Workspace) -> None:
    second = "deploy/other/src"
    declare(workspace, copies=(COPY, second))
    _, (_, other) = trees(workspace, copies=(COPY, second))
    put(other, "index.ts", "drifted\n")
    result = workspace.run("--dry-run", "--json")
    assert result.exit_code == 1
    status = {t["name"]: t["status"] for t in result.json["targets"]}
    assert status == {f"media-agent:{COPY}": "in_sync", f"media-agent:{second}": "drifted"}
    one = workspace.run("--dry-run", "--target", f"media-agent:{COPY}")
    assert one.exit_code == 0


def test_missing_source_is_a_failed_required_target(workspace: Workspace) -> None:
    declare(workspace)
    result = workspace.run("--dry-run", "--json")
    assert result.exit_code == 3
    assert_report_schema(result.json)
    assert "folder not found" in result.json["degraded"][0]["error"]


def test_record_commits_one_divergence_for_the_drifted_files(repo: Workspace) -> None:
    repo.write(
        "mirrors.yaml",
        f"""
        mirrors:
          media-agent:
            source: {SOURCE}
            copies: [{COPY}]
            on_drift: record
        """,
    )
    _, (copy,) = trees(repo)
    put(copy, "lib/util.ts", "export const x = 42;\n")
    commit_all(repo.root)
    result = repo.run()
    assert result.exit_code == 0, result.stdout + result.stderr
    record = repo.desired / "divergences" / "media-agent--media-agent.yaml"
    assert "paths: [/lib/util.ts]" in record.read_text()
    assert git(repo.root, "log", "-1", "--format=%s").startswith("divergence: record media-agent")
    assert repo.run("--dry-run").exit_code == 0
    assert (copy / "lib" / "util.ts").read_text() == "export const x = 42;\n"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["copies: [agents/media/tools/src]"], "the copy is the source itself"),
        (["copies: [agents/media/tools/src/deploy]"], "contain one another"),
        (["copies: [x]", "include: ['[z-a]']"], "invalid glob"),
        (["copies: [x, x]"], "is a copy in mirrors"),
    ],
)
def test_invalid_mirrors_fail_validation(
    workspace: Workspace, lines: list[str], message: str
) -> None:
    body = "".join(f"    {line}\n" for line in lines)
    workspace.write("mirrors.yaml", f"mirrors:\n  media-agent:\n    source: {SOURCE}\n{body}")
    result = workspace.run("validate")
    assert result.exit_code == 2
    assert message in result.stdout + result.stderr


def test_a_mirror_kind_under_targets_is_refused(workspace: Workspace) -> None:
    workspace.write(
        "targets.yaml",
        """
        targets:
          folder:
            kind: mirror
        """,
    )
    result = workspace.run("validate")
    assert result.exit_code == 2
    assert "declare mirrored folders under `mirrors:`" in result.stdout + result.stderr


def test_status_shows_a_row_per_mirror(workspace: Workspace) -> None:
    declare(workspace)
    _, (copy,) = trees(workspace)
    assert workspace.run("status").exit_code == 0
    put(copy, "index.ts", "drifted\n")
    result = workspace.run("status", "--json")
    assert result.exit_code == 1
    assert result.json["mirrors"] == {"media-agent": {"media-agent": "drift"}}
    text = workspace.run("status").stdout
    assert any(line.split() == ["media-agent", "drift"] for line in text.splitlines())


def test_an_expired_record_covers_nothing(repo: Workspace) -> None:
    declare(repo)
    _, (copy,) = trees(repo)
    put(copy, "index.ts", "pinned\n")
    commit_all(repo.root)
    allowed = repo.run(
        "allow", "media-agent", "--target", "media-agent", "--reason", "pinned", "--path", "/"
    )
    assert allowed.exit_code == 0, allowed.stdout + allowed.stderr
    assert repo.run("--dry-run").exit_code == 0
    record = repo.desired / "divergences" / "media-agent--media-agent.yaml"
    text = record.read_text()
    assert "expires" not in text
    record.write_text(text.replace("reason: pinned\n", "reason: pinned\n  expires: 2000-01-01\n"))
    lapsed = repo.run("--dry-run")
    assert lapsed.exit_code == 1
    assert "expired" in lapsed.stdout


def test_rejecting_a_recorded_file_syncs_it_once(repo: Workspace) -> None:
    repo.write(
        "mirrors.yaml",
        f"""
        mirrors:
          media-agent:
            source: {SOURCE}
            copies: [{COPY}]
            on_drift: record
        """,
    )
    source, (copy,) = trees(repo)
    put(copy, "index.ts", "hand edit\n")
    commit_all(repo.root)
    assert repo.run().exit_code == 0
    rejected = repo.run("divergences", "reject", "media-agent--media-agent")
    assert rejected.exit_code == 0, rejected.stdout + rejected.stderr
    synced = repo.run()
    assert synced.exit_code == 0, synced.stdout
    assert (copy / "index.ts").read_bytes() == (source / "index.ts").read_bytes()
    assert not (repo.desired / "divergences" / "media-agent--media-agent.yaml").exists()
    put(copy, "index.ts", "another hand edit\n")
    assert repo.run().exit_code == 0  # recorded again, not synced: the rejection was used
    assert (copy / "index.ts").read_text() == "another hand edit\n"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("divergences", "list"), "media-agent--media-agent  [unreviewed]"),
        (("divergences", "show", "media-agent--media-agent"), "state:    unreviewed"),
        (("divergences", "prune-stale"), "no stale divergence records"),
    ],
)
def test_review_commands_with_a_server_named_like_the_mirror(
    repo: Workspace, command: tuple[str, ...], expected: str
) -> None:
    """The DESIGN naming: mirror ``media-agent`` and server ``media-agent`` (issue 17)."""
    repo.write(
        "servers/media-agent.yaml",
        """
        servers:
          media-agent:
            command: node
            args: [index.js]
        """,
    )
    declare(repo)
    _, (copy,) = trees(repo)
    put(copy, "index.ts", "pinned\n")
    commit_all(repo.root)
    allowed = repo.run(
        "allow", "media-agent", "--target", "media-agent", "--reason", "pinned", "--path", "/"
    )
    assert allowed.exit_code == 0, allowed.stdout + allowed.stderr
    result = repo.run(*command)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert expected in result.stdout
