"""Command-line contract: global options anywhere, schema, validate, help that teaches."""

from __future__ import annotations

import json

from tests.conftest import Workspace


def setup(ws: Workspace) -> None:
    ws.write(
        "desired.yaml",
        """
        servers:
          time: {command: uvx}
        targets:
          desktop: {kind: claude-desktop}
    """,
    )


def test_global_options_work_before_and_after_a_command(workspace: Workspace) -> None:
    setup(workspace)
    after = workspace.run("validate", "--json")
    assert after.exit_code == 0 and after.json["errors"] == []
    before = workspace.run("--json", "validate")
    assert before.exit_code == 0 and before.json == after.json


def test_schema_is_json_schema_of_a_desired_file(workspace: Workspace) -> None:
    result = workspace.run("schema")
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == {"servers", "targets", "mirrors", "secrets"}
    assert schema["additionalProperties"] is False


def test_validate_reports_counts(workspace: Workspace) -> None:
    setup(workspace)
    result = workspace.run("validate")
    assert result.exit_code == 0
    assert "1 server(s), 1 target(s)" in result.stdout


def test_missing_desired_directory_is_exit_2_with_a_hint(workspace: Workspace) -> None:
    workspace.desired.rmdir()
    result = workspace.run("--dry-run")
    assert result.exit_code == 2
    assert "desired directory not found" in result.stderr
    assert "RECONCILER_DESIRED" in result.stderr


def test_json_errors_are_machine_readable_too(workspace: Workspace) -> None:
    workspace.write("desired.yaml", "servers:\n  time: {comand: uvx}\n")
    result = workspace.run("--dry-run", "--json")
    assert result.exit_code == 2
    assert result.json["exit_code"] == 2
    assert "unknown key 'comand'" in result.json["errors"][0]


def test_help_documents_exit_codes(workspace: Workspace) -> None:
    result = workspace.run("--help")
    assert "Exit codes" in result.stdout
    assert "3  a required target failed (or a required server" in result.stdout
