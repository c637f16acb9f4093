"""Allowed divergences end to end: on_drift record, allow, review, reject, with real git."""

from __future__ import annotations

import json
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.conftest import Workspace, snapshot_tree
from tests.gitrepo import (
    commit_all,
    commit_count,
    desktop_entries,
    files_in,
    git,
    init_repo,
    isolate_git,
    trailers,
)

RECORD_ID = "desktop--time"
RECORD_FILE = f"desired/divergences/{RECORD_ID}.yaml"


def setup(ws: Workspace, on_drift: str = "record") -> None:
    ws.write(
        "desired.yaml",
        f"""
        servers:
          time:
            command: uvx
            args: [mcp-server-time, --local-timezone=UTC]
          fetch:
            command: uvx
            args: [mcp-server-fetch]
        targets:
          desktop:
            kind: claude-desktop
            on_drift: {on_drift}
        """,
    )


@pytest.fixture
def repo(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    return workspace


def converge(ws: Workspace, on_drift: str = "record") -> None:
    setup(ws, on_drift)
    commit_all(ws.root)
    assert ws.run().exit_code == 0


def edit_time(ws: Workspace, zone: str = "Europe/Paris") -> None:
    data = json.loads(ws.desktop_config.read_text())
    data["mcpServers"]["time"]["args"][1] = f"--local-timezone={zone}"
    ws.desktop_config.write_text(json.dumps(data, indent=2) + "\n")


# -- on_drift: record ----------------------------------------------------------------------


def test_hand_edit_on_record_target_becomes_one_record_and_one_commit(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    before = commit_count(repo.root)

    result = repo.run()

    assert result.exit_code == 0, result.stdout + result.stderr
    records = sorted((repo.desired / "divergences").glob("*.yaml"))
    assert [p.name for p in records] == [f"{RECORD_ID}.yaml"]
    assert commit_count(repo.root) == before + 1
    assert files_in(repo.root) == [RECORD_FILE]
    assert trailers(repo.root) == {
        "Reconciler-Action": "record",
        "Reconciler-Target": "desktop",
        "Reconciler-Server": "time",
        "Reconciler-Paths": "/args/1",
    }
    subject = git(repo.root, "log", "-1", "--format=%s")
    assert subject.strip() == "divergence: record time on desktop (/args/1)"
    assert desktop_entries(repo)["time"]["args"][1] == "--local-timezone=Europe/Paris"
    author = git(repo.root, "log", "-1", "--format=%an <%ae>").strip()
    assert author == "mcp-reconciler <reconciler@localhost>"


def test_record_file_has_the_design_format_and_no_value(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert repo.run().exit_code == 0
    text = (repo.root / RECORD_FILE).read_text()
    assert text.startswith("divergence:\n  target: desktop\n  server: time\n  paths: [/args/1]\n")
    assert "  observed: hmac-sha256:" in text
    assert "reviewed: false" in text
    assert "Europe/Paris" not in text  # a fingerprint, never the value


def test_next_pass_after_record_is_a_noop(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert repo.run().exit_code == 0
    commits = commit_count(repo.root)
    files = snapshot_tree(repo.home) | snapshot_tree(repo.desired)

    result = repo.run("--json")

    assert result.exit_code == 0
    assert commit_count(repo.root) == commits
    assert snapshot_tree(repo.home) | snapshot_tree(repo.desired) == files
    desktop = result.json["targets"][0]
    assert desktop["changes"] == []
    assert desktop["allowed"][0]["server"] == "time"
    assert desktop["allowed"][0]["paths"] == ["/args/1"]
    assert desktop["allowed"][0]["record"] == RECORD_FILE
    dry = repo.run("--dry-run")
    assert dry.exit_code == 0
    assert f"allowed by {RECORD_FILE}" in dry.stdout


def test_further_edit_of_the_same_field_is_drift_again(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert repo.run().exit_code == 0
    edit_time(repo, "Asia/Tokyo")

    result = repo.run("--dry-run", "--json")

    assert result.exit_code == 1
    change = result.json["targets"][0]["changes"][0]
    assert (change["server"], change["action"], change["paths"]) == ("time", "record", ["/args/1"])
    assert result.json["targets"][0]["allowed"] == []


def test_further_edit_rerecords_the_same_record_file(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert repo.run().exit_code == 0
    first = (repo.root / RECORD_FILE).read_text()
    edit_time(repo, "Asia/Tokyo")
    assert repo.run().exit_code == 0
    assert sorted(p.name for p in (repo.desired / "divergences").iterdir()) == [f"{RECORD_ID}.yaml"]
    assert (repo.root / RECORD_FILE).read_text() != first
    assert repo.run("--dry-run").exit_code == 0


def test_dry_run_on_record_target_shows_record_and_writes_nothing(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    commits = commit_count(repo.root)
    result = repo.run("--dry-run")
    assert result.exit_code == 1
    assert "time: record, origin live" in result.stdout
    assert not (repo.desired / "divergences").exists()
    assert commit_count(repo.root) == commits


def test_record_pass_works_in_a_repository_without_commits(repo: Workspace) -> None:
    setup(repo)
    assert repo.run().exit_code == 0
    edit_time(repo)
    assert commit_count(repo.root) == 0
    assert repo.run().exit_code == 0
    assert commit_count(repo.root) == 1
    assert files_in(repo.root) == [RECORD_FILE]  # desired.yaml, untracked, stays out


# -- allow ---------------------------------------------------------------------------------


def test_allow_covers_drift_on_a_sync_target_and_apply_keeps_the_edit(repo: Workspace) -> None:
    converge(repo, "sync")
    edit_time(repo)
    result = repo.run(
        "allow",
        "time",
        "--target",
        "desktop",
        "--reason",
        "Paris office",
        "--expires",
        soon(90),
    )
    assert result.exit_code == 0, result.stderr
    assert trailers(repo.root) == {
        "Reconciler-Action": "allow",
        "Reconciler-Target": "desktop",
        "Reconciler-Server": "time",
        "Reconciler-Paths": "/args/1",
        "Reconciler-Expires": soon(90),
    }
    body = git(repo.root, "log", "-1", "--format=%B")
    assert body.startswith("divergence: allow time on desktop (/args/1)\n\nParis office\n\n")

    assert repo.run("--dry-run").exit_code == 0
    assert repo.run().exit_code == 0
    assert desktop_entries(repo)["time"]["args"][1] == "--local-timezone=Europe/Paris"


def lapse(ws: Workspace, record_id: str = RECORD_ID) -> None:
    """Backdate a record's expiry by hand (allow refuses a past date) and commit it."""
    path = ws.root / f"desired/divergences/{record_id}.yaml"
    text = path.read_text()
    start = text.index("  expires: ")
    end = text.index("\n", start)
    path.write_text(text[:start] + "  expires: 2020-01-01" + text[end:])
    commit_all(ws.root)


def soon(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("expires", "extra", "code", "message"),
    [
        ("2020-01-01", (), 2, "is in the past"),
        ((date.today() - timedelta(days=1)).isoformat(), (), 2, "is in the past"),
        ((date.today() + timedelta(days=400)).isoformat(), (), 2, "--force"),
        ((date.today() + timedelta(days=400)).isoformat(), ("--force",), 0, "allowed time"),
        (date.today().isoformat(), (), 0, "within a week"),
    ],
)
def test_allow_refuses_an_expiry_in_the_past_and_asks_force_beyond_a_year(
    repo: Workspace, expires: str, extra: tuple[str, ...], code: int, message: str
) -> None:
    converge(repo, "sync")
    edit_time(repo)
    commits = commit_count(repo.root)
    result = repo.run(
        "allow",
        "time",
        "--target",
        "desktop",
        "--reason",
        "temporary",
        "--expires",
        expires,
        *extra,
    )
    assert result.exit_code == code, result.stdout + result.stderr
    assert message in result.stdout + result.stderr
    assert commit_count(repo.root) == commits + (code == 0)


def test_an_expired_record_is_reported_and_covers_nothing(repo: Workspace) -> None:
    converge(repo, "sync")
    edit_time(repo)
    assert (
        repo.run(
            "allow", "time", "--target", "desktop", "--reason", "temporary", "--expires", soon(30)
        ).exit_code
        == 0
    )
    lapse(repo)
    dry = repo.run("--dry-run", "--json")
    assert dry.exit_code == 1
    target = dry.json["targets"][0]
    assert target["allowed"] == []
    assert any("expired" in note for note in target["notes"])
    listed = repo.run("divergences", "list", "--json").json["records"]
    assert [r["state"] for r in listed] == ["expired"]


def test_expired_record_on_a_record_target_is_not_silently_renewed(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert (
        repo.run(
            "allow", "time", "--target", "desktop", "--reason", "x", "--expires", soon(30)
        ).exit_code
        == 0
    )
    lapse(repo)
    commits = commit_count(repo.root)
    result = repo.run()
    assert result.exit_code == 1  # reported, not re-recorded
    assert commit_count(repo.root) == commits


def test_renew_extends_an_expired_record_and_commits_with_trailers(repo: Workspace) -> None:
    converge(repo, "sync")
    edit_time(repo)
    assert (
        repo.run(
            "allow", "time", "--target", "desktop", "--reason", "office", "--expires", soon(30)
        ).exit_code
        == 0
    )
    lapse(repo)
    assert repo.run("--dry-run").exit_code == 1
    commits = commit_count(repo.root)
    renewed = repo.run(
        "divergences", "renew", RECORD_ID, "--expires", soon(60), "--reason", "office, longer"
    )
    assert renewed.exit_code == 0, renewed.stdout + renewed.stderr
    assert f"renewed {RECORD_ID}" in renewed.stdout
    assert commit_count(repo.root) == commits + 1
    found = trailers(repo.root)
    assert found["Reconciler-Action"] == "renew"
    assert found["Reconciler-Expires"] == soon(60)
    text = (repo.root / RECORD_FILE).read_text()
    assert f"expires: {soon(60)}" in text and "reason: office, longer" in text
    assert repo.run("--dry-run").exit_code == 0  # covered again: the observed value is kept


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--expires", "2020-01-01"), "is in the past"),
        (("--expires", (date.today() + timedelta(days=400)).isoformat()), "--force"),
        (("--expires", "tomorrow"), "is not a date"),
    ],
)
def test_renew_refuses_what_allow_refuses(
    repo: Workspace, args: tuple[str, ...], message: str
) -> None:
    converge(repo, "sync")
    edit_time(repo)
    assert repo.run("allow", "time", "--target", "desktop", "--reason", "x").exit_code == 0
    commits = commit_count(repo.root)
    result = repo.run("divergences", "renew", RECORD_ID, *args)
    assert result.exit_code == 2
    assert message in result.stdout + result.stderr
    assert commit_count(repo.root) == commits


def test_the_expiry_note_names_the_renew_command(repo: Workspace) -> None:
    converge(repo, "sync")
    edit_time(repo)
    assert (
        repo.run(
            "allow", "time", "--target", "desktop", "--reason", "x", "--expires", soon(3)
        ).exit_code
        == 0
    )
    notes = repo.run("--dry-run", "--json").json["targets"][0]["notes"]
    assert any(f"reconcile divergences renew {RECORD_ID} --expires DATE" in n for n in notes)


def test_allow_one_path_keeps_it_while_the_rest_is_synced(repo: Workspace) -> None:
    converge(repo, "sync")
    data = json.loads(repo.desktop_config.read_text())
    data["mcpServers"]["time"]["args"][1] = "--local-timezone=Europe/Paris"
    data["mcpServers"]["time"]["env"] = {"TZ": "Europe/Paris"}
    repo.desktop_config.write_text(json.dumps(data))
    result = repo.run(
        "allow", "time", "--target", "desktop", "--path", "/args/1", "--reason", "office"
    )
    assert result.exit_code == 0, result.stderr

    dry = repo.run("--dry-run", "--json").json["targets"][0]
    assert [c["paths"] for c in dry["changes"]] == [["/env"]]
    assert dry["allowed"][0]["paths"] == ["/args/1"]

    assert repo.run().exit_code == 0
    entry = desktop_entries(repo)["time"]
    assert entry["args"][1] == "--local-timezone=Europe/Paris"
    assert "env" not in entry
    assert repo.run("--dry-run").exit_code == 0


def test_allow_refuses_what_is_not_drift(repo: Workspace) -> None:
    converge(repo, "sync")
    result = repo.run("allow", "time", "--target", "desktop", "--reason", "x")
    assert result.exit_code == 2
    assert "no drift to allow" in result.stderr
    edit_time(repo)
    bad = repo.run("allow", "time", "--target", "desktop", "--path", "/env/X", "--reason", "x")
    assert bad.exit_code == 2
    assert "no drift at /env/X" in bad.stderr
    assert not (repo.desired / "divergences").exists()


def test_expiring_record_warns_a_week_ahead(repo: Workspace) -> None:
    converge(repo, "sync")
    edit_time(repo)
    soon = (date.today() + timedelta(days=3)).isoformat()
    result = repo.run("allow", "time", "--target", "desktop", "--reason", "x", "--expires", soon)
    assert result.exit_code == 0
    assert "within a week" in result.stdout
    dry = repo.run("--dry-run", "--json")
    assert dry.exit_code == 0
    assert any("expires on" in n for n in dry.json["targets"][0]["notes"])
    assert dry.json["targets"][0]["allowed"][0]["state"] == "expiring"


# -- review --------------------------------------------------------------------------------


def test_list_shows_record_commit_author_date_reason_expiry_state(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert repo.run().exit_code == 0
    result = repo.run("divergences", "list", "--json")
    assert result.exit_code == 0
    (record,) = result.json["records"]
    assert record["id"] == RECORD_ID
    assert record["file"] == RECORD_FILE
    assert record["commit"] == git(repo.root, "rev-parse", "HEAD").strip()
    assert record["author"] == "mcp-reconciler <reconciler@localhost>"
    assert record["date"]
    assert "on_drift: record" in record["reason"]
    assert record["expires"] is None
    assert record["state"] == "unreviewed"
    text = repo.run("divergences").stdout
    assert RECORD_ID in text and "unreviewed" in text and "commit:" in text


def test_show_gives_the_record_its_commit_and_the_current_difference(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert repo.run().exit_code == 0
    result = repo.run("divergences", "show", RECORD_ID)
    assert result.exit_code == 0
    assert "Reconciler-Action: record" in result.stdout
    assert '~ /args/1: "--local-timezone=Europe/Paris" -> "--local-timezone=UTC"' in result.stdout
    assert repo.run("divergences", "show", "nope").exit_code == 2


def test_accept_sets_reviewed_and_commits(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert repo.run().exit_code == 0
    result = repo.run("divergences", "accept", RECORD_ID)
    assert result.exit_code == 0
    assert "reviewed: true" in (repo.root / RECORD_FILE).read_text()
    assert trailers(repo.root)["Reconciler-Action"] == "accept"
    assert files_in(repo.root) == [RECORD_FILE]
    listed = repo.run("divergences", "list", "--json").json["records"]
    assert listed[0]["state"] == "active" and listed[0]["reviewed"] is True


def test_reject_then_reconcile_syncs_the_target_back(repo: Workspace) -> None:
    converge(repo)
    edit_time(repo)
    assert repo.run().exit_code == 0
    recorded = git(repo.root, "rev-parse", "HEAD").strip()
    commits = commit_count(repo.root)

    result = repo.run("divergences", "reject", RECORD_ID)
    assert result.exit_code == 0
    assert not (repo.root / RECORD_FILE).exists()
    assert commit_count(repo.root) == commits + 1
    assert trailers(repo.root)["Reconciler-Action"] == "reject"
    assert f"This reverts commit {recorded}" in git(repo.root, "log", "-1", "--format=%B")
    assert files_in(repo.root) == [RECORD_FILE]

    assert repo.run("--dry-run").exit_code == 1  # the sync is pending, not a new record
    assert repo.run().exit_code == 0
    assert desktop_entries(repo)["time"]["args"][1] == "--local-timezone=UTC"
    assert commit_count(repo.root) == commits + 1  # the sync is no commit
    assert repo.run("--dry-run").exit_code == 0
    # The rejection was used up: a new edit is recorded again.
    edit_time(repo, "Asia/Tokyo")
    assert repo.run().exit_code == 0
    assert (repo.root / RECORD_FILE).exists()


def test_prune_stale_removes_only_stale_records_in_one_commit(repo: Workspace) -> None:
    converge(repo, "sync")
    edit_time(repo)
    assert repo.run("allow", "time", "--target", "desktop", "--reason", "x").exit_code == 0
    data = json.loads(repo.desktop_config.read_text())
    data["mcpServers"]["fetch"]["args"] = ["mcp-server-fetch", "--ignore-robots-txt"]
    repo.desktop_config.write_text(json.dumps(data))
    assert repo.run("allow", "fetch", "--target", "desktop", "--reason", "y").exit_code == 0
    edit_time(repo, "UTC")  # the time drift is gone: its record is stale

    states = {r["id"]: r["state"] for r in repo.run("divergences", "--json").json["records"]}
    assert states == {"desktop--time": "stale", "desktop--fetch": "unreviewed"}
    commits = commit_count(repo.root)
    result = repo.run("divergences", "prune-stale")
    assert result.exit_code == 0
    assert commit_count(repo.root) == commits + 1
    assert files_in(repo.root) == [RECORD_FILE]
    assert (repo.desired / "divergences" / "desktop--fetch.yaml").exists()
    assert trailers(repo.root)["Reconciler-Action"] == "prune"


def test_invalid_record_is_exit_2_with_file_and_line(repo: Workspace) -> None:
    converge(repo, "sync")
    repo.write(
        "divergences/bad.yaml",
        """
        divergence:
          target: desktop
          server: time
          paths: [args/1]
          observed: plain
          reason: x
          expirse: 2020-01-01
        """,
    )
    result = repo.run("--dry-run")
    assert result.exit_code == 2
    assert "bad.yaml:4:3: divergence.paths: 'args/1' is not a JSON Pointer" in result.stderr
    assert "bad.yaml:5:3: divergence.observed: must be a fingerprint" in result.stderr
    assert "bad.yaml:7:3: unknown key 'expirse'" in result.stderr
    assert "did you mean 'expires'" in result.stderr


# -- git hygiene ---------------------------------------------------------------------------


def test_unrelated_modified_and_staged_files_are_never_committed(repo: Workspace) -> None:
    (repo.root / "notes.txt").write_text("v1\n")
    (repo.root / "staged.txt").write_text("v1\n")
    converge(repo)
    (repo.root / "notes.txt").write_text("v2, work in progress\n")
    (repo.root / "staged.txt").write_text("v2, staged by someone\n")
    git(repo.root, "add", "staged.txt")
    (repo.root / "untracked.txt").write_text("new\n")
    edit_time(repo)

    assert repo.run().exit_code == 0
    assert files_in(repo.root) == [RECORD_FILE]
    assert repo.run("divergences", "accept", RECORD_ID).exit_code == 0
    assert files_in(repo.root) == [RECORD_FILE]
    assert repo.run("divergences", "reject", RECORD_ID).exit_code == 0
    assert files_in(repo.root) == [RECORD_FILE]

    status = git(repo.root, "status", "--porcelain")
    assert " M notes.txt" in status
    assert "M  staged.txt" in status  # still staged, still not committed
    assert "?? untracked.txt" in status


def test_index_lock_is_retried(repo: Workspace) -> None:
    from reconciler.store import gitlog

    converge(repo)
    lock = repo.root / ".git" / "index.lock"
    lock.write_text("")
    waits: list[float] = []

    def release(seconds: float) -> None:
        waits.append(seconds)
        lock.unlink()

    record = repo.desired / "divergences" / "x.yaml"
    record.parent.mkdir()
    record.write_text("x: 1\n")
    with gitlog.open_repository(repo.desired, sleep=release) as git_repo:
        sha = git_repo.commit([record], "test: one file\n\nbody\n\nReconciler-Action: test\n")
    assert sha and len(waits) == 1
    assert files_in(repo.root) == ["desired/divergences/x.yaml"]


def test_a_held_index_lock_is_a_clear_error(repo: Workspace) -> None:
    from reconciler.core.errors import RepositoryError
    from reconciler.store import gitlog

    converge(repo)
    (repo.root / ".git" / "index.lock").write_text("")
    record = repo.desired / "x.yaml"
    record.write_text("x: 1\n")
    with (
        pytest.raises(RepositoryError, match=r"index is locked"),
        gitlog.open_repository(repo.desired, sleep=lambda s: None) as git_repo,
    ):
        git_repo.commit([record], "x")


def test_outside_a_git_repository_committing_commands_exit_2(workspace: Workspace) -> None:
    setup(workspace)
    # A record target cannot apply outside git: refused before anything is written.
    result = workspace.run()
    assert result.exit_code == 2
    assert "not inside a git repository" in result.stderr
    assert not workspace.desktop_config.exists()
    assert workspace.run("--dry-run").exit_code == 1  # planning needs no git
    for args in (
        ("allow", "time", "--target", "desktop", "--reason", "x"),
        ("adopt", "time", "--target", "desktop"),
        ("import", "--target", "desktop"),
        ("divergences", "reject", "x"),
    ):
        refused = workspace.run(*args)
        assert refused.exit_code == 2, args
        assert "not inside a git repository" in refused.stderr, args


def test_commit_message_keeps_prose_lines_out_of_the_trailers(repo: Workspace) -> None:
    converge(repo, "sync")
    edit_time(repo)
    reason = textwrap.dedent("""\
        Paris office needs local time.
        Ticket: OPS-12
    """)
    assert repo.run("allow", "time", "--target", "desktop", "--reason", reason).exit_code == 0
    parsed = trailers(repo.root)
    assert "Ticket" not in parsed
    assert parsed["Reconciler-Action"] == "allow"


def test_status_shows_allowed_and_reason_with_a_secret_is_refused(repo: Workspace) -> None:
    converge(repo, "sync")
    edit_time(repo)
    token = "ghp_" + "Qr7t" * 9
    refused = repo.run("allow", "time", "--target", "desktop", "--reason", f"uses {token}")
    assert refused.exit_code == 2 and "holds a secret" in refused.stderr
    assert token not in refused.stderr + refused.stdout
    assert repo.run("allow", "time", "--target", "desktop", "--reason", "ok").exit_code == 0
    status = repo.run("status")
    assert status.exit_code == 0
    assert "allowed" in status.stdout


def test_the_daemon_records_a_live_edit_once_and_its_record_write_is_quiet(
    repo: Workspace,
) -> None:
    from reconciler.app.review import record_drafts
    from reconciler.app.watch import Daemon, WatchOptions
    from reconciler.engine import Engine

    setup(repo)
    commit_all(repo.root)
    engine = Engine(repo.desired, repo.state_dir, home=repo.home, recorder=record_drafts)
    daemon = Daemon(engine, WatchOptions())
    daemon.iteration(start=True)
    edit_time(repo)
    commits = commit_count(repo.root)

    outcome = daemon.iteration([repo.desktop_config.resolve()])

    assert outcome is not None and outcome.result == "converged"
    assert commit_count(repo.root) == commits + 1
    assert trailers(repo.root)["Reconciler-Action"] == "record"
    assert desktop_entries(repo)["time"]["args"][1] == "--local-timezone=Europe/Paris"
    # The record file the pass wrote comes back as an event: at most a pass that changes nothing.
    again = daemon.iteration([(repo.root / RECORD_FILE).resolve()])
    assert again is None or again.result == "converged"
    assert commit_count(repo.root) == commits + 1


# -- a conflict shows three values ---------------------------------------------------------


def make_conflict(ws: Workspace, on_drift: str) -> None:
    """Converged at UTC; then git says New York and the live file says Paris."""
    converge(ws, on_drift)
    edit_time(ws, "Europe/Paris")
    path = ws.desired / "desired.yaml"
    path.write_text(path.read_text().replace("--local-timezone=UTC", "--local-timezone=NYC"))
    commit_all(ws.root)


THREE = {
    "desired": "--local-timezone=NYC",
    "live": "--local-timezone=Europe/Paris",
    "last_applied": "--local-timezone=UTC",
}


@pytest.mark.parametrize("on_drift", ["sync", "report"])
def test_a_conflict_shows_desired_live_and_last_applied(repo: Workspace, on_drift: str) -> None:
    make_conflict(repo, on_drift)
    dry = repo.run("--dry-run", "--json")
    (change,) = dry.json["targets"][0]["changes"]
    assert change["origin"] == "conflict"
    assert change["diff"] == [{"path": "/args/1", **THREE}]
    text = repo.run("--dry-run").stdout
    assert (
        '~ /args/1: desired "--local-timezone=NYC", live "--local-timezone=Europe/Paris", '
        'last applied "--local-timezone=UTC"'
    ) in text


def test_divergences_show_gives_a_recorded_conflicts_three_values(repo: Workspace) -> None:
    make_conflict(repo, "record")
    assert repo.run().exit_code == 0  # recorded, not overwritten
    shown = repo.run("divergences", "show", RECORD_ID)
    assert shown.exit_code == 0, shown.stderr
    assert (
        '~ /args/1: desired "--local-timezone=NYC", live "--local-timezone=Europe/Paris", '
        'last applied "--local-timezone=UTC"'
    ) in shown.stdout
    record = repo.run("divergences", "show", RECORD_ID, "--json").json["record"]
    assert record["drift"] == [{"path": "/args/1", **THREE}]
