"""The status page (``watch --ui``): rendering and escaping (pure), the token, the bind
rules, server-sent events, and a daemon in process serving real HTTP on loopback, with the
canary secrets kept out of the page, its JSON and the logs."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconciler.app import review, ui
from reconciler.app.metrics import Metrics, MetricsServer
from reconciler.app.watch import Daemon, UiOptions, _start_servers
from reconciler.core.errors import UsageError
from reconciler.engine import Engine
from reconciler.secrets import REDACTOR, Redactor, install_logging
from tests.conftest import Workspace
from tests.test_secrets_canary import Scene
from tests.test_secrets_canary import scene as scene  # the canary fixture

HOSTILE = '<script>alert("x")</script>'


def _data(**extra: Any) -> dict[str, Any]:
    """A snapshot as the daemon publishes it: one target, drift, an allowed cell, an error."""
    data: dict[str, Any] = {
        "schema": 1,
        "exit_code": 3,
        "servers": {
            "time": {"desk": "drift", "code": "allowed", "broken": "error"},
            "fetch": {"desk": "missing", "code": "in_sync", "broken": "."},
        },
        "mirrors": {},
        "unmanaged": {"desk": ["handmade"]},
        "targets": [
            {
                "name": "desk",
                "kind": "claude-desktop",
                "location": "/h/desk.json",
                "status": "drifted",
                "error": None,
                "changes": [
                    {
                        "server": "time",
                        "entry": "time",
                        "action": "update",
                        "origin": "live",
                        "paths": ["/args/1"],
                        "applied": False,
                        "diff": [
                            {"path": "/args/1", "live": HOSTILE, "desired": "--tz=UTC"},
                            {"path": "/env/TOKEN", "live": {"secret": "4f1c2a"}, "desired": None},
                        ],
                    },
                    {"server": "fetch", "entry": "fetch", "action": "create", "origin": "new"},
                ],
                "allowed": [],
                "unmanaged": ["handmade"],
                "notes": [f"not enforceable on claude-desktop {HOSTILE}"],
            },
            {
                "name": "code",
                "kind": "cursor",
                "location": "/h/code.json",
                "status": "in_sync",
                "error": None,
                "changes": [],
                "allowed": [
                    {
                        "server": "time",
                        "paths": ["/args/1"],
                        "record": "desired/divergences/code--time.yaml",
                        "id": "code--time",
                        "expires": None,
                        "state": "active",
                    }
                ],
            },
            {
                "name": "broken",
                "kind": "windsurf",
                "location": "/h/w.json",
                "status": "error",
                "error": f"invalid JSON {HOSTILE}",
                "changes": [],
            },
        ],
        "divergences": [
            {
                "id": "code--time",
                "target": "code",
                "server": "time",
                "paths": ["/args/1"],
                "reason": HOSTILE,
                "expires": "2027-01-31",
                "reviewed": True,
                "state": "active",
                "commit": "0123456789abcdef",
                "author": "Ann <ann@example.invalid>",
                "date": "2026-11-30T10:00:00+00:00",
            }
        ],
        "probe": {
            "finished": 1.0,
            "servers": [
                {
                    "server": "time",
                    "status": "up",
                    "transport": "stdio",
                    "protocol_version": "2025-06-18",
                    "tool_count": 3,
                    "tool_classes": {"read-only": 2, "mutating": 0, "destructive": 1},
                },
                {"server": "fetch", "status": "down", "phase": "spawn", "error": HOSTILE},
            ],
        },
        "passes": [
            {
                "pass": 7,
                "trigger": "target",
                "changes": [["desk", "time", "update"]],
                "pending": 2,
                "errors": {"broken": f"invalid {HOSTILE}"},
                "result": "drift",
                "duration_s": 0.25,
                "finished": 1.0,
            }
        ],
        "daemon": {
            "running": True,
            "pid": 1,
            "passes": 7,
            "backoff": {"broken": {"failures": 2, "retry_in_s": 4.0}},
        },
    }
    data.update(extra)
    return data


def test_the_page_escapes_every_piece_of_user_data() -> None:
    page = ui.render_page(_data())
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    detail = ui.render_cell(_data(), "desk", "time")
    assert detail is not None and "<script>alert" not in detail
    assert "&lt;script&gt;" in detail  # the live value, escaped
    assert "not enforceable on claude-desktop &lt;script&gt;" in detail  # a note, escaped


@pytest.mark.parametrize(
    ("server", "target", "state", "label"),
    [
        ("time", "desk", "drift", "drift (live)"),
        ("time", "code", "allowed", "allowed"),
        ("time", "broken", "error", "error"),
        ("fetch", "desk", "missing", "missing"),
        ("fetch", "code", "in_sync", "in sync"),
        ("fetch", "broken", "none", "·"),
        ("handmade", "desk", "unmanaged", "unmanaged"),
    ],
)
def test_each_cell_says_where_its_copy_stands(
    server: str, target: str, state: str, label: str
) -> None:
    cell = ui.cell_of(_data(), server, target)
    assert (cell.state, cell.label) == (state, label)


def test_governance_rows_are_data_driven() -> None:
    governed = _data(
        governance=[
            {
                "server": "fetch",
                "target": "code",
                "blocked": ["write_*"],
                "enforceable": False,
                "reason": "not enforceable on cursor",
            },
        ]
    )
    assert ui.cell_of(governed, "fetch", "code").state == "not_enforceable"
    page = ui.render_page(governed)
    assert "write_*" in page and "not enforceable on cursor" in page
    assert "no tool policy" in ui.render_page(_data())


def test_the_page_shows_divergences_probe_timeline_and_backoff() -> None:
    page = ui.render_page(_data())
    assert "0123456789" in page and "Ann &lt;ann@example.invalid&gt;" in page
    assert "2 read-only, 1 destructive" in page and "spawn: &lt;script&gt;" in page
    assert 'data-pass="7"' in page and "desk/time update · 2 pending · failed: broken" in page
    assert 'id="backoffs"' in page and "4.0s" in page


def test_the_detail_view_is_a_field_level_diff_with_secrets_as_fingerprints() -> None:
    detail = ui.render_cell(_data(), "desk", "time")
    assert detail is not None
    assert "update (origin live)" in detail and "/env/TOKEN" in detail
    assert "‹secret:4f1c2a›" in detail
    allowed = ui.render_cell(_data(), "code", "time")
    assert allowed is not None and "code--time.yaml" in allowed and "0123456789" in allowed
    assert ui.render_cell(_data(), "nope", "time") is None


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (None, False),
        ("Bearer s3cret-token", True),
        ("bearer s3cret-token", True),
        ("Bearer s3cret-tokeN", False),
        ("Basic " + base64.b64encode(b"anyone:s3cret-token").decode(), True),
        ("Basic " + base64.b64encode(b"anyone:wrong").decode(), False),
        ("Basic " + base64.b64encode(b"s3cret-token").decode(), False),  # no colon
        ("Basic !!!", False),
        ("Token s3cret-token", False),
    ],
)
def test_the_token_is_a_bearer_or_a_basic_password(header: str | None, ok: bool) -> None:
    assert ui.authorized(header, "s3cret-token") is ok


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (UiOptions("8080"), None),
        (UiOptions("127.0.0.1:8080"), None),
        (UiOptions("[::1]:8080"), None),
        (UiOptions("localhost:8080"), None),
        (UiOptions("0.0.0.0:8080"), "needs --ui-allow-remote"),
        (UiOptions("192.168.1.5:8080", allow_remote=True), "needs --ui-token"),
        (UiOptions("0.0.0.0:8080", True, "${env:UI_TOKEN}"), None),
        (UiOptions("0.0.0.0:8080", True, "hunter2"), "never the token itself"),
        (UiOptions("8080", token="x ${env:A} y"), "never the token itself"),
    ],
)
def test_a_non_loopback_page_needs_allow_remote_and_a_token_reference(
    options: UiOptions, error: str | None
) -> None:
    if error is None:
        options.check()
    else:
        with pytest.raises(UsageError, match=error.replace("-", "\\-")):
            options.check()


def test_events_tell_the_browser_that_a_new_pass_landed() -> None:
    site = ui.Site(Redactor())
    stream = site.events(site.version, window=5.0)
    assert next(stream) == b"retry: 2000\n\n"
    site.publish(_data())
    assert next(stream) == f"event: pass\ndata: {site.version}\n\n".encode()
    site.close()
    assert list(stream) == []  # a closed site ends its streams


def test_responses_are_scrubbed_by_the_redactor_handed_in() -> None:
    redactor = Redactor()
    redactor.add("ghp_" + "k" * 36)
    site = ui.Site(redactor)
    site.publish(_data(leak="ghp_" + "k" * 36))
    body = site.get("/api/status", None).body.decode()
    assert "ghp_kkkk" not in body and "‹secret:" in body


# -- a daemon in process, over real HTTP on loopback ------------------------------------------


@pytest.fixture
def served(scene: Scene) -> Iterator[tuple[Scene, Daemon, str]]:
    assert scene.run().exit_code == 0
    # A hand edit puts another token in, and the target only reports: the page shows drift
    # on a secret.
    config = json.loads(scene.ws.desktop_config.read_text())
    config["mcpServers"]["api"]["env"]["API_TOKEN"] = scene.canaries.planted
    scene.ws.desktop_config.write_text(json.dumps(config))
    scene.ws.write(
        "targets.yaml",
        """
        targets:
          desktop:
            kind: claude-desktop
            servers: [api, time]
            on_drift: report
        """,
    )
    environ = {**os.environ, **scene.environ}
    environ["UI_TOKEN"] = scene.canaries.env  # the page's token is a canary too
    engine = Engine(scene.ws.desired, scene.ws.state_dir, home=scene.ws.home, environ=environ)
    daemon = Daemon(engine)
    daemon.prepare()
    page = UiOptions("127.0.0.1:0", token="${env:UI_TOKEN}")
    daemon.site = ui.Site(REDACTOR, page.resolve_token(engine, daemon.state))
    server = MetricsServer("127.0.0.1:0", Metrics(), lambda: (True, "ok"), site=daemon.site)
    try:
        daemon.iteration(start=True)
        yield scene, daemon, server.url
    finally:
        daemon.site.close()
        server.close()


def test_the_page_and_its_json_never_show_a_secret(
    served: tuple[Scene, Daemon, str], caplog: pytest.LogCaptureFixture
) -> None:
    install_logging()
    caplog.set_level(logging.DEBUG)
    scene, _daemon, url = served
    token = scene.canaries.env
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/", timeout=10).status_code == 401
    assert httpx.get(f"{url}/api/status", timeout=10).status_code == 401
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200  # as before --ui
    basic = httpx.get(f"{url}/", auth=("me", token), timeout=10)
    assert basic.status_code == 200
    bodies = []
    for path in ("/", "/api/status", "/cell/desktop/api", "/cell/desktop/time"):
        response = httpx.get(f"{url}{path}", headers=auth, timeout=10)
        assert response.status_code == 200, path
        bodies.append(response.text)
    status = json.loads(bodies[1])
    assert status["schema"] == 1 and "targets" in status and "servers" in status
    assert status["daemon"]["passes"] == 1 and status["passes"][0]["pass"] == 1
    assert "‹secret:" in bodies[2]  # the rotated token's drift, as a fingerprint
    assert "drift (desired)" in bodies[0] or "drift (" in bodies[0]
    assert scene.leaks(*bodies, caplog.text) == []


# -- the command line and the daemon's servers -------------------------------------------------

WATCHED = """
servers:
  time:
    command: uvx
    args: [mcp-server-time]
targets:
  desktop:
    kind: claude-desktop
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ui", "0.0.0.0:0"), "needs --ui-allow-remote"),
        (("--ui", "0.0.0.0:0", "--ui-allow-remote"), "needs --ui-token"),
        (("--ui-token", "${env:X}"), "need --ui ADDR"),
        (("--ui", "127.0.0.1:0", "--ui-token", "plain"), "never the token itself"),
    ],
)
def test_watch_refuses_a_page_it_must_not_serve(
    workspace: Workspace, args: tuple[str, ...], message: str
) -> None:
    workspace.write("desired.yaml", WATCHED)
    result = workspace.run("watch", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert not workspace.desktop_config.exists()  # no pass ran


def test_the_service_unit_keeps_the_page_options(workspace: Workspace) -> None:
    workspace.write("desired.yaml", WATCHED)
    result = workspace.run(
        "service", "print", "--ui", "0.0.0.0:9465", "--ui-allow-remote",
        "--ui-token", "${env:UI_TOKEN}",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "--ui 0.0.0.0:9465 --ui-allow-remote --ui-token" in result.stdout.replace("'", "")


@pytest.fixture
def daemon(workspace: Workspace) -> Daemon:
    workspace.write("desired.yaml", WATCHED)
    engine = Engine(workspace.desired, workspace.state_dir, home=workspace.home)
    daemon = Daemon(engine)
    daemon.prepare()
    return daemon


@pytest.mark.parametrize("shared", [True, False], ids=["one-server", "two-servers"])
def test_metrics_and_page_share_one_server_at_one_address(daemon: Daemon, shared: bool) -> None:
    servers = _start_servers(
        daemon,
        daemon.metrics,
        "127.0.0.1:0",
        UiOptions("127.0.0.1:0" if shared else "localhost:0"),
    )
    try:
        daemon.iteration(start=True)
        assert len(servers) == (1 if shared else 2)
        assert daemon.ui_url is not None and daemon.metrics_url is not None
        assert (daemon.ui_url == daemon.metrics_url) is shared
        page = httpx.get(f"{daemon.ui_url}/", timeout=10)
        assert page.status_code == 200 and 'id="matrix"' in page.text
        metrics = httpx.get(f"{daemon.metrics_url}/metrics", timeout=10)
        assert "reconciler_passes_total" in metrics.text
        if not shared:  # the page's own server serves the page only
            assert httpx.get(f"{daemon.ui_url}/metrics", timeout=10).status_code == 404
    finally:
        assert daemon.site is not None
        daemon.site.close()
        for server in servers:
            server.close()


def test_api_status_is_the_document_of_status_json(workspace: Workspace, daemon: Daemon) -> None:
    daemon.site = ui.Site(REDACTOR)
    daemon.iteration(start=True)
    api = daemon.site.data
    cli = workspace.run("status", "--json").json
    assert set(cli) <= set(api)  # every key of status --json, plus the daemon's history
    for key in ("schema", "exit_code", "servers", "mirrors", "unmanaged", "degraded"):
        assert api[key] == cli[key], key
    assert [(t["name"], t["status"]) for t in api["targets"]] == [
        (t["name"], t["status"]) for t in cli["targets"]
    ]
    assert api["daemon"]["passes"] == 1 and cli["daemon"]["passes"] == 1


def test_events_over_http_arrive_when_a_pass_lands(daemon: Daemon) -> None:
    daemon.site = ui.Site(REDACTOR)
    server = MetricsServer("127.0.0.1:0", None, lambda: (True, "ok"), site=daemon.site)
    try:
        with httpx.stream("GET", f"{server.url}/events", timeout=10) as response:
            assert response.headers["content-type"] == "text/event-stream"
            lines = response.iter_lines()
            assert next(lines) == "retry: 2000"
            daemon.iteration(start=True)  # the pass publishes a new snapshot
            event = [next(lines) for _ in range(3)]
            assert event[1] == "event: pass" and event[2].startswith("data: ")
    finally:
        daemon.site.close()
        server.close()


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:9465", 200),
        ("localhost:9465", 200),
        ("LOCALHOST", 200),
        ("[::1]:9465", 200),
        ("127.0.0.2", 200),
        ("evil.example:9465", 403),  # a rebinding name resolved to 127.0.0.1
        ("192.168.1.5:9465", 403),
        (None, 403),
    ],
)
def test_a_loopback_page_answers_only_to_loopback_host_names(host: str | None, status: int) -> None:
    site = ui.Site(Redactor(), local_only=True)
    site.publish(_data())
    assert site.get("/api/status", None, host).status == status
    assert ui.Site(Redactor()).get("/", None, "evil.example").status == 200  # remote: token


def test_invalid_desired_state_is_on_the_page_and_the_last_good_matrix_stays(
    workspace: Workspace, daemon: Daemon
) -> None:
    daemon.site = ui.Site(REDACTOR)
    daemon.iteration(start=True)
    workspace.write("desired.yaml", WATCHED.replace("claude-desktop", "<b>nope</b>"))
    daemon.iteration([workspace.desired / "desired.yaml"])
    data = daemon.site.data
    assert data["daemon"]["desired_valid"] is False
    page = ui.render_page(data)
    assert "desired state INVALID" in page and "&lt;b&gt;nope&lt;/b&gt;" in page
    assert "<b>nope</b>" not in page
    assert ui.cell_of(data, "time", "desktop").state == "in_sync"  # the last good pass


def test_records_are_listed_again_only_after_a_pass(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = review.list_records
    monkeypatch.setattr(review, "list_records", lambda e: calls.append(1) or real(e))
    daemon.site = ui.Site(REDACTOR)
    daemon.iteration(start=True)
    listed = len(calls)
    daemon.write_status()  # a probe or a heartbeat: nothing new about the records
    daemon.write_status()
    assert len(calls) == listed
    daemon.iteration(start=True)
    assert len(calls) == listed + 1
