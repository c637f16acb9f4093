"""Masking only what is secret: values from references, secret shapes, secret-like names.

Every other env and header value (``TZ: UTC``, ``GOVERNED_TOOLS: 1``) is shown as it is in
diffs, ``status`` and JSON, so that a change people care about stays readable; the secrets
beside it stay fingerprints, and their values appear nowhere.
"""

from __future__ import annotations

import json

import pytest

from reconciler.core.essence import fingerprint_with, is_sealed_value
from reconciler.secrets import is_secret_value
from reconciler.store.state import StateStore
from tests.conftest import Workspace

GHP = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"  # built at run time: no token here
RESOLVED = "resolved-" + "plain-looking"  # no secret shape, no secret name: masked by origin


@pytest.mark.parametrize(
    ("field", "key", "value", "secret"),
    [
        ("env", "TZ", "UTC", False),
        ("env", "GOVERNED_TOOLS", "1", False),
        ("env", "LOG_LEVEL", "debug", False),
        ("env", "ROOT", "/srv/data", False),
        ("env", "GITHUB_TOKEN", "x", True),  # by name, whatever the value
        ("env", "API_KEY", "short", True),
        ("env", "PGPASSWORD", "hunter2", True),
        ("env", "DB_PWD", "hunter2", True),
        ("env", "TOKEN_FILE", "/run/secrets/token", False),  # where a secret is, not one
        ("env", "NOTE", GHP, True),  # by shape, whatever the name
        ("env", "DATABASE_URL", "postgres://app:s3cr3t-pw@db/app", True),
        ("headers", "Authorization", "Bearer ${env:T}", True),
        ("headers", "X-Team", "platform", False),
        ("headers", "X-Api-Key", "abc", True),
    ],
)
def test_what_is_masked(field: str, key: str, value: str, secret: bool) -> None:
    assert is_secret_value(field, key, value) is secret


def _setup(workspace: Workspace, governed: str) -> None:
    workspace.write(
        "servers.yaml",
        f"""
        servers:
          tool:
            command: uvx
            env:
              TZ: UTC
              GOVERNED_TOOLS: "{governed}"
              GITHUB_TOKEN: "${{env:GH}}"
              LABEL: "${{env:LABEL_SECRET}}"
        """,
    )
    workspace.write(
        "targets.yaml",
        f"targets:\n  desktop: {{kind: claude-desktop, path: {workspace.home / 'd.json'}}}\n",
    )


def test_ordinary_values_are_readable_and_secrets_are_not(workspace: Workspace) -> None:
    env = {"GH": GHP, "LABEL_SECRET": RESOLVED}
    _setup(workspace, "1")
    assert workspace.run(env=env).exit_code == 0
    _setup(workspace, "0")

    dry = workspace.run("--dry-run", env=env)
    assert dry.exit_code == 1, dry.stdout
    assert '~ /env/GOVERNED_TOOLS: "1" -> "0"' in dry.stdout
    assert "GITHUB_TOKEN" not in dry.stdout.split("note:", 1)[0]  # unchanged: not in the diff

    data = workspace.run("--dry-run", "--json", env=env).json
    [change] = data["targets"][0]["changes"]
    assert change["diff"] == [{"path": "/env/GOVERNED_TOOLS", "live": "1", "desired": "0"}]

    # A wholesale diff (the entry created anew) shows the plain ones, masks the others.
    (workspace.home / "d.json").write_text('{"mcpServers": {}}\n')
    created = workspace.run("--dry-run", "--json", env=env).json
    [change] = created["targets"][0]["changes"]
    [diff] = [d for d in change["diff"] if d["path"] == "/env"]
    shown = diff["desired"]
    assert shown["TZ"] == "UTC" and shown["GOVERNED_TOOLS"] == "0"
    assert set(shown["GITHUB_TOKEN"]) == {"secret"}  # by name and by shape
    assert set(shown["LABEL"]) == {"secret"}  # resolved from a reference: by origin
    status = workspace.run("status", "--json", env=env)
    for out in (dry.stdout, json.dumps(data), json.dumps(created), status.stdout):
        assert GHP not in out
        assert RESOLVED not in out


def test_last_applied_from_before_keeps_comparing(workspace: Workspace) -> None:
    """Last-applied records written when every env value was sealed still compare: a change
    of a plain value is a change from desired, not a conflict, and no change is none."""
    env = {"GH": GHP, "LABEL_SECRET": RESOLVED}
    _setup(workspace, "1")
    assert workspace.run(env=env).exit_code == 0
    path = workspace.state_dir / "last-applied" / "desktop.json"
    record = json.loads(path.read_text())
    fingerprint = fingerprint_with(StateStore(workspace.state_dir).fingerprint_key(create=False))
    essence = record["entries"]["tool"]["essence"]
    assert essence["env"]["GOVERNED_TOOLS"] == "1"  # stored readable now
    essence["env"] = {  # as the records of earlier releases hold it: every value sealed
        k: v if is_sealed_value(v) else fingerprint(v) for k, v in essence["env"].items()
    }
    path.write_text(json.dumps(record))
    same = workspace.run("--dry-run", env=env)
    assert same.exit_code == 0, same.stdout
    _setup(workspace, "0")
    dry = workspace.run("--dry-run", env=env)
    assert "tool: update, origin desired" in dry.stdout, dry.stdout
    assert '~ /env/GOVERNED_TOOLS: "1" -> "0"' in dry.stdout
