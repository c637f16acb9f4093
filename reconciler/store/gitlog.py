"""Commits and history of the desired repository, through GitPython (PYTHON.md 1.4).

Rules kept here so no caller has to remember them:

- one ``Repo`` per command or pass, opened by ``open_repository`` and always closed (GitPython
  keeps ``git cat-file`` children alive otherwise);
- a commit contains exactly the files the command wrote: they are staged with a real
  ``git add -- PATH...`` (honours ``.gitattributes``) and committed with ``git commit --only
  -- PATH...``, so neither an unrelated modified file nor someone else's staged work is swept
  in, and it works in a repository that has no commit yet;
- the message is built here: subject, blank line, reason prose, blank line, trailer block
  (DESIGN section 8), so ``git interpret-trailers --parse`` reads the trailers back;
- identities are explicit ``Actor``s: a CI machine has no ``user.name``;
- ``index.lock`` held by someone else's git is retried with a short backoff;
- hooks are skipped and no signing is attempted: these are unattended bot commits.
"""

from __future__ import annotations

import contextlib
import getpass
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.errors import RepositoryError

if TYPE_CHECKING:
    from git import Repo

BOT_NAME = "mcp-reconciler"
BOT_EMAIL = "reconciler@localhost"
LOCK_ATTEMPTS = 8
LOCK_BACKOFF = 0.05  # seconds, doubled per attempt (about 6 s in all)
TRAILER_ORDER = ("Action", "Target", "Server", "Tools", "Paths", "Expires", "Record")
_TRAILER_LINE = re.compile(r"^[A-Za-z0-9-]+:")


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


BOT = Identity(BOT_NAME, BOT_EMAIL)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    date: str  # ISO 8601
    subject: str
    trailers: tuple[tuple[str, str], ...] = ()

    @property
    def short(self) -> str:
        return self.sha[:10]

    def trailer(self, key: str) -> str | None:
        for k, v in self.trailers:
            if k.lower() == key.lower():
                return v
        return None


def user_at_host() -> str:
    """``created_by`` of a record: the local user and machine (``ana@laptop``)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname() or 'localhost'}"


def build_message(
    subject: str, body: str, trailers: Sequence[tuple[str, str]], *, redact: Callable[[str], str]
) -> str:
    """Subject, blank, prose, blank, trailers; no prose line can pass for a trailer."""
    subject = " ".join(redact(subject).split())
    prose: list[str] = []
    for line in redact(body).strip().splitlines():
        # A ``Key: value`` line in the prose could be parsed as a trailer by git when the
        # prose is the last paragraph; indenting it keeps it prose.
        prose.append(f"  {line}" if _TRAILER_LINE.match(line) else line.rstrip())
    order = {k: i for i, k in enumerate(TRAILER_ORDER)}
    block = sorted(trailers, key=lambda kv: order.get(kv[0], len(order)))
    lines = [f"Reconciler-{k}: {' '.join(redact(v).split())}" for k, v in block if v != ""]
    parts = [subject]
    if prose:
        parts.append("\n".join(prose))
    parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


class Repository:
    """One open repository; use through ``open_repository`` so that it is closed."""

    def __init__(self, repo: Repo, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.repo = repo
        self.root = Path(repo.working_tree_dir or ".").resolve()
        self._sleep = sleep

    # -- reading -----------------------------------------------------------------------

    def relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError as e:
            raise RepositoryError(f"{path} is outside the repository at {self.root}") from e

    def has_commits(self) -> bool:
        return bool(self.repo.head.is_valid())

    def identity(self) -> Identity:
        """The configured user, for commits a person asked for; the bot identity otherwise."""
        try:
            reader = self.repo.config_reader()
            name = str(reader.get_value("user", "name", ""))
            email = str(reader.get_value("user", "email", ""))
        except Exception:  # a broken config never blocks a commit: fall back to the bot
            return BOT
        if name and email:
            return Identity(name, email)
        return BOT

    def is_modified(self, paths: Sequence[Path]) -> list[str]:
        """Which of ``paths`` have uncommitted changes (staged, unstaged or untracked)."""
        rels = [self.relative(p) for p in paths]
        if not rels:
            return []
        out = self._git("status", "--porcelain", "--untracked-files=all", "--", *rels)
        return [line[3:] for line in out.splitlines() if line.strip()]

    def last_commits(self, folder: Path) -> dict[str, CommitInfo]:
        """The newest commit touching each file under ``folder``, keyed by relative path."""
        if not self.has_commits():
            return {}
        rel = self.relative(folder)
        sep, start = "\x1f", "\x1e"
        fmt = start + sep.join(("%H", "%an <%ae>", "%aI", "%s", "%(trailers:only,unfold)", ""))
        out = self._git("log", f"--format={fmt}", "--name-only", "--no-renames", "--", rel)
        found: dict[str, CommitInfo] = {}
        for chunk in out.split(start):
            fields = chunk.split(sep)
            if len(fields) != 6:
                continue
            sha, author, when, subject, trailers, files = fields
            info = CommitInfo(sha, author, when, subject, parse_trailers(trailers))
            for name in files.splitlines():
                if name.strip() and name.strip() not in found:
                    found[name.strip()] = info
        return found

    def message(self, sha: str) -> str:
        return self._git("log", "-1", "--format=%B", sha)

    # -- writing -----------------------------------------------------------------------

    def commit(
        self,
        paths: Sequence[Path],
        message: str,
        *,
        author: Identity = BOT,
        committer: Identity = BOT,
    ) -> str | None:
        """Commit exactly ``paths`` (written or deleted); None when none of them changed."""
        rels = sorted({self.relative(p) for p in paths})
        if not rels:
            return None
        present = [r for r in rels if (self.root / r).exists()]
        gone = [r for r in rels if r not in present]
        if present:
            self._git("add", "--", *present)
        if gone:
            self._git("rm", "--cached", "--quiet", "--ignore-unmatch", "--", *gone)
        tracked = self._git("ls-files", "--cached", "--", *rels).splitlines()
        if self.has_commits():
            before = self._git("ls-tree", "-r", "--name-only", "HEAD", "--", *rels).splitlines()
        else:
            before = []
        only = sorted(set(tracked) | set(before))
        if not only:
            return None
        if self.has_commits():
            staged = self._git("diff", "--cached", "--name-only", "HEAD", "--", *only)
            if not staged.strip():
                return None
        env = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
        }
        self._git(
            "commit",
            "--only",
            "--no-verify",
            "--no-gpg-sign",
            "--cleanup=whitespace",
            "--quiet",
            "-m",
            message,
            "--",
            *only,
            env=env,
        )
        return self._git("rev-parse", "HEAD").strip()

    # -- plumbing ----------------------------------------------------------------------

    def _git(self, *args: str, env: dict[str, str] | None = None) -> str:
        from git.exc import GitCommandError

        delay = LOCK_BACKOFF
        for attempt in range(LOCK_ATTEMPTS):
            try:
                with self.repo.git.custom_environment(**(env or {})):
                    result: Any = self.repo.git.execute(
                        ["git", *args], with_extended_output=False, strip_newline_in_stdout=False
                    )
                return str(result)
            except GitCommandError as e:
                stderr = str(e.stderr or "")
                if "index.lock" in stderr and attempt + 1 < LOCK_ATTEMPTS:
                    self._sleep(delay)
                    delay *= 2
                    continue
                if "index.lock" in stderr:
                    raise RepositoryError(
                        f"git index is locked by another git process ({self.root}/.git/index.lock);"
                        " try again when it finishes"
                    ) from e
                detail = " ".join(stderr.split()) or f"exit status {e.status}"
                raise RepositoryError(f"git {args[0]} failed: {detail}") from e
        raise RepositoryError("git failed")  # not reached


def parse_trailers(text: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out.append((key.strip(), value.strip()))
    return tuple(out)


def require_repository(desired_dir: Path) -> Path:
    """The repository root; RepositoryError (exit 2) before anything is changed."""
    return find_root(desired_dir if desired_dir.exists() else desired_dir.parent)


def find_root(path: Path) -> Path:
    """The working tree holding ``path``; RepositoryError (exit 2) outside any repository."""
    from git import Repo
    from git.exc import InvalidGitRepositoryError, NoSuchPathError

    start = path if path.is_dir() else path.parent
    try:
        with Repo(start, search_parent_directories=True) as repo:
            if repo.bare or repo.working_tree_dir is None:
                raise RepositoryError(f"{start} is in a bare git repository: nothing to commit to")
            return Path(repo.working_tree_dir).resolve()
    except (InvalidGitRepositoryError, NoSuchPathError) as e:
        raise RepositoryError(
            f"{start} is not inside a git repository: divergence records, adoptions and imports "
            "are git commits (run `git init` in the desired repository first)"
        ) from e


@contextlib.contextmanager
def open_repository(
    path: Path, *, sleep: Callable[[float], None] = time.sleep
) -> Iterator[Repository]:
    """The repository holding ``path``, closed when the block ends."""
    from git import Repo

    root = find_root(path)
    repo = Repo(root)
    try:
        yield Repository(repo, sleep=sleep)
    finally:
        repo.close()
