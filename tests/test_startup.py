"""Start-up: what a pass imports, and the lazily loaded subcommands.

Why: `reconcile --dry-run` runs in shells, pre-commit hooks and CI, and on a small desired
state most of its time is start-up (issue 14). These tests hold the two things that keep it
short: a dry run over file targets imports only the modules the pass uses (the list of
modules, from ``python -X importtime``, not a timing), and the root group imports a
subcommand's module only when that subcommand runs while `--help` still lists them all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from reconciler.cli.lazy import SUBCOMMANDS
from reconciler.cli.main import main
from tests.fakes.mcpjungle import FakeMCPJungle

ROOT = Path(__file__).resolve().parent.parent

#: One target per file-client kind, in the three formats (JSON, JSONC, TOML).
FILE_KINDS = {
    "claude-code": ".claude.json",
    "codex": ".codex/config.toml",
    "vscode": ".config/Code/User/mcp.json",
    "opencode": ".config/opencode/opencode.json",
    "gemini": ".gemini/settings.json",
    "claude-desktop": ".config/Claude/claude_desktop_config.json",
    "cursor": ".cursor/mcp.json",
    "windsurf": ".codeium/windsurf/mcp_config.json",
}

#: Everything a dry run over file targets imports from outside the standard library, once an
#: applying pass has kept the validated desired state: not even the YAML parser, nor pydantic
#: (the cached state is plain value types; the schema is built only to validate a file).
PASS_THIRD_PARTY = {"click"}

#: Modules of the package a pass never uses: the other commands and the daemon.
NOT_ON_THE_PASS = {
    "reconciler.app.adopt",
    "reconciler.app.audit",
    "reconciler.app.discover",
    "reconciler.app.metrics",
    "reconciler.app.probe",
    "reconciler.app.pull",
    "reconciler.app.service",
    "reconciler.app.status",
    "reconciler.app.toolgov",
    "reconciler.app.watch",
    "reconciler.cli.checks",
    "reconciler.cli.completion",
    "reconciler.cli.daemon",
    "reconciler.cli.divergences",
    "reconciler.cli.machine",
    "reconciler.cli.probing",
    "reconciler.cli.status",
    "reconciler.probe",
}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "RECONCILER_"))}
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


def _imported(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[set[str], str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \| +(\S+)$", proc.stderr, re.M))
    assert modules, proc.stderr[-2000:]
    return modules, proc.stdout + proc.stderr[-2000:] if proc.returncode else proc.stdout


def _third_party(modules: set[str], bare: set[str]) -> set[str]:
    tops = {m.split(".")[0] for m in modules - bare} - {"reconciler"}
    # "org": the standard library's copy module tries Jython's org.python.core, and fails
    stdlib = {*sys.stdlib_module_names, "org"}
    return {t for t in tops if t not in stdlib and not t.startswith("_")}


def _workspace(tmp_path: Path) -> tuple[Path, Path, Path]:
    home, desired, state = tmp_path / "home", tmp_path / "desired", tmp_path / "state"
    home.mkdir()
    desired.mkdir()
    targets = "".join(
        f"  {kind}:\n    kind: {kind}\n    path: {home / path}\n"
        + ("    bridge: mcp-remote\n" if kind == "claude-desktop" else "")
        for kind, path in FILE_KINDS.items()
    )
    (desired / "targets.yaml").write_text("targets:\n" + targets)
    (desired / "servers.yaml").write_text(
        textwrap.dedent("""
        servers:
          time:
            command: uvx
            args: [mcp-server-time, --local-timezone=UTC]
            env: {TZ: UTC}
          remote:
            url: https://mcp.example.com/mcp
        """).lstrip()
    )
    return home, desired, state


def test_a_dry_run_over_file_targets_imports_only_what_the_pass_uses(tmp_path: Path) -> None:
    home, desired, state = _workspace(tmp_path)
    env = _env(home)
    cli = ["-m", "reconciler", "--desired", str(desired), "--state-dir", str(state)]
    applied = subprocess.run(
        [sys.executable, *cli], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert all((home / path).is_file() for path in FILE_KINDS.values())
    assert (state / "desired-cache.bin").is_file()

    bare, _ = _imported(["-c", "pass"], env, tmp_path)
    modules, out = _imported([*cli, "--dry-run"], env, tmp_path)
    assert "converged: 0 would change across 8 targets" in out, out

    assert _third_party(modules, bare) == PASS_THIRD_PARTY
    heavy_ones = (
        "httpx",
        "git",
        "deepdiff",
        "rich",
        "mcp",
        "tomlkit",
        "ruamel",
        "watchfiles",
        "yaml",
    )
    for heavy in heavy_ones:
        assert heavy not in {m.split(".")[0] for m in modules}, heavy
    assert sorted(modules & NOT_ON_THE_PASS) == []
    # the pass's own path is there: every file family, the engine, the loader
    assert {
        "reconciler.engine",
        "reconciler.store.desired",
        "reconciler.targets.codex",
        "reconciler.targets.jsonclients",
        "reconciler.targets.opencode",
    } <= modules


def test_help_lists_every_command_without_importing_one(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys
        from click.testing import CliRunner
        from reconciler.cli.main import main
        print(CliRunner().invoke(main, ["--help"]).output)
        print(sorted(m for m in sys.modules if m.startswith("reconciler.cli.")))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    *help_lines, loaded = proc.stdout.strip().splitlines()
    assert loaded == "['reconciler.cli.common', 'reconciler.cli.lazy', 'reconciler.cli.main']"
    section = help_lines[help_lines.index("Commands:") + 1 :]
    listed = section[: section.index("")]  # the epilog (exit codes) follows a blank line
    assert [line.split()[0] for line in listed] == sorted(SUBCOMMANDS)
    for line in listed:
        assert len(line.split(maxsplit=1)) == 2, f"no short help: {line!r}"


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
@pytest.mark.parametrize("limit", [45, 70, 200])
def test_the_registry_short_help_is_the_commands_own(name: str, limit: int) -> None:
    ctx = click.Context(main)
    command = main.get_command(ctx, name)
    assert command is not None and command.name == name.rstrip("_")
    stand_in = click.Command(name, help=SUBCOMMANDS[name].short_help)
    assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_an_unknown_command_is_still_a_usage_error() -> None:
    ctx = click.Context(main)
    assert main.get_command(ctx, "no-such-command") is None
    result = click.testing.CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_a_pass_on_mcpjungle_imports_httpx_without_its_command_line_client(
    tmp_path: Path,
) -> None:
    """httpx imports its own CLI (rich, pygments), and httpcore imports trio, whenever they
    are installed; the pass blocks those imports, and still talks to the gateway."""
    home, desired = tmp_path / "home", tmp_path / "desired"
    home.mkdir()
    desired.mkdir()
    (desired / "servers.yaml").write_text("servers:\n  api:\n    url: https://api.example/mcp\n")
    env = _env(home)
    cli = ["-m", "reconciler", "--desired", str(desired), "--state-dir", str(tmp_path / "s")]
    with FakeMCPJungle({"api": ["query"]}) as fake:
        (desired / "targets.yaml").write_text(
            f"targets:\n  jungle:\n    kind: mcpjungle\n    url: {fake.url}\n"
        )
        modules, out = _imported(cli, env, tmp_path)
        assert "api" in fake.servers, out
    assert "httpx" in modules
    # A blocked import is still listed, as a halted one (a few microseconds), but none of
    # the modules it would have brought is.
    brought = {m for m in modules if m.split(".")[0] in ("rich", "pygments", "trio")}
    assert brought <= {"trio"}, sorted(brought)
