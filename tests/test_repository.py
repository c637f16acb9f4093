"""The repository's own promises: README quickstart, CI entry point, example desired state."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import environ_without_locations, snapshot_tree

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.match(r"```sh\n(.*?)\n```", text, re.DOTALL)
    assert match, "README opens with a sh code block"
    return match.group(1).splitlines()


def test_readme_opens_with_exactly_two_commands() -> None:
    install_and_run, install_and_test = readme_commands()
    assert install_and_run == "pip install . && reconcile --dry-run"
    assert install_and_test == "bash scripts/test"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^bash scripts/test\s*$", ci, re.MULTILINE)
    for check in ("ruff check", "ruff format --check", "mypy --strict", "lint-imports"):
        assert check in ci
    script = (ROOT / "scripts" / "test").read_text()
    assert "pip install -q -e '.[test]'" in script
    assert "bash .ci/install-clients" in script, "the real clients run on a fresh machine"
    assert re.search(r"^python3 -m pytest", script, re.MULTILINE)
    for text in (ci, script):
        assert "set -euo pipefail" in text, "pytest's exit 5 (no tests) fails CI"


def test_example_desired_validates_and_dry_run_shows_work(tmp_path: Path) -> None:
    env = environ_without_locations() | {"HOME": str(tmp_path)}
    run = [sys.executable, "-m", "reconciler"]
    valid = subprocess.run([*run, "validate"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert valid.returncode == 0, valid.stderr

    dry = subprocess.run([*run, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True)

    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "create, origin new" in dry.stdout
    assert snapshot_tree(tmp_path) == {}, "a dry run writes nothing, not even the state dir"


@pytest.mark.skipif(os.environ.get("RECONCILER_SKIP_VENV_TEST") == "1", reason="asked to skip")
def test_quickstart_in_a_fresh_virtual_environment(tmp_path: Path) -> None:
    """The README's first command, as a new user runs it: a new venv, `pip install .`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    install = subprocess.run(
        [str(pip), "install", "-q", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    home = tmp_path / "home"
    home.mkdir()
    env = environ_without_locations() | {"HOME": str(home), "PATH": f"{venv}/bin:/usr/bin:/bin"}

    dry = subprocess.run(
        ["reconcile", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "desktop (claude-desktop" in dry.stdout
    assert snapshot_tree(home) == {}
