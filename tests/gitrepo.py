"""A real temporary git repository around the workspace, for the commands that commit.

Git runs with no global or system configuration (``GIT_CONFIG_GLOBAL`` points at an empty
file), as on a CI machine without ``user.name``: the reconciler must bring its own identity.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Workspace

TEST_IDENTITY = [
    "-c",
    "user.name=Test Person",
    "-c",
    "user.email=test@example.invalid",
]


def git(root: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(
        ["git", *TEST_IDENTITY, *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def isolate_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gitconfig-empty"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)


def init_repo(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")


def commit_all(root: Path, message: str = "desired state") -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def commit_count(root: Path) -> int:
    out = git(root, "rev-list", "--all", "--count", check=False)
    return int(out.strip() or 0)


def trailers(root: Path, rev: str = "HEAD") -> dict[str, str]:
    message = git(root, "log", "-1", "--format=%B", rev)
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=message,
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    ).stdout
    out = {}
    for line in parsed.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def files_in(root: Path, rev: str = "HEAD") -> list[str]:
    out = git(root, "show", "--name-only", "--format=", rev)
    return [line for line in out.splitlines() if line.strip()]


def desktop_entries(ws: Workspace) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ws.desktop_config.read_text())
    servers: dict[str, Any] = data["mcpServers"]
    return servers
