"""The README's walkthroughs, run as written: one bash script made of their code blocks.

Each ``sh`` line runs as is (``reconcile`` is this checkout's ``python -m reconciler``), and
must end with the exit code its ``# exit N`` comment names (none: 0). A ``yaml`` block whose
first line is ``# desired/FILE`` is written to that file at that point. HOME is a temp dir
holding a Claude Desktop config with two servers; MCPJungle is the fake gateway.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import LOCATION_VARS
from tests.fakes.mcpjungle import FakeMCPJungle

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "Start from the configs you already have",
    "Add an MCPJungle gateway",
    "Review a divergence",
    "Keep a mirror in parity",
)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
EXIT = re.compile(r"#\s*exit (\d)")


def walkthroughs() -> dict[str, list[tuple[str, str]]]:
    """Per walkthrough, its code blocks in order: (language, text)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    part = text.split("\n## Walkthroughs\n", 1)[1].split("\n## ", 1)[0]
    out = {}
    for chunk in part.split("\n### ")[1:]:
        title, _, body = chunk.partition("\n")
        out[title.strip()] = [(m.group(1), m.group(2)) for m in FENCE.finditer(body)]
    return out


def script(blocks: list[tuple[str, str]], jungle_url: str) -> str:
    lines = [
        "set -u",
        f'reconcile() {{ {shlex.quote(sys.executable)} -m reconciler "$@"; }}',
    ]
    for language, text in blocks:
        text = text.replace("http://127.0.0.1:8080", jungle_url)
        if language == "yaml":
            first, _, rest = text.partition("\n")
            target = first.removeprefix("# ").strip()
            assert target.startswith("desired/"), f"a yaml block must name its file: {first}"
            lines.append(f"mkdir -p {shlex.quote(str(Path(target).parent))}")
            lines.append(f"cat > {shlex.quote(target)} <<'README_EOF'\n{rest}README_EOF")
            continue
        assert language == "sh", f"unexpected block {language!r}"
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = EXIT.search(line)
            want = int(match.group(1)) if match else 0
            shown = shlex.quote(line)
            lines.append(line)
            lines.append(
                f'rc=$?; if [ "$rc" -ne {want} ]; then '
                f'echo "README: exit $rc, not {want}: "{shown} >&2; exit 99; fi'
            )
    return "\n".join(lines) + "\n"


def test_the_readme_has_the_four_walkthroughs() -> None:
    found = walkthroughs()
    assert list(found) == list(SECTIONS)
    assert all(found[s] for s in SECTIONS)


def test_the_readme_walkthroughs_run_as_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    desktop = home / ".config" / "Claude" / "claude_desktop_config.json"
    desktop.parent.mkdir(parents=True)
    servers = {
        "time": {"command": "uvx", "args": ["mcp-server-time"]},
        "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
    }
    desktop.write_text(json.dumps({"mcpServers": servers}, indent=2) + "\n")
    (tmp_path / "gitconfig").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in LOCATION_VARS}
    env.update(
        HOME=str(home),
        PYTHONPATH=str(ROOT),
        GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Ana",
        GIT_AUTHOR_EMAIL="ana@example.test",
        GIT_COMMITTER_NAME="Ana",
        GIT_COMMITTER_EMAIL="ana@example.test",
        NO_COLOR="1",
    )
    found = walkthroughs()
    with FakeMCPJungle() as jungle:
        text = script([b for s in SECTIONS for b in found[s]], jungle.url)
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        assert (
            "time" in {s["name"] for s in jungle.servers_json()}
            if hasattr(jungle, "servers_json")
            else True
        )
    fleet = tmp_path / "fleet"
    assert (fleet / "deploy/media/src/index.ts").read_text() == (
        fleet / "agents/media/src/index.ts"
    ).read_text()
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=fleet, env=env, capture_output=True, text=True
    ).stdout
    for subject in ("import:", "divergence: allow", "divergence: renew", "divergence: reject"):
        assert subject in log, log
