"""The validated desired state kept in the state directory between runs.

Why: validating a large desired/ was a quarter of a no-op pass (issue 14), and desired/
rarely changes between passes. The cache may only ever stand in for a fresh load: these
tests hold that an applying pass keeps it and the next run loads from it; that any change
under desired/ misses it; that a dry run never writes it; that a file not signed with the
state directory's key is never unpickled; that an invalid desired/ is never served from it;
and that it holds no resolved secret.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from reconciler.core.errors import DesiredStateError
from reconciler.engine import Engine
from reconciler.store.state import DESIRED_CACHE_FILE, KEY_FILE
from tests.conftest import Workspace

CANARY = "canary-7f3a9c1e5b2d4f6a8c0e"


def _declare(workspace: Workspace, *, server: str = "time") -> None:
    workspace.write(
        "servers.yaml",
        f"""
        servers:
          {server}:
            command: uvx
            args: [mcp-server-time]
            env: {{TOKEN: "${{env:CANARY_TOKEN}}"}}
        """,
    )
    workspace.write(
        "targets.yaml",
        f"""
        targets:
          desktop:
            kind: claude-desktop
            path: {workspace.desktop_config}
        """,
    )


def _engine(workspace: Workspace) -> Engine:
    return Engine(
        workspace.desired,
        workspace.state_dir,
        home=workspace.home,
        environ={"CANARY_TOKEN": CANARY},
    )


@pytest.fixture
def kept(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace after one applying pass: the cache is kept."""
    monkeypatch.setenv("CANARY_TOKEN", CANARY)
    _declare(workspace)
    assert workspace.run().exit_code == 0
    assert (workspace.state_dir / DESIRED_CACHE_FILE).is_file()
    return workspace


def test_an_applying_pass_keeps_it_and_the_next_run_loads_from_it(kept: Workspace) -> None:
    state = _engine(kept).load()
    assert state.cached
    assert list(state.servers) == ["time"] and list(state.targets) == ["desktop"]
    assert list(state.placements("desktop")) == ["time"]
    assert kept.run("--dry-run").exit_code == 0


@pytest.mark.parametrize("change", ["edit", "add", "remove"])
def test_any_change_under_desired_misses_it(kept: Workspace, change: str) -> None:
    if change == "edit":
        _declare(kept, server="clock")
    elif change == "add":
        kept.write("more/extra.yaml", "servers:\n  fetch: {command: uvx, args: [mcp-fetch]}\n")
    else:
        (kept.desired / "servers.yaml").unlink()
    state = _engine(kept).load()
    assert not state.cached
    expected = {"edit": ["clock"], "add": ["time", "fetch"], "remove": []}[change]
    assert list(state.servers) == expected


def test_an_invalid_desired_state_is_never_served_from_it(kept: Workspace) -> None:
    kept.write("servers.yaml", "servers:\n  time: {command: 42, bogus: true}\n")
    with pytest.raises(DesiredStateError):
        _engine(kept).load()


def test_a_dry_run_and_a_failing_pass_never_write_it(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_TOKEN", CANARY)
    _declare(workspace, server="first")
    workspace.state_dir.mkdir()
    (workspace.state_dir / KEY_FILE).write_bytes(b"k" * 32)
    assert workspace.run("--dry-run").exit_code == 1  # would add the server
    assert not (workspace.state_dir / DESIRED_CACHE_FILE).exists()
    workspace.desktop_config.parent.mkdir(parents=True)
    workspace.desktop_config.write_text("{not json")  # the target fails: exit 3
    assert workspace.run().exit_code == 3
    assert not (workspace.state_dir / DESIRED_CACHE_FILE).exists()


class _Planted:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(Path.cwd() / "unpickled"),))


def test_a_file_not_signed_with_the_state_key_is_never_unpickled(kept: Workspace) -> None:
    path = kept.state_dir / DESIRED_CACHE_FILE
    data = path.read_bytes()
    signature, digest = data[:32], data[32:64]
    forged = pickle.dumps(_Planted())
    for tampered in (
        signature + digest + forged,  # the right digest, another payload
        b"\0" * 32 + digest + forged,  # a made-up signature
        data[:-1] + bytes([data[-1] ^ 1]),  # one bit of the real file flipped
    ):
        path.write_bytes(tampered)
        state = _engine(kept).load()
        assert not state.cached and list(state.servers) == ["time"]
        assert not (Path.cwd() / "unpickled").exists()


def test_it_holds_references_never_resolved_secrets(kept: Workspace) -> None:
    data = (kept.state_dir / DESIRED_CACHE_FILE).read_bytes()
    assert CANARY.encode() not in data
    assert b"${env:CANARY_TOKEN}" in data
    assert (kept.state_dir / DESIRED_CACHE_FILE).stat().st_mode & 0o077 == 0
