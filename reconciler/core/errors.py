"""The reconciler's own error tree.

Library exceptions (ruamel, json, OSError, httpx, GitPython) never cross a module boundary
bare: each is wrapped, with ``raise ... from e``, into one of these, so that the engine can
decide what a failure means (stop everything, degrade one target, retry the pass) and the
command line can map it to an exit code without knowing any library.

    ReconcilerError
    ├── DesiredStateError      desired/ is invalid: exit 2, nothing written
    ├── UsageError             the invocation is wrong (unknown target, bad flag value): exit 2
    ├── RepositoryError        a command that commits runs outside a usable git repository: exit 2
    └── TargetError            one target failed in a phase; the other targets still run
        ├── TargetFormatError  the target's file cannot be parsed; it is never written
        ├── ConcurrentChange   the target changed between observe and apply; retry the pass
        └── PartialApply       an API target made some changes before others failed

Messages are already redacted: no exception text may carry a secret value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of every error the reconciler raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One located problem in desired state: ``file:line:col: message (hint)``."""

    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class DesiredStateError(ReconcilerError):
    """Desired state failed to load or validate. Carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(ReconcilerError):
    """The command line asks for something that cannot be done (an unknown target, say)."""


class RepositoryError(ReconcilerError):
    """A command that must commit cannot: no git repository, or git refused."""


class TargetError(ReconcilerError):
    """A target failed to observe, plan, apply or verify.

    ``recoverable`` tells the daemon whether retrying later may help (a network error) or
    whether a person must act (a corrupt file).
    """

    recoverable: bool = True

    def __init__(self, message: str, *, recoverable: bool | None = None) -> None:
        super().__init__(message)
        if recoverable is not None:
            self.recoverable = recoverable


class TargetFormatError(TargetError):
    """The target's file exists but cannot be parsed; nothing is written to it."""

    recoverable = False


class ConcurrentChange(TargetError):
    """The target's file changed between observe and apply (compare-and-swap refused)."""


class PartialApply(TargetError):
    """An API target (MCPJungle) applies entry by entry and some entries failed; ``done``
    names the entries changed as planned, so that what this tool created stays its own, and
    ``failed`` maps each entry that failed to its error, so that the report can weigh each
    failure by the requiredness of its server there. ``flags_left`` names the entries of
    ``done`` whose tool flags are still to set: registered as planned, their tool changes
    not carried out."""

    def __init__(
        self,
        message: str,
        done: frozenset[str],
        *,
        recoverable: bool | None = None,
        failed: Mapping[str, str] | None = None,
        flags_left: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(message, recoverable=recoverable)
        self.done = done
        self.failed: Mapping[str, str] = dict(failed or {})
        self.flags_left = flags_left
