"""Shell completion: `reconcile completion SHELL` prints click's script, and the values it
completes (target names, server names, record IDs) come from the desired directory."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from tests.conftest import Workspace


def declare(ws: Workspace) -> None:
    ws.write(
        "desired.yaml",
        """
        servers:
          time: {command: uvx}
          github: {command: npx}
        targets:
          desktop: {kind: claude-desktop}
          code: {kind: claude-code}
        """,
    )
    ws.write("divergences/desktop--time.yaml", "divergence: {}\n")


def complete(ws: Workspace, words: str) -> list[str]:
    """What bash completion offers for the last word of ``words``."""
    env = {
        "_RECONCILE_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
        "RECONCILER_DESIRED": str(ws.desired),
    }
    result = CliRunner().invoke(main, [], prog_name="reconcile", env=env)
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if "," in line]


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        ("reconcile --target d", ["desktop"]),
        ("reconcile --target ", ["code", "desktop"]),
        ("reconcile status -t c", ["code"]),
        ("reconcile --server ", ["github", "time"]),
        ("reconcile allow t", ["time"]),
        ("reconcile adopt time --target d", ["desktop"]),
        ("reconcile import -t desktop -s g", ["github"]),
        ("reconcile divergences show ", ["desktop--time"]),
        ("reconcile divergences renew d", ["desktop--time"]),
        ("reconcile divergences re", ["reject", "renew"]),
    ],
)
def test_completion_offers_names_from_the_desired_directory(
    workspace: Workspace, words: str, offered: list[str]
) -> None:
    declare(workspace)
    assert complete(workspace, words) == offered


def test_completion_of_an_invalid_desired_state_offers_nothing(workspace: Workspace) -> None:
    workspace.write("desired.yaml", "servers: [")
    assert complete(workspace, "reconcile --target ") == []


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _reconcile_completion reconcile"),
        ("zsh", "#compdef reconcile"),
        ("fish", "complete --no-files --command reconcile"),
    ],
)
def test_completion_prints_the_script_for_each_shell(
    workspace: Workspace, shell: str, marker: str
) -> None:
    result = workspace.run("completion", shell)
    assert result.exit_code == 0, result.stderr
    assert marker in result.stdout
    assert "_RECONCILE_COMPLETE" in result.stdout
