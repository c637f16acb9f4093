"""``watch --probe-interval``: the daemon probes the servers on a timer and exports their
health as metrics. The metrics text is tested on its own; the daemon is driven one
iteration at a time with a fake clock (as in test_watch.py), probing real small servers."""

from __future__ import annotations

import json
import logging

import pytest

from reconciler.app.metrics import Metrics
from reconciler.app.watch import Daemon, WatchOptions, render_daemon_status
from reconciler.core.tools import tool_record
from reconciler.engine import Engine
from reconciler.probe import ProbeResult, ToolInfo
from reconciler.store import toollock
from tests.conftest import Workspace
from tests.servers import command
from tests.test_watch import Clock


def _tool(name: str) -> ToolInfo:
    return ToolInfo(name, None, {"type": "object"})


def test_metrics_render_each_servers_health_tools_and_latency() -> None:
    metrics = Metrics()
    assert "mcp_reconciler_server_up" not in metrics.render()  # no probe yet: no series
    metrics.observe_probe(
        [
            ProbeResult(
                "time", None, True, "stdio", tools=(_tool("a"), _tool("b")), latency_ms=250
            ),
            ProbeResult("gh", "desk", False, "http", latency_ms=1500.0),
            ProbeResult('we"ird', None, False, "stdio"),
        ]
    )
    text = metrics.render()
    assert "# TYPE mcp_reconciler_server_up gauge" in text
    assert 'mcp_reconciler_server_up{server="time",target=""} 1' in text
    assert 'mcp_reconciler_server_up{server="gh",target="desk"} 0' in text
    assert 'mcp_reconciler_server_up{server="we\\"ird",target=""} 0' in text
    assert 'mcp_reconciler_server_tools{server="time",target=""} 2' in text
    assert 'mcp_reconciler_server_tools{server="gh"' not in text  # down: no tool count
    assert 'mcp_reconciler_probe_latency_seconds{server="time",target=""} 0.250000' in text
    assert 'mcp_reconciler_probe_latency_seconds{server="gh",target="desk"} 1.500000' in text
    assert "mcp_reconciler_probe_timestamp_seconds " in text
    metrics.observe_probe([ProbeResult("time", None, True, "stdio")])
    assert "gh" not in metrics.render()  # a server no longer probed loses its series


def test_the_daemon_probes_on_its_interval_and_exports_metrics(workspace: Workspace) -> None:
    cmd, args = command("minimal")
    workspace.write(
        "servers.yaml",
        f"""
        servers:
          echo:
            command: {cmd}
            args: {json.dumps(list(args))}
          gone:
            command: no-such-mcp-server-7c1d
        targets:
          desktop:
            kind: claude-desktop
        """,
    )
    clock = Clock()
    engine = Engine(workspace.desired, workspace.state_dir, home=workspace.home)
    options = WatchOptions(interval=300.0, probe_interval=60.0, probe_timeout=20.0)
    daemon = Daemon(engine, options, clock=clock)
    daemon.prepare()
    assert daemon.deadline() == clock.now  # the first probe is due at start
    daemon.iteration(start=True)
    assert daemon.probes == 1
    text = daemon.metrics.render()
    assert 'mcp_reconciler_server_up{server="echo",target=""} 1' in text
    assert 'mcp_reconciler_server_up{server="gone",target=""} 0' in text
    assert 'mcp_reconciler_server_tools{server="echo",target=""} 1' in text
    assert 'mcp_reconciler_probe_latency_seconds{server="echo",target=""} ' in text
    status = json.loads((workspace.state_dir / "daemon.json").read_text())
    assert status["last_probe"]["servers"] == 2 and status["last_probe"]["up"] == 1
    assert [d["server"] for d in status["last_probe"]["degraded"]] == ["gone"]
    assert status["next_probe_in_s"] == 60.0
    assert "last probe: 1 of 2 server(s) up (down: gone)" in render_daemon_status(status)
    # Idle until the next probe: the deadline is the probe's, and nothing runs before it.
    assert daemon.deadline() == clock.now + 60.0
    clock.now += 30.0
    daemon.iteration()
    assert daemon.probes == 1
    clock.now += 30.0
    daemon.iteration()
    assert daemon.probes == 2


def test_without_probe_interval_the_daemon_never_probes(workspace: Workspace) -> None:
    workspace.write(
        "servers.yaml",
        """
        servers:
          gone:
            command: no-such-mcp-server-7c1d
        targets:
          desktop:
            kind: claude-desktop
        """,
    )
    clock = Clock()
    engine = Engine(workspace.desired, workspace.state_dir, home=workspace.home)
    daemon = Daemon(engine, WatchOptions(), clock=clock)
    daemon.prepare()
    daemon.iteration(start=True)
    assert daemon.probes == 0 and daemon.next_probe is None
    assert "mcp_reconciler_server_up" not in daemon.metrics.render()


def test_the_daemons_probe_keeps_the_inventory_and_logs_a_changed_surface(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    cmd, args = command("minimal")
    workspace.write(
        "servers.yaml",
        f"""
        servers:
          echo:
            command: {cmd}
            args: {json.dumps(list(args))}
        """,
    )
    schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    reviewed = tool_record("echo", "Echo the text back, politely", schema, {"readOnlyHint": True})
    toollock.save(workspace.desired, {"echo": {"echo": reviewed}})
    engine = Engine(workspace.desired, workspace.state_dir, home=workspace.home)
    options = WatchOptions(interval=300.0, probe_interval=60.0, probe_timeout=20.0)
    daemon = Daemon(engine, options, clock=Clock())
    daemon.prepare()
    caplog.set_level(logging.INFO, logger="reconciler")
    daemon.iteration(start=True)
    assert daemon.probes == 1
    kept = engine.store.tool_inventory()["echo"]
    assert kept.counts() == {"read-only": 1, "mutating": 0, "destructive": 0}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        "probe: tool surface changed upstream: tool 'echo' of server 'echo' changed (description)"
        in warned
    )
