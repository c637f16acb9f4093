"""Shared fixtures: a temp HOME, a temp desired repository, and a way to run the CLI.

Every test runs with HOME (and the other variables clients read) pointed into a temp dir,
so no test can touch the real machine's client configs.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main

# Variables through which clients and this tool find their files; tests clear them all.
LOCATION_VARS = (
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "APPDATA",
    "LOCALAPPDATA",
    "CODEX_HOME",
    "CLAUDE_CONFIG_DIR",
    "RECONCILER_DESIRED",
    "RECONCILER_STATE_DIR",
    "GEMINI_CLI_HOME",
    "OPENCODE_CONFIG",
    "CONTINUE_GLOBAL_DIR",
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    for name in LOCATION_VARS:
        monkeypatch.delenv(name, raising=False)
    return path


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Workspace:
    """A desired repository in a temp dir, its state dir, and the HOME its targets live in."""

    root: Path
    home: Path
    state_dir: Path

    @property
    def desired(self) -> Path:
        return self.root / "desired"

    def write(self, relative: str, text: str) -> Path:
        path = self.desired / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        base = ["--desired", str(self.desired), "--state-dir", str(self.state_dir)]
        result = runner.invoke(main, [*args, *base], env=env, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    @property
    def desktop_config(self) -> Path:
        return self.home / ".config" / "Claude" / "claude_desktop_config.json"


@pytest.fixture
def workspace(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    root = tmp_path / "repo"
    (root / "desired").mkdir(parents=True)
    monkeypatch.chdir(root)
    yield Workspace(root, home, tmp_path / "state")


def snapshot_tree(path: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``path`` with its bytes and mtime, to prove nothing was written."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def environ_without_locations() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LOCATION_VARS}
