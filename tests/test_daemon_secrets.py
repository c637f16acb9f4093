"""The daemon resolves secrets afresh on every pass (docs/RELIABILITY.md): it keeps its loaded
desired state between passes, so a resolver cached with that state would never see a secret
rotated at its source, nor retry one that failed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from reconciler.app.watch import Daemon, WatchOptions
from reconciler.engine import Engine
from tests.conftest import Workspace

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(60)]

CANARY_OLD = "canary-old-3f9a1c77e2"
CANARY_NEW = "canary-new-8b2d44a0c1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vault(workspace: Workspace) -> Path:
    """A resolver command reading the secret's current value from a file (the vault)."""
    store = workspace.root / "vault.txt"
    script = workspace.root / "vault.py"
    script.write_text(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(store)!r})\n"
        "sys.exit(1) if not p.exists() else print(p.read_text().strip())\n"
    )
    workspace.write(
        "a.yaml",
        f"""
        secrets:
          vault:
            command: [{sys.executable!r}, {str(script)!r}, "{{name}}"]
        servers:
          api:
            command: npx
            args: [-y, api]
            env: {{API_TOKEN: "${{vault:api}}"}}
        targets:
          desktop: {{kind: claude-desktop, servers: [api]}}
        """,
    )
    return store


def token(workspace: Workspace) -> str:
    data = json.loads(workspace.desktop_config.read_text())
    value: str = data["mcpServers"]["api"]["env"]["API_TOKEN"]
    return value


def test_a_secret_rotated_at_its_resolver_reaches_the_client_on_the_next_resync(
    workspace: Workspace, vault: Path
) -> None:
    vault.write_text(CANARY_OLD)
    clock = Clock()
    daemon = Daemon(
        Engine(workspace.desired, workspace.state_dir), WatchOptions(interval=60.0), clock=clock
    )
    assert daemon.iteration(start=True) is not None
    assert token(workspace) == CANARY_OLD

    vault.write_text(CANARY_NEW)  # rotated; nothing in desired/ changed
    clock.now = daemon.deadline()
    record = daemon.iteration()

    assert record is not None and record.trigger == "resync" and not record.errors
    assert token(workspace) == CANARY_NEW
    for path in workspace.state_dir.rglob("*"):  # sealed: the state never holds a value
        if path.is_file():
            data = path.read_bytes()
            assert CANARY_OLD.encode() not in data and CANARY_NEW.encode() not in data


def test_a_resolver_failing_in_one_pass_is_reported_and_retried_on_the_next(
    workspace: Workspace, vault: Path
) -> None:
    clock = Clock()
    daemon = Daemon(
        Engine(workspace.desired, workspace.state_dir), WatchOptions(interval=60.0), clock=clock
    )
    failed = daemon.iteration(start=True)  # the vault is down: no value
    assert failed is not None and set(failed.errors) == {"desktop"}
    assert not workspace.desktop_config.exists()

    vault.write_text(CANARY_NEW)  # the vault is back
    clock.now = max(daemon.deadline(), clock.now + 1.0)
    record = daemon.iteration()

    assert record is not None and not record.errors
    assert token(workspace) == CANARY_NEW
