"""The hostile input corpus: each case is one file under ``data/hostile/``, and gives one
error line naming its file, the documented exit code, no traceback, no hang, no write.

A case file is a few ``key: value`` lines, ``---``, then the body::

    exit: 3                      # the documented exit code (2 invalid desired, 3 failed)
    error: invalid JSON          # a substring of the error line
    place: target                # desired/NAME.yaml, target, secret, or state/RELATIVE
    kind: codex                  # the target's kind (default claude-desktop)
    make: fifo                   # instead of a body: fifo, socket, dir, loop, device, big
    answer: 200 GET /api/v0/tools  # place mcpjungle: the fake's answer to that request
    scenario: replace            # place mcpjungle: the change an applying pass makes
    skip: 1                      # with scenario: matching requests handled before the answer
    expr: "'[' * 10**5"          # instead of a body: a Python expression giving the text
    ---
    the body, written as is (UTF-8); ``{target}`` in a desired body is the target file

Without a desired body, the desired state is one server on one target of ``kind`` whose
file is ``place``. With ``place: mcpjungle`` the body is the fake MCPJungle's (tests/fakes)
answer to the request ``answer`` names, for a target ``gateway`` that the one (required)
server shares with a Claude Desktop target: the error line gives the gateway's url under
its target's name, nothing is changed in MCPJungle, and the desktop file is still fixed
(with the state a pass keeps of it). Every case runs as a dry run and as an applying pass;
else the applying pass may write only the pass status (``status.json``), which every
applying pass writes, and the empty lock file of the state directory's pass lock.

A ``place: mcpjungle`` case with a ``scenario`` answers a request that changes MCPJungle,
in an applying pass that makes that change (``WRITE_SCENARIOS``: create, replace, disable,
enable, govern, allow, delete: register, register with ?force=true, server disable and
enable, tool disable and enable, the tools read after a register, deregister). A write gets
the answer once (writes are never retried), a read on every retry; ``skip: N`` lets the
first N matching requests through (the observing tools read before the one after a
register). A case with ``exit: 0`` is a change MCPJungle made (``Respond(after=True)``)
whose answer is garbage: a success with a hostile body, which the pass must not need, or an
error answer, which a read-back must see through. The same pass runs
twice from the same start (the fake's registry and the state directory put back between),
once for the text report and once for ``--json``; each report must be true against what
the fake holds afterwards (a change reported as carried out is there, one reported as not
is not; no server lost unless the report says so; every tool flag as it was or as planned,
unless the report says its flags are left to set; a hand-disabled tool never enabled), the
desktop file is fixed, nothing but the state directory's own files is written, and the next
pass without the fault converges, with a dry run showing no drift.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.report import PAST
from tests.conftest import Workspace
from tests.fakes.mcpjungle import Delay, FakeMCPJungle, Fault, Respond

CASES = Path(__file__).parent / "data" / "hostile"
EXTENSIONS = {"codex": "toml", "goose": "yaml", "continue": "yaml"}
DEFAULT_DESIRED = """\
servers:
  time:
    command: uvx
    args: [mcp-server-time]
    env: {{TOKEN: "${{file:{secret}}}"}}
targets:
  desktop: {{kind: {kind}, path: "{target}"}}
"""


@dataclass(frozen=True)
class Case:
    name: str
    exit: int
    error: str
    place: str
    kind: str
    make: str
    body: bytes
    answer: str = ""
    scenario: str = ""
    skip: int = 0


def load_case(path: Path) -> Case:
    head, _, body = path.read_bytes().partition(b"\n---\n")
    fields = dict(
        line.split(": ", 1) for line in head.decode().splitlines() if line and line[0] != "#"
    )
    if "expr" in fields:
        body = str(eval(fields["expr"], {})).encode("utf-8", "surrogatepass")
    return Case(
        path.stem,
        int(fields["exit"]),
        fields["error"],
        fields.get("place", "target"),
        fields.get("kind", "claude-desktop"),
        fields.get("make", ""),
        body,
        fields.get("answer", ""),
        fields.get("scenario", ""),
        int(fields.get("skip", "0")),
    )


def all_cases() -> list[Case]:
    return [load_case(p) for p in sorted(CASES.glob("*.case"))]


def fingerprint(root: Path) -> dict[str, str]:
    """Every entry under ``root``: regular files by content hash and mtime, others by type."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path.relative_to(root))] = f"{digest} {st.st_mtime_ns} {st.st_mode:o}"
            else:
                out[str(path.relative_to(root))] = f"{stat.S_IFMT(st.st_mode):o}"
    return out


def place(case: Case, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if case.make == "fifo":
        os.mkfifo(path)
    elif case.make == "socket":
        server = socket.socket(socket.AF_UNIX)
        cwd = Path.cwd()
        os.chdir(path.parent)  # a short relative name: socket paths are limited in length
        try:
            server.bind(path.name)
        finally:
            os.chdir(cwd)
        server.close()
    elif case.make == "dir":
        path.mkdir()
    elif case.make == "loop":
        path.symlink_to(path.name)
    elif case.make == "device":
        path.symlink_to("/dev/zero")  # endless, and not a regular file
    elif case.make == "big":
        with path.open("wb") as handle:  # sparse: larger than the cap, costs no disk
            handle.truncate(17 * 1024 * 1024)
    else:
        path.write_bytes(case.body)


def arrange(case: Case, workspace: Workspace) -> Path:
    """Lay the case out in the sandbox; the path of the hostile file."""
    target = workspace.home / f"client.{EXTENSIONS.get(case.kind, 'json')}"
    secret = workspace.home / "token.txt"
    secret.write_text("s3cr3t-value-for-the-corpus\n")
    workspace.state_dir.mkdir()
    (workspace.state_dir / "fingerprint.key").write_bytes(b"k" * 32)
    if case.place.startswith("desired/"):
        hostile = workspace.root / case.place
        text = case.body.replace(b"{target}", str(target).encode())
        place(Case(**{**case.__dict__, "body": text}), hostile)
        return hostile
    (workspace.desired / "desired.yaml").write_text(
        DEFAULT_DESIRED.format(kind=case.kind, target=target, secret=secret)
    )
    if case.place == "target":
        hostile = target
    elif case.place == "secret":
        secret.unlink()
        hostile = secret
    else:
        hostile = workspace.state_dir / case.place.removeprefix("state/")
        if hostile.exists():
            hostile.unlink()
        target.write_text('{"mcpServers": {}}\n')
    place(case, hostile)
    return hostile


ALL_CASES = all_cases()
CASE_LIST = [c for c in ALL_CASES if c.place != "mcpjungle"]
JUNGLE_CASES = [c for c in ALL_CASES if c.place == "mcpjungle"]
READ_CASES = [c for c in JUNGLE_CASES if not c.scenario]  # the reads of any pass
WRITE_CASES = [c for c in JUNGLE_CASES if c.scenario]  # the requests of an applying pass


def test_the_corpus_is_large() -> None:
    assert len(CASE_LIST) >= 100
    assert len(READ_CASES) >= 10
    assert len(WRITE_CASES) >= 30
    assert {c.scenario for c in WRITE_CASES} == set(WRITE_SCENARIOS)


@pytest.mark.reliability
@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", [["--dry-run"], []], ids=["dry-run", "apply"])
@pytest.mark.parametrize("case", CASE_LIST, ids=[c.name for c in CASE_LIST])
def test_hostile_input(workspace: Workspace, case: Case, mode: list[str]) -> None:
    hostile = arrange(case, workspace)
    sandbox = workspace.root.parent
    before = fingerprint(sandbox)

    result = workspace.run(*mode)
    output = result.stdout + result.stderr

    assert "Traceback" not in output, output
    assert result.exit_code == case.exit, output
    lines = [line for line in output.splitlines() if case.error in line]
    assert lines, output
    assert any(hostile.name in line for line in lines), output  # located: names its file
    if case.exit == 2:
        assert re.search(rf"{re.escape(hostile.name)}(:\d+:\d+)?: ", result.stderr), output
    after = fingerprint(sandbox)
    status = str(Path("state") / "status.json")
    if not mode:  # an applying pass records its status, and writes nothing else
        before.pop(status, None)
        after.pop(status, None)
        # ... and holds the state directory's pass lock: an empty lock file in state/locks.
        empty = hashlib.sha256(b"").hexdigest()
        for path in [p for p in after if p.startswith(str(Path("state") / "locks"))]:
            assert after[path].split()[0] in (empty, "40000"), path
            del after[path]
            before.pop(path, None)
    assert after == before, "nothing is written"


# What an applying pass keeps of itself, the desktop's record included (never one of the
# gateway's: it changed nothing there).
STATE_WRITES = {"status.json", "locks", "intents", "last-applied", "last-applied/desktop.json"}
JUNGLE_DESIRED = """\
servers:
  time:
    required: true
    command: uvx
    args: [mcp-server-time]
targets:
  gateway: {{kind: mcpjungle, url: "{url}", timeout: 5}}
  desktop: {{kind: claude-desktop, path: "{desktop}"}}
"""


def hostile_answer(case: Case) -> Respond:
    status, _, _ = case.answer.split(" ", 2)
    if case.make == "big":  # more than the cap on any answer
        return Respond(int(status), b"[" + b" " * (17 * 1024 * 1024) + b"]")
    return Respond(int(status), case.body)


@pytest.mark.reliability
@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", [["--dry-run"], []], ids=["dry-run", "apply"])
@pytest.mark.parametrize("case", READ_CASES, ids=[c.name for c in READ_CASES])
def test_hostile_mcpjungle_answer(workspace: Workspace, case: Case, mode: list[str]) -> None:
    desktop = workspace.home / "desktop.json"
    desktop.write_text('{"theme": "dark", "mcpServers": {}}\n')
    workspace.state_dir.mkdir()
    (workspace.state_dir / "fingerprint.key").write_bytes(b"k" * 32)
    _, method, path = case.answer.split(" ", 2)
    with FakeMCPJungle({"time": ["get_current_time"]}) as jungle:
        url = jungle.url
        (workspace.desired / "desired.yaml").write_text(
            JUNGLE_DESIRED.format(url=jungle.url, desktop=desktop)
        )
        jungle.inject(method, path, *(hostile_answer(case),) * 3)  # every retry of a read
        sandbox = workspace.root.parent
        before = fingerprint(sandbox)

        result = workspace.run(*mode)

        assert not jungle.mutations, "nothing is changed in MCPJungle"
        assert not jungle.errors
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.exit_code == case.exit, output
    report = output.splitlines()
    (at,) = [i for i, line in enumerate(report) if case.error in line]  # one line
    assert url in report[at], output  # located: the gateway's url, under its target's name
    assert [h for h in report[:at] if not h.startswith(" ")][-1].startswith("gateway ("), output
    after = fingerprint(sandbox)
    changed = str(desktop.relative_to(sandbox))
    if not mode:  # the other target is still fixed
        servers = json.loads(desktop.read_text())
        assert servers["theme"] == "dark" and "time" in servers["mcpServers"]
        for path_ in [p for p in after if p.startswith(str(Path("state")))]:
            if path_ not in before or after[path_] != before[path_]:
                inside = str(Path(path_).relative_to("state"))
                assert inside in STATE_WRITES or inside.startswith("locks/"), path_
                after.pop(path_)
                before.pop(path_, None)
        before.pop(changed)
        after.pop(changed)
    assert after == before, "nothing else is written"


# -- hostile answers to the requests that change MCPJungle ----------------------------------

# The change an applying pass makes, by ``scenario``: the desired extras of ``time`` (and the
# ``fetch`` server) before it (None: nothing before, MCPJungle is empty) and after. Each
# reaches the request its cases answer: register (create; replace, with ?force=true),
# server disable and enable, tool disable and enable (a deny policy added, or changed to
# another tool), the tools read after a register or an enable, deregister (a server the
# last pass registered, now gone from desired).
WRITE_SCENARIOS: dict[str, tuple[str | None, str, bool]] = {
    # scenario: (before, after, fetch before: a second registered server)
    "create": (None, "tools: {deny: [convert_time]}", False),
    "replace": ("env: {TZ: UTC}", "env: {TZ: Europe/Paris}", False),
    "disable": ("", "enabled: false", False),
    "enable": ("enabled: false", "", False),
    "govern": ("", "tools: {deny: [convert_time]}", False),
    "allow": ("tools: {deny: [convert_time]}", "tools: {deny: [get_current_time]}", False),
    "delete": ("", "", True),
}
# What MCPJungle holds once the change is made (the converged pass after each case): the
# enabled flag of ``time`` and its tools' flags. A replace keeps a tool disabled by hand.
PLANNED: dict[str, tuple[bool, dict[str, bool]]] = {
    "create": (True, {"time__get_current_time": True, "time__convert_time": False}),
    "replace": (True, {"time__get_current_time": True, "time__convert_time": False}),
    "disable": (False, {"time__get_current_time": False, "time__convert_time": False}),
    "enable": (True, {"time__get_current_time": True, "time__convert_time": True}),
    "govern": (True, {"time__get_current_time": True, "time__convert_time": False}),
    "allow": (True, {"time__get_current_time": False, "time__convert_time": True}),
    "delete": (True, {"time__get_current_time": True, "time__convert_time": True}),
}
WRITE_UPSTREAMS = {"time": ["get_current_time", "convert_time"], "fetch": ["fetch"]}
WRITE_DESIRED = """\
servers:
  time:
    required: true
    command: uvx
    args: [mcp-server-time]
    {time}
{fetch}targets:
  gateway: {{kind: mcpjungle, url: "{url}", timeout: 5, prune: true}}
  desktop: {{kind: claude-desktop, path: "{desktop}", prune: true}}
"""
FETCH = "  fetch:\n    required: true\n    command: uvx\n    args: [mcp-server-fetch]\n"
CONFIG_ACTIONS = {"create", "update", "replace", "delete"}
ACTION_DONE = {past: action for action, past in PAST.items()}  # "created": "create"


@dataclass(frozen=True)
class Registry:
    """What the fake MCPJungle holds: each server's config and flag, each tool's flag."""

    configs: dict[str, tuple[object, ...]]
    enabled: dict[str, bool]
    tools: dict[str, bool]


def registry(jungle: FakeMCPJungle) -> Registry:
    servers = jungle.servers.values()
    return Registry(
        {s.name: (s.transport, s.command, s.args, s.env) for s in servers},
        {s.name: s.enabled for s in servers},
        {name: t.enabled for name, t in jungle.tools.items()},
    )


@dataclass(frozen=True)
class Reported:
    """One change of the gateway as a report states it."""

    server: str
    action: str
    applied: bool


def text_changes(lines: list[str]) -> list[Reported]:
    """The gateway's changes in a text report: a past-tense verb is a change carried out."""
    at = next(i for i, line in enumerate(lines) if line.startswith("gateway ("))
    out: list[Reported] = []
    for line in lines[at + 1 :]:
        if not line.startswith(" "):
            break
        found = re.match(r"  \S (\S+): ([a-z-]+)[,( ]", line)
        if found:
            verb = found.group(2)
            action = ACTION_DONE.get(verb, verb)
            out.append(Reported(found.group(1), action, verb in ACTION_DONE))
    return out


def json_changes(report: dict[str, Any]) -> list[Reported]:
    (gateway,) = [t for t in report["targets"] if t["name"] == "gateway"]
    return [Reported(c["server"], c["action"], c["applied"]) for c in gateway["changes"]]


def tools_changed(change: Reported, before: Registry, planned: Registry) -> list[str]:
    """The tools a tool-enable or tool-disable change is about: those of its server whose
    planned flag is what the action sets, and was not before (a policy on a new server is
    one change for all its tools)."""
    if not change.action.startswith("tool-"):
        return []
    want = change.action == "tool-enable"
    return [
        name
        for name, flag in planned.tools.items()
        if name.startswith(f"{change.server}__") and flag is want and before.tools.get(name) != flag
    ]


def assert_true_report(
    changes: list[Reported], error: str, before: Registry, after: Registry, planned: Registry
) -> None:
    """Each change reported carried out is in MCPJungle, each one reported not carried out
    is not; no server is lost unless the report says so; every tool flag is as it was or as
    planned, and a flag left otherwise (reset by a register) is one the report says is left
    to set. A hand-disabled tool is never left enabled unless the report says so."""
    flags_left = "the next pass sets them" in error
    lost_said = "no longer registered" in error or "not as before nor as planned" in error
    for change in changes:
        state = planned if change.applied else before
        if change.action in CONFIG_ACTIONS and not lost_said:
            got = after.configs.get(change.server)
            assert got == state.configs.get(change.server), (change, error)
        if change.action in ("enable", "disable"):
            assert after.enabled.get(change.server) == state.enabled.get(change.server), change
        for name in tools_changed(change, before, planned):
            if change.applied:
                assert after.tools.get(name) == planned.tools.get(name), (change, error)
            else:
                allowed = {before.tools.get(name)} | ({True} if flags_left else set())
                assert after.tools.get(name) in allowed, (change, error)
    deleted = {c.server for c in changes if c.action == "delete" and c.applied}
    for server in set(before.configs) - set(after.configs) - deleted:
        assert lost_said and f"'{server}'" in error, (server, error)  # lost, and said so
    for name, flag in after.tools.items():
        if not flags_left:
            assert flag in (before.tools.get(name), planned.tools.get(name)), (name, error)
        hand_disabled = before.tools.get(name) is False and planned.tools.get(name) is False
        assert not hand_disabled or flag is False or flags_left, (name, error)


def write_answers(case: Case) -> tuple[str, str, list[Fault]]:
    """The request ``case.answer`` names and the faults that answer it: the first ``skip``
    matching requests go through, then a read gets the answer on every retry, a write once."""
    _, method, path = case.answer.split(" ", 2)
    answer = hostile_answer(case)
    if case.exit == 0:  # a success: MCPJungle made the change, only its answer is garbage
        answer = Respond(answer.status, answer.body, after=True)
    answers = [answer] * (3 if method == "GET" else 1)
    return method, path, [Delay(0.0)] * case.skip + answers


# What an applying pass that changes MCPJungle keeps of itself: the state above, both
# targets' last-applied records, the validated desired state (it changed since the last
# pass), and the tool flags a failed pass left to set.
FLAGS_LEFT_FILE = "mirror-cache/mcpjungle-flags--gateway.json"
WRITE_STATE = STATE_WRITES | {"desired-cache.bin", "mirror-cache", FLAGS_LEFT_FILE}
WRITE_STATE_DIRS = ("locks/", "last-applied/", "intents/")


def allowed_state_writes(before: dict[str, str], after: dict[str, str]) -> None:
    """Drop, from both fingerprints, what a pass may change in its state directory."""
    for path_ in [p for p in after if p.startswith("state")]:
        if path_ not in before or after[path_] != before[path_]:
            inside = str(Path(path_).relative_to("state"))
            assert inside in WRITE_STATE or inside.startswith(WRITE_STATE_DIRS), path_
            after.pop(path_)
            before.pop(path_, None)
    for path_ in [p for p in before if p.startswith("state") and p not in after]:
        inside = str(Path(path_).relative_to("state"))
        assert inside.startswith(("intents/", FLAGS_LEFT_FILE)), path_
        before.pop(path_)


@pytest.mark.reliability
@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", WRITE_CASES, ids=[c.name for c in WRITE_CASES])
def test_hostile_mcpjungle_answer_to_a_change(workspace: Workspace, case: Case) -> None:
    before_extra, after_extra, with_fetch = WRITE_SCENARIOS[case.scenario]
    desktop = workspace.home / "desktop.json"
    desktop.write_text('{"theme": "dark", "mcpServers": {}}\n')
    workspace.state_dir.mkdir()
    (workspace.state_dir / "fingerprint.key").write_bytes(b"k" * 32)
    sandbox = workspace.root.parent
    saved_state = sandbox / "saved-state"  # what a pass may write: the state and the desktop
    with FakeMCPJungle(WRITE_UPSTREAMS) as jungle:
        url = jungle.url

        def desired(extra: str, fetch: bool) -> None:
            text = WRITE_DESIRED.format(
                time=extra, fetch=FETCH if fetch else "", url=url, desktop=desktop
            )
            (workspace.desired / "desired.yaml").write_text(text)

        if before_extra is not None:
            desired(before_extra, with_fetch)
            assert workspace.run().exit_code == 0
            if case.scenario == "replace":
                jungle.tools["time__convert_time"].enabled = False  # by hand
        desired(after_extra, False)
        before = registry(jungle)
        saved = jungle.save_state()
        shutil.copytree(workspace.state_dir, saved_state, symlinks=True)
        shutil.copy2(desktop, saved_state / desktop.name)
        untouched = fingerprint(sandbox)
        method, path, faults = write_answers(case)

        # The same pass from the same start, once for each report: text, then --json.
        jungle.inject(method, path, *faults)
        text = workspace.run()
        after_text = registry(jungle)
        desktop_after = desktop.read_text()
        written = fingerprint(sandbox)
        jungle.clear_faults()
        jungle.restore_state(saved)
        shutil.rmtree(workspace.state_dir)
        shutil.copytree(saved_state, workspace.state_dir, symlinks=True)
        shutil.move(workspace.state_dir / desktop.name, desktop)
        assert fingerprint(sandbox) == untouched and registry(jungle) == before  # the start
        jungle.inject(method, path, *faults)
        as_json = workspace.run("--json")
        after_json = registry(jungle)
        written_json = fingerprint(sandbox)
        jungle.clear_faults()
        assert not jungle.errors

        converged = workspace.run()
        assert converged.exit_code == 0, converged.stdout + converged.stderr
        planned = registry(jungle)
        assert (planned.enabled["time"], planned.tools) == PLANNED[case.scenario], planned
        assert "fetch" not in planned.configs
        dry = workspace.run("--dry-run", "--json")
        assert dry.exit_code == 0 and not any(t["changes"] for t in dry.json["targets"]), dry.stdout
        assert registry(jungle) == planned  # a dry run changes nothing

    for result in (text, as_json):
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output
        assert result.exit_code == case.exit, output
    report = text.stdout.splitlines()
    gateway = as_json.json["targets"][0]
    assert gateway["name"] == "gateway"
    if case.exit == 0:
        assert gateway["error"] is None and not any("error" in line for line in report), report
        assert after_json == after_text == planned  # the body of a success is not needed
    else:
        (at,) = [i for i, line in enumerate(report) if case.error in line]  # one line
        assert url in report[at], report[at]  # located: the gateway's url, what was tried
        assert [h for h in report[:at] if not h.startswith(" ")][-1].startswith("gateway (")
        assert case.error in gateway["error"] and url in gateway["error"], gateway["error"]
    assert after_text == after_json, "the same pass twice: the same outcome"
    changes = text_changes(report)
    assert changes, report
    assert_true_report(changes, "\n".join(report), before, after_text, planned)
    reported = json_changes(as_json.json)
    assert reported == changes, (report, reported)
    assert_true_report(reported, gateway["error"] or "", before, after_json, planned)

    # The other target is still fixed, as the converged pass leaves it; nothing else changed.
    assert desktop_after == desktop.read_text()
    assert json.loads(desktop_after)["theme"] == "dark"
    changed = str(desktop.relative_to(sandbox))
    for after in (written, written_json):
        start = dict(untouched)
        start.pop(changed)
        after.pop(changed)
        allowed_state_writes(start, after)
        assert after == start, "nothing else is written"
