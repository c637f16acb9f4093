"""The hostile input corpus: each case is one file under ``data/hostile/``, and gives one
error line naming its file, the documented exit code, no traceback, no hang, no write.

A case file is a few ``key: value`` lines, ``---``, then the body::

    exit: 3                      # the documented exit code (2 invalid desired, 3 failed)
    error: invalid JSON          # a substring of the error line
    place: target                # desired/NAME.yaml, target, secret, or state/RELATIVE
    kind: codex                  # the target's kind (default claude-desktop)
    make: fifo                   # instead of a body: fifo, socket, dir, loop, device, big
    answer: 200 GET /api/v0/tools  # place mcpjungle: the fake's answer to that request
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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Workspace
from tests.fakes.mcpjungle import FakeMCPJungle, Respond

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


def test_the_corpus_is_large() -> None:
    assert len(CASE_LIST) >= 100
    assert len(JUNGLE_CASES) >= 10


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
@pytest.mark.parametrize("case", JUNGLE_CASES, ids=[c.name for c in JUNGLE_CASES])
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
