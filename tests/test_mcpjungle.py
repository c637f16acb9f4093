"""The ``mcpjungle`` target against the faithful fake MCPJungle 0.4.5 (tests/fakes/mcpjungle.py).

Every scenario runs the real command line over real HTTP on 127.0.0.1, in a temp HOME, and
reads the outcome from the fake's state and request log: what was registered, which tools
are disabled, how many requests a pass cost, and that no secret reached any output.
"""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.core.errors import TargetError
from reconciler.core.essence import normalize
from reconciler.core.model import TargetSpec
from reconciler.secrets import Redactor, SecretResolver
from reconciler.targets.base import Context
from reconciler.targets.mcpjungle import (
    MCPJungleTarget,
    config_to_essence,
    essence_to_config,
)
from tests.conftest import Result, Workspace
from tests.fakes.mcpjungle import (
    DUPLICATE_SERVER,
    Delay,
    Drop,
    FakeMCPJungle,
    Respond,
    Upstream,
)
from tests.jsonschema1 import assert_report_schema

PAT = "ghp_" + "Zx9" * 12  # what GITHUB_PAT holds: must never be printed
ADMIN = "adm1n-" + "Qw7" * 10  # the enterprise admin token: must never be printed

UPSTREAMS: dict[str, Any] = {
    "time": ["get_current_time", "convert_time"],
    "fetch": ["fetch"],
    "files": ["read_file", "read_dir", "write_file", "delete_file"],
    "github": ["search_issues", "get_issue", "delete_repo", "merge_pull_request"],
    "search": ["query"],
}

SERVERS = """
servers:
  time:
    required: true  # its failure on a target exits 3
    command: uvx
    args: [mcp-server-time, --local-timezone=UTC]
    env: {TZ: UTC}
  fetch:
    required: true  # its failure on a target exits 3
    command: uvx
    args: [mcp-server-fetch]
  files:
    required: true  # its failure on a target exits 3
    command: npx
    args: [-y, "@modelcontextprotocol/server-filesystem", /srv/data]
    env: {ROOT: /srv/data}
    tools:
      deny: [write_*, delete_*]
  github:
    required: true  # its failure on a target exits 3
    url: https://api.githubcopilot.com/mcp/
    headers:
      Authorization: Bearer ${env:GITHUB_PAT}
      X-Team: platform
    tools:
      deny: [delete_*, merge_pull_request]
  search:
    required: true  # its failure on a target exits 3
    url: https://search.example.test/sse
    transport: sse
"""


def jungle_target(url: str, **extra: Any) -> str:
    lines = [f"    {k}: {json.dumps(v)}" for k, v in extra.items()]
    return "targets:\n  jungle:\n    kind: mcpjungle\n" + f"    url: {url}\n" + "\n".join(lines)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MCPJungleTarget, "retry_delays", (0.0, 0.0))


@pytest.fixture
def jungle() -> Iterator[FakeMCPJungle]:
    with FakeMCPJungle(UPSTREAMS) as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("GITHUB_PAT", PAT)
    return {"GITHUB_PAT": PAT}


def setup(ws: Workspace, url: str, servers: str = SERVERS, **target: Any) -> None:
    ws.write("servers.yaml", servers)
    ws.write("targets.yaml", jungle_target(url, **target))


def no_secret(*results: Result) -> None:
    for result in results:
        for secret in (PAT, ADMIN):
            assert secret not in result.stdout and secret not in result.stderr


def actions(report: dict[str, Any], target: str = "jungle") -> list[tuple[str, str]]:
    (found,) = [t for t in report["targets"] if t["name"] == target]
    return [(c["server"], c["action"]) for c in found["changes"]]


def disabled_tools(fake: FakeMCPJungle) -> set[str]:
    return {name for name, tool in fake.tools.items() if not tool.enabled}


def converge(ws: Workspace, fake: FakeMCPJungle) -> None:
    result = ws.run()
    assert result.exit_code == 0, result.stdout + result.stderr
    fake.reset_log()


# -- acceptance ------------------------------------------------------------------------


def test_empty_jungle_five_servers_create_then_noop(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url)

    dry = workspace.run("--dry-run", "--json")
    assert dry.exit_code == 1
    assert_report_schema(dry.json)
    creates = [s for s, a in actions(dry.json) if a == "create"]
    assert sorted(creates) == ["fetch", "files", "github", "search", "time"]
    assert ("github", "tool-disable") in actions(dry.json)
    assert jungle.mutations == [] and jungle.servers == {}

    applied = workspace.run()
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    assert list(jungle.servers) == ["time", "fetch", "files", "github", "search"]
    github = jungle.servers["github"]
    assert (github.transport, github.url) == (
        "streamable_http",
        "https://api.githubcopilot.com/mcp/",
    )
    assert github.bearer_token == PAT and github.headers == {"X-Team": "platform"}
    assert jungle.servers["search"].transport == "sse"
    assert jungle.servers["time"].env == {"TZ": "UTC"}
    assert disabled_tools(jungle) == {
        "files__write_file",
        "files__delete_file",
        "github__delete_repo",
        "github__merge_pull_request",
    }

    jungle.reset_log()
    again = workspace.run("--json")
    assert again.exit_code == 0
    assert actions(again.json) == []
    assert jungle.mutations == []
    reads = [(r.method, r.path) for r in jungle.requests]
    assert len(reads) <= 2
    assert reads == [("GET", "/api/v0/server_configs"), ("GET", "/api/v0/tools")]
    no_secret(dry, applied, again)


def test_env_change_is_a_replace_and_governed_tools_are_disabled_again(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url)
    converge(workspace, jungle)
    old_id = jungle.servers["files"].id
    workspace.write("servers.yaml", SERVERS.replace("{ROOT: /srv/data}", "{ROOT: /srv/other}"))

    dry = workspace.run("--dry-run")
    assert dry.exit_code == 1
    assert "files: replace, origin desired" in dry.stdout
    assert "/env/ROOT" in dry.stdout
    # ROOT is no secret (name, shape): its change is readable; secrets stay fingerprints.
    assert '/env/ROOT: "/srv/data" -> "/srv/other"' in dry.stdout
    assert "files: tool-disable" in dry.stdout

    applied = workspace.run("--json")
    assert applied.exit_code == 0, applied.stdout
    assert ("files", "replace") in actions(applied.json)
    files = jungle.servers["files"]
    assert files.id != old_id and files.env == {"ROOT": "/srv/other"}
    assert files.args == ["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]
    assert {"files__write_file", "files__delete_file"} <= disabled_tools(jungle)
    assert jungle.tools["files__read_file"].enabled
    register = jungle.requests_to("POST", "/api/v0/servers")
    assert [r.query for r in register] == [{"force": ["true"]}]
    no_secret(dry, applied)


def test_failed_replace_restores_the_previous_registration(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url)
    converge(workspace, jungle)
    workspace.write("servers.yaml", SERVERS.replace("{ROOT: /srv/data}", "{ROOT: /srv/other}"))
    jungle.inject(
        "POST",
        "/api/v0/servers",
        Respond(500, {"error": "failed to initialize connection with MCP server: EOF"}),
    )

    result = workspace.run("--json")

    assert result.exit_code == 3
    (degraded,) = result.json["degraded"]
    assert degraded["phase"] == "apply" and degraded["required"] is True
    assert "replace of server 'files' failed" in degraded["error"]
    assert "failed to initialize connection with MCP server" in degraded["error"]
    assert "the previous registration was restored" in degraded["error"]
    files = jungle.servers["files"]
    assert files.env == {"ROOT": "/srv/data"}  # the old config is back
    assert {"files__write_file", "files__delete_file"} <= disabled_tools(jungle)
    posts = jungle.requests_to("POST", "/api/v0/servers")
    assert [r.body["env"] for r in posts] == [{"ROOT": "/srv/other"}, {"ROOT": "/srv/data"}]
    text = workspace.run("--dry-run")
    assert "files: replace" in text.stdout  # still to do on the next pass
    no_secret(result, text)


def test_replace_rejected_after_deregistration_comes_back(
    workspace: Workspace, jungle: FakeMCPJungle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real failure mode of ``force=true``: the old server is deregistered first, then the
    new registration fails (here the upstream refuses a rotated bearer token)."""
    jungle.set_upstream("github", Upstream(tools=["search", "delete_repo"], bearer_token=PAT))
    monkeypatch.setenv("GITHUB_PAT", PAT)
    setup(workspace, jungle.url)
    converge(workspace, jungle)
    monkeypatch.setenv("GITHUB_PAT", PAT + "-rotated-wrong")

    result = workspace.run()

    assert result.exit_code == 3
    assert "replace of server 'github' failed" in result.stdout
    assert "previous registration was restored" in result.stdout
    assert jungle.servers["github"].bearer_token == PAT
    assert not jungle.tools["github__delete_repo"].enabled
    assert PAT not in result.stdout + result.stderr
    assert "rotated-wrong" not in result.stdout + result.stderr


def test_a_server_that_ignores_force_gets_delete_and_register(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    """Before ``force`` existed, MCPJungle ignored it and answered 500 for the duplicate name."""
    setup(workspace, jungle.url)
    converge(workspace, jungle)
    workspace.write("servers.yaml", SERVERS.replace("{TZ: UTC}", "{TZ: Europe/Paris}"))
    jungle.inject("POST", "/api/v0/servers", Respond(500, {"error": DUPLICATE_SERVER}))
    result = workspace.run()
    assert result.exit_code == 0, result.stdout
    assert [(r.method, r.path, r.status) for r in jungle.mutations] == [
        ("POST", "/api/v0/servers", 500),
        ("DELETE", "/api/v0/servers/time", 204),
        ("POST", "/api/v0/servers", 201),
    ]
    assert jungle.servers["time"].env == {"TZ": "Europe/Paris"}


def test_prune_deregisters_and_without_prune_it_is_reported(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url, prune=False)
    converge(workspace, jungle)
    without_fetch = SERVERS.replace(
        "  fetch:\n    required: true  # its failure on a target exits 3\n"
        "    command: uvx\n    args: [mcp-server-fetch]\n",
        "",
    )
    workspace.write("servers.yaml", without_fetch)

    kept = workspace.run("--json")
    assert kept.exit_code == 0
    (target,) = kept.json["targets"]
    assert target["orphaned"] == ["fetch"]
    assert "fetch" in jungle.servers and jungle.mutations == []
    assert "set prune: true to delete" in workspace.run().stdout

    workspace.write("targets.yaml", jungle_target(jungle.url, prune=True))
    pruned = workspace.run("--json")
    assert pruned.exit_code == 0
    assert actions(pruned.json) == [("fetch", "delete")]
    assert "fetch" not in jungle.servers
    assert not any(name.startswith("fetch__") for name in jungle.tools)
    assert [(r.method, r.path, r.status) for r in jungle.mutations] == [
        ("DELETE", "/api/v0/servers/fetch", 204)
    ]


def test_unmanaged_server_is_reported_and_left_alone(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    jungle.add_server("handmade", command="node", args=["x.js"], transport="stdio")
    setup(workspace, jungle.url, prune=True)
    result = workspace.run("--json")
    assert result.exit_code == 0
    assert result.json["targets"][0]["unmanaged"] == ["handmade"]
    assert "handmade" in jungle.servers


# -- enterprise mode: each failure exits 3 and names its fix, with no secret ---------------


def enterprise_setup(ws: Workspace, fake: FakeMCPJungle, *, token: bool = True) -> None:
    ws.write("servers.yaml", "servers:\n  time: {command: uvx, args: [mcp-server-time]}\n")
    extra = {"token": "${env:MCPJUNGLE_ADMIN_TOKEN}"} if token else {}
    ws.write("targets.yaml", jungle_target(fake.url, **extra))


@pytest.fixture
def enterprise() -> Iterator[FakeMCPJungle]:
    with FakeMCPJungle(UPSTREAMS, mode="enterprise", initialized=True, admin_token=ADMIN) as f:
        yield f
    assert f.errors == []


def test_enterprise_with_the_admin_token_works(
    workspace: Workspace, enterprise: FakeMCPJungle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCPJUNGLE_ADMIN_TOKEN", ADMIN)
    enterprise_setup(workspace, enterprise)
    result = workspace.run("-v")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "time" in enterprise.servers
    assert all(r.headers["authorization"] == f"Bearer {ADMIN}" for r in enterprise.requests)
    no_secret(result, workspace.run("--json"), workspace.run("status", "--json"))


def test_enterprise_without_a_token(workspace: Workspace, enterprise: FakeMCPJungle) -> None:
    enterprise_setup(workspace, enterprise, token=False)
    result = workspace.run()
    assert result.exit_code == 3
    assert "enterprise mode and needs an access token" in result.stdout
    assert "token: ${env:MCPJUNGLE_ADMIN_TOKEN}" in result.stdout
    assert "mcpjungle init-server" in result.stdout
    no_secret(result)


def test_enterprise_with_a_wrong_token(
    workspace: Workspace, enterprise: FakeMCPJungle, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-the-admin-token-" + "k8" * 8
    monkeypatch.setenv("MCPJUNGLE_ADMIN_TOKEN", wrong)
    enterprise_setup(workspace, enterprise)
    result = workspace.run()
    as_json = workspace.run("--json")
    assert result.exit_code == 3 and as_json.exit_code == 3
    assert "rejected the token of target 'jungle' (${env:MCPJUNGLE_ADMIN_TOKEN})" in result.stdout
    assert "valid admin access token" in result.stdout
    for out in (result, as_json):
        assert wrong not in out.stdout + out.stderr
    no_secret(result, as_json)


def test_enterprise_token_variable_unset(
    workspace: Workspace, enterprise: FakeMCPJungle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MCPJUNGLE_ADMIN_TOKEN", raising=False)
    enterprise_setup(workspace, enterprise)
    result = workspace.run()
    assert result.exit_code == 3
    assert "MCPJUNGLE_ADMIN_TOKEN is not set" in result.stdout
    assert enterprise.requests == []  # nothing was sent without the token


def test_enterprise_not_initialized(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPJUNGLE_ADMIN_TOKEN", ADMIN)
    with FakeMCPJungle(UPSTREAMS, mode="enterprise", admin_token=ADMIN) as fake:
        enterprise_setup(workspace, fake)
        result = workspace.run("--json")
    assert result.exit_code == 3
    (degraded,) = result.json["degraded"]
    assert degraded["phase"] == "observe" and degraded["recoverable"] is False
    assert "is not initialized: run `mcpjungle init-server`" in degraded["error"]
    no_secret(result)


def test_token_without_admin_rights_reads_blind_and_says_so(
    workspace: Workspace, enterprise: FakeMCPJungle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_PAT", PAT)
    monkeypatch.setenv("MCPJUNGLE_ADMIN_TOKEN", ADMIN)
    workspace.write("servers.yaml", SERVERS)
    workspace.write(
        "targets.yaml", jungle_target(enterprise.url, token="${env:MCPJUNGLE_ADMIN_TOKEN}")
    )
    converge(workspace, enterprise)
    user = enterprise.add_user("bob")
    monkeypatch.setenv("MCPJUNGLE_ADMIN_TOKEN", user)

    result = workspace.run("--dry-run", "--json")

    assert result.exit_code == 0, result.stdout  # headers unseen: no drift claimed on them
    (target,) = result.json["targets"]
    assert target["blind_fields"] == ["headers"]
    assert any("headers and bearer tokens could not be compared" in n for n in target["notes"])
    assert [r.path for r in enterprise.requests] == [
        "/api/v0/server_configs",
        "/api/v0/servers",
        "/api/v0/tools",
    ]
    # A real difference elsewhere is still found, but cannot be applied without admin rights.
    workspace.write("servers.yaml", SERVERS.replace("{TZ: UTC}", "{TZ: Europe/Paris}"))
    applied = workspace.run()
    assert applied.exit_code == 3
    assert "without admin rights" in applied.stdout or "no admin rights" in applied.stdout
    no_secret(result, applied)


# -- network trouble -----------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_required_and_optional(workspace: Workspace) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    workspace.write("servers.yaml", "servers:\n  time: {command: uvx, args: [mcp-server-time]}\n")
    workspace.write(
        "targets.yaml",
        jungle_target(url) + "\n  desktop:\n    kind: claude-desktop\n",
    )
    result = workspace.run()
    assert result.exit_code == 3
    assert f"cannot connect to MCPJungle at {url}" in result.stdout
    assert "mcpjungle start" in result.stdout
    assert workspace.desktop_config.exists()  # the other target still ran

    workspace.write(
        "targets.yaml",
        jungle_target(url, optional=True) + "\n  desktop:\n    kind: claude-desktop\n",
    )
    optional = workspace.run()
    assert optional.exit_code == 0
    assert "optional target: warning only" in optional.stdout


def test_reads_are_retried_and_writes_are_not(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url)
    jungle.inject("GET", "/api/v0/tools", Respond(503, {"error": "busy"}), Drop())
    jungle.inject("POST", "/api/v0/servers", Respond(503, {"error": "busy"}))
    result = workspace.run()
    assert result.exit_code == 3
    gets = jungle.requests_to("GET", "/api/v0/tools")
    assert [r.status for r in gets][:3] == [503, None, 200]  # two retries, then an answer
    failed = [r for r in jungle.requests_to("POST", "/api/v0/servers") if r.status == 503]
    assert len(failed) == 1
    assert "could not register server" in result.stdout
    converge(workspace, jungle)  # the next pass finishes the work
    assert len(jungle.servers) == 5


def test_servers_created_before_a_failure_stay_owned(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url, prune=True)
    jungle.set_upstream("search", Upstream(connect_error="dial tcp: connection refused"))
    first = workspace.run()
    assert first.exit_code == 3
    assert "error: server search: apply failed" in first.stdout
    assert "4 changed across 1 target" in first.stdout
    assert set(jungle.servers) == {"time", "fetch", "files", "github"}
    without_fetch = SERVERS.replace(
        "  fetch:\n    required: true  # its failure on a target exits 3\n"
        "    command: uvx\n    args: [mcp-server-fetch]\n",
        "",
    )
    workspace.write("servers.yaml", without_fetch)
    jungle.set_upstream("search", ["query"])
    second = workspace.run("--json")
    assert second.exit_code == 0
    assert sorted(actions(second.json)) == [("fetch", "delete"), ("search", "create")]
    assert "fetch" not in jungle.servers


def test_a_timeout_names_the_timeout(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url, timeout=0.2)
    jungle.inject("GET", "/api/v0/server_configs", *[Delay(5.0)] * 3)
    result = workspace.run()
    assert result.exit_code == 3
    assert "did not answer GET /api/v0/server_configs within 0.2 s" in result.stdout
    assert "raise the target's timeout" in result.stdout
    assert jungle.count("GET", "/api/v0/server_configs") == 3


def test_plain_text_404_says_the_url_is_not_mcpjungle(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url + "/wrong/prefix")
    result = workspace.run()
    assert result.exit_code == 3
    assert "plain-text 404: 404 page not found" in result.stdout
    assert "is the url an MCPJungle 0.4 server?" in result.stdout


def test_upstream_connection_failure_and_oauth(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    jungle.set_upstream("time", Upstream(connect_error='exec: "uvx": not found'))
    jungle.set_upstream("fetch", Upstream(requires_oauth=True))
    jungle.inject(
        "POST",
        "/api/v0/servers",
        Respond(
            202,
            {
                "authorization_required": {
                    "session_id": "s1",
                    "authorization_url": "https://idp.test/authorize?x=1",
                    "expires_at": "2026-01-01T00:00:00Z",
                }
            },
        ),
    )
    setup(workspace, jungle.url)
    result = workspace.run("--json")
    assert result.exit_code == 3
    errors = {d["server"]: d["error"] for d in result.json["degraded"]}  # one entry per server
    assert set(errors) == {"time", "fetch"}
    assert "server 'time'" in errors["time"] and "finish the OAuth flow" in errors["time"]
    assert "server 'fetch'" in errors["fetch"] and "demands OAuth" in errors["fetch"]
    # The others were still registered.
    assert {"files", "github", "search"} <= set(jungle.servers)
    second = workspace.run("--json")
    error = {d["server"]: d["error"] for d in second.json["degraded"]}["time"]
    assert "could not register server 'time'" in error and 'exec: "uvx": not found' in error
    assert "could not connect to the upstream" in error
    no_secret(result, second)


# -- switches and governed tools -------------------------------------------------------------


def test_disabled_server_and_hand_edited_tools(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url)
    converge(workspace, jungle)
    jungle.tools["github__delete_repo"].enabled = True  # someone enabled a denied tool
    jungle.tools["files__read_dir"].enabled = False  # and disabled an allowed one

    dry = workspace.run("--dry-run", "--json")
    assert dry.exit_code == 1
    assert sorted(actions(dry.json)) == [("files", "tool-enable"), ("github", "tool-disable")]
    changes = {c["action"]: c for c in dry.json["targets"][0]["changes"]}
    assert changes["tool-disable"]["paths"] == ["/tools/delete_repo"]
    assert changes["tool-enable"]["origin"] == "live"
    converge(workspace, jungle)
    assert not jungle.tools["github__delete_repo"].enabled
    assert jungle.tools["files__read_dir"].enabled

    workspace.write(
        "servers.yaml",
        SERVERS.replace(
            "    args: [mcp-server-fetch]\n", "    args: [mcp-server-fetch]\n    enabled: false\n"
        ),
    )
    applied = workspace.run("--json")
    assert actions(applied.json) == [("fetch", "disable")]
    assert jungle.servers["fetch"].enabled is False
    assert [r.path for r in jungle.mutations] == ["/api/v0/servers/fetch/disable"]
    jungle.reset_log()
    noop = workspace.run()
    assert noop.exit_code == 0 and jungle.mutations == []
    # A server without an enabled tool: the configs cannot say whether it is enabled.
    assert [r.path for r in jungle.requests] == [
        "/api/v0/server_configs",
        "/api/v0/tools",
        "/api/v0/servers",
    ]


def test_enabling_a_disabled_server_enables_its_tools(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    # Disabling a server disables its tools (MCPJungle's cascade): those flags are no one's
    # choice, and enabling it again must not put them back (it did: every tool stayed off).
    disabled = SERVERS.replace("[mcp-server-fetch]\n", "[mcp-server-fetch]\n    enabled: false\n")
    setup(workspace, jungle.url, servers=disabled)
    converge(workspace, jungle)
    assert not jungle.servers["fetch"].enabled and not jungle.tools["fetch__fetch"].enabled
    setup(workspace, jungle.url)

    result = workspace.run("--json")

    assert result.exit_code == 0 and actions(result.json) == [("fetch", "enable")]
    assert jungle.servers["fetch"].enabled and jungle.tools["fetch__fetch"].enabled
    assert workspace.run("--dry-run").exit_code == 0


def test_tools_left_to_set_after_an_enable_are_said_so(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    disabled = SERVERS.replace("/srv/data}\n", "/srv/data}\n    enabled: false\n", 1)
    setup(workspace, jungle.url, servers=disabled)
    converge(workspace, jungle)
    setup(workspace, jungle.url)
    # The enable works; the tools read after it (to apply the deny policy) fails.
    jungle.inject("GET", "/api/v0/tools", Delay(0.0), *(Respond(500, {"error": "busy"}),) * 3)

    result = workspace.run("--json")

    assert result.exit_code == 3
    (found,) = [t for t in result.json["targets"] if t["name"] == "jungle"]
    assert "server 'files' was enabled as planned, but setting its tool flags" in found["error"]
    assert jungle.servers["files"].enabled  # the report says what MCPJungle holds
    jungle.clear_faults()  # a 500 is not retried: two answers are left
    assert workspace.run().exit_code == 0
    assert disabled_tools(jungle) == {
        "files__write_file",
        "files__delete_file",
        "github__delete_repo",
        "github__merge_pull_request",
    }


def test_a_register_whose_tool_flags_failed_reports_them_not_applied(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url)
    jungle.inject("POST", "/api/v0/tools/:verb", Respond(500, {"error": "database is locked"}))

    result = workspace.run("--json")

    assert result.exit_code == 3
    (refused,) = [r for r in jungle.requests_to("POST", "/api/v0/tools/:verb") if r.fault]
    server = refused.query["entity"][0].partition("__")[0]
    assert jungle.tools[refused.query["entity"][0]].enabled  # the deny is not in MCPJungle
    (found,) = [t for t in result.json["targets"] if t["name"] == "jungle"]
    applied = {c["action"]: c["applied"] for c in found["changes"] if c["server"] == server}
    assert applied == {"create": True, "tool-disable": False}, found["changes"]
    assert f"server '{server}' was registered as planned" in found["error"]
    assert "for a registration this usually means" not in found["error"]  # not a register
    text = workspace.run("--dry-run")  # what is left: the tool flags only
    assert f"{server}: tool-disable, origin" in text.stdout and text.exit_code == 1
    assert workspace.run().exit_code == 0
    assert not jungle.tools[refused.query["entity"][0]].enabled


@pytest.mark.parametrize(
    "fault", [Drop(after=True), Respond(500, b"{garbled", after=True)], ids=["lost", "garbled"]
)
def test_a_write_made_whose_answer_is_lost_is_read_back_as_made(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str], fault: Drop | Respond
) -> None:
    # MCPJungle registered the server, then its answer was lost or garbled: a read-back
    # finds the registration, so the pass reports it created, not failed.
    jungle.inject("POST", "/api/v0/servers", fault)
    setup(workspace, jungle.url)

    result = workspace.run("--json")

    assert result.exit_code == 0, result.stdout
    (found,) = [t for t in result.json["targets"] if t["name"] == "jungle"]
    assert found["error"] is None and all(c["applied"] for c in found["changes"])
    assert len(jungle.servers) == 5 and disabled_tools(jungle) == {
        "files__write_file",
        "files__delete_file",
        "github__delete_repo",
        "github__merge_pull_request",
    }
    assert jungle.count("POST", "/api/v0/servers") == 5  # no register sent twice
    jungle.reset_log()
    assert workspace.run().exit_code == 0 and jungle.mutations == []


def test_an_oauth_answer_is_located_bounded_and_scrubbed(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    url = "https://idp.test/authorize?token=" + PAT + "&pad=" + "a" * 100_000
    pending = {"authorization_url": url, "expires_at": {"nested": ["not", "a", "time"]}}
    jungle.inject("POST", "/api/v0/servers", Respond(202, {"authorization_required": pending}))
    setup(workspace, jungle.url)

    result = workspace.run("--json")

    errors = {d["server"]: d["error"] for d in result.json["degraded"]}
    assert f"MCPJungle at {jungle.url} needs OAuth authorization" in errors["time"]
    assert "before ?" in errors["time"] and "nested" not in errors["time"]
    assert len(errors["time"]) < 1000, "the authorization url is cut"
    no_secret(result)


def test_on_drift_report_leaves_hand_edited_tools_but_enforces_a_new_deny(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url, on_drift="report")
    converge(workspace, jungle)
    jungle.tools["files__read_dir"].enabled = False
    # A tool this tool had disabled, re-enabled by hand: drift with origin live (DESIGN 6B).
    jungle.tools["files__write_file"].enabled = True
    result = workspace.run("--json")
    assert result.exit_code == 1  # both are left for a person
    changes = {
        c["action"]: (c["origin"], c["applied"]) for c in result.json["targets"][0]["changes"]
    }
    assert changes == {"tool-disable": ("live", False), "tool-enable": ("live", False)}
    assert jungle.tools["files__write_file"].enabled
    assert not jungle.tools["files__read_dir"].enabled

    # A tool newly denied in desired state is governance: applied whatever on_drift says.
    workspace.write(
        "servers.yaml", SERVERS.replace("deny: [write_*, delete_*]", "deny: [read_file]")
    )
    result = workspace.run("--json")
    changes = {
        (c["action"], tuple(c["paths"])): (c["origin"], c["applied"])
        for c in result.json["targets"][0]["changes"]
    }
    assert changes[("tool-disable", ("/tools/read_file",))] == ("desired", True)
    # The tools it disabled and the policy no longer names are released.
    assert changes[("tool-enable", ("/tools/delete_file",))] == ("desired", True)
    assert changes[("tool-enable", ("/tools/read_dir",))] == ("live", False)
    assert not jungle.tools["files__read_file"].enabled
    assert jungle.tools["files__delete_file"].enabled
    assert not jungle.tools["files__read_dir"].enabled


@pytest.mark.parametrize("replaced", [False, True], ids=["policy-only", "with-a-replace"])
def test_a_policy_removed_releases_the_tools_it_disabled_and_only_those(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str], replaced: bool
) -> None:
    setup(workspace, jungle.url)
    converge(workspace, jungle)
    assert {"files__write_file", "files__delete_file"} <= disabled_tools(jungle)
    jungle.tools["files__read_dir"].enabled = False  # by hand: not this tool's to release
    servers = SERVERS.replace("    tools:\n      deny: [write_*, delete_*]\n", "")
    if replaced:  # the same pass re-registers the server (a config change)
        servers = servers.replace("{ROOT: /srv/data}", "{ROOT: /srv/other}")
    workspace.write("servers.yaml", servers)

    planned = workspace.run("--dry-run", "--json")
    assert planned.exit_code == 1, planned.stdout
    (found,) = planned.json["targets"]
    released = [c for c in found["changes"] if c["action"] == "tool-enable"]
    assert [(c["server"], c["origin"], c["paths"]) for c in released] == [
        ("files", "desired", ["/tools/delete_file", "/tools/write_file"])
    ]

    result = workspace.run("--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert jungle.tools["files__write_file"].enabled
    assert jungle.tools["files__delete_file"].enabled
    assert not jungle.tools["files__read_dir"].enabled
    again = workspace.run("--dry-run")
    assert again.exit_code == 0, again.stdout  # converged: nothing left owned or to release


def test_replace_keeps_hand_disabled_tools_of_ungoverned_servers(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    setup(workspace, jungle.url)
    converge(workspace, jungle)
    jungle.tools["time__convert_time"].enabled = False
    jungle.servers["time"].description = "kept by hand"
    workspace.write("servers.yaml", SERVERS.replace("{TZ: UTC}", "{TZ: Europe/Paris}"))
    result = workspace.run()
    assert result.exit_code == 0, result.stdout
    assert jungle.servers["time"].env == {"TZ": "Europe/Paris"}
    assert jungle.servers["time"].description == "kept by hand"
    assert not jungle.tools["time__convert_time"].enabled


# -- the parity view ---------------------------------------------------------------------------


def test_status_shows_parity_between_desktop_and_jungle(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    workspace.write("servers.yaml", SERVERS)
    workspace.write(
        "targets.yaml",
        jungle_target(jungle.url)
        + "\n  desktop:\n    kind: claude-desktop\n    servers: [time, fetch, files]\n",
    )
    converge(workspace, jungle)
    same = workspace.run("status", "--json")
    assert same.exit_code == 0
    rows = {(p["server"], p["local"], p["mcpjungle"]): p for p in same.json["parity"]}
    assert set(rows) == {
        ("time", "desktop", "jungle"),
        ("fetch", "desktop", "jungle"),
        ("files", "desktop", "jungle"),
    }
    assert {p["state"] for p in rows.values()} == {"same"}
    assert rows[("time", "desktop", "jungle")]["masked"] == ["enabled"]

    config = json.loads(workspace.desktop_config.read_text())
    config["mcpServers"]["time"]["args"][1] = "--local-timezone=Europe/Paris"
    config["mcpServers"]["files"]["env"]["ROOT"] = "/elsewhere"
    workspace.desktop_config.write_text(json.dumps(config, indent=2))

    text = workspace.run("status")
    assert text.exit_code == 1
    assert "time: desktop ≠ jungle" in text.stdout
    assert '/args/1: "--local-timezone=Europe/Paris" (desktop) vs "--local-timezone=UTC"' in (
        text.stdout
    )
    assert "fetch: desktop = jungle" in text.stdout
    assert "files: desktop ≠ jungle" in text.stdout
    # ROOT is no secret: readable in the parity view (secrets compare by fingerprint).
    assert '/env/ROOT: "/elsewhere" (desktop) vs "/srv/data" (jungle)' in text.stdout
    as_json = workspace.run("status", "--json").json
    rows = {p["server"]: p for p in as_json["parity"]}
    assert rows["time"]["state"] == "differs"
    assert [d["path"] for d in rows["time"]["differences"]] == ["/args/1"]
    assert [d["path"] for d in rows["files"]["differences"]] == ["/env/ROOT"]
    assert rows["files"]["differences"][0]["local"] == '"/elsewhere"'
    no_secret(same, text)


def test_parity_reads_a_desktop_bridge_as_its_url(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    workspace.write("servers.yaml", SERVERS)
    workspace.write(
        "targets.yaml",
        jungle_target(jungle.url)
        + "\n  desktop:\n    kind: claude-desktop\n    bridge: mcp-remote\n"
        + "    servers: [github]\n",
    )
    converge(workspace, jungle)
    status = workspace.run("status", "--json")
    (row,) = status.json["parity"]
    assert (row["server"], row["state"], row["masked"]) == (
        "github",
        "same",
        ["enabled", "headers"],
    )
    assert "mcp-remote bridge" in row["reason"]
    jungle.servers["github"].url = "https://elsewhere.test/mcp"
    (row,) = workspace.run("status", "--json").json["parity"]
    assert row["state"] == "differs" and [d["path"] for d in row["differences"]] == ["/url"]
    no_secret(status)


def test_parity_reports_a_copy_missing_on_one_side(
    workspace: Workspace, jungle: FakeMCPJungle, env: dict[str, str]
) -> None:
    workspace.write("servers.yaml", SERVERS)
    workspace.write(
        "targets.yaml",
        jungle_target(jungle.url) + "\n  desktop:\n    kind: claude-desktop\n    servers: [time]\n",
    )
    converge(workspace, jungle)
    del jungle.servers["time"]
    rows = workspace.run("status", "--json").json["parity"]
    assert rows == [
        {
            "server": "time",
            "local": "desktop",
            "mcpjungle": "jungle",
            "state": "missing",
            "differences": [],
            "masked": [],
            "reason": "absent on jungle",
        }
    ]


# -- mapping, unit level ------------------------------------------------------------------------


def test_mapping_round_trips() -> None:
    http = normalize(
        {
            "transport": "http",
            "url": "https://x.test/mcp",
            "headers": {"Authorization": "Bearer abc123", "X-A": "1"},
            "enabled": True,
        }
    )
    body = essence_to_config("gh", http)
    assert body == {
        "name": "gh",
        "transport": "streamable_http",
        "url": "https://x.test/mcp",
        "bearer_token": "abc123",
        "headers": {"X-A": "1"},
    }
    assert config_to_essence(body, True) == http
    basic = {**http, "headers": {"Authorization": "Basic Zm9v"}}
    assert essence_to_config("gh", basic)["headers"] == {"Authorization": "Basic Zm9v"}
    assert "bearer_token" not in essence_to_config("gh", basic)
    sse = normalize({"transport": "sse", "url": "https://x.test/sse", "headers": {"X-A": "1"}})
    with pytest.raises(TargetError, match="keeps no headers for sse servers"):
        essence_to_config("s", sse)
    stdio = normalize({"command": "uvx", "args": ["a"], "env": {"K": "v"}, "enabled": False})
    previous = {"description": "d", "session_mode": "stateful", "command": "old"}
    assert essence_to_config("t", stdio, previous) == {
        "name": "t",
        "transport": "stdio",
        "description": "d",
        "session_mode": "stateful",
        "command": "uvx",
        "args": ["a"],
        "env": {"K": "v"},
    }
    # A custom Authorization header wins over bearer_token, as in MCPJungle.
    both = {
        "transport": "streamable_http",
        "url": "https://x.test",
        "bearer_token": "t0k3n",
        "headers": {"authorization": "Token zz"},
    }
    assert config_to_essence(both, True)["headers"] == {"authorization": "Token zz"}


def test_errors_carry_no_secret(tmp_path: Any, jungle: FakeMCPJungle) -> None:
    """The target's own texts, before any redaction of the command line: the env value it
    sent is hidden from the answer's text, in the redactor's display form, without being
    registered for every other output of the process."""
    secret = "s3cr3t-value-" + "x" * 10
    jungle.inject(
        "POST", "/api/v0/servers", Respond(500, {"error": f"upstream said: bad token {secret}"})
    )
    spec = TargetSpec(kind="mcpjungle", url=jungle.url, token="${env:TOKEN}")
    environ = {"TOKEN": "tok-" + secret}
    redactor = Redactor()
    resolver = SecretResolver({}, environ, root=tmp_path, home=tmp_path, redactor=redactor)
    context = Context(
        tmp_path, "linux", tmp_path, None, environ, resolve=resolver.resolve_text,
        redactor=redactor,
    )  # fmt: skip
    target = MCPJungleTarget("jungle", spec, context)
    try:
        observation = target.observe()
        from reconciler.core.plan import Action
        from reconciler.targets.base import Write

        essence = normalize({"command": "x", "env": {"API_KEY": secret}, "enabled": True})
        with pytest.raises(TargetError) as caught:
            target.apply(observation, [Write("srv", essence, Action.CREATE)])
    finally:
        target.close()
    assert secret not in str(caught.value)
    assert "upstream said: bad token ‹secret:" in str(caught.value)
    assert jungle.requests[0].headers["authorization"] == "Bearer tok-" + secret
    assert "tok-" + secret in redactor and secret not in redactor


def test_the_token_is_resolved_by_the_pass_resolver_only(tmp_path: Any) -> None:
    """Without a resolver in the context, a token reference stays as written: an error."""
    spec = TargetSpec(kind="mcpjungle", url="http://127.0.0.1:1/", token="${env:TOKEN}")
    context = Context(tmp_path, "linux", tmp_path, None, {"TOKEN": "tok-" + "y" * 20})
    target = MCPJungleTarget("j", spec, context)
    with pytest.raises(TargetError, match=r"\(\$\{env:TOKEN\}\) cannot be resolved"):
        target.observe()
    target.close()


def test_default_timeout_is_above_the_upstream_init_time(tmp_path: Any) -> None:
    spec = TargetSpec(kind="mcpjungle", url="http://127.0.0.1:1/")
    target = MCPJungleTarget("j", spec, Context(tmp_path, "linux", tmp_path, None))
    assert target.timeout > 30 and target.describe() == "http://127.0.0.1:1"
    assert textwrap.dedent(target.__class__.__doc__ or "").startswith("One MCPJungle")


# -- requiredness per server and placement ---------------------------------------------------

TWO = """
servers:
  time:
    command: uvx
    args: [mcp-server-time]
    required: true
  fetch:
    command: uvx
    args: [mcp-server-fetch]
    required: {required}
"""


@pytest.mark.parametrize(
    ("server_required", "placement", "code"),
    [
        ("false", "", 0),  # optional server: a warning
        ("true", "", 3),  # required server: exit 3
        ("true", ", {name: fetch, required: false}", 0),  # the placement overrides it
    ],
)
def test_a_failed_registration_weighs_by_the_servers_requiredness(
    workspace: Workspace, jungle: FakeMCPJungle, server_required: str, placement: str, code: int
) -> None:
    workspace.write("servers.yaml", TWO.format(required=server_required))
    servers = "\n    servers: [time" + placement + ("" if placement else ", fetch") + "]"
    workspace.write("targets.yaml", jungle_target(jungle.url) + servers + "\n")
    # MCPJungle cannot reach fetch's upstream: its registration answers 500.
    jungle.set_upstream("fetch", Upstream(connect_error="dial tcp: connection refused"))
    result = workspace.run("--json")
    assert result.exit_code == code, result.stdout
    assert_report_schema(result.json)
    (entry,) = result.json["degraded"]
    assert entry["server"] == "fetch" and entry["target"] == "jungle"
    assert entry["phase"] == "apply" and entry["required"] is (code == 3)
    assert "time" in jungle.servers  # the other server was registered
    text = workspace.run()
    level = "error" if code == 3 else "warning"
    assert f"{level}: server fetch: apply failed" in text.stdout
    assert ("optional server: warning only" in text.stdout) is (code == 0)
    assert ("converged with 1 warning(s)" in text.stdout) is (code == 0)


def test_a_failed_prune_weighs_as_the_target(workspace: Workspace, jungle: FakeMCPJungle) -> None:
    workspace.write("servers.yaml", TWO.format(required="false"))
    workspace.write("targets.yaml", jungle_target(jungle.url, prune=True) + "\n")
    converge(workspace, jungle)
    workspace.write("servers.yaml", TWO.format(required="false").split("  fetch:")[0])
    jungle.inject("DELETE", "/api/v0/servers/:name", Respond(500, {"error": "database is locked"}))
    result = workspace.run("--json")
    assert result.exit_code == 3, result.stdout  # no placement makes it optional
    (entry,) = result.json["degraded"]
    assert entry["server"] == "fetch" and entry["required"] is True
