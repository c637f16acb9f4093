"""Tests of the fake MCPJungle 0.4.5 server against the reference contract.

The reconciler's mcpjungle target is tested against ``tests/fakes/mcpjungle.py`` because the real
server cannot be built here; these tests pin the fake to /work/shared/reference/MCPJUNGLE.md
("ref §N"), one quirk per test, so that a product test passing against the fake means something.
Everything runs over real HTTP on 127.0.0.1 (httpx with ``trust_env=False``: no proxy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.mcpjungle import (
    DUPLICATE_SERVER,
    Delay,
    Drop,
    FakeMCPJungle,
    Respond,
    Upstream,
    UpstreamTool,
)

UPSTREAMS: dict[str, Any] = {
    "github": ["search_issues", ("get_issue", "Fetch one issue")],
    "files": ["read", "write"],
    "broken": Upstream(connect_error="dial tcp 127.0.0.1:9: connect: connection refused"),
    "flaky": Upstream(tools=["x"], list_tools_error="EOF"),
    "oauthy": Upstream(tools=["me"], requires_oauth=True),
    "tokened": Upstream(tools=["t"], bearer_token="s3cret"),
}
GITHUB = {"name": "github", "transport": "streamable_http", "url": "https://gh.test/mcp"}
JSON_TYPE = "application/json; charset=utf-8"


@pytest.fixture
def jungle() -> Iterator[FakeMCPJungle]:
    with FakeMCPJungle(UPSTREAMS) as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def http(jungle: FakeMCPJungle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jungle.url, timeout=5.0, trust_env=False) as client:
        yield client


@pytest.fixture
def enterprise() -> Iterator[FakeMCPJungle]:
    """An enterprise server as ``mcpjungle start --enterprise`` leaves it: uninitialized."""
    with FakeMCPJungle(UPSTREAMS, mode="enterprise", admin_token="admin-token-1") as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def ehttp(enterprise: FakeMCPJungle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=enterprise.url, timeout=5.0, trust_env=False) as client:
        yield client


def register(http: httpx.Client, body: dict[str, Any], **params: str) -> httpx.Response:
    return http.post("/api/v0/servers", json=body, params=params)


# --------------------------------------------------------------------------- system, init, auth


def test_health_and_metadata_answer_before_init(ehttp: httpx.Client) -> None:
    assert ehttp.get("/health").json() == {"status": "ok"}  # ref §2.2
    assert ehttp.get("/metadata").json() == {"version": "v0.4.5"}  # ref §1: "v" prefix


def test_uninitialized_server_answers_403_before_auth(ehttp: httpx.Client) -> None:
    # ref §2.1: requireInitialized runs before the token check, so no token is needed to see it
    for method, path in (
        ("GET", "/api/v0/servers"),
        ("POST", "/api/v0/servers"),
        ("GET", "/api/v0/tools"),
        ("POST", "/mcp"),
    ):
        response = ehttp.request(method, path)
        assert response.status_code == 403
        assert response.json() == {"error": "server is not initialized"}


def test_init_server_returns_admin_token_once(
    enterprise: FakeMCPJungle, ehttp: httpx.Client
) -> None:
    bad = ehttp.post("/init", json={"mode": "cloud"})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("Invalid request body: ")
    assert ehttp.post("/init", content=b"").json() == {"error": "Invalid request body: EOF"}
    # ref §4: the CLI's init-server sends the legacy "production"
    first = ehttp.post("/init", json={"mode": "production"})
    assert first.status_code == 200
    assert first.text == (
        '{"admin_access_token":"admin-token-1",'  # gin.H: sorted keys
        '"status":"Server initialized successfully"}'
    )
    again = ehttp.post("/init", json={"mode": "production"})
    assert (again.status_code, again.json()) == (400, {"error": "Server is already initialized"})
    assert enterprise.mode == "enterprise"
    ok = ehttp.get("/api/v0/servers", headers={"Authorization": "Bearer admin-token-1"})
    assert (ok.status_code, ok.json()) == (200, [])


def test_dev_server_is_initialized_at_start(http: httpx.Client) -> None:
    response = http.post("/init", json={"mode": "development"})
    assert (response.status_code, response.json()) == (
        400,
        {"error": "Server is already initialized"},
    )


def test_enterprise_auth_errors(enterprise: FakeMCPJungle, ehttp: httpx.Client) -> None:
    ehttp.post("/init", json={"mode": "enterprise"})
    user = enterprise.add_user("alice")
    missing = ehttp.get("/api/v0/servers")
    assert (missing.status_code, missing.json()) == (401, {"error": "missing access token"})
    unknown = ehttp.get("/api/v0/servers", headers={"Authorization": "Bearer nope"})
    assert (unknown.status_code, unknown.json()) == (
        401,
        {"error": "invalid access token: user not found: not found"},
    )
    # ref §2.1: TrimPrefix("Bearer "): a bare token works too
    assert ehttp.get("/api/v0/servers", headers={"Authorization": user}).status_code == 200
    as_user = {"Authorization": f"Bearer {user}"}
    assert ehttp.get("/api/v0/tools", headers=as_user).status_code == 200
    for method, path in (
        ("POST", "/api/v0/servers"),
        ("GET", "/api/v0/server_configs"),
        ("DELETE", "/api/v0/servers/x"),
        ("POST", "/api/v0/tools/enable"),
    ):
        denied = ehttp.request(method, path, headers=as_user)
        assert (denied.status_code, denied.json()) == (
            403,
            {"error": "user is not authorized to perform this action"},
        )
    me = ehttp.get("/api/v0/users/whoami", headers=as_user)
    assert me.json() == {"username": "alice", "role": "user"}


def test_dev_mode_ignores_tokens_and_refuses_enterprise_routes(http: httpx.Client) -> None:
    garbage = {"Authorization": "Bearer whatever"}
    assert register(http, GITHUB).status_code == 201
    assert http.get("/api/v0/server_configs", headers=garbage).status_code == 200
    response = http.get("/api/v0/users/whoami")
    assert (response.status_code, response.json()) == (
        403,
        {"error": "this request is only allowed in enterprise mode"},
    )


def test_routes_not_faked_answer_501_after_middleware(
    enterprise: FakeMCPJungle, ehttp: httpx.Client
) -> None:
    ehttp.post("/init", json={"mode": "enterprise"})
    user = {"Authorization": enterprise.add_user("bob")}
    assert ehttp.get("/api/v0/tool-groups", headers=user).status_code == 403  # admin-only first
    stub = ehttp.get("/api/v0/tool-groups", headers={"Authorization": "admin-token-1"})
    assert stub.status_code == 501


def test_metrics_only_in_enterprise_mode(http: httpx.Client, ehttp: httpx.Client) -> None:
    assert http.get("/metrics").status_code == 404  # ref §2.2: OTel off by default in dev
    assert ehttp.get("/metrics").status_code == 200


# --------------------------------------------------------------------------- servers


def test_register_answers_201_with_server_wrapper(http: httpx.Client) -> None:
    response = register(
        http,
        {
            **GITHUB,
            "description": "<b>&",
            "bearer_token": "tok",
            "headers": {"X-B": "2", "X-A": "1"},
        },
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == JSON_TYPE
    assert response.json() == {
        "server": {  # ref §2.4: no bearer_token/headers echoed
            "name": "github",
            "transport": "streamable_http",
            "enabled": True,
            "description": "<b>&",
            "url": "https://gh.test/mcp",
            "command": "",
            "args": None,
            "env": None,
            "session_mode": "stateless",
        }
    }
    assert "\\u003cb\\u003e\\u0026" in response.text  # Go's encoding/json escapes <, >, &


def test_register_echoes_lists_as_sent_but_list_shows_null(http: httpx.Client) -> None:
    body = {"name": "files", "transport": "stdio", "command": "npx", "args": [], "env": {}}
    created = register(http, body).json()["server"]
    assert (created["args"], created["env"], created["url"]) == ([], {}, "")  # ref §10.4
    listed = http.get("/api/v0/servers").json()
    assert [(s["name"], s["args"], s["env"]) for s in listed] == [("files", None, None)]


def test_duplicate_name_is_500_with_unique_constraint_text(http: httpx.Client) -> None:
    assert register(http, GITHUB).status_code == 201
    duplicate = register(http, GITHUB)
    # ref §2.4 step 6, §10.10: 500, never 409
    assert duplicate.status_code == 500
    assert duplicate.json() == {
        "error": "failed to register mcp server: UNIQUE constraint failed: mcp_servers.name"
    }
    assert duplicate.json()["error"] == DUPLICATE_SERVER


def test_duplicate_is_only_detected_after_the_upstream_connects(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    jungle.add_server("broken")  # already registered, but its upstream is now down
    response = register(
        http, {"name": "broken", "transport": "streamable_http", "url": "http://b.test/mcp"}
    )
    assert response.status_code == 500
    assert response.json()["error"].startswith("failed to initialize connection with MCP server")


def test_force_replaces_and_resets_enabled_flags(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    register(http, GITHUB)
    old_ids = {name: tool.id for name, tool in jungle.tools.items()}
    http.post("/api/v0/tools/disable", params={"entity": "github__get_issue"})
    http.post("/api/v0/servers/github/disable")
    assert not jungle.servers["github"].enabled
    replaced = register(http, {**GITHUB, "description": "v2"}, force="true")
    assert replaced.status_code == 201
    assert replaced.json()["server"]["description"] == "v2"
    # ref §2.4 "Update a server": everything is enabled again, the rows are new
    assert http.get("/api/v0/servers").json()[0]["enabled"] is True
    tools = http.get("/api/v0/tools").json()
    assert [(t["name"], t["enabled"]) for t in tools] == [
        ("github__search_issues", True),
        ("github__get_issue", True),
    ]
    assert all(t["ID"] not in old_ids.values() for t in tools)


def test_force_is_not_atomic(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    register(http, GITHUB)
    jungle.set_upstream("github", Upstream(connect_error="i/o timeout"))
    failed = register(http, GITHUB, force="true")
    assert (failed.status_code, failed.json()) == (
        500,
        {"error": "failed to initialize connection with MCP server: i/o timeout"},
    )
    assert "github" not in jungle.servers  # ref §2.4 step 2: the old one is gone
    invalid = register(http, {**GITHUB, "url": "ftp://x"}, force="true")
    assert invalid.status_code == 400  # the URL is checked after the forced deregistration


def test_force_query_parameter_parsing(http: httpx.Client) -> None:
    register(http, GITHUB)
    bad = register(http, GITHUB, force="yes")
    assert (bad.status_code, bad.json()) == (
        400,
        {
            "error": 'invalid force query parameter: strconv.ParseBool: parsing "yes": '
            "invalid syntax"
        },
    )
    # ref §10.3: checked before the body, and an empty value means false
    before_body = http.post("/api/v0/servers?force=maybe", content=b"{not json")
    assert before_body.json()["error"].startswith("invalid force query parameter")
    assert register(http, GITHUB, force="").status_code == 500
    assert register(http, GITHUB, force="1").status_code == 201
    assert register(http, GITHUB, force="0").status_code == 500


def test_no_get_one_and_no_put_for_servers(http: httpx.Client) -> None:
    register(http, GITHUB)
    for method in ("GET", "PUT", "PATCH"):
        response = http.request(method, "/api/v0/servers/github", json=GITHUB)
        # ref §2.1: gin's own 404, plain text, not JSON
        assert response.status_code == 404
        assert response.text == "404 page not found"
        assert response.headers["content-type"] == "text/plain"


def test_delete_answers_204_then_404(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    register(http, GITHUB)
    deleted = http.delete("/api/v0/servers/github")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert jungle.tools == {}
    again = http.delete("/api/v0/servers/github")
    assert (again.status_code, again.json()) == (
        404,
        {
            "error": "failed to get MCP server github from DB: MCP server github not found: "
            "not found"
        },
    )


def test_server_configs_return_secrets_and_omit_empty_fields(http: httpx.Client) -> None:
    register(http, {**GITHUB, "bearer_token": "tok", "headers": {"X-B": "2", "X-A": "1"}})
    register(
        http,
        {
            "name": "files",
            "transport": "stdio",
            "command": "uvx",
            "args": ["srv"],
            "env": {"K": "V"},
            "url": "http://ignored.test",
        },
    )
    assert http.get("/api/v0/server_configs").json() == [
        {
            "name": "github",
            "transport": "streamable_http",
            "description": "",
            "url": "https://gh.test/mcp",
            "bearer_token": "tok",
            "headers": {"X-A": "1", "X-B": "2"},
            "session_mode": "stateless",
        },
        {
            "name": "files",
            "transport": "stdio",
            "description": "",
            "command": "uvx",
            "args": ["srv"],
            "env": {"K": "V"},
            "session_mode": "stateless",
        },
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"name": "a"},
            "transport is required (acceptable values: 'streamable_http', 'stdio', 'sse')",
        ),
        (
            {"name": "a", "transport": "ws"},
            "unsupported transport type: ws (acceptable values: 'streamable_http', 'stdio', 'sse')",
        ),
        (
            {**GITHUB, "session_mode": "sticky"},
            "unsupported session mode: sticky (acceptable values: 'stateless', 'stateful')",
        ),
        (
            {"name": "a", "transport": "streamable_http"},
            "error creating streamable http server: url is required for streamable HTTP transport",
        ),
        (
            {"name": "a", "transport": "stdio"},
            "error creating stdio server: command is required for stdio transport",
        ),
        (
            {"name": "a", "transport": "sse"},
            "error creating SSE server: url is required for SSE transport",
        ),
        ({**GITHUB, "name": ""}, "invalid server name: '' must not be empty: invalid user input"),
        (
            {**GITHUB, "name": "a.b"},
            "invalid server name: 'a.b' must follow the regular "
            "expression ^[a-zA-Z0-9_-]+$: invalid user input",
        ),
        (
            {**GITHUB, "name": "a__b"},
            "invalid server name: 'a__b' must not contain multiple "
            "consecutive underscores: invalid user input",
        ),
        (
            {**GITHUB, "name": "a_"},
            "invalid server name: 'a_' must not end with an underscore: invalid user input",
        ),
        (
            {**GITHUB, "url": "gh.test/mcp"},
            "invalid url: 'gh.test/mcp' must be a valid http or https url: invalid user input",
        ),
        (
            {**GITHUB, "name": 7},
            "json: cannot unmarshal number into Go struct field "
            "RegisterServerInput.name of type string",
        ),
        (
            {**GITHUB, "args": "x"},
            "json: cannot unmarshal string into Go struct field "
            "RegisterServerInput.args of type []string",
        ),
    ],
)
def test_register_validation_errors(http: httpx.Client, body: dict[str, Any], error: str) -> None:
    response = register(http, body)
    assert (response.status_code, response.json()) == (400, {"error": error})


def test_json_binding_is_lenient_like_go(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    # ref §2.1: unknown keys ignored; Go also matches keys case-insensitively
    body = b'{"Name": "github", "transport": "streamable_http", "url": "https://x.test", "z": 1}'
    assert http.post("/api/v0/servers", content=body).status_code == 201
    assert list(jungle.servers) == ["github"]


def test_trailing_slash_redirects_like_gin(http: httpx.Client) -> None:
    get = http.get("/api/v0/servers/")
    assert (get.status_code, get.headers["location"]) == (301, "/api/v0/servers")
    post = http.post("/api/v0/servers/", json=GITHUB)
    assert (post.status_code, post.headers["location"]) == (307, "/api/v0/servers")
    assert http.delete("/api/v0/servers/").status_code == 404


def test_enable_disable_server_reports_changed_tools_only(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    register(http, GITHUB)
    http.post("/api/v0/tools/disable", params={"entity": "github__get_issue"})
    disabled = http.post("/api/v0/servers/github/disable")
    assert (disabled.status_code, disabled.json()) == (
        200,
        {"name": "github", "tools_affected": ["github__search_issues"], "prompts_affected": None},
    )
    # ref §2.1: nothing changed -> null, not []
    assert http.post("/api/v0/servers/github/disable").json()["tools_affected"] is None
    enabled = http.post("/api/v0/servers/github/enable").json()
    assert enabled["tools_affected"] == ["github__search_issues", "github__get_issue"]
    assert all(t.enabled for t in jungle.tools.values())
    missing = http.post("/api/v0/servers/nope/enable")
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "failed to mark server nope enabled: MCP server nope not found: not found"},
    )
    assert http.post("/api/v0/servers/a__b/enable").status_code == 400


# --------------------------------------------------------------------------- tools


def test_tools_are_named_server__tool(http: httpx.Client) -> None:
    register(http, GITHUB)
    register(http, {"name": "files", "transport": "stdio", "command": "npx"})
    tools = http.get("/api/v0/tools").json()
    assert [t["name"] for t in tools] == [
        "github__search_issues",
        "github__get_issue",
        "files__read",
        "files__write",
    ]
    first = tools[1]
    assert list(first) == [
        "ID",
        "CreatedAt",
        "UpdatedAt",
        "DeletedAt",
        "name",
        "enabled",
        "description",
        "input_schema",
        "annotations",
    ]  # ref §2.1 (+gorm)
    assert (first["description"], first["DeletedAt"]) == ("Fetch one issue", None)
    only = http.get("/api/v0/tools", params={"server": "files"}).json()
    assert [t["name"] for t in only] == ["files__read", "files__write"]
    assert http.get("/api/v0/tools", params={"server": "nope"}).status_code == 404
    assert http.get("/api/v0/tools", params={"server": "no pe"}).status_code == 400
    one = http.get("/api/v0/tool", params={"name": "files__read"})
    assert one.json()["name"] == "files__read"
    no_sep = http.get("/api/v0/tool", params={"name": "files"})
    assert (no_sep.status_code, no_sep.json()) == (
        400,
        {"error": "tool name does not contain a __ separator: invalid user input"},
    )


def test_tool_enable_disable(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    register(http, GITHUB)
    one = http.post("/api/v0/tools/disable", params={"entity": "github__get_issue"})
    assert (one.status_code, one.json()) == (200, ["github__get_issue"])
    assert jungle.tools["github__get_issue"].enabled is False
    # ref §10.6: a single tool is named even when nothing changed
    assert http.post("/api/v0/tools/disable", params={"entity": "github__get_issue"}).json() == [
        "github__get_issue"
    ]
    # a whole server: only the changed ones, null when none
    assert http.post("/api/v0/tools/disable", params={"entity": "github"}).json() == [
        "github__search_issues"
    ]
    assert http.post("/api/v0/tools/disable", params={"entity": "github"}).json() is None
    listed = http.get("/api/v0/tools").json()
    assert [t["enabled"] for t in listed] == [False, False]
    missing = http.post("/api/v0/tools/enable")
    assert (missing.status_code, missing.json()) == (
        400,
        {"error": "missing 'entity' query parameter"},
    )
    assert http.post("/api/v0/tools/enable", params={"entity": "nope"}).status_code == 404
    unknown = http.post("/api/v0/tools/enable", params={"entity": "github__nope"})
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "tool github__nope not found: not found"},
    )


# --------------------------------------------------------------------------- upstreams


def test_upstream_connection_failures(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    streamable = register(
        http, {"name": "broken", "transport": "streamable_http", "url": "http://b.test/mcp"}
    )
    assert (streamable.status_code, streamable.json()) == (
        500,
        {
            "error": "failed to initialize connection with MCP server: dial tcp 127.0.0.1:9: "
            "connect: connection refused"
        },
    )
    sse = register(http, {"name": "broken", "transport": "sse", "url": "http://b.test/sse"})
    assert sse.json()["error"].startswith("failed to start SSE transport for MCP server: ")
    assert jungle.servers == {}


def test_tool_listing_failure_keeps_the_server_row(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    response = register(http, {"name": "flaky", "transport": "stdio", "command": "x"})
    assert (response.status_code, response.json()) == (
        500,
        {"error": "failed to register tools for MCP server flaky: EOF"},
    )
    assert [s["name"] for s in http.get("/api/v0/servers").json()] == ["flaky"]
    assert http.get("/api/v0/tools").json() == []


def test_unknown_upstreams_connect_or_fail_as_configured() -> None:
    tool = UpstreamTool("q", "Query", {"type": "object", "properties": {"sql": {}}})
    with (
        FakeMCPJungle({"db": Upstream([tool])}, default_upstream=None) as fake,
        httpx.Client(base_url=fake.url, trust_env=False) as client,
    ):
        assert register(client, {**GITHUB, "name": "db"}).status_code == 201
        assert fake.tools["db__q"].input_schema["properties"] == {"sql": {}}
        unknown = register(client, {**GITHUB, "name": "other"})
        assert unknown.status_code == 500


def test_upstream_oauth_flow(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    body = {"name": "oauthy", "transport": "streamable_http", "url": "https://o.test/mcp"}
    refused = register(http, body)
    # ref §10.2: embedded newline, plus the code
    assert (refused.status_code, refused.json()) == (
        400,
        {
            "error": "upstream server requires OAuth authorization, but oauth_redirect_uri was "
            "not provided: invalid user input\nupstream OAuth authorization required",
            "code": "upstream_oauth_required",
        },
    )
    pending = register(http, {**body, "oauth_redirect_uri": "http://127.0.0.1:1/cb"})
    assert pending.status_code == 202
    auth = pending.json()["authorization_required"]
    assert list(auth) == ["session_id", "authorization_url", "expires_at"]
    assert auth["authorization_url"].startswith("https://o.test/authorize?")
    assert "oauthy" not in jungle.servers
    complete = f"/api/v0/upstream_oauth/sessions/{auth['session_id']}/complete"
    assert http.post(complete, json={"code": "c"}).json() == {
        "error": "session_id, code and state are required"
    }
    done = http.post(complete, json={"code": "c", "state": "s"})
    assert done.status_code == 201
    assert done.json()["server"]["name"] == "oauthy"
    assert http.get("/api/v0/server_configs").json()[0]["oauth_redirect_uri"] == (
        "http://127.0.0.1:1/cb"
    )
    gone = http.post(complete, json={"code": "c", "state": "s"})
    assert (gone.status_code, gone.json()) == (404, {"error": "upstream OAuth session not found"})


def test_wrong_static_bearer_token_is_an_oauth_400(http: httpx.Client) -> None:
    body = {"name": "tokened", "transport": "streamable_http", "url": "https://t.test/mcp"}
    wrong = register(http, {**body, "bearer_token": "nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (400, "upstream_oauth_required")
    assert register(http, {**body, "bearer_token": "s3cret"}).status_code == 201


# --------------------------------------------------------------------------- test API


def test_add_server_seeds_state_without_requests(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    jungle.add_server("files", transport="stdio", command="npx", args=["-y", "fs"], enabled=False)
    assert jungle.requests == []
    assert http.get("/api/v0/servers").json() == [
        {
            "name": "files",
            "transport": "stdio",
            "enabled": False,
            "description": "",
            "url": "",
            "command": "npx",
            "args": ["-y", "fs"],
            "env": None,
            "session_mode": "stateless",
        }
    ]
    assert [(t["name"], t["enabled"]) for t in http.get("/api/v0/tools").json()] == [
        ("files__read", False),
        ("files__write", False),
    ]


def test_request_log_records_and_resets(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    register(http, GITHUB, force="true")
    http.get("/api/v0/servers")
    http.get("/api/v0/servers/github")  # a 404 is logged too
    first = jungle.requests[0]
    assert (first.method, first.path, first.query, first.body) == (
        "POST",
        "/api/v0/servers",
        {"force": ["true"]},
        GITHUB,
    )
    assert (first.status, first.processed, first.finished) == (201, True, True)
    assert [r.status for r in jungle.requests] == [201, 200, 404]
    assert len(jungle.mutations) == 1
    assert jungle.count("GET", "/api/v0/servers/:name") == 1
    assert jungle.count("GET") == 2
    jungle.reset_log()
    assert jungle.requests == []


# --------------------------------------------------------------------------- faults


def test_respond_fault_answers_without_touching_state(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    jungle.inject(
        "POST", "/api/v0/servers", Respond(503, {"error": "busy"}), Respond(502, "bad gateway")
    )
    assert jungle.pending_faults == 2
    first = register(http, GITHUB)
    assert (first.status_code, first.json()) == (503, {"error": "busy"})
    second = register(http, GITHUB)
    assert (second.status_code, second.text) == (502, "bad gateway")
    assert jungle.servers == {}
    assert register(http, GITHUB).status_code == 201  # queue empty: normal again
    assert [r.processed for r in jungle.requests] == [False, False, True]


def test_respond_after_makes_the_change_and_sends_the_answer_instead(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    jungle.inject("POST", "/api/v0/servers", Respond(201, b"{garbage", after=True))
    response = register(http, GITHUB)
    assert (response.status_code, response.content) == (201, b"{garbage")
    assert "github" in jungle.servers and jungle.requests[0].processed


def test_save_and_restore_state_put_the_registry_back(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    saved = jungle.save_state()
    assert register(http, GITHUB).status_code == 201
    jungle.restore_state(saved)
    assert jungle.servers == {} and jungle.tools == {}
    assert register(http, GITHUB).status_code == 201  # no duplicate: it is gone
    first_id = jungle.servers["github"].id
    jungle.restore_state(saved)  # a saved state can be used again
    assert register(http, GITHUB).status_code == 201
    assert jungle.servers["github"].id == first_id  # the id counters came back too


def test_faults_match_method_and_pattern(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    register(http, GITHUB)
    jungle.inject("*", "/api/v0/servers/:name", Respond(500, {"error": "x"}))
    assert http.get("/api/v0/servers").status_code == 200  # other path: untouched
    assert http.delete("/api/v0/servers/github").status_code == 500
    assert http.delete("/api/v0/servers/github").status_code == 204


def test_drop_before_closes_without_answer_or_change(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    jungle.inject("POST", "/api/v0/servers", Drop())
    with pytest.raises(httpx.RemoteProtocolError):
        register(http, GITHUB)
    assert jungle.servers == {}
    record = jungle.requests[0]
    assert (record.dropped, record.processed, record.status) == (True, False, None)
    assert register(http, GITHUB).status_code == 201


def test_drop_after_loses_the_answer_but_keeps_the_change(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    jungle.inject("POST", "/api/v0/servers", Drop(after=True))
    with pytest.raises(httpx.RemoteProtocolError):
        register(http, GITHUB)
    assert "github" in jungle.servers
    assert register(http, GITHUB).status_code == 500  # a blind retry hits the duplicate


def test_delay_before_answering(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    jungle.inject("GET", "/health", Delay(0.5))
    started = time.monotonic()
    assert http.get("/health").status_code == 200
    assert 0.5 <= time.monotonic() - started < 1.0  # waited once, not before and after


def test_delay_makes_a_client_time_out_before_the_change(
    jungle: FakeMCPJungle, http: httpx.Client
) -> None:
    jungle.inject("POST", "/api/v0/servers", Delay(60))
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/v0/servers", json=GITHUB, timeout=0.2)
    record = jungle.wait_for_request("POST", "/api/v0/servers")
    assert (record.processed, jungle.servers) == (False, {})  # still waiting; stop() ends it


def test_delay_after_the_change_hides_a_success(jungle: FakeMCPJungle, http: httpx.Client) -> None:
    jungle.inject("POST", "/api/v0/servers", Delay(60, after=True))
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/v0/servers", json=GITHUB, timeout=0.2)
    jungle.wait_for_request("POST", "/api/v0/servers", processed=True)
    assert "github" in jungle.servers


def test_stop_cuts_delays_short_and_closes_the_port() -> None:
    fake = FakeMCPJungle().start()
    fake.inject("GET", "/health", Delay(60))
    with httpx.Client(base_url=fake.url, trust_env=False) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/health", timeout=0.2)
        started = time.monotonic()
        fake.wait_for_request("GET", "/health")
        url = fake.url
        fake.stop()
        assert time.monotonic() - started < 5
        with pytest.raises(httpx.ConnectError):
            client.get(f"{url}/health")
    assert fake.requests[0].dropped
