"""A sandbox for the crash suite: four client files of every format, a desired state that
changes them, and a real ``reconcile`` process to kill (tests/test_crash.py,
bench/crash_trials.py).

Each client file starts with foreign keys, a comment where its format has them, and an
entry this tool does not manage. ``new`` is what an uninterrupted pass writes. A trial
kills a real process at a named point (``RECONCILER_TEST_CRASH_AT``) or at a random time,
then checks that every file is the old or the new content and that the next pass cleans up
and converges.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.targets import jsonc

ROOT = Path(__file__).resolve().parent.parent
CANARY = "canary-crash-5d1e7a90bb3f"

# target name -> (kind, path under HOME, original content)
CLIENTS: dict[str, tuple[str, str, str]] = {
    "desktop": (
        "claude-desktop",
        ".config/Claude/claude_desktop_config.json",
        '{\n  "theme": "dark",\n  "mcpServers": {\n    "mine": {"command": "mine"}\n  }\n}\n',
    ),
    "code": (
        "claude-code",
        ".claude.json",
        '{\n  "numStartups": 7,\n  "mcpServers": {\n    "mine": {"command": "mine"}\n  }\n}\n',
    ),
    "vscode": (
        "vscode",
        ".config/Code/User/mcp.json",
        '{\n  // keep this comment\n  "inputs": [],\n  "servers": {\n'
        '    "mine": {"command": "mine"}\n  }\n}\n',
    ),
    "codex": (
        "codex",
        ".codex/config.toml",
        '# keep this comment\nmodel = "o3"\n\n[mcp_servers.mine]\ncommand = "mine"\n',
    ),
}

DESIRED = """
servers:
  time: {command: uvx, args: [mcp-server-time]}
  api:
    command: npx
    args: [-y, api-server]
    env: {API_TOKEN: "${env:CRASH_TOKEN}"}
targets:
""" + "".join(
    f'  {name}: {{kind: {kind}, path: "~/{path}", secrets: resolve}}\n'
    for name, (kind, path, _) in CLIENTS.items()
)


def parse(name: str, data: bytes) -> dict[str, object]:
    text = data.decode()
    if CLIENTS[name][0] == "codex":
        return tomllib.loads(text)
    value: dict[str, object] = jsonc.parse(text).value
    return value


def servers_of(name: str, data: bytes) -> set[str]:
    document = parse(name, data)
    key = {"codex": "mcp_servers", "vscode": "servers"}.get(CLIENTS[name][0], "mcpServers")
    section = document.get(key, {})
    assert isinstance(section, dict)
    return set(section)


@dataclass
class Sandbox:
    base: Path
    new: dict[str, bytes] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def desired(self) -> Path:
        return self.base / "repo" / "desired"

    @property
    def state(self) -> Path:
        return self.base / "state"

    def client(self, name: str) -> Path:
        return self.home / CLIENTS[name][1]

    def reset(self) -> None:
        """The client files as they were, no state directory, no leftovers."""
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)
        for _, path, content in CLIENTS.values():
            file = self.home / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(content)

    def env(self, crash_at: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "XDG_"))}
        env |= {"HOME": str(self.home), "PYTHONPATH": str(ROOT), "CRASH_TOKEN": CANARY}
        for var in ("CODEX_HOME", "CLAUDE_CONFIG_DIR"):
            env.pop(var, None)
        if crash_at is not None:
            env["RECONCILER_TEST_CRASH_AT"] = crash_at
        return env

    def command(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "reconciler",
            "--desired",
            str(self.desired),
            "--state-dir",
            str(self.state),
            *args,
        ]

    def run(self, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env=self.env(crash_at),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def kill_after(self, delay: float) -> int:
        """Start a pass and SIGKILL it ``delay`` seconds later (if it is still running)."""
        process = subprocess.Popen(
            self.command(),
            env=self.env(),
            cwd=self.base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        return process.wait(timeout=60)

    def leftovers(self) -> list[Path]:
        """Temp files of our atomic write anywhere in the sandbox."""
        return [p for p in self.base.rglob(".*.tmp") if p.is_file()]

    def canary_holders(self) -> list[Path]:
        """Files holding the resolved secret, other than the client files that must."""
        clients = {self.client(n) for n in CLIENTS}
        found = []
        for path in self.base.rglob("*"):
            if path.is_file() and path not in clients and CANARY.encode() in path.read_bytes():
                found.append(path)
        return found


def make(base: Path) -> Sandbox:
    sandbox = Sandbox(base)
    sandbox.desired.mkdir(parents=True)
    (sandbox.desired / "a.yaml").write_text(DESIRED.lstrip())
    sandbox.reset()
    done = sandbox.run()
    assert done.returncode == 0, done.stdout + done.stderr
    sandbox.new = {n: sandbox.client(n).read_bytes() for n in CLIENTS}
    sandbox.reset()
    return sandbox


def check_files(sandbox: Sandbox) -> list[str]:
    """Every client file is the old or the new content, whole: a list of what is not."""
    problems = []
    for name, (_, _, old) in CLIENTS.items():
        data = sandbox.client(name).read_bytes()
        if data not in (old.encode(), sandbox.new[name]):
            problems.append(f"{name}: neither the old nor the new content: {data[:200]!r}")
    return problems


def check_recovery(sandbox: Sandbox) -> list[str]:
    """The next pass converges, cleans every leftover, and keeps ownership of our entries."""
    problems = []
    after = sandbox.run()
    if after.returncode != 0:
        problems.append(f"next pass exit {after.returncode}: {after.stdout}{after.stderr}")
    problems += [f"leftover {p}" for p in sandbox.leftovers()]
    problems += [f"canary in {p}" for p in sandbox.canary_holders()]
    for name in CLIENTS:
        if sandbox.client(name).read_bytes() != sandbox.new[name]:
            problems.append(f"{name}: not converged")
        record = sandbox.state / "last-applied" / f"{name}.json"
        entries = json.loads(record.read_text())["entries"] if record.exists() else {}
        created = {e for e, r in entries.items() if r.get("created")}
        if created != {"time", "api"}:
            problems.append(f"{name}: ownership lost: created {sorted(created)}")
    return problems


def crash_points() -> list[str]:
    """Every named point of an applying pass from the empty state: each client file's and
    each state file's write, before and after its rename."""
    points = []
    for name, (_, path, _) in CLIENTS.items():
        client = Path("home", path)
        files = (f"{client.parent.name}/{client.name}", f"intents/{name}.json")
        for file in (*files, f"last-applied/{name}.json"):
            points += [f"write:{file}:before-rename", f"write:{file}:after-rename"]
    points += ["write:state/status.json:before-rename"]
    return points


def random_trial(sandbox: Sandbox, rng: random.Random, span: tuple[float, float]) -> list[str]:
    sandbox.reset()
    sandbox.kill_after(rng.uniform(*span))
    return check_files(sandbox) + check_recovery(sandbox)


def pass_duration(sandbox: Sandbox) -> float:
    sandbox.reset()
    started = time.monotonic()
    sandbox.run()
    return time.monotonic() - started
