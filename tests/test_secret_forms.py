"""Secrets in the forms detection used to miss: passwords in arguments, password-like env
names, DSNs. ``import`` must move each into a reference (only its secret part) and ``adopt``
must keep references as references: no canary ever reaches a git object.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reconciler.secrets import detect, scan_essence, template_dsn_secrets
from tests.conftest import Workspace
from tests.gitrepo import commit_all, git, init_repo, isolate_git

PW = "plain" + "tulip77"  # plain, as people choose passwords: not random, no shape
PW2 = "garden" + "4horse"


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("PGPASSWORD", PW, "password"),
        ("MYSQL_PWD", PW, "password"),
        ("DB_PASSWD", PW, "password"),
        ("DB_PASS", PW, "password"),
        ("REDIS_PASSPHRASE", PW, "password"),
        ("DATABASE_URL", f"host=db user=app password={PW} dbname=app", "dsn-password"),
        ("CONN", f"Server=db;User Id=app;Password={PW};", "dsn-password"),
        ("DATABASE_URL", f"postgres://app:{PW}@db:5432/app", "url-password"),
    ],
)
def test_password_forms_are_found(key: str, value: str, kind: str) -> None:
    assert detect(value, key) == kind


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PASSWORD_FILE", "/run/secrets/db"),
        ("PWD", "/home/me/src"),
        ("REQUIRE_PASSWORD", "true"),
        ("PASSWORD_MIN_LENGTH", "12"),
        ("PGPASSWORD", "${env:PGPASSWORD}"),
        ("PGPASSWORD", "<your password>"),
        ("DATABASE_URL", "host=db user=app password=${env:PG_PASSWORD}"),
        ("PASSWORD_PROMPT", "Enter it:"),
        ("BYPASS", "1"),
        ("pass", "3"),  # a bare --pass is a pass number as often as not
        ("COMPASS_MODE", "north"),
    ],
)
def test_password_like_names_of_other_things_are_not(key: str, value: str) -> None:
    assert detect(value, key) is None


def test_password_arguments_are_found_and_ports_are_not() -> None:
    args = [
        "-uapp", f"-p{PW}", "-p", "3306", f"--password={PW}", "--password", PW2,
        "-p8080:80", "--password-stdin", "--user", "app", "--db-pass", PW, "--pass", "3",
    ]  # fmt: skip
    found = {(f.path, f.kind) for f in scan_essence({"command": "mysql-mcp", "args": args})}
    assert found == {
        ("/args/1", "password"),
        ("/args/4", "password"),
        ("/args/6", "password"),
        ("/args/12", "password"),
    }


def test_only_the_password_of_a_dsn_becomes_a_reference() -> None:
    assert template_dsn_secrets(f"host=db user=app password={PW} dbname=app", "PG") == (
        "host=db user=app password=${env:PG_PASSWORD} dbname=app",
        ["PG_PASSWORD"],
    )


@pytest.fixture
def repo(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    return workspace


def _all_git_objects(root: Path) -> str:
    out = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return out.decode("utf-8", "replace")


def test_import_moves_every_password_form_into_references(repo: Workspace) -> None:
    repo.desktop_config.parent.mkdir(parents=True, exist_ok=True)
    repo.desktop_config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "mysql": {
                        "command": "mysql-mcp",
                        "args": ["-uapp", f"-p{PW}", "--host", "db"],
                    },
                    "pg": {
                        "command": "pg-mcp",
                        "args": [f"--password={PW2}", "--conn", f"host=db user=app password={PW}"],
                        "env": {"PGPASSWORD": PW, "PGHOST": "db", "TZ": "UTC"},
                    },
                }
            }
        )
    )
    result = repo.run("import", "--target", "claude-desktop")
    assert result.exit_code == 0, result.stdout + result.stderr
    servers = (repo.desired / "servers.yaml").read_text()
    assert "-p${env:MYSQL_PASSWORD}" in servers
    assert "--password=${env:PG_PASSWORD}" in servers
    assert "host=db user=app password=${env:PG_PASSWORD}" in servers  # host and user kept
    assert "PGPASSWORD: ${env:PGPASSWORD}" in servers
    assert "PGHOST: db" in servers and "TZ: UTC" in servers
    assert repo.run("validate").exit_code == 0
    everything = _all_git_objects(repo.root) + git(repo.root, "log", "-p", "--all")
    for canary in (PW, PW2):
        assert canary not in everything
        assert canary not in result.stdout + result.stderr
        assert canary not in servers


def test_validate_refuses_a_password_in_desired_state(repo: Workspace) -> None:
    repo.write(
        "servers.yaml",
        f"""
        servers:
          pg:
            command: pg-mcp
            args: ["--password", "{PW}"]
            env: {{PGPASSWORD: "{PW2}"}}
        """,
    )
    checked = repo.run("validate")
    assert checked.exit_code == 2
    out = checked.stdout + checked.stderr
    assert "servers.pg.args.1: a literal secret (password)" in out
    assert "servers.pg.env.PGPASSWORD: a literal secret (password)" in out
    assert PW not in out and PW2 not in out


def test_adopt_keeps_references_and_commits_no_resolved_value(repo: Workspace) -> None:
    repo.write(
        "servers.yaml",
        """
        servers:
          pg:
            command: pg-mcp
            args: ["-p${env:DB_PW}", "--conn", "host=db password=${env:DB_PW}"]
            env: {PGPASSWORD: "${env:DB_PW}", LABEL: "${env:TEAM_LABEL}"}
        """,
    )
    repo.write("targets.yaml", "targets:\n  desktop: {kind: claude-desktop}\n")
    commit_all(repo.root)
    # TEAM_LABEL's value looks like nothing: only its origin says it must stay a reference.
    env = {"DB_PW": PW, "TEAM_LABEL": PW2}
    assert repo.run(env=env).exit_code == 0
    data = json.loads(repo.desktop_config.read_text())
    assert data["mcpServers"]["pg"]["env"]["PGPASSWORD"] == PW  # resolved into the file
    data["mcpServers"]["pg"]["args"].insert(0, "--read-only")  # a hand edit worth adopting
    repo.desktop_config.write_text(json.dumps(data))

    adopted = repo.run("adopt", "pg", "--target", "desktop", env=env)
    assert adopted.exit_code == 0, adopted.stdout + adopted.stderr
    servers = (repo.desired / "servers.yaml").read_text()
    assert "--read-only" in servers
    assert '"-p${env:DB_PW}"' in servers
    assert "host=db password=${env:DB_PW}" in servers
    assert 'PGPASSWORD: "${env:DB_PW}"' in servers
    assert 'LABEL: "${env:TEAM_LABEL}"' in servers
    for canary in (PW, PW2):
        assert canary not in _all_git_objects(repo.root)
        assert canary not in adopted.stdout + adopted.stderr
    assert repo.run(env=env).exit_code == 0  # and the target is in sync with it
