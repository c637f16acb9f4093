"""`reconcile import` from an MCPJungle registry (the faithful fake): secrets become references."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.targets.mcpjungle import MCPJungleTarget
from tests.conftest import Workspace
from tests.fakes.mcpjungle import FakeMCPJungle
from tests.gitrepo import commit_all, git, init_repo, isolate_git, trailers

PAT = "ghp_" + "Kp4" * 12


@pytest.fixture
def jungle(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMCPJungle]:
    monkeypatch.setattr(MCPJungleTarget, "retry_delays", (0.0, 0.0))
    with FakeMCPJungle({"github": ["search_issues"], "time": ["get_current_time"]}) as fake:
        yield fake


def test_import_from_mcpjungle(
    workspace: Workspace, jungle: FakeMCPJungle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    workspace.write(
        "servers.yaml",
        """
        servers:
          github:
            url: https://api.githubcopilot.com/mcp/
            headers:
              Authorization: Bearer ${env:GITHUB_PAT}
          time:
            command: uvx
            args: [mcp-server-time]
        """,
    )
    workspace.write(
        "targets.yaml", f"targets:\n  jungle:\n    kind: mcpjungle\n    url: {jungle.url}\n"
    )
    assert workspace.run(env={"GITHUB_PAT": PAT}).exit_code == 0
    # A new desired repository that only knows the registry.
    (workspace.desired / "servers.yaml").unlink()
    commit_all(workspace.root)

    result = workspace.run("import", "--target", "jungle")

    assert result.exit_code == 0, result.stderr
    assert PAT not in result.stdout + result.stderr
    assert trailers(workspace.root)["Reconciler-Action"] == "import"
    servers = (workspace.desired / "servers.yaml").read_text()
    assert "Authorization: Bearer ${env:GITHUB_TOKEN}" in servers
    assert PAT not in git(workspace.root, "log", "-p", "--all")
    dry = workspace.run("--dry-run", env={"GITHUB_TOKEN": PAT})
    assert dry.exit_code == 0, dry.stdout
