"""What a loaded desired state derives once and hands out: placements and server essences.

Why: every target of every pass asks a state for its placements (globs expanded over every
server name) and renders from each server's normalized essence, so both are computed once
per loaded state (issue 14). These tests hold that the shared results are the ones computed
fresh, that a caller changing its copy of the placements changes nothing for the next one,
and that a state made from another (mirrors, adopt) does not inherit the first one's.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

from reconciler.core.essence import from_server
from reconciler.engine import load_desired
from reconciler.store.desired import DesiredState


def _state(tmp_path: Path) -> DesiredState:
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "servers.yaml").write_text(
        textwrap.dedent("""
        servers:
          time: {command: uvx, args: [mcp-server-time], env: {TZ: UTC}}
          media: {url: "HTTPS://Example.COM:443/mcp"}
          mail: {command: npx, args: [mail-mcp]}
        """).lstrip()
    )
    (desired / "targets.yaml").write_text(
        textwrap.dedent(f"""
        targets:
          desktop:
            kind: claude-desktop
            path: {tmp_path / "claude.json"}
            servers: ["*", "!media"]
        """).lstrip()
    )
    return load_desired(desired)


def test_placements_are_expanded_once_and_every_caller_gets_its_own_copy(
    tmp_path: Path,
) -> None:
    state = _state(tmp_path)
    first = state.placements("desktop")
    assert list(first) == ["time", "mail"]
    first.pop("time")
    assert list(state.placements("desktop")) == ["time", "mail"]


def test_a_state_made_from_another_expands_its_own_placements(tmp_path: Path) -> None:
    state = _state(tmp_path)
    assert list(state.placements("desktop")) == ["time", "mail"]
    fewer = replace(state, servers={"mail": state.servers["mail"]})
    assert list(fewer.placements("desktop")) == ["mail"]
    assert list(fewer.essences) == ["mail"]


def test_the_shared_essences_are_the_normalized_servers(tmp_path: Path) -> None:
    state = _state(tmp_path)
    assert state.essences == {name: from_server(s) for name, s in state.servers.items()}
    assert state.essences["media"]["url"] == "https://example.com/mcp"
    assert state.essences is state.essences  # computed once
