"""Secrets in URLs: a password or a token in the userinfo, a query parameter with a secret-like
name. ``validate`` refuses them in desired state with their location, ``audit`` finds them
live (tests/test_discover.py), every output redacts them, and ``import`` templates only the
secret part."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from reconciler.app.adopt import without_secrets
from reconciler.secrets import detect, template_url_secrets, url_secret_parts
from tests.conftest import Workspace
from tests.gitrepo import commit_all, git, init_repo, isolate_git


def _canary() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(24))


@pytest.mark.parametrize(
    "name",
    ["api_key", "apikey", "API_KEY", "key", "token", "access_token", "auth", "secret",
     "password", "sig", "signature", "client_secret", "x-api-key", "refresh_token"],
)  # fmt: skip
def test_a_secret_like_query_parameter_is_a_secret(name: str) -> None:
    value = _canary()
    url = f"https://host.example/mcp?page=2&{name}={value}#top"
    assert detect(url, "url") == "url-query-secret"
    assert url_secret_parts(url) == [value]


@pytest.mark.parametrize(
    "url",
    [
        "https://host.example/mcp?page=2&format=json",
        "https://host.example/mcp?api_key=${env:HOST_KEY}",
        "https://host.example/mcp?token=",
        "https://host.example/mcp?token=<your-token>",
        "https://host.example/mcp?monkey=banana",
        "https://user@host.example/mcp",
        "postgres://app:${env:PG_PASSWORD}@db:5432/app",
    ],
)
def test_ordinary_urls_are_not_secrets(url: str) -> None:
    assert detect(url, "url") is None
    assert url_secret_parts(url) == []


def test_userinfo_credentials_are_secrets() -> None:
    password, token = _canary(), _canary()
    assert detect(f"postgres://app:{password}@db:5432/app") == "url-password"
    assert url_secret_parts(f"postgres://app:{password}@db:5432/app") == [password]
    assert detect(f"https://{token}@git.example/repo") == "url-userinfo"
    assert url_secret_parts(f"https://{token}@git.example/repo") == [token]


def test_only_the_secret_part_is_templated() -> None:
    secret = _canary()
    assert template_url_secrets(f"postgres://app:{secret}@db:5432/app", "PG") == (
        "postgres://app:${env:PG_PASSWORD}@db:5432/app",
        ["PG_PASSWORD"],
    )
    assert template_url_secrets(f"https://h/mcp?api_key={secret}&page=2", "HOST") == (
        "https://h/mcp?api_key=${env:HOST_API_KEY}&page=2",
        ["HOST_API_KEY"],
    )
    kept = "https://h/mcp?api_key=${env:MINE}"
    assert template_url_secrets(kept, "HOST") == (kept, [])


# -- validate ------------------------------------------------------------------------------


def test_validate_refuses_a_query_key_and_a_password_with_their_location(
    workspace: Workspace,
) -> None:
    key, password = _canary(), _canary()
    workspace.write(
        "servers.yaml",
        f"""
        servers:
          search:
            url: https://search.example/mcp?api_key={key}&page=2
          db:
            command: pg-mcp
            args: ["postgres://app:{password}@db:5432/app"]
          fine:
            url: https://search.example/mcp?api_key=${{env:SEARCH_KEY}}
        """,
    )
    result = workspace.run("validate")
    assert result.exit_code == 2, result.stdout
    assert "servers.yaml:3:" in result.stderr and "url-query-secret" in result.stderr
    assert "servers.yaml:6:" in result.stderr and "url-password" in result.stderr
    assert "https://search.example/mcp?api_key=${env:SEARCH_API_KEY}&page=2" in result.stderr
    assert "postgres://app:${env:DB_PASSWORD}@db:5432/app" in result.stderr
    assert "fine" not in result.stderr
    for value in (key, password):
        assert value not in result.stdout and value not in result.stderr
    as_json = workspace.run("validate", "--json")
    assert as_json.exit_code == 2
    assert key not in as_json.stdout and password not in as_json.stdout


# -- every output --------------------------------------------------------------------------


def test_a_dry_run_diff_never_shows_a_live_url_secret(workspace: Workspace) -> None:
    key, password = _canary(), _canary()
    cursor = workspace.home / ".cursor" / "mcp.json"
    cursor.parent.mkdir(parents=True)
    live = {
        "search": {"url": f"https://search.example/mcp?api_key={key}"},
        "db": {"command": "pg-mcp", "args": [f"postgres://app:{password}@db:5432/app"]},
    }
    cursor.write_text(json.dumps({"mcpServers": live}))
    workspace.write(
        "servers.yaml",
        """
        servers:
          search:
            url: https://search.example/mcp?api_key=${env:SEARCH_KEY}
          db:
            command: pg-mcp
            args: ["postgres://app:${env:PG_PASSWORD}@db:5432/app"]
        """,
    )
    workspace.write("targets.yaml", "targets:\n  cursor:\n    kind: cursor\n")
    env = {"SEARCH_KEY": "x", "PG_PASSWORD": "y"}
    for args in (("--dry-run",), ("--dry-run", "-v"), ("--dry-run", "--json"), ("status",)):
        result = workspace.run(*args, env=env)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        for value in (key, password):
            assert value not in result.stdout, args
            assert value not in result.stderr, args
    assert "search" in workspace.run("--dry-run", env=env).stdout


# -- import --------------------------------------------------------------------------------


def test_import_templates_only_the_secret_part_of_a_url(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    workspace.write("servers.yaml", "servers: {}\n")
    commit_all(workspace.root)
    key, password = _canary(), _canary()
    cursor = workspace.home / ".cursor" / "mcp.json"
    cursor.parent.mkdir(parents=True)
    live = {
        "search": {"url": f"https://search.example/mcp?api_key={key}&page=2"},
        "db": {"command": "pg-mcp", "env": {"DATABASE_URL": f"postgres://app:{password}@db/app"}},
    }
    cursor.write_text(json.dumps({"mcpServers": live}))
    result = workspace.run("import", "--target", "cursor")
    assert result.exit_code == 0, result.stdout + result.stderr
    servers = (workspace.desired / "servers.yaml").read_text()
    assert "https://search.example/mcp?api_key=${env:SEARCH_API_KEY}&page=2" in servers
    assert "postgres://app:${env:DB_PASSWORD}@db/app" in servers
    history = git(workspace.root, "log", "-p", "--all")
    for value in (key, password):
        assert value not in servers and value not in history
        assert value not in result.stdout and value not in result.stderr
    assert "SEARCH_API_KEY" in result.stdout and "DB_PASSWORD" in result.stdout
    assert workspace.run("validate").exit_code == 0


def test_every_variable_of_a_url_is_listed() -> None:
    password, key = _canary(), _canary()
    clean, moved = without_secrets(
        "svc", {"transport": "http", "url": f"https://u:{password}@h/mcp?token={key}"}
    )
    assert clean["url"] == "https://u:${env:SVC_PASSWORD}@h/mcp?token=${env:SVC_TOKEN}"
    assert [m.variable for m in moved] == ["SVC_PASSWORD", "SVC_TOKEN"]
