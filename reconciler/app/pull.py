"""``watch --pull``: follow the desired repository's upstream by fetch and fast-forward only.

The fleet model: many machines run the daemon against clones of one repository, and a push
to it reaches all of them at their next resync. Safety comes first: only a fast-forward is
ever made, so no merge commit appears and no local commit is lost; a branch that has both
local and upstream commits is reported as diverged and left alone for a person.

git runs as a short-lived subprocess per step (no GitPython ``Repo`` kept in the daemon, so
no ``git cat-file`` children outlive a pull), without prompts and with a timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

TIMEOUT = 60.0


class Outcome(StrEnum):
    SKIPPED = "skipped"  # not a repository, no remote or no upstream, detached HEAD
    UP_TO_DATE = "up-to-date"
    AHEAD = "ahead"  # local commits not on the upstream: kept, nothing to do
    FAST_FORWARDED = "fast-forwarded"
    DIVERGED = "diverged"  # local and upstream commits: reported, never merged
    FAILED = "failed"  # fetch failed, or the fast-forward was refused (e.g. local edits)


@dataclass(frozen=True)
class PullResult:
    outcome: Outcome
    message: str
    before: str | None = None
    after: str | None = None

    @property
    def changed(self) -> bool:
        return self.outcome is Outcome.FAST_FORWARDED and self.before != self.after


_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def _scrub(text: str) -> str:
    """git quotes remote URLs in its errors; a token in one must not reach the log."""
    return _URL_CREDENTIALS.sub(r"\1‹redacted›@", text)


class _GitFailed(Exception):
    def __init__(self, args: list[str], detail: str) -> None:
        super().__init__(_scrub(f"git {' '.join(args)}: {detail}"))


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as e:
        raise _GitFailed(list(args), "git is not installed") from e
    except subprocess.TimeoutExpired as e:
        raise _GitFailed(list(args), f"timed out after {TIMEOUT:g}s") from e
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise _GitFailed(list(args), detail)
    return done.stdout.strip()


def pull(desired_dir: Path) -> PullResult:
    """Fetch the current branch's upstream and fast-forward to it when that is safe."""
    cwd = desired_dir if desired_dir.is_dir() else desired_dir.parent
    try:
        _git(cwd, "rev-parse", "--show-toplevel")
    except _GitFailed:
        return PullResult(Outcome.SKIPPED, "the desired directory is not in a git repository")
    try:
        branch = _git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    except _GitFailed:
        return PullResult(Outcome.SKIPPED, "HEAD is detached; nothing to follow")
    try:
        upstream = _git(cwd, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}")
    except _GitFailed:
        remotes = _git(cwd, "remote")
        if not remotes:
            return PullResult(Outcome.SKIPPED, "the repository has no remote")
        return PullResult(Outcome.SKIPPED, f"branch {branch} has no upstream branch")
    try:
        _git(cwd, "fetch", "--quiet", "--no-tags")
        before = _git(cwd, "rev-parse", "HEAD")
        counts = _git(cwd, "rev-list", "--left-right", "--count", "HEAD...@{upstream}")
        ahead, behind = (int(n) for n in counts.split())
    except _GitFailed as e:
        return PullResult(Outcome.FAILED, str(e))
    if behind == 0:
        if ahead:
            return PullResult(
                Outcome.AHEAD,
                f"{branch} is {ahead} commit(s) ahead of {upstream}; local commits kept",
                before,
                before,
            )
        return PullResult(Outcome.UP_TO_DATE, f"{branch} is up to date with {upstream}", before)
    if ahead:
        return PullResult(
            Outcome.DIVERGED,
            f"{branch} and {upstream} have diverged ({ahead} local, {behind} upstream "
            "commit(s)); not merged: reconcile the branch by hand",
            before,
            before,
        )
    try:
        _git(cwd, "merge", "--ff-only", "--quiet", "@{upstream}")
        after = _git(cwd, "rev-parse", "HEAD")
    except _GitFailed as e:
        return PullResult(Outcome.FAILED, f"fast-forward refused: {e}", before, before)
    return PullResult(
        Outcome.FAST_FORWARDED,
        f"{branch} fast-forwarded {before[:10]}..{after[:10]} ({behind} commit(s))",
        before,
        after,
    )
