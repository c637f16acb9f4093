"""Malformed input of any kind: one clear located error, exit 2 (desired) or 3 (target), no write.

Each case is a folder under ``data/malformed/``: ``desired/`` files, optionally a
``claude_desktop_config.json`` placed as the target's file, and ``expected.txt`` holding the
exit code and the error line (a substring of it, starting at the file name).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import Workspace, snapshot_tree

CASES = Path(__file__).parent / "data" / "malformed"
LOCATED = re.compile(r"^\S+?:\d+:\d+: ", re.MULTILINE)


def load_case(name: str) -> tuple[int, str]:
    code_line, expected = (CASES / name / "expected.txt").read_text().splitlines()[:2]
    return int(code_line.removeprefix("exit: ")), expected


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir()))
@pytest.mark.parametrize("mode", [["--dry-run"], []], ids=["dry-run", "apply"])
def test_malformed_input_gives_one_located_error(
    workspace: Workspace, name: str, mode: list[str]
) -> None:
    code, expected = load_case(name)
    shutil.copytree(CASES / name / "desired", workspace.desired, dirs_exist_ok=True)
    target_file = CASES / name / "claude_desktop_config.json"
    if target_file.exists():
        workspace.desktop_config.parent.mkdir(parents=True)
        shutil.copy(target_file, workspace.desktop_config)
    before = snapshot_tree(workspace.home)

    result = workspace.run(*mode)
    output = result.stdout + result.stderr

    assert result.exit_code == code, output
    assert expected in output, output
    assert "Traceback" not in output
    assert snapshot_tree(workspace.home) == before, "nothing is written"
    if code == 2:
        assert len(LOCATED.findall(result.stderr)) == 1, result.stderr
        assert not workspace.state_dir.exists()
    else:
        assert output.count(expected) == 1


def test_validate_lists_every_problem_at_once(workspace: Workspace) -> None:
    for name in ("unknown-key", "enabled-yes", "invalid-server-name"):
        for path in (CASES / name / "desired").iterdir():
            (workspace.desired / f"{name}-{path.name}").write_text(path.read_text())
    result = workspace.run("validate")
    assert result.exit_code == 2
    assert len(LOCATED.findall(result.stderr)) == 3
    assert "3 problems in desired state" in result.stderr


BOTH_KINDS = """\
servers:
  time: {comand: uvx}
  fetch: {command: uvx, enabled: yes}
  gh:
    command: npx
    env: {TOKEN: "ghp_Zq8xZq8xZq8xZq8xZq8xZq8xZq8xZq8xZq8x"}
targets:
  desktop: {kind: claude-desktop, servers: [time, nosuch], scope: user}
  jungle: {kind: mcpjungle}
  web: {kind: clude-code}
"""


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (":2:10:", "unknown key 'comand' in servers.time"),  # schema
        (":3:34:", "servers.fetch.enabled: input should be a valid boolean"),  # schema
        (":10:15:", "targets.web.kind: invalid value 'clude-code'"),  # schema
        (":8:67:", "Claude Desktop has one file and no scopes"),  # a kind's fields
        (":8:51:", "places undeclared server 'nosuch'"),  # a cross-reference
        (":9:3:", "an mcpjungle target needs 'url'"),  # a kind's fields
        (":6:18:", "a literal secret (github-token)"),  # secrets
    ],
)
def test_schema_and_cross_reference_problems_come_in_one_run(
    workspace: Workspace, where: str, message: str
) -> None:
    workspace.write("a.yaml", BOTH_KINDS)
    result = workspace.run("validate")
    assert result.exit_code == 2
    line = next((x for x in result.stderr.splitlines() if message in x), "")
    assert where in line, result.stderr
    assert "7 problems in desired state" in result.stderr
    assert "undeclared server 'time'" not in result.stderr  # refused by the schema: no news
    assert "Zq8x" not in result.stderr
