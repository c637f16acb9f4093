"""A sandbox for the crash suite: client files of every format, a desired state that
changes them, and a real ``reconcile`` process to kill (tests/test_crash.py,
bench/crash_trials.py).

``CLIENTS`` are four (JSON, JSON with Claude Code's lock, JSONC, TOML), for the suite in CI;
``EVERY_CLIENT`` adds one file of every other file kind the targets registry declares (the
JSON IDE clients, the JSONC ones, opencode and zed among them, and the YAML ones, Goose and
Continue), for the long run. Each client file starts with foreign keys, a comment where its
format has them, and an entry this tool does not manage. ``new`` is what an uninterrupted
pass writes. A trial kills a real process at a named point (``RECONCILER_TEST_CRASH_AT``)
or at a random time, then checks that every file is the old or the new content and that the
next pass cleans up and converges.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reconciler.targets import KINDS, jsonc

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

FOREIGN_JSON = '{{\n  "theme": "dark",\n  "{key}": {{\n    "mine": {mine}\n  }}\n}}\n'
COMMENTED_JSON = (
    '{{\n  // keep this comment\n  "theme": "dark",\n  "{key}": {{\n    "mine": {mine}\n  }}\n}}\n'
)
PLAIN = '{"command": "mine"}'


def _json(
    kind: str, key: str = "mcpServers", mine: str = PLAIN, *, comment: bool = False
) -> tuple[str, str, str]:
    text = (COMMENTED_JSON if comment else FOREIGN_JSON).format(key=key, mine=mine)
    return kind, f"clients/{kind}/config.json", text


# Every other file kind: a path of its own (named write points are "<folder>/<file>").
OTHER_CLIENTS: dict[str, tuple[str, str, str]] = {
    "cursor": _json("cursor"),
    "windsurf": _json("windsurf"),
    "cline": _json("cline"),
    "kiro": _json("kiro"),
    "roo": _json("roo"),
    "lmstudio": _json("lmstudio"),
    "warp": _json("warp"),
    "crush": _json("crush", "mcp", '{"type": "stdio", "command": "mine"}'),
    "gemini": _json("gemini", comment=True),
    "insiders": _json("vscode-insiders", "servers", comment=True),
    "opencode": _json("opencode", "mcp", '{"type": "local", "command": ["mine"]}', comment=True),
    "zed": _json("zed", "context_servers", comment=True),
    "goose": (
        "goose",
        "clients/goose/config.yaml",
        "# keep this comment\nGOOSE_MODEL: gpt-4o\nextensions:\n  mine:\n    name: mine\n"
        "    type: stdio\n    cmd: mine\n    args: []\n    enabled: true\n",
    ),
    "continue": (
        "continue",
        "clients/continue/config.yaml",
        "# keep this comment\nname: my-config\nversion: 0.0.1\nschema: v1\nmcpServers:\n"
        "  - name: mine\n    command: mine\n",
    ),
}
EVERY_CLIENT = {**CLIENTS, **OTHER_CLIENTS}
NOT_FILES = frozenset({"mcpjungle", "mirror"})  # kinds without a client file


def desired(clients: Mapping[str, tuple[str, str, str]]) -> str:
    return """
servers:
  time: {command: uvx, args: [mcp-server-time]}
  api:
    command: npx
    args: [-y, api-server]
    env: {API_TOKEN: "${env:CRASH_TOKEN}"}
targets:
""" + "".join(
        f'  {name}: {{kind: {kind}, path: "~/{path}", secrets: resolve}}\n'
        for name, (kind, path, _) in clients.items()
    )


DESIRED = desired(CLIENTS)


def file_kinds() -> set[str]:
    """Every kind of the targets registry that keeps a client file."""
    return set(KINDS) - NOT_FILES


def parse(kind: str, data: bytes) -> Mapping[str, object]:
    """A client file's document, in its own format (raises on invalid content)."""
    text = data.decode()
    if kind == "codex":
        return tomllib.loads(text)
    value = yaml.safe_load(text) if kind in ("goose", "continue") else jsonc.parse(text).value
    assert isinstance(value, dict), kind
    return value


@dataclass
class Sandbox:
    base: Path
    new: dict[str, bytes] = field(default_factory=dict)
    clients: Mapping[str, tuple[str, str, str]] = field(default_factory=lambda: CLIENTS)

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
        return self.home / self.clients[name][1]

    def reset(self) -> None:
        """The client files as they were, no state directory, no leftovers."""
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)
        for _, path, content in self.clients.values():
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
        clients = {self.client(n) for n in self.clients}
        found = []
        for path in self.base.rglob("*"):
            if path.is_file() and path not in clients and CANARY.encode() in path.read_bytes():
                found.append(path)
        return found


def make(base: Path, clients: Mapping[str, tuple[str, str, str]] = CLIENTS) -> Sandbox:
    """The sandbox, with ``new`` from one uninterrupted pass, checked: each new file valid
    in its format, its foreign keys, comment and unmanaged entry kept, our entries added."""
    sandbox = Sandbox(base, clients=clients)
    sandbox.desired.mkdir(parents=True)
    (sandbox.desired / "a.yaml").write_text(desired(clients).lstrip())
    sandbox.reset()
    done = sandbox.run()
    assert done.returncode == 0, done.stdout + done.stderr
    sandbox.new = {n: sandbox.client(n).read_bytes() for n in clients}
    for name, (kind, _, old) in clients.items():
        new, before = parse(kind, sandbox.new[name]), parse(kind, old.encode())
        for key in set(before) - {section_key(kind)}:
            assert new[key] == before[key], (name, key)  # foreign keys kept
        if "# keep this comment" in old or "// keep this comment" in old:
            assert b"keep this comment" in sandbox.new[name], name
        assert {"mine", "time", "api"} <= entry_names(kind, new), (name, new)
    sandbox.reset()
    return sandbox


def section_key(kind: str) -> str:
    keys = {"codex": "mcp_servers", "vscode": "servers", "vscode-insiders": "servers"}
    keys |= {"goose": "extensions", "opencode": "mcp", "crush": "mcp", "zed": "context_servers"}
    return keys.get(kind, "mcpServers")


def entry_names(kind: str, document: Mapping[str, object]) -> set[str]:
    section = document.get(section_key(kind)) or {}
    if isinstance(section, list):  # Continue: a list of entries with a name each
        return {str(e.get("name")) for e in section if isinstance(e, dict)}
    assert isinstance(section, dict), kind
    return set(section)


def check_files(sandbox: Sandbox) -> list[str]:
    """Every client file is the old or the new content, whole: a list of what is not."""
    problems = []
    for name, (_, _, old) in sandbox.clients.items():
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
    for name in sandbox.clients:
        if sandbox.client(name).read_bytes() != sandbox.new[name]:
            problems.append(f"{name}: not converged")
        record = sandbox.state / "last-applied" / f"{name}.json"
        entries = json.loads(record.read_text())["entries"] if record.exists() else {}
        created = {e for e, r in entries.items() if r.get("created")}
        if created != {"time", "api"}:
            problems.append(f"{name}: ownership lost: created {sorted(created)}")
    return problems


def crash_points(clients: Mapping[str, tuple[str, str, str]] = CLIENTS) -> list[str]:
    """Every named point of an applying pass from the empty state: each client file's and
    each state file's write, before and after its rename."""
    points = []
    for name, (_, path, _) in clients.items():
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
