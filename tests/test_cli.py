"""Command-line contract: global options anywhere, schema, validate, help that teaches."""

from __future__ import annotations

import json
import shlex

import click
import pytest
from click.testing import CliRunner

from reconciler import targets
from reconciler.cli.main import main
from reconciler.core.compare import FieldChange, Origin
from reconciler.core.plan import Action, Change
from reconciler.core.report import PAST, RunReport, TargetReport, render_text
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
    assert set(schema["properties"]) == {"servers", "targets", "mirrors", "secrets", "defaults"}
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Block"]["enum"] == ["none", "destructive", "mutating"]
    assert set(schema["$defs"]["ToolPolicy"]["properties"]) == {
        "allow",
        "deny",
        "block",
        "on_change",
    }
    # The kinds come from the target families: every declarable kind, and only those.
    kinds = schema["$defs"]["TargetSpec"]["properties"]["kind"]["enum"]
    assert kinds == sorted(set(targets.FAMILIES) - {targets.MIRROR})
    assert {"zed", "goose", "crush", "continue", "vscode-insiders", "mcpjungle"} <= set(kinds)


def test_validate_reports_counts(workspace: Workspace) -> None:
    setup(workspace)
    result = workspace.run("validate")
    assert result.exit_code == 0
    assert "1 server, 1 target in 1 file" in result.stdout


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


@pytest.mark.parametrize(
    ("servers", "summary"),
    [
        ("  a: {comand: uvx}\n", "1 problem in desired state"),
        ("  a: {comand: uvx}\n  b: {comand: uvx}\n", "2 problems in desired state"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [("validate",), ("--dry-run",), ("status",), ("audit",)],
)
def test_problems_are_counted_once_in_one_spelling_and_json_lists_only_them(
    workspace: Workspace, servers: str, summary: str, command: tuple[str, ...]
) -> None:
    workspace.write("desired.yaml", "servers:\n" + servers)
    text = workspace.run(*command)
    assert text.exit_code == 2
    assert summary in text.stderr and "problem(s)" not in text.stderr
    data = workspace.run(*command, "--json").json
    assert len(data["errors"]) == servers.count("comand")
    assert all("unknown key 'comand'" in e for e in data["errors"])


@pytest.mark.parametrize("action", list(Action))
def test_an_applied_action_is_reported_in_the_past_tense(action: Action) -> None:
    change = Change("s", "s", action, Origin.DESIRED)
    report = RunReport(False, (TargetReport("t", "k", "here", False, (change,), frozenset({"s"})),))
    line = render_text(report).splitlines()[1]
    assert f"s: {PAST[action.value]}, origin desired" in line
    assert "copyed" not in line and "eed" not in line


SEALED = "hmac-sha256:4f1c2a0011223344"


@pytest.mark.parametrize(
    ("live", "desired", "shown_live", "shown_desired"),
    [
        ("stdio", "http", "stdio", "http"),
        (None, ["--a", "b"], None, ["--a", "b"]),
        (True, None, True, None),
        (SEALED, "x", {"secret": "4f1c2a"}, "x"),
        ({"TOKEN": SEALED}, {}, {"TOKEN": {"secret": "4f1c2a"}}, {}),
        (3, 4, 3, 4),
    ],
)
def test_json_diff_values_are_json_values_and_secrets_fingerprints(
    live: object, desired: object, shown_live: object, shown_desired: object
) -> None:
    change = Change("s", "s", Action.UPDATE, Origin.DESIRED, (FieldChange("/x", live, desired),))
    report = RunReport(True, (TargetReport("t", "k", "here", False, (change,)),))
    (diff,) = report.to_json()["targets"][0]["changes"][0]["diff"]
    assert diff["live"] == shown_live and diff["desired"] == shown_desired
    assert json.loads(json.dumps(diff)) == diff


def test_a_dry_run_json_diff_carries_plain_values(workspace: Workspace) -> None:
    setup(workspace)
    change = workspace.run("--dry-run", "--json").json["targets"][0]["changes"][0]
    assert change["action"] == "create"
    assert {"path": "/command", "live": None, "desired": "uvx"} in change["diff"]


def two_targets(ws: Workspace) -> None:
    ws.write(
        "desired.yaml",
        """
        servers:
          time: {command: uvx}
        targets:
          desktop: {kind: claude-desktop}
          other: {kind: claude-desktop, path: ~/other/claude.json}
    """,
    )


@pytest.mark.parametrize(
    ("flag", "shown", "hidden"),
    [
        (
            "-q",
            ["drift found: 1 would change across 2 targets"],
            ["desktop (", "other (", "+ time"],
        ),
        ("", ["desktop (", "+ time", "1 in sync not shown"], ["other (", " in 0."]),
        ("-v", ["desktop (", "other (", "in sync: time", " in 0."], ["not shown"]),
    ],
)
def test_quiet_prints_the_summary_and_verbose_adds_unchanged_targets_and_timings(
    workspace: Workspace, flag: str, shown: list[str], hidden: list[str]
) -> None:
    two_targets(workspace)
    assert workspace.run("--target", "other").exit_code == 0
    result = workspace.run("--dry-run", *([flag] if flag else []))
    assert result.exit_code == 1
    for text in shown:
        assert text in result.stdout, result.stdout
    for text in hidden:
        assert text not in result.stdout, result.stdout
    if flag == "-q":
        assert len(result.stdout.splitlines()) == 1


def test_quiet_still_prints_a_targets_error(workspace: Workspace) -> None:
    two_targets(workspace)
    workspace.home.joinpath("other").mkdir()
    workspace.home.joinpath("other", "claude.json").write_text("{not json")
    result = workspace.run("--dry-run", "-q")
    assert result.exit_code == 3
    assert "other (" in result.stdout and "error in observe" in result.stdout
    assert "desktop (" not in result.stdout


def _commands() -> list[tuple[str, click.Command]]:
    found = []

    def walk(command: click.Command, path: str) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):  # the root loads its subcommands lazily
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                walk(sub, f"{path} {name}".strip())

    walk(main, "")
    return found


@pytest.mark.parametrize(("path", "command"), _commands(), ids=lambda v: v or "reconcile")
def test_every_help_ends_with_two_or_three_examples_that_parse(
    workspace: Workspace, path: str, command: click.Command
) -> None:
    text = CliRunner().invoke(main, [*path.split(), "--help"]).stdout
    head, _, block = text.rpartition("\n  Examples:\n")
    assert head, text
    examples = [line.strip() for line in block.strip("\n").splitlines()]
    assert 2 <= len(examples) <= 3, examples
    for example in examples:
        words = shlex.split(example.split("   ")[0])
        assert words[0] == "reconcile"
        for stop in (">", "|", "&&"):
            words = words[: words.index(stop)] if stop in words else words
        parsed = CliRunner().invoke(main, [*words[1:], "--help"])
        assert parsed.exit_code == 0, f"{example}: {parsed.stderr}"
