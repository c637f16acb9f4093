"""What every target offers the engine: observe to essences, apply a list of writes.

A target hides its medium (a JSON file, a TOML file, an HTTP API, a folder) behind two calls.
``observe`` returns essences keyed by entry name plus an opaque snapshot; ``apply`` gets that
snapshot back, so a file target can refuse to write over a change it has not seen
(compare-and-swap) and an API target can restore what it replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from reconciler.core.enforce import Governed
from reconciler.core.essence import Capability, Essence
from reconciler.core.plan import Action
from reconciler.core.tools import ToolClass
from reconciler.secrets import REDACTOR, Redactor


class Entries(Enum):
    """What a target's entries are, which picks the engine's planner for it."""

    SERVERS = "servers"  # server entries, compared as essences (clients, MCPJungle)
    FILES = "files"  # files of a tree, compared by content and mode (mirror copies)


@dataclass(frozen=True)
class Observation:
    """A target's entries as essences, and what the target needs to apply safely later."""

    entries: Mapping[str, Essence]
    snapshot: Any = None
    # Fields this observation could not see (e.g. MCPJungle without admin rights).
    blind_fields: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    # False when the target's file does not exist yet (a client that was never set up).
    exists: bool = True
    # Per entry, each tool's enabled flag (kinds with a tool switch; empty elsewhere).
    tools: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    # The permission bits of the target's file (None: no file, or a target without one).
    mode: int | None = None
    # Per entry, each listed tool's class from the target's own annotations (same kinds).
    tool_classes: Mapping[str, Mapping[str, ToolClass]] = field(default_factory=dict)
    # Every rule of the client's own per-tool control, in the family's spelling
    # (``tool_rule``), the user's included (kinds with tool rules; empty elsewhere).
    tool_rules: frozenset[str] = frozenset()
    # What the control's file looked like, when it is not the entries' file (Claude Code).
    tool_snapshot: Any = None


@dataclass(frozen=True)
class Write:
    """Make ``entry`` hold ``essence`` (rendered, secrets resolved), or remove it if None."""

    entry: str
    essence: Essence | None
    action: Action
    sensitive: bool = False  # the essence holds resolved secret values
    tools: Governed | None = None  # the server's governed tools (kinds with a tool switch)
    # tool-disable / tool-enable on a kind with tool rules: the tools to deny or release.
    tool_names: tuple[str, ...] = ()


class PassCache:
    """Values computed once per pass and shared by its targets (a mirror's source scan).

    It lives on the pass's ``Context``, so it is gone with the pass: nothing is kept in a
    module-level cache keyed by object ids.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[Hashable, tuple[threading.Lock, list[Any]]] = {}

    def slot(self, key: Hashable) -> tuple[threading.Lock, list[Any]]:
        """The lock and the (empty until filled) holder of the value for ``key``."""
        with self._lock:
            return self._slots.setdefault(key, (threading.Lock(), []))


@dataclass(frozen=True)
class Context:
    """Where a target lives (home directory, platform, folders it resolves paths from), and
    how it treats secrets in this pass (``resolve``, ``redactor``)."""

    home: Path
    platform: str  # sys.platform spelling: linux, darwin, win32
    root: Path  # the desired repository's root: relative paths start here
    lock_dir: Path | None  # None in a dry run: nothing may be created
    environ: Mapping[str, str] = field(default_factory=dict)
    # Resolves secret references in a target option (an mcpjungle ``token:``); the value is
    # registered with the redactor. None: references are left as written.
    resolve: Callable[[str], str] | None = None
    # The state directory, for caches a target keeps between passes (mirror hashes); they
    # are written only when ``lock_dir`` is set (a non-dry run). None: no cache.
    state_dir: Path | None = None
    cache: PassCache = field(default_factory=PassCache, compare=False)
    # The pass's redactor: a target registers every secret value it sees or sends with it,
    # and scrubs with it the texts it takes from elsewhere (an API's answers). The default
    # is the process-wide one that logs and the standard streams go through.
    redactor: Redactor = REDACTOR


class Target(Protocol):
    name: str
    kind: str  # the name a target's ``kind:`` gives in desired state
    capability: Capability
    entry_kind: Entries
    scopes: tuple[str, ...]  # the first is the default; () for one file without scopes
    tool_control: str | None  # where the client turns single tools off (None: nowhere)

    def describe(self) -> str:
        """Where the target is, for people: a path or a URL."""
        ...

    def observe(self) -> Observation: ...

    def apply(self, observation: Observation, writes: Sequence[Write]) -> None: ...

    def watch_paths(self) -> tuple[Path, ...]:
        """Files whose change should trigger a pass (none for API targets)."""
        ...

    def close(self) -> None: ...


class ToolRules(Protocol):
    """A target whose client has a per-tool control in its files (``Capability.tool_rules``)."""

    capability: Capability

    def tool_rule(self, entry: str, tool: str) -> str:
        """The control's rule denying ``tool`` of the server at ``entry``."""
        ...

    def tools_path(self) -> Path | None:
        """The control's file when it is not the entries' file (Claude Code's settings)."""
        ...
