"""Desired state, client files and MCP servers for the benchmarks, generated in one place.

Why: the rows of bench/run.py compare the tool with a floor and with the clients' own CLIs, and
a comparison only means something when both sides see the same input. So the servers (a fifth
of them http), the mix of every file-client kind and the client file of each kind are defined
here once, and the floor script reads exactly the files the targets name.

Layout of a fixture root: ``desired/`` (servers.yaml, targets.yaml), ``state/``, ``home/`` (the
sandbox HOME of every process run on it).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

#: Every file-client kind. A benchmark with T targets takes the first T: the first six
#: already cover the three formats (JSON, JSONC edited as text, TOML).
KINDS = (
    "claude-code",
    "codex",
    "vscode",
    "opencode",
    "gemini",
    "claude-desktop",
    "cursor",
    "windsurf",
)

#: Each kind's user-scope file under HOME on Linux (README, "Targets"). Targets name it with
#: ``path:``, so the tool, the floor and the real clients all use this very file.
CLIENT_FILES = {
    "claude-code": ".claude.json",
    "codex": ".codex/config.toml",
    "vscode": ".config/Code/User/mcp.json",
    "opencode": ".config/opencode/opencode.json",
    "gemini": ".gemini/settings.json",
    "claude-desktop": ".config/Claude/claude_desktop_config.json",
    "cursor": ".cursor/mcp.json",
    "windsurf": ".codeium/windsurf/mcp_config.json",
}


def server(i: int) -> dict[str, Any]:
    """Server ``s{i}``: every fifth one http (a loopback URL nothing listens on, so a client
    that checks it fails at once), the others stdio with args and one env value."""
    if i % 5 == 4:
        return {"url": f"http://127.0.0.1:9/mcp/s{i}"}
    return {
        "command": "uvx",
        "args": [f"pkg-{i}", f"--flag={i}"],
        "env": {f"VAR_{i}": f"value-{i}"},
    }


def _servers_yaml(count: int, extra: str = "") -> str:
    lines = ["servers:"]
    for i in range(count):
        spec = server(i)
        lines.append(f"  s{i}:")
        if "url" in spec:
            lines.append(f"    url: {spec['url']}")
        else:
            (var, value), *_ = spec["env"].items()
            lines += [
                f"    command: {spec['command']}",
                f"    args: [{', '.join(spec['args'])}]",
                f"    env: {{{var}: {value}}}",
            ]
        if extra:
            lines.append(f"    {extra}")
    return "\n".join(lines) + "\n"


def write_desired(root: Path, servers: int, kinds: tuple[str, ...]) -> Path:
    """``servers`` servers placed on one target per kind in ``kinds``; returns ``root``."""
    lines = ["targets:"]
    for kind in kinds:
        lines += [
            f"  {kind}:",
            f"    kind: {kind}",
            f"    path: {root / 'home' / CLIENT_FILES[kind]}",
        ]
        if kind == "claude-desktop":
            lines.append("    bridge: mcp-remote")  # stdio only: http servers through mcp-remote
    _write(root, _servers_yaml(servers), "\n".join(lines) + "\n")
    return root


def client_files(root: Path, kinds: tuple[str, ...]) -> list[Path]:
    return [root / "home" / CLIENT_FILES[kind] for kind in kinds]


#: The floor: what any tool must at least do for a no-op pass, with the fastest parsers
#: (PyYAML's C loader, json, tomllib): parse every desired file and every client file.
FLOOR = textwrap.dedent("""
    import json, sys, tomllib, pathlib
    import yaml
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*.yaml")):
        yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
    for name in sys.argv[2:]:
        data = pathlib.Path(name).read_bytes()
        tomllib.loads(data.decode()) if name.endswith(".toml") else json.loads(data)
""")


def floor_argv(root: Path, kinds: tuple[str, ...]) -> list[str]:
    files = client_files(root, kinds)
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise FileNotFoundError(f"the floor's client files are missing: {missing}")
    return [sys.executable, "-c", FLOOR, str(root / "desired"), *map(str, files)]


# --------------------------------------------------------------------------- MCPJungle

JUNGLE_TOOLS = ["read", "search", "delete_all"]  # delete_all is denied: one governed tool each


def write_jungle_desired(root: Path, servers: int, url: str) -> Path:
    targets = f"targets:\n  jungle:\n    kind: mcpjungle\n    url: {url}\n"
    _write(root, _servers_yaml(servers, "tools: {deny: [delete_*]}"), targets)
    return root


def jungle_upstreams(servers: int) -> dict[str, list[str]]:
    """What the fake finds behind each registration."""
    return {f"s{i}": JUNGLE_TOOLS for i in range(servers)}


# --------------------------------------------------------------------------- probe

#: A tiny stdio MCP server (the ``mcp`` SDK's MCPServer, FastMCP's name in mcp 2.x) with one
#: tool; with ``--hang`` it starts and never answers, like a server stuck at start-up.
PROBE_SERVER = textwrap.dedent('''
    """Benchmark MCP server: one tool; ``--hang`` never answers."""
    import sys
    import threading

    if "--hang" in sys.argv:
        threading.Event().wait()

    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench")


    @server.tool()
    def echo(text: str) -> str:
        return text


    server.run()
''')


def write_probe_desired(root: Path, servers: int, hanging: int) -> Path:
    """``servers`` stdio servers running PROBE_SERVER, the last ``hanging`` of them with
    ``--hang`` and ``required: false`` (a hang is a warning, not exit 3)."""
    script = root / "bench_server.py"
    root.mkdir(parents=True, exist_ok=True)
    script.write_text(PROBE_SERVER)
    lines = ["servers:"]
    for i in range(servers):
        hang = i >= servers - hanging
        args = f"[{script}, --hang]" if hang else f"[{script}]"
        lines += [f"  p{i}:", f"    command: {sys.executable}", f"    args: {args}"]
        if hang:
            lines.append("    required: false")
    kind = "claude-desktop"
    targets = (
        f"targets:\n  {kind}:\n    kind: {kind}\n    path: {root / 'home' / CLIENT_FILES[kind]}\n"
    )
    _write(root, "\n".join(lines) + "\n", targets)
    return root


def _write(root: Path, servers: str, targets: str) -> None:
    desired = root / "desired"
    desired.mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    (desired / "servers.yaml").write_text(servers)
    (desired / "targets.yaml").write_text(targets)
