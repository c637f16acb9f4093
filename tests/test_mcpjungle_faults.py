"""The MCPJungle fault suite (docs/RELIABILITY.md): one pass that replaces two servers on the
fake MCPJungle and fixes a Claude Desktop file, with one fault injected at a time. Whatever
the fault (5xx, 403, dropped connections before and after the change, timeouts, answers
trickling a byte at a time, malformed JSON, a duplicate appearing mid-pass, a failure in the
middle of a multi-server apply, a failure of the restore itself), the pass:

- prints no traceback, and its ``--json`` report is valid and true: a change it reports as
  applied is in MCPJungle, one it reports as failed is not;
- still fixes the desktop file;
- deletes no server without restoring it, unless its report says so;
- leaves every tool flag as it was, hand-made ones included, or as the policy wants;
- and the next pass, without faults, converges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.targets.mcpjungle import MCPJungleTarget
from tests.conftest import Workspace
from tests.fakes.mcpjungle import (
    DUPLICATE_SERVER,
    NOT_ADMIN,
    Delay,
    Drop,
    FakeMCPJungle,
    Fault,
    Respond,
    Trickle,
)
from tests.jsonschema1 import assert_report_schema

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

UPSTREAMS: dict[str, Any] = {
    "time": ["get_current_time", "convert_time"],
    "files": ["read_file", "read_dir", "write_file", "delete_file"],
    "fetch": ["fetch"],
}

SERVERS = """
servers:
  time:
    required: true
    command: uvx
    args: [mcp-server-time]
    env: {TZ: UTC}
  files:
    required: true
    command: npx
    args: [-y, server-filesystem]
    env: {ROOT: /srv/data}
    tools:
      deny: [write_*, delete_*]
  fetch:
    command: uvx
    args: [mcp-server-fetch]
"""

CHANGED = SERVERS.replace("{TZ: UTC}", "{TZ: Europe/Paris}").replace("/srv/data}", "/srv/new}")
WANT_ENV = {"time": {"TZ": "Europe/Paris"}, "files": {"ROOT": "/srv/new"}}
OLD_ENV = {"time": {"TZ": "UTC"}, "files": {"ROOT": "/srv/data"}}

# The flags a pass must leave: the policy's, and one a person set by hand on an ungoverned
# server (a replace deregisters it, so its flags must be put back).
FLAGS = {
    "files__write_file": False,
    "files__delete_file": False,
    "files__read_file": True,
    "time__convert_time": False,  # disabled by hand
    "time__get_current_time": True,
}

ERROR = {"error": "database is locked"}
FAULTS: dict[str, tuple[str, str, tuple[Fault, ...]]] = {
    "configs-500": ("GET", "/api/v0/server_configs", (Respond(500, ERROR),) * 3),
    "configs-dropped": ("GET", "/api/v0/server_configs", (Drop(),) * 3),
    "configs-malformed-json": ("GET", "/api/v0/server_configs", (Respond(200, b"{not js"),) * 3),
    "configs-not-a-list": ("GET", "/api/v0/server_configs", (Respond(200, {"a": 1}),) * 3),
    "configs-timeout": ("GET", "/api/v0/server_configs", (Delay(3.0),) * 3),
    "configs-trickling": ("GET", "/api/v0/server_configs", (Trickle(0.05),) * 3),
    "register-trickling": ("POST", "/api/v0/servers", (Trickle(0.05),)),
    "tools-dropped": ("GET", "/api/v0/tools", (Drop(),) * 3),
    "tools-one-503-retried": ("GET", "/api/v0/tools", (Respond(503, ERROR),)),
    "register-500": ("POST", "/api/v0/servers", (Respond(500, ERROR),)),
    "register-403": ("POST", "/api/v0/servers", (Respond(403, {"error": NOT_ADMIN}),)),
    "register-dropped-before": ("POST", "/api/v0/servers", (Drop(),)),
    "register-dropped-after": ("POST", "/api/v0/servers", (Drop(after=True),)),
    "register-timeout-after": ("POST", "/api/v0/servers", (Delay(3.0, after=True),)),
    "register-duplicate-mid-pass": (
        "POST",
        "/api/v0/servers",
        (Respond(500, {"error": DUPLICATE_SERVER}),),
    ),
    "second-register-500": ("POST", "/api/v0/servers", (Delay(0.0), Respond(500, ERROR))),
    "restore-fails-too": ("POST", "/api/v0/servers", (Respond(500, ERROR), Respond(500, ERROR))),
    "tool-flag-500": ("POST", "/api/v0/tools/:verb", (Respond(500, ERROR),)),
    "tool-flag-dropped": ("POST", "/api/v0/tools/:verb", (Drop(),)),
    "tool-list-after-reset-500": (
        "GET",
        "/api/v0/tools",
        (Delay(0.0), *(Respond(500, ERROR),) * 3),
    ),
}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MCPJungleTarget, "retry_delays", (0.0, 0.0))


@pytest.fixture
def jungle() -> Iterator[FakeMCPJungle]:
    with FakeMCPJungle(UPSTREAMS) as fake:
        yield fake


def setup(ws: Workspace, url: str) -> None:
    ws.write("servers.yaml", SERVERS)
    ws.write(
        "targets.yaml",
        f"""
        targets:
          jungle: {{kind: mcpjungle, url: "{url}", timeout: 1}}
          desktop: {{kind: claude-desktop, servers: [time, fetch]}}
        """,
    )


def flags(jungle: FakeMCPJungle) -> dict[str, bool]:
    return {name: jungle.tools[name].enabled for name in FLAGS if name in jungle.tools}


def desktop_ok(ws: Workspace) -> bool:
    servers = json.loads(ws.desktop_config.read_text())["mcpServers"]
    return servers["time"].get("env") == {"TZ": "Europe/Paris"} and "fetch" in servers


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_leaves_a_true_report_no_lost_server_and_every_flag(
    workspace: Workspace, jungle: FakeMCPJungle, fault: str
) -> None:
    setup(workspace, jungle.url)
    assert workspace.run().exit_code == 0
    jungle.tools["time__convert_time"].enabled = False  # by hand
    assert flags(jungle) == FLAGS
    workspace.write("servers.yaml", CHANGED)
    before = set(jungle.servers)
    method, pattern, faults = FAULTS[fault]
    jungle.inject(method, pattern, *faults)

    result = workspace.run("--json")
    output = result.stdout + result.stderr

    assert "Traceback" not in output
    report = result.json
    assert_report_schema(report)
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["desktop"]["error"] is None and desktop_ok(workspace)
    jungle.clear_faults()  # a Delay(after=True) has finished by now: read the truth
    lost = before - set(jungle.servers)
    error = targets["jungle"]["error"] or ""
    for server in lost:  # only a failed restore may lose one, and it says so
        assert f"'{server}' is no longer registered" in error, error
    for change in targets["jungle"]["changes"]:
        server = change["server"]
        config_change = change["action"] in ("create", "update", "replace")  # not its flags
        if config_change and server in WANT_ENV and server in jungle.servers:
            env = jungle.servers[server].env
            if change["applied"]:
                assert env == WANT_ENV[server], (server, change, error)
            else:
                assert env == OLD_ENV[server], (server, change, error)
    for server in set(jungle.servers) & {"time", "files"}:
        if f"'{server}' was registered as planned, but setting its tool flags" in error:
            continue  # the fault hit the flags themselves: the report says the next pass
        assert {k: v for k, v in flags(jungle).items() if k.startswith(server)} == {
            k: v for k, v in FLAGS.items() if k.startswith(server)
        }, (fault, error)
    assert report["exit_code"] in (0, 3)
    assert (report["exit_code"] == 0) == (targets["jungle"]["error"] is None)

    again = workspace.run("--json")
    assert again.exit_code == 0, again.stdout + again.stderr
    assert {s: jungle.servers[s].env for s in WANT_ENV} == WANT_ENV
    assert flags(jungle) == FLAGS, fault


def test_a_failed_restore_reports_what_mcpjungle_holds_as_read_back(
    workspace: Workspace, jungle: FakeMCPJungle
) -> None:
    setup(workspace, jungle.url)
    assert workspace.run().exit_code == 0
    workspace.write("servers.yaml", CHANGED)
    # The replace and the restore are refused before they take effect: nothing is lost,
    # and the report must not claim that the server is gone.
    jungle.inject("POST", "/api/v0/servers", Respond(500, ERROR), Respond(500, ERROR))

    result = workspace.run("--json")

    (jungle_report,) = [t for t in result.json["targets"] if t["name"] == "jungle"]
    assert "'time' is still registered in MCPJungle, unchanged" in jungle_report["error"]
    assert "no longer registered" not in jungle_report["error"]
    assert jungle.servers["time"].env == OLD_ENV["time"]


def test_a_trickling_answer_is_cut_at_the_timeout(
    workspace: Workspace, jungle: FakeMCPJungle
) -> None:
    setup(workspace, jungle.url)  # timeout: 1 s; three reads of a trickle of ~0.05 s a byte
    assert workspace.run().exit_code == 0  # three servers: an answer of hundreds of bytes
    jungle.inject("GET", "/api/v0/server_configs", *(Trickle(0.05),) * 3)
    started = time.monotonic()
    result = workspace.run("--json")
    took = time.monotonic() - started
    (jungle_report,) = [t for t in result.json["targets"] if t["name"] == "jungle"]
    assert "did not answer GET /api/v0/server_configs within 1 s" in jungle_report["error"]
    assert took < 3 * 1.0 + 3.0, took  # each attempt ends at its deadline, not at the end
