"""`reconcile adopt` and `reconcile import`: live entries into desired state, no secret in git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Workspace
from tests.gitrepo import commit_all, commit_count, files_in, git, init_repo, isolate_git, trailers

TOKEN = "ghp_" + "Zq8x" * 9  # the shape of a GitHub token; a canary, never a real one
TOKEN2 = "ghp_" + "Wm3k" * 9

SERVERS = """\
# MCP servers of the team: reviewed like code.
servers:
  github:
    description: GitHub tools   # the PAT comes from the keychain
    command: npx
    args: [-y, "@modelcontextprotocol/server-github"]
    env:
      GITHUB_PERSONAL_ACCESS_TOKEN: ${env:GH_TOKEN}   # never a literal here

  # Time is harmless.
  time:
    command: uvx
    args: [mcp-server-time]
"""
TARGETS = """\
targets:
  desktop:
    kind: claude-desktop   # Ana's laptop
"""


@pytest.fixture
def repo(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    isolate_git(tmp_path, monkeypatch)
    init_repo(workspace.root)
    return workspace


def everything_in_git(root: Path) -> str:
    return git(root, "log", "-p", "--all")


def write_desktop(ws: Workspace, servers: dict[str, object]) -> None:
    ws.desktop_config.parent.mkdir(parents=True, exist_ok=True)
    ws.desktop_config.write_text(json.dumps({"mcpServers": servers}, indent=2) + "\n")


# -- adopt ---------------------------------------------------------------------------------


def adopted_setup(repo: Workspace) -> None:
    (repo.desired / "servers.yaml").write_text(SERVERS)
    (repo.desired / "targets.yaml").write_text(TARGETS)
    commit_all(repo.root)
    assert repo.run(env={"GH_TOKEN": TOKEN}).exit_code == 0
    data = json.loads(repo.desktop_config.read_text())
    github = data["mcpServers"]["github"]
    github["args"].append("--read-only")
    github["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] = TOKEN2  # rotated by hand
    github["env"]["GITHUB_API_KEY"] = "ghp_" + "Ab1c" * 9  # a new inline secret
    repo.desktop_config.write_text(json.dumps(data, indent=2))


def test_adopt_keeps_comments_and_layout_and_no_literal_secret(repo: Workspace) -> None:
    adopted_setup(repo)
    commits = commit_count(repo.root)

    result = repo.run("adopt", "github", "--target", "desktop", env={"GH_TOKEN": TOKEN})

    assert result.exit_code == 0, result.stderr
    text = (repo.desired / "servers.yaml").read_text()
    assert text == SERVERS.replace(
        'args: [-y, "@modelcontextprotocol/server-github"]',
        'args: [-y, "@modelcontextprotocol/server-github", --read-only]',
    ).replace(
        "      GITHUB_PERSONAL_ACCESS_TOKEN: ${env:GH_TOKEN}   # never a literal here\n",
        "      GITHUB_PERSONAL_ACCESS_TOKEN: ${env:GH_TOKEN}   # never a literal here\n"
        "      GITHUB_API_KEY: ${env:GITHUB_API_KEY}\n",
    )
    assert commit_count(repo.root) == commits + 1
    assert files_in(repo.root) == ["desired/servers.yaml"]
    parsed = trailers(repo.root)
    assert parsed["Reconciler-Action"] == "adopt"
    assert parsed["Reconciler-Target"] == "desktop"
    assert parsed["Reconciler-Server"] == "github"
    history = everything_in_git(repo.root)
    for canary in (TOKEN, TOKEN2, "Ab1c" * 9):
        assert canary not in history
        assert canary not in result.stdout + result.stderr
    assert "GITHUB_API_KEY" in result.stdout  # listed for the user to export


def test_adopted_state_is_in_sync_once_the_secrets_are_exported(repo: Workspace) -> None:
    adopted_setup(repo)
    assert repo.run("adopt", "github", "--target", "desktop").exit_code == 0
    env = {"GH_TOKEN": TOKEN2, "GITHUB_API_KEY": "ghp_" + "Ab1c" * 9}
    assert repo.run("--dry-run", env=env).exit_code == 0


def test_adopt_refuses_a_desired_file_with_uncommitted_changes(repo: Workspace) -> None:
    adopted_setup(repo)
    path = repo.desired / "servers.yaml"
    path.write_text(SERVERS + "# a thought in progress\n")
    result = repo.run("adopt", "github", "--target", "desktop")
    assert result.exit_code == 2
    assert "uncommitted changes" in result.stderr
    assert path.read_text().endswith("# a thought in progress\n")


def test_adopt_removes_the_records_it_makes_pointless(repo: Workspace) -> None:
    adopted_setup(repo)
    env = {"GH_TOKEN": TOKEN}
    allowed = repo.run("allow", "github", "--target", "desktop", "--reason", "try", env=env)
    assert allowed.exit_code == 0, allowed.stderr
    assert repo.run("adopt", "github", "--target", "desktop", env=env).exit_code == 0
    assert files_in(repo.root) == [
        "desired/divergences/desktop--github.yaml",
        "desired/servers.yaml",
    ]
    assert not (repo.desired / "divergences" / "desktop--github.yaml").exists()


# -- import --------------------------------------------------------------------------------


def test_import_from_claude_desktop_moves_the_token_out(repo: Workspace) -> None:
    write_desktop(
        repo,
        {
            "github": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN},
            },
            "time": {"command": "uvx", "args": ["mcp-server-time"]},
        },
    )
    (repo.root / "README.md").write_text("unrelated, untracked\n")

    result = repo.run("import", "--target", "claude-desktop")

    assert result.exit_code == 0, result.stderr
    assert "GITHUB_PERSONAL_ACCESS_TOKEN" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert sorted(files_in(repo.root)) == ["desired/servers.yaml", "desired/targets.yaml"]
    assert trailers(repo.root)["Reconciler-Action"] == "import"
    servers = (repo.desired / "servers.yaml").read_text()
    assert "GITHUB_PERSONAL_ACCESS_TOKEN: ${env:GITHUB_PERSONAL_ACCESS_TOKEN}" in servers
    assert repo.run("validate").exit_code == 0

    env = {"GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN}
    dry = repo.run("--dry-run", env=env)
    # The entries match; only the file's mode (0644, as the user made it) is drift now that
    # it holds a value resolved from a reference: the next pass makes it 0600.
    assert dry.exit_code == 1, dry.stdout
    assert '/file-mode: "0644" -> "0600"' in dry.stdout
    assert "drift found: 1 would change" in dry.stdout
    assert TOKEN not in dry.stdout + dry.stderr
    assert TOKEN not in everything_in_git(repo.root)
    assert TOKEN not in "".join(p.read_text() for p in repo.desired.rglob("*.yaml"))
    assert "?? README.md" in git(repo.root, "status", "--porcelain")


def test_import_into_a_declared_target_adds_servers_and_placement(repo: Workspace) -> None:
    repo.write(
        "servers.yaml",
        """
        servers:
          time:  # kept
            command: uvx
            args: [mcp-server-time]
        """,
    )
    repo.write(
        "targets.yaml",
        """
        targets:
          desktop:
            kind: claude-desktop
            servers: [time]   # the laptop's set
        """,
    )
    commit_all(repo.root)
    write_desktop(
        repo,
        {
            "time": {"command": "uvx", "args": ["mcp-server-time"]},
            "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
            "other": {"command": "other"},
        },
    )
    result = repo.run("import", "--target", "desktop", "--server", "fetch")
    assert result.exit_code == 0, result.stderr
    targets = (repo.desired / "targets.yaml").read_text()
    assert "servers: [time, fetch]" in targets and "# the laptop's set" in targets
    servers = (repo.desired / "servers.yaml").read_text()
    assert "time:  # kept" in servers and "fetch:" in servers and "other" not in servers
    dry = repo.run("--dry-run", "--json")
    assert dry.exit_code == 0
    assert dry.json["targets"][0]["unmanaged"] == ["other"]


def test_import_of_an_unknown_entry_or_target_is_exit_2(repo: Workspace) -> None:
    write_desktop(repo, {"time": {"command": "uvx"}})
    assert repo.run("import", "--target", "nowhere").exit_code == 2
    missing = repo.run("import", "--target", "claude-desktop", "--server", "nope")
    assert missing.exit_code == 2 and "no entry named nope" in missing.stderr
    assert commit_count(repo.root) == 0


# -- what the next pass will change --------------------------------------------------------


def spread_setup(repo: Workspace) -> None:
    """Desktop places time; code places "*" (by default): a new server spreads to it."""
    repo.write("servers.yaml", "servers:\n  time: {command: uvx, args: [mcp-server-time]}\n")
    repo.write(
        "targets.yaml",
        """
        targets:
          desktop:
            kind: claude-desktop
            servers: [time]
          code:
            kind: claude-code
        """,
    )
    commit_all(repo.root)
    assert repo.run().exit_code == 0
    write_desktop(
        repo,
        {
            "time": {"command": "uvx", "args": ["mcp-server-time"]},
            "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
        },
    )


@pytest.mark.parametrize(
    ("flags", "spread", "code_has_fetch"),
    [
        ((), {"code": ["fetch"]}, True),
        (("--only-target",), {}, False),
    ],
)
def test_import_names_the_other_targets_it_changes_and_only_target_keeps_it_home(
    repo: Workspace, flags: tuple[str, ...], spread: dict[str, list[str]], code_has_fetch: bool
) -> None:
    spread_setup(repo)
    result = repo.run("import", "--target", "desktop", *flags)
    assert result.exit_code == 0, result.stderr
    if spread:
        assert "the next pass also changes these targets:\n  code: fetch" in result.stdout
    else:
        assert "the next pass changes no other target than desktop" in result.stdout
        assert "servers: ['*', '!fetch']" in (repo.desired / "targets.yaml").read_text()
    assert repo.run("import", "--target", "desktop", *flags, "--json").json  # idempotent
    assert repo.run("validate").exit_code == 0
    data = repo.run("--dry-run", "--json").json
    changed = {t["name"]: [c["server"] for c in t["changes"]] for t in data["targets"]}
    assert changed == {"desktop": [], "code": ["fetch"] if code_has_fetch else []}


def test_adopt_names_the_other_targets_it_changes(repo: Workspace) -> None:
    spread_setup(repo)
    data = json.loads(repo.desktop_config.read_text())
    data["mcpServers"]["time"]["args"] = ["mcp-server-time", "--local-timezone=UTC"]
    repo.desktop_config.write_text(json.dumps(data))
    result = repo.run("adopt", "time", "--target", "desktop", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json["next_pass"] == {"code": ["time"]}


def test_adopt_with_nothing_to_do_says_so(repo: Workspace) -> None:
    spread_setup(repo)
    commits = commit_count(repo.root)
    result = repo.run("adopt", "time", "--target", "desktop")
    assert result.exit_code == 0, result.stderr
    assert "nothing to adopt: time on desktop already matches desired state" in result.stdout
    assert "into -" not in result.stdout
    assert commit_count(repo.root) == commits
