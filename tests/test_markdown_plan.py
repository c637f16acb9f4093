"""``reconcile --dry-run --format markdown`` and ``status --format markdown``: the plan as a
pull-request comment. Golden files of several plans (``UPDATE_GOLDEN=1`` rewrites them;
review the diff), escaping of user data, and the canary secrets kept out of it."""

from __future__ import annotations

import json
import os
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from reconciler.app import markdown
from tests.conftest import Workspace
from tests.gitrepo import commit_all, init_repo, isolate_git
from tests.test_secrets_canary import Scene, scene  # noqa: F401 (the canary fixture)

GOLDEN = Path(__file__).parent / "data" / "markdown"

SERVERS = """
servers:
  time:
    command: uvx
    args: [mcp-server-time, --local-timezone=UTC]
  fetch:
    command: uvx
    args: [mcp-server-fetch, "a|b <b>bold</b> `tick`"]
targets:
  desktop:
    kind: claude-desktop
  cursor:
    kind: cursor
    servers: [time]
"""


@pytest.fixture
def repo(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    workspace.write("desired.yaml", SERVERS)
    commit_all(workspace.root)
    return workspace


def _normalized(ws: Workspace, text: str) -> str:
    text = text.replace(str(ws.root), "<repo>").replace(str(ws.home), "<home>")
    return re.sub(r"\d{4}-\d{2}-\d{2}", "<date>", text)


def _check(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8")


def _edit(ws: Workspace, server: str, index: int, value: str) -> None:
    data = json.loads(ws.desktop_config.read_text())
    data["mcpServers"][server]["args"][index] = value
    ws.desktop_config.write_text(json.dumps(data, indent=2) + "\n")


def test_first_plan_creates_everything(repo: Workspace) -> None:
    result = repo.run("--dry-run", "--format", "markdown")
    assert result.exit_code == 1, result.stderr
    _check("first-plan", _normalized(repo, result.stdout))


def test_converged_plan_says_no_changes(repo: Workspace) -> None:
    assert repo.run().exit_code == 0
    result = repo.run("--dry-run", "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    _check("converged", _normalized(repo, result.stdout))


def test_a_change_to_desired_state_an_error_and_an_expiring_divergence(
    repo: Workspace,
) -> None:
    assert repo.run().exit_code == 0
    _edit(repo, "time", 1, "--local-timezone=Europe/Paris")
    soon = (date.today() + timedelta(days=3)).isoformat()
    allowed = repo.run(
        "allow", "time", "--target", "desktop", "--reason", "Paris office", "--expires", soon
    )
    assert allowed.exit_code == 0, allowed.stderr
    repo.write("desired.yaml", SERVERS.replace("[mcp-server-fetch,", "[mcp-server-fetch, -v,"))
    cursor = repo.home / ".cursor" / "mcp.json"
    cursor.write_text("{ not json")
    result = repo.run("--dry-run", "--format", "markdown")
    assert result.exit_code == 3, result.stderr  # cursor is required and cannot be read
    text = _normalized(repo, result.stdout)
    _check("change-error-expiring", text)
    assert "<details>" in text and "Divergences expiring soon" in text and "#### Errors" in text


def test_invalid_desired_state_is_a_comment_too(repo: Workspace) -> None:
    repo.write("desired.yaml", SERVERS.replace("kind: cursor", "kind: no-such-client"))
    result = repo.run("--dry-run", "--format", "markdown")
    assert result.exit_code == 2
    _check("invalid", _normalized(repo, result.stdout))


def test_status_in_markdown_has_the_matrix(repo: Workspace) -> None:
    assert repo.run().exit_code == 0
    _edit(repo, "time", 1, "--local-timezone=Asia/Tokyo")
    result = repo.run("status", "--format", "markdown")
    assert result.exit_code == 1, result.stderr
    _check("status", _normalized(repo, result.stdout))


@pytest.mark.parametrize(
    "value",
    ["a|b", "<script>alert(1)</script>", "`x`", "line\nbreak", "&amp;"],
)
def test_user_data_cannot_break_a_cell(value: str) -> None:
    cell = markdown.code(value)
    inner = cell.removeprefix("<code>").removesuffix("</code>")
    assert "|" not in inner and "<" not in inner and "\n" not in inner  # one cell, no tags
    assert cell.startswith("<code>") and cell.endswith("</code>")


@pytest.mark.parametrize("args", [("--dry-run",), ("status",)], ids=["plan", "status"])
def test_canaries_never_reach_the_markdown(scene: Scene, args: tuple[str, ...]) -> None:  # noqa: F811
    assert scene.run().exit_code == 0
    result = scene.run(*args, "--format", "markdown", rotated=True)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "‹secret:" in result.stdout  # the rotated token is shown, as a fingerprint
    assert scene.leaks(result.stdout, result.stderr) == []
