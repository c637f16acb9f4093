"""Secrets, acceptance: canary values run through every command must never come out.

Each canary is a fresh random value given through the three ways a secret reaches the
reconciler (an environment variable, a ``secrets:`` resolver command, a file) and one planted
by hand in a live client file. After each command the canaries must appear in none of:
stdout, stderr, log records, the state directory (except the 0600 fingerprint key), the
desired directory, and every git object of the desired repository (``git log -p --all``).

Commands that do not exist yet in this build are skipped with the reason shown, so the suite
grows with the CLI: see ``COMMANDS``. Server commands are absent binaries, so that a command
which starts servers (``probe``) fails at once and reaches no network; except ``media``, a
local test server that writes the token into a tool description, for the tool lock and the
inventory (``probe --lock``) and the governance audit.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from reconciler import targets
from reconciler.cli.main import main
from tests.conftest import Result, Workspace
from tests.servers import DIR

GOVERNED = DIR / "governed.py"

IDENTITY = ["-c", "user.name=Canary Test", "-c", "user.email=canary@example.invalid"]


def _alnum(n: int) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _word(n: int) -> str:
    """Lowercase letters only: no token shape, not random-looking; only references tell."""
    return "".join(secrets.choice("abcdefghijkmnopqrstuvwxyz") for _ in range(n))


@dataclass
class Canaries:
    env: str  # CANARY_TOKEN, shaped like a GitHub token so that audit detects it too
    rotated: str  # the same variable after a rotation
    vault: str  # printed by the resolver command (shaped like no secret at all)
    file: str  # held by a file outside the repository (idem)
    planted: str  # a literal someone pasted into the live Claude Desktop file

    def all(self) -> tuple[str, ...]:
        return (self.env, self.rotated, self.vault, self.file, self.planted)


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *IDENTITY, *args], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Scene:
    ws: Workspace
    canaries: Canaries
    environ: dict[str, str]

    def run(self, *args: str, rotated: bool = False) -> Result:
        env = dict(self.environ)
        if rotated:
            env["CANARY_TOKEN"] = self.canaries.rotated
        return self.ws.run(*args, env=env)

    def leaks(self, *texts: str) -> list[str]:
        """Every place a canary shows up, outside the places allowed to hold it."""
        found: list[str] = []
        places: list[tuple[str, str]] = [(f"output {i}", t) for i, t in enumerate(texts)]
        state = self.ws.state_dir
        if state.exists():
            for path in sorted(p for p in state.rglob("*") if p.is_file()):
                if path.name == "fingerprint.key":
                    assert stat.S_IMODE(path.stat().st_mode) == 0o600
                    continue
                places.append((str(path), path.read_text("utf-8", "replace")))
        for path in sorted(p for p in self.ws.desired.rglob("*") if p.is_file()):
            places.append((str(path), path.read_text("utf-8", "replace")))
        places.append(("git log -p --all", git(self.ws.root, "log", "-p", "--all")))
        for where, text in places:
            for canary in self.canaries.all():
                if canary in text:
                    found.append(f"{where}: {canary[:6]}...")
        return found


@pytest.fixture
def scene(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    canaries = Canaries(
        env="ghp_" + _alnum(36),
        rotated="ghp_" + _alnum(36),
        vault="vault-" + _word(24),
        file="file-" + _word(24),
        planted="ghp_" + _alnum(36),
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    secret_file = outside / "db.key"
    secret_file.write_text(canaries.file + "\n")
    resolver = outside / "vault.py"
    resolver.write_text(
        textwrap.dedent(
            f"""
            import sys
            print({canaries.vault!r} if sys.argv[1] == "db" else sys.exit(1))
            """
        )
    )
    workspace.write(
        "servers.yaml",
        f"""
        servers:
          api:
            command: /nonexistent/mcp-canary-api
            args: [-y, api-server, "--token=${{env:CANARY_TOKEN}}"]
            env:
              API_TOKEN: ${{env:CANARY_TOKEN}}
              DB_PASSWORD: ${{vault:db}}
              DB_KEY: ${{file:{secret_file}}}
              TZ: UTC
          time:
            command: /nonexistent/mcp-canary-time
            args: [mcp-server-time]
          media:  # a real server that quotes its token in a tool description
            command: {json.dumps(sys.executable)}
            args: [{json.dumps(str(GOVERNED))}]
            env: {{LEAK: "${{env:CANARY_TOKEN}}"}}
            tools: {{block: mutating}}
        secrets:
          vault:
            command: [{json.dumps(sys.executable)}, {json.dumps(str(resolver))}, "{{name}}"]
        """,
    )
    workspace.write(
        "targets.yaml",
        """
        targets:
          desktop:
            kind: claude-desktop
            servers: [api, time]
        """,
    )
    config = workspace.desktop_config
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "handmade": {
                        "command": "/nonexistent/mcp-canary-github",
                        "args": ["-y", "@modelcontextprotocol/server-github"],
                        "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": canaries.planted},
                    }
                }
            },
            indent=2,
        )
    )
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    git(workspace.root, "init", "-q", "-b", "main")
    git(workspace.root, "add", "-A")
    git(workspace.root, "commit", "-q", "-m", "desired state")
    environ = {"CANARY_TOKEN": canaries.env}
    return Scene(workspace, canaries, environ)


def has_command(*path: str) -> bool:
    """Whether ``reconcile PATH...`` exists, asked the way click resolves it (the root group
    loads its subcommands lazily, so its ``commands`` mapping starts empty)."""
    command: click.Command = main
    for name in path:
        if not isinstance(command, click.Group):
            return False
        found = command.get_command(click.Context(command), name)
        if found is None:
            return False
        command = found
    return True


@dataclass(frozen=True)
class Command:
    """One command of the suite: how to run it, and what must already have happened."""

    args: tuple[str, ...]
    applied: bool = True  # run an applying pass first
    rotated: bool = False  # run with the rotated token (drift on the secret)
    requires: tuple[str, ...] = ()  # the CLI command that must exist
    missing: str = ""  # why it is skipped whatever the CLI offers
    markdown: bool = False  # prints markdown, with --json too (--format markdown)

    def skip_reason(self) -> str | None:
        if self.missing:
            return self.missing
        if self.requires and not has_command(*self.requires):
            return f"`reconcile {' '.join(self.requires)}` does not exist in this build yet"
        return None


COMMANDS: dict[str, Command] = {
    "dry-run": Command(("--dry-run",), applied=False),
    "apply": Command((), applied=False),
    "dry-run rotated": Command(("--dry-run",), rotated=True),
    "apply rotated": Command((), rotated=True),
    "status": Command(("status",), rotated=True),
    "audit": Command(("audit",)),
    "audit strict": Command(("audit", "--strict")),
    "validate": Command(("validate",)),
    "allow": Command(
        ("allow", "api", "--target", "desktop", "--reason", "rotating later"),
        rotated=True,
        requires=("allow",),
    ),
    "adopt": Command(("adopt", "api", "--target", "desktop"), requires=("adopt",)),
    "import": Command(
        ("import", "--target", "desktop", "--server", "handmade"), requires=("import",)
    ),
    "divergences list": Command(("divergences", "list"), requires=("divergences", "list")),
    "probe": Command(("probe",), requires=("probe",)),
    "probe lock": Command(("probe", "--lock"), requires=("probe",)),
    "probe lock server": Command(("probe", "--lock", "--server", "media"), requires=("probe",)),
    "apply probe": Command(("--probe",), applied=False, rotated=True),
    "plan markdown": Command(("--dry-run", "--format", "markdown"), rotated=True, markdown=True),
    "status markdown": Command(("status", "--format", "markdown"), rotated=True, markdown=True),
}


def _watch_one_pass(scene: Scene, rotated: bool) -> Result:
    """One daemon iteration in process (the watch command has no one-pass flag)."""
    from reconciler.app.watch import Daemon
    from reconciler.engine import Engine

    environ = {**os.environ, **scene.environ}
    if rotated:
        environ["CANARY_TOKEN"] = scene.canaries.rotated
    engine = Engine(scene.ws.desired, scene.ws.state_dir, home=scene.ws.home, environ=environ)
    daemon = Daemon(engine)
    daemon.prepare()
    record = daemon.iteration(start=True)
    daemon.write_status()
    text = json.dumps(record.to_json() if record is not None else None)
    return Result(0 if record is not None else 1, text, "")


@pytest.mark.parametrize("rotated", [False, True], ids=["first", "rotated"])
def test_canaries_never_leak_from_a_daemon_pass(
    scene: Scene, rotated: bool, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("reconciler.app.watch", reason="no watch daemon in this build yet")
    from reconciler.secrets import install_logging

    install_logging()  # as `reconcile watch` does through the CLI
    caplog.set_level(logging.DEBUG)
    if rotated:
        assert scene.run().exit_code == 0
    result = _watch_one_pass(scene, rotated)
    assert result.exit_code == 0, result.stdout
    outputs = [result.stdout, caplog.text, *(r.getMessage() for r in caplog.records)]
    assert scene.leaks(*outputs) == []


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_canaries_never_leak(
    scene: Scene, name: str, as_json: bool, caplog: pytest.LogCaptureFixture
) -> None:
    command = COMMANDS[name]
    reason = command.skip_reason()
    if reason:
        pytest.skip(reason)
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    if command.applied:
        first = scene.run()
        assert first.exit_code == 0, first.stdout + first.stderr
        outputs += [first.stdout, first.stderr]
    flags = ("--json",) if as_json else ()
    result = scene.run(*command.args, *flags, "-vv", rotated=command.rotated)
    outputs += [result.stdout, result.stderr, caplog.text]
    outputs += [r.getMessage() for r in caplog.records]
    assert result.exit_code in (0, 1, 2, 3), result
    assert scene.leaks(*outputs) == []
    if as_json and result.stdout.strip() and not command.markdown:
        json.loads(result.stdout)  # still one valid JSON document after redaction


def test_rotation_makes_desktop_drift_without_showing_either_value(scene: Scene) -> None:
    assert scene.run().exit_code == 0
    assert scene.run("--dry-run").exit_code == 0  # unchanged secret: no drift
    result = scene.run("--dry-run", rotated=True)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "/env/API_TOKEN" in result.stdout and "/args/2" in result.stdout
    assert "‹secret:" in result.stdout
    changes = scene.run("--dry-run", "--json", rotated=True).json["targets"][0]["changes"]
    assert [c["paths"] for c in changes] == [["/args/2", "/env/API_TOKEN"]]
    assert scene.leaks(result.stdout, result.stderr) == []


def test_resolved_values_are_written_0600_and_audit_tells_managed_from_planted(
    scene: Scene,
) -> None:
    assert scene.run().exit_code == 0
    config = scene.ws.desktop_config
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    entry = json.loads(config.read_text())["mcpServers"]["api"]
    assert entry["env"]["API_TOKEN"] == scene.canaries.env  # the client gets the value
    assert entry["env"]["DB_PASSWORD"] == scene.canaries.vault
    assert entry["env"]["DB_KEY"] == scene.canaries.file
    report = scene.run("audit", "--json")
    assert report.exit_code == 1
    findings = {(f["server"], f["field"], f["kind"], f["managed"]) for f in report.json["findings"]}
    assert ("handmade", "/env/GITHUB_PERSONAL_ACCESS_TOKEN", "github-token", False) in findings
    assert ("api", "/env/API_TOKEN", "github-token", True) in findings
    assert all(f["fingerprint"].startswith("hmac-sha256:") for f in report.json["findings"])
    data = json.loads(config.read_text())
    data["mcpServers"]["time"]["env"] = {"API_KEY": scene.canaries.rotated}  # a hand edit
    config.write_text(json.dumps(data))
    text = scene.run("audit")
    assert text.exit_code == 1
    assert "reconcile import --target desktop --server handmade" in text.stdout
    assert "reconcile adopt time --target desktop" in text.stdout  # a declared server
    assert scene.leaks(report.stdout, text.stdout) == []


def test_audit_is_clean_without_literals(scene: Scene) -> None:
    scene.ws.desktop_config.unlink()
    assert scene.run().exit_code == 0
    assert scene.run("audit").exit_code == 0  # only values resolved by us: not counted
    assert scene.run("audit", "--strict").exit_code == 1


def test_unresolvable_reference_fails_that_target_only(scene: Scene) -> None:
    before = scene.ws.desktop_config.read_bytes()
    result = scene.ws.run("--json", env={"CANARY_TOKEN": ""})
    assert result.exit_code == 3
    (target,) = result.json["targets"]
    assert target["status"] == "error" and "CANARY_TOKEN" in target["error"]
    assert scene.ws.desktop_config.read_bytes() == before  # nothing empty written


def test_validate_rejects_a_literal_token_with_file_and_line(scene: Scene) -> None:
    token = scene.canaries.planted
    scene.ws.write(
        "more.yaml",
        f"""
        servers:
          github:
            command: npx
            env:
              GITHUB_PERSONAL_ACCESS_TOKEN: {token}
        """,
    )
    result = scene.run("validate")
    assert result.exit_code == 2
    assert "more.yaml:5:" in result.stderr and "github-token" in result.stderr
    assert token not in result.stdout + result.stderr
    assert scene.run("--dry-run").exit_code == 2


# -- clients that reference: the file holds the client's syntax, never the value -------------


def _kind_ready(kind: str) -> bool:
    return kind in targets.KINDS


REFERENCING: dict[str, tuple[str, str, Callable[[str], None]]] = {}


def _claude_code(text: str) -> None:
    data = json.loads(text)
    assert data["mcpServers"]["api"]["env"]["CANARY_TOKEN"] == "${CANARY_TOKEN}"
    headers = data["mcpServers"]["remote"]["headers"]
    assert headers["Authorization"] == "Bearer ${CANARY_TOKEN}"


def _codex(text: str) -> None:
    data = tomllib.loads(text)
    api = data["mcp_servers"]["api"]
    assert "CANARY_TOKEN" in api.get("env_vars", []) or any(
        isinstance(v, dict) and v.get("name") == "CANARY_TOKEN" for v in api.get("env_vars", [])
    )
    assert data["mcp_servers"]["remote"]["bearer_token_env_var"] == "CANARY_TOKEN"


def _opencode(text: str) -> None:
    data = json.loads(text)
    assert data["mcp"]["api"]["environment"]["CANARY_TOKEN"] == "{env:CANARY_TOKEN}"
    assert data["mcp"]["remote"]["headers"]["Authorization"] == "Bearer {env:CANARY_TOKEN}"


REFERENCING = {
    "claude-code": ("claude-code", "cc/.claude.json", _claude_code),
    "codex": ("codex", "codex/config.toml", _codex),
    "opencode": ("opencode", "oc/opencode.json", _opencode),
}


@pytest.mark.parametrize("client", list(REFERENCING))
def test_referencing_clients_get_their_own_syntax_and_no_value(
    workspace: Workspace, client: str
) -> None:
    kind, relative, check = REFERENCING[client]
    if not _kind_ready(kind):
        pytest.skip(f"kind {kind} is not registered in this build yet")
    canary = "ghp_" + _alnum(36)
    path = workspace.home / relative
    workspace.write(
        "servers.yaml",
        """
        servers:
          api:
            command: npx
            args: [-y, api-server]
            env: {CANARY_TOKEN: "${env:CANARY_TOKEN}"}
          remote:
            url: https://api.example.com/mcp
            headers: {Authorization: "Bearer ${CANARY_TOKEN}"}
        """,
    )
    scope = "scope: user" if kind == "claude-code" else ""
    workspace.write(
        "targets.yaml",
        f"""
        targets:
          client:
            kind: {kind}
            path: {path}
            {scope}
        """,
    )
    env = {"CANARY_TOKEN": canary}
    applied = workspace.run(env=env)
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    text = path.read_text()
    assert canary not in text
    check(text)
    # The reference does not change when the value rotates: no drift.
    rotated = workspace.run("--dry-run", env={"CANARY_TOKEN": "ghp_" + _alnum(36)})
    assert rotated.exit_code == 0, rotated.stdout
    assert canary not in applied.stdout + applied.stderr


def test_codex_resolves_what_it_cannot_reference_and_says_so(workspace: Workspace) -> None:
    if not _kind_ready("codex"):
        pytest.skip("kind codex is not registered in this build yet")
    canary = "ghp_" + _alnum(36)
    path = workspace.home / "codex" / "config.toml"
    workspace.write(
        "servers.yaml",
        """
        servers:
          api:
            command: npx
            env: {GITHUB_TOKEN: "${env:CANARY_TOKEN}"}
        """,
    )
    workspace.write(
        "targets.yaml",
        f"""
        targets:
          codex:
            kind: codex
            path: {path}
        """,
    )
    result = workspace.run(env={"CANARY_TOKEN": canary})
    assert result.exit_code == 0, result.stdout + result.stderr
    note = "api /env/GITHUB_TOKEN: ${env:CANARY_TOKEN} is resolved into the file"
    assert note in result.stdout
    assert "write GITHUB_TOKEN: ${env:GITHUB_TOKEN} and export GITHUB_TOKEN" in result.stdout
    assert canary in path.read_text()  # resolved, as the note says...
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # ...into a private file
    assert canary not in result.stdout + result.stderr


def test_secrets_resolve_option_forces_values(workspace: Workspace) -> None:
    if not _kind_ready("claude-code"):
        pytest.skip("kind claude-code is not registered in this build yet")
    canary = "ghp_" + _alnum(36)
    path = workspace.home / "cc.json"
    workspace.write(
        "servers.yaml",
        """
        servers:
          api:
            command: npx
            env: {CANARY_TOKEN: "${env:CANARY_TOKEN}"}
        """,
    )
    workspace.write(
        "targets.yaml",
        f"""
        targets:
          code:
            kind: claude-code
            scope: user
            path: {path}
            secrets: resolve
        """,
    )
    result = workspace.run(env={"CANARY_TOKEN": canary})
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(path.read_text())["mcpServers"]["api"]["env"]["CANARY_TOKEN"] == canary
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert canary not in result.stdout + result.stderr


def test_pre_commit_hook_runs_validate() -> None:
    hooks = Path(__file__).resolve().parent.parent / ".pre-commit-hooks.yaml"
    from ruamel.yaml import YAML

    (hook,) = YAML(typ="safe").load(hooks.read_text())
    assert hook["id"] == "reconcile-validate"
    assert hook["entry"] == "reconcile validate"
    assert hook["pass_filenames"] is False
    assert os.path.basename(hook["language"]) == "python"


def test_rotation_makes_mcpjungle_drift_without_showing_either_value(
    workspace: Workspace,
) -> None:
    pytest.importorskip("reconciler.targets.mcpjungle", reason="no mcpjungle target yet")
    from tests.fakes.mcpjungle import FakeMCPJungle

    first, second = "ghp_" + _alnum(36), "ghp_" + _alnum(36)
    workspace.write(
        "servers.yaml",
        """
        servers:
          api:
            command: uvx
            args: [api-server]
            env: {API_TOKEN: "${env:CANARY_TOKEN}"}
        """,
    )
    with FakeMCPJungle({"api": ["query"]}) as fake:
        workspace.write(
            "targets.yaml",
            f"""
            targets:
              jungle:
                kind: mcpjungle
                url: {fake.url}
            """,
        )
        applied = workspace.run(env={"CANARY_TOKEN": first})
        assert applied.exit_code == 0, applied.stdout + applied.stderr
        assert fake.servers["api"].env == {"API_TOKEN": first}  # resolved at apply time
        same = workspace.run("--dry-run", env={"CANARY_TOKEN": first})
        assert same.exit_code == 0, same.stdout
        rotated = workspace.run("--dry-run", env={"CANARY_TOKEN": second})
        assert rotated.exit_code == 1, rotated.stdout + rotated.stderr
        assert "/env/API_TOKEN" in rotated.stdout and "‹secret:" in rotated.stdout
    outputs = applied.stdout + applied.stderr + rotated.stdout + rotated.stderr
    assert first not in outputs and second not in outputs
    state = workspace.state_dir
    for path in (p for p in state.rglob("*") if p.is_file() and p.name != "fingerprint.key"):
        assert first not in path.read_text("utf-8", "replace")


def test_a_literal_token_in_drifted_live_args_is_never_shown(scene: Scene) -> None:
    assert scene.run().exit_code == 0
    config = scene.ws.desktop_config
    data = json.loads(config.read_text())
    data["mcpServers"]["time"]["args"].append("--api-key=" + scene.canaries.planted)
    config.write_text(json.dumps(data))
    for flags in ((), ("--json",)):
        result = scene.run("--dry-run", *flags)
        assert result.exit_code == 1
        assert "/args/1" in result.stdout and "‹secret:" in result.stdout
        assert scene.leaks(result.stdout, result.stderr) == []


def test_a_token_pasted_into_a_typed_field_is_not_echoed(scene: Scene) -> None:
    token = scene.canaries.planted
    scene.ws.write(
        "more.yaml",
        f"""
        servers:
          pasted:
            url: https://example.test/mcp
            transport: {token}
        """,
    )
    for flags in ((), ("--json",)):
        result = scene.run("validate", *flags)
        assert result.exit_code == 2
        assert "more.yaml:4:" in result.stdout + result.stderr
        assert token not in result.stdout + result.stderr
