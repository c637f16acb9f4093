"""Secret resolvers: concurrent with a bound, once per pass per reference, progress when slow,
and a failing resolver's stderr shown scrubbed with ``-v``.

Concurrency is proven by overlap, not by timing: each resolver of the barrier test waits
until all of them have started (files in a folder), with a deadline, and fails if that never
happens, which it would if they ran one after another.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.cli.common import Settings, resolve_progress
from reconciler.core.essence import fingerprint_with
from reconciler.core.model import Resolver
from reconciler.engine import Engine, PassOptions
from reconciler.secrets import Redactor, SecretError, SecretResolver, find_references, resolution
from tests.conftest import Workspace, environ_without_locations

GHP = "ghp_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"  # built at run time: no token here
CANARY = "canary-" + "stderr-value-7Hq2"


def _script(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def _barrier(tmp_path: Path, parties: int) -> tuple[Path, str]:
    """A resolver that records its start, then waits (up to 20 s) until ``parties`` have
    started; it prints the value only if they all did, else fails."""
    started = tmp_path / "started"
    started.mkdir()
    script = _script(
        tmp_path,
        "barrier.py",
        f"""
        import os, sys, time
        folder = {str(started)!r}
        name = sys.argv[1]
        open(os.path.join(folder, name), "w").close()
        deadline = time.monotonic() + 20
        while len(os.listdir(folder)) < {parties}:
            if time.monotonic() > deadline:
                sys.exit(1)
            time.sleep(0.01)
        print("value-of-" + name)
        """,
    )
    return started, script


def _resolver(tmp_path: Path, **resolvers: Resolver) -> SecretResolver:
    return SecretResolver(
        resolvers, {}, root=tmp_path, home=tmp_path, redactor=Redactor(fingerprint_with(b"k" * 32))
    )


def test_six_resolvers_run_at_once_in_a_pass(workspace: Workspace, tmp_path: Path) -> None:
    started, script = _barrier(tmp_path, 6)
    servers = "\n".join(
        f"  s{i}: {{command: uvx, env: {{SECRET: '${{vault:k{i}}}'}}}}" for i in range(6)
    )
    command = json.dumps([sys.executable, script, "{name}"])
    workspace.write(
        "servers.yaml", f"secrets:\n  vault: {{command: {command}}}\nservers:\n{servers}\n"
    )
    path = workspace.home / "desktop.json"
    workspace.write("targets.yaml", f"targets:\n  d: {{kind: claude-desktop, path: {path}}}\n")
    result = workspace.run()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(os.listdir(started)) == [f"k{i}" for i in range(6)]  # each ran, once
    entries = json.loads(path.read_text())["mcpServers"]
    assert {n: e["env"]["SECRET"] for n, e in entries.items()} == {
        f"s{i}": f"value-of-k{i}" for i in range(6)
    }


def test_a_reference_is_resolved_once_per_pass_however_many_targets_use_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    script = _script(
        tmp_path,
        "count.py",
        f"""
        import os, sys, uuid
        open(os.path.join({str(runs)!r}, uuid.uuid4().hex), "w").close()
        print("shared-value-" + sys.argv[1])
        """,
    )
    command = json.dumps([sys.executable, script, "{name}"])
    workspace.write(
        "servers.yaml",
        f"secrets:\n  vault: {{command: {command}}}\nservers:\n"
        "  a: {command: uvx, env: {T: '${vault:one}'}, args: ['--t=${vault:one}']}\n"
        "  b: {command: uvx, env: {T: '${vault:one}'}}\n",
    )
    targets = "\n".join(
        f"  {k}: {{kind: {k}, path: {workspace.home / (k + '.json')}}}"
        for k in ("claude-desktop", "cline", "claude-code", "lmstudio")
    )
    workspace.write("targets.yaml", f"targets:\n{targets}\n")
    assert workspace.run("--dry-run").exit_code == 1
    assert len(os.listdir(runs)) == 1


def test_resolvers_run_at_most_the_bound_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolution, "MAX_CONCURRENT", 2)
    running, peak = tmp_path / "running", tmp_path / "peak"
    running.mkdir()
    peak.mkdir()
    script = _script(
        tmp_path,
        "bounded.py",
        f"""
        import os, sys, time
        me = os.path.join({str(running)!r}, sys.argv[1])
        open(me, "w").close()
        now = len(os.listdir({str(running)!r}))
        open(os.path.join({str(peak)!r}, sys.argv[1] + "-" + str(now)), "w").close()
        time.sleep(0.05)  # stay running a moment, so that overlaps are seen
        os.remove(me)
        print("v-" + sys.argv[1])
        """,
    )
    r = _resolver(tmp_path, vault=Resolver(command=(sys.executable, script, "{name}")))
    refs = [ref for i in range(6) for ref in find_references(f"${{vault:k{i}}}")]
    r.prefetch(refs)
    seen = [int(name.rsplit("-", 1)[1]) for name in os.listdir(peak)]
    assert len(seen) == 6 and max(seen) <= 2
    assert r.resolve_text("${vault:k3}") == "v-k3"  # from the prefetch: not run again
    assert len(os.listdir(peak)) == 6


def test_progress_is_told_once_resolving_is_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolution, "SLOW_AFTER", 0.0)  # every pass is "slow"
    _, script = _barrier(tmp_path, 3)
    r = _resolver(tmp_path, vault=Resolver(command=(sys.executable, script, "{name}")))
    heard: list[tuple[int, int]] = []
    r.prefetch(
        [ref for i in range(3) for ref in find_references(f"${{vault:k{i}}}")],
        lambda done, total: heard.append((done, total)),
    )
    assert heard[-1] == (3, 3)
    assert all(total == 3 and 0 <= done <= 3 for done, total in heard)


def test_fast_resolving_tells_no_progress(tmp_path: Path) -> None:
    script = _script(tmp_path, "fast.py", "import sys\nprint('v-' + sys.argv[1])\n")
    r = _resolver(tmp_path, vault=Resolver(command=(sys.executable, script, "{name}")))
    heard: list[tuple[int, int]] = []
    r.prefetch(find_references("${vault:a}"), lambda d, t: heard.append((d, t)))
    assert heard == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("settings", "terminal", "shown"),
    [
        (Settings(), True, True),
        (Settings(json=True), True, False),
        (Settings(verbosity=-1), True, False),
        (Settings(), False, False),
    ],
)
def test_the_progress_line_is_for_a_terminal_only(
    settings: Settings, terminal: bool, shown: bool
) -> None:
    stream = _Terminal() if terminal else io.StringIO()
    show = resolve_progress(settings, stream)
    assert (show is not None) is shown
    if show is not None:
        show(2, 6)
        show(6, 6)
        assert stream.getvalue() == "\rresolving secrets: 2 of 6 done\x1b[K\r\x1b[K"


def test_a_failing_resolvers_stderr_is_shown_scrubbed_with_v(
    workspace: Workspace, tmp_path: Path
) -> None:
    script = _script(
        tmp_path,
        "failing.py",
        f"""
        import sys
        print({CANARY!r})  # whatever it printed on stdout is never shown
        print("vault: access denied for " + sys.argv[1], file=sys.stderr)
        print("hint: token {GHP} has expired; also {CANARY}", file=sys.stderr)
        sys.exit(4)
        """,
    )
    command = json.dumps([sys.executable, script, "{name}"])
    workspace.write(
        "servers.yaml",
        f"secrets:\n  vault: {{command: {command}}}\n"
        "servers:\n  s: {command: uvx, env: {T: '${vault:team/key}'}}\n",
    )
    path = workspace.home / "desktop.json"
    workspace.write("targets.yaml", f"targets:\n  d: {{kind: claude-desktop, path: {path}}}\n")
    env = environ_without_locations() | {"HOME": str(workspace.home), "PYTHONPATH": os.getcwd()}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    base = [sys.executable, "-m", "reconciler", "--desired", str(workspace.desired)]
    base += ["--state-dir", str(workspace.state_dir), "--dry-run"]

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *flags], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    quiet, verbose = run(), run("-v")
    for done in (quiet, verbose):
        assert done.returncode == 3, done.stdout + done.stderr
        assert "resolver 'vault' failed with exit status 4" in done.stdout
        assert GHP not in done.stdout + done.stderr
        assert CANARY not in done.stdout + done.stderr
    assert "access denied" not in quiet.stdout + quiet.stderr
    assert (
        "resolver 'vault' for ${vault:team/key} exited 4; its stderr: vault: access denied "
        "for team/key"
    ) in verbose.stderr
    assert "hint: token ‹secret› has expired; also ‹output›" in verbose.stderr


def test_a_resolver_error_never_carries_stderr(tmp_path: Path) -> None:
    script = _script(
        tmp_path, "bad.py", "import sys\nprint('oops', file=sys.stderr)\nsys.exit(2)\n"
    )
    r = _resolver(tmp_path, vault=Resolver(command=(sys.executable, script, "{name}")))
    with pytest.raises(SecretError) as caught:
        r.resolve_text("${vault:x}")
    assert "oops" not in str(caught.value)


def test_each_pass_resolves_afresh_even_on_the_same_loaded_state(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A daemon resyncs with the state it loaded: a secret rotated at its resolver must
    still be picked up by the next pass."""
    value = tmp_path / "current"
    value.write_text("first-value-1\n")
    script = _script(
        tmp_path,
        "rotating.py",
        f"import sys\nprint(open({str(value)!r}).read().strip())\n",
    )
    command = json.dumps([sys.executable, script, "{name}"])
    workspace.write(
        "servers.yaml",
        f"secrets:\n  vault: {{command: {command}}}\n"
        "servers:\n  s: {command: uvx, env: {T: '${vault:t}'}}\n",
    )
    path = workspace.home / "desktop.json"
    workspace.write("targets.yaml", f"targets:\n  d: {{kind: claude-desktop, path: {path}}}\n")
    engine = Engine(workspace.desired, workspace.state_dir, home=workspace.home, environ={})
    state = engine.load()
    assert engine.run(PassOptions(), state).exit_code == 0
    value.write_text("rotated-value-2\n")
    assert engine.run(PassOptions(), state).exit_code == 0
    assert json.loads(path.read_text())["mcpServers"]["s"]["env"]["T"] == "rotated-value-2"
