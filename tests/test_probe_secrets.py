"""Probe and secrets: a canary secret given in env, args or a header never comes out.

The caller resolves secrets and passes its redactor; the probe must run every text it
reports through it: errors, the stderr tail, the command line, URLs, and what the server
says about its tools. And a stdio server gets only the minimal base environment plus its
declared env, so another server's secret in the reconciler's environment never reaches it.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

import pytest

from reconciler.probe import BASE_ENV_VARS, ProbeSpec, probe_all
from tests.servers import command, http_servers

pytestmark = [
    pytest.mark.probe,
    pytest.mark.skipif(sys.platform == "win32", reason="stdio probing is tested on POSIX"),
]

CANARY = "canary-" + secrets.token_hex(12)
OTHER = "other-" + secrets.token_hex(12)  # another server's secret, in our environment


def redact(text: str) -> str:
    return text.replace(CANARY, "‹secret›")


def test_a_canary_never_appears_in_any_result(home: Path) -> None:
    cmd, crash_args = command("crash_on_start")
    _, tools_args = command("tools_server")
    with http_servers(("--http", "--token", CANARY), ("--sse", "--token", CANARY)) as ports:
        guarded, guarded_sse = ports
        url = f"http://127.0.0.1:{guarded}/mcp?key={CANARY}"
        specs = [
            # in env, echoed on stderr by a crashing server
            ProbeSpec("crash", "stdio", command=cmd, args=crash_args, env={"API_TOKEN": CANARY}),
            # in args, and the command is missing
            ProbeSpec("missing", "stdio", command="no-such-server-9d", args=("--token", CANARY)),
            # in env, echoed by the server into a tool description
            ProbeSpec(
                "echo",
                "stdio",
                command=cmd,
                args=tools_args,
                env={"TOOL_DESCRIPTION": f"Uses key {CANARY}", "API_TOKEN": CANARY},
            ),
            # in a header that works, in a header that is wrong, in a URL
            ProbeSpec("http", "http", url=url, headers={"Authorization": f"Bearer {CANARY}"}),
            ProbeSpec("http-401", "http", url=url, headers={"Authorization": f"Bearer x{CANARY}"}),
            ProbeSpec(
                "sse",
                "sse",
                url=f"http://127.0.0.1:{guarded_sse}/sse",
                headers={"Authorization": f"Bearer {CANARY}"},
            ),
            ProbeSpec("refused", "http", url=f"http://127.0.0.1:1/mcp?key={CANARY}"),
        ]
        results = probe_all(specs, timeout=10, redact=redact)
    by_name = {r.server: r for r in results}
    assert by_name["http"].ok and by_name["sse"].ok and by_name["echo"].ok
    assert by_name["http-401"].context.http_status == 401
    assert "‹secret›" in (by_name["crash"].context.stderr_tail or "")
    assert "‹secret›" in (by_name["missing"].context.command or "")
    assert by_name["echo"].tools[0].description == "Uses key ‹secret›"
    for r in results:
        assert CANARY not in json.dumps(r.to_json()), r.server
        assert CANARY not in repr(r), r.server


def test_a_stdio_server_gets_the_base_environment_and_its_own_only(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTHER_SERVER_TOKEN", OTHER)
    monkeypatch.setenv("LANG", "C.UTF-8")
    cmd, args = command("crash_on_start")
    [r] = probe_all(
        [ProbeSpec("env", "stdio", command=cmd, args=args, env={"DUMP_ENV": "1", "MINE": "x"})],
        timeout=10,
        redact=str,
    )
    line = next(x for x in (r.context.stderr_tail or "").splitlines() if x.startswith("env: "))
    names = set(line.removeprefix("env: ").split())
    assert "OTHER_SERVER_TOKEN" not in names
    assert OTHER not in json.dumps(r.to_json())
    assert {"DUMP_ENV", "MINE", "PATH", "HOME"} <= names
    # Python may add its own (LC_CTYPE when coercing the locale); nothing else of ours.
    assert names - {"LC_CTYPE"} <= set(BASE_ENV_VARS) | {"DUMP_ENV", "MINE"}
    assert os.environ["HOME"] == str(home)
