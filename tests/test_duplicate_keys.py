"""A key that appears twice in one object of a client's JSON file is never merged away
(docs/RELIABILITY.md): a parser keeps only one of them, so rewriting the file would drop the
other. The target fails with the key and its line; the file is left byte for byte and the
other targets are still reconciled."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Workspace

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(60)]

ENTRY = '{"command": "npx", "args": ["-y", "mine"]}'


def document(section: str, *, comment: bool, where: str) -> str:
    note = "  // the user's note\n" if comment else ""
    if where == "servers":
        inner = f'    "mine": {ENTRY},\n    "mine": {ENTRY}\n'
        return f'{{\n{note}  "theme": "dark",\n  "{section}": {{\n{inner}  }}\n}}\n'
    return f'{{\n{note}  "theme": "dark",\n  "theme": "light",\n  "{section}": {{}}\n}}\n'


@pytest.mark.parametrize("where", ["servers", "top"])
@pytest.mark.parametrize(
    ("kind", "section", "comment"),
    [
        ("claude-desktop", "mcpServers", False),
        ("cursor", "mcpServers", False),
        ("vscode", "servers", False),
        ("vscode", "servers", True),
        ("gemini", "mcpServers", True),
        ("opencode", "mcp", True),
    ],
)
def test_a_duplicate_key_fails_its_target_only_naming_key_and_line(
    workspace: Workspace, kind: str, section: str, comment: bool, where: str
) -> None:
    broken = workspace.home / "broken.json"
    text = document(section, comment=comment, where=where)
    broken.write_text(text)
    fine = workspace.home / "fine.json"
    workspace.write(
        "a.yaml",
        f"""
        servers:
          time: {{command: uvx, args: [mcp-server-time]}}
        targets:
          broken: {{kind: {kind}, path: "{broken}"}}
          fine: {{kind: claude-desktop, path: "{fine}"}}
        """,
    )
    key, line = ("mine", 5) if where == "servers" else ("theme", 3)
    line += comment

    result = workspace.run("--json")

    assert result.exit_code == 3
    report = {t["name"]: t for t in result.json["targets"]}
    error = report["broken"]["error"]
    assert f"broken.json:{line}:" in error and f"duplicate key '{key}'" in error, error
    assert "not rewritten" in error
    assert result.json["degraded"][0]["recoverable"] is False
    assert broken.read_text() == text  # nothing merged away
    assert report["fine"]["error"] is None
    assert set(json.loads(fine.read_text())["mcpServers"]) == {"time"}

    dry = workspace.run("--dry-run")  # a dry run says the same, and writes nothing
    assert dry.exit_code == 3 and f"duplicate key '{key}'" in dry.stdout + dry.stderr
    assert "Traceback" not in dry.stdout + dry.stderr


def test_the_same_key_in_two_objects_is_no_duplicate(workspace: Workspace) -> None:
    client = workspace.home / "c.json"
    client.write_text(json.dumps({"a": {"command": "x"}, "mcpServers": {"b": {"command": "x"}}}))
    workspace.write(
        "a.yaml",
        f"""
        servers:
          time: {{command: uvx, args: [mcp-server-time]}}
        targets:
          c: {{kind: claude-desktop, path: "{client}"}}
        """,
    )
    assert workspace.run().exit_code == 0
    assert set(json.loads(client.read_text())["mcpServers"]) == {"b", "time"}
