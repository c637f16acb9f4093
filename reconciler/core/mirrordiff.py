"""Mirrors, the pure part: which files belong to a tree, and how two trees differ, per file.

A mirror keeps copies of a source tree in parity (DESIGN section 3). Everything here is plain
data in, plain data out, so the rules can be tested without a file system:

- **Selection**: ``include``/``exclude`` globs over paths relative to the tree's root, and
  the folders that are always skipped (``.git``, ``node_modules``, ``__pycache__``).
- **Comparison**: per file, ``missing`` in the copy, ``extra`` in the copy, ``changed``
  (content hash, or link target, or kind) and ``mode`` (permission bits only).
- **Addresses**: a file is addressed by a JSON Pointer built from its relative path
  (``src/index.ts`` is ``/src/index.ts``), the same addresses divergence records use; the
  essence of a tree is the nested mapping those pointers resolve in.
- **Display**: a unified diff for text files, size and hash for binary ones.

Glob rules (gitignore-like, documented in the README): ``*`` and ``?`` never cross a ``/``;
``**/`` matches any number of folders (including none) and a trailing ``**`` everything; a
pattern without a ``/`` matches a file or folder name at any depth (``*.log``, ``dist``);
a pattern with a ``/`` is anchored at the tree's root (``src/**/*.ts``); a pattern that
matches a folder matches everything under it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

from reconciler.core.compare import FieldChange, Origin, pointer_escape, pointer_parts

ALWAYS_SKIPPED = frozenset({".git", "node_modules", "__pycache__"})
DIFF_LINES_PER_FILE = 200  # a longer unified diff is cut, with a count of what was left out
DIFF_MAX_BYTES = 1 << 20  # larger files are described by size and hash only
SHORT_HASH = 12

# What the secrets layer's detector answers: the kind of secret a text looks like, or None.
Detector = Callable[[str, str | None], str | None]


# -- selection -----------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _compile(pattern: str) -> tuple[re.Pattern[str], bool]:
    """The regex of one glob, and whether it is anchored (contains a ``/``)."""
    text = pattern.strip()
    anchored = "/" in text.rstrip("/")
    text = text.strip("/")
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if text.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = text.find("]", i + 2 if text.startswith(("[!", "[^"), i) else i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = text[i + 1 : end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\")
                out.append(f"[{'^/' if negate else ''}{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL), anchored


def glob_matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` selects ``path`` (relative, ``/``-separated) or a folder above it."""
    regex, anchored = _compile(pattern)
    parts = path.split("/")
    if anchored:
        return any(regex.fullmatch("/".join(parts[:k])) for k in range(1, len(parts) + 1))
    return any(regex.fullmatch(part) for part in parts)


@dataclass(frozen=True)
class Selection:
    """Which paths of a tree take part in a mirror."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def skips_folder(self, path: str) -> bool:
        """A folder not worth walking into: always skipped, or excluded as a whole."""
        name = path.rsplit("/", 1)[-1]
        return name in ALWAYS_SKIPPED or any(glob_matches(p, path) for p in self.exclude)

    def selects(self, path: str) -> bool:
        """Whether a file (or link) at ``path`` is part of the mirror."""
        if any(part in ALWAYS_SKIPPED for part in path.split("/")):
            return False
        if self.include and not any(glob_matches(p, path) for p in self.include):
            return False
        return not any(glob_matches(p, path) for p in self.exclude)


# -- trees ---------------------------------------------------------------------------------


class FileState(NamedTuple):
    """One entry of a tree: a regular file (hash, size, mode) or a symlink (its target text).

    A tuple: tens of thousands are built and compared per pass.
    """

    sha256: str = ""
    size: int = 0
    mode: int = 0  # permission bits; 0 for a link
    link: str | None = None  # the link's target, as written; never followed

    @property
    def is_link(self) -> bool:
        return self.link is not None

    def same_content(self, other: FileState) -> bool:
        if self.is_link or other.is_link:
            return self.link == other.link
        return self.sha256 == other.sha256 and self.size == other.size

    def essence(self) -> dict[str, Any]:
        """What divergence records fingerprint at this file's pointer."""
        if self.link is not None:
            return {"link": self.link}
        return {"sha256": self.sha256, "size": self.size, "mode": f"{self.mode:04o}"}

    def describe(self) -> str:
        """Short, for reports: ``134 B, mode 0644, sha256:1a2b3c4d5e6f``."""
        if self.link is not None:
            return f"symlink -> {self.link}"
        return f"{self.size} B, mode {self.mode:04o}, sha256:{self.sha256[:SHORT_HASH]}"


Tree = Mapping[str, FileState]  # relative path -> entry


def pointer(path: str) -> str:
    """The JSON Pointer of a relative path: ``src/index.ts`` -> ``/src/index.ts``."""
    return "/" + "/".join(pointer_escape(part) for part in path.split("/"))


def path_of(pointer_text: str) -> str:
    """The relative path a pointer addresses (``""`` for the whole tree)."""
    return "/".join(pointer_parts(pointer_text))


def nested(tree: Tree) -> dict[str, Any]:
    """The tree as the nested mapping JSON Pointers resolve in (folders are mappings)."""
    root: dict[str, Any] = {}
    for path in sorted(tree):
        node = root
        *folders, name = path.split("/")
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = tree[path].essence()
    return root


# -- comparison ----------------------------------------------------------------------------


class Drift(StrEnum):
    MISSING = "missing"  # in the source, not in the copy
    EXTRA = "extra"  # in the copy, not in the source
    CHANGED = "changed"  # content, link target or kind differ
    MODE = "mode"  # same content, different permission bits


@dataclass(frozen=True)
class FileDiff:
    """How one path differs between the source and a copy."""

    path: str
    drift: Drift
    source: FileState | None
    copy: FileState | None

    @property
    def pointer(self) -> str:
        return pointer(self.path)

    def summary(self) -> str:
        """One line, for people."""
        if self.drift is Drift.MISSING:
            return "missing in the copy"
        if self.drift is Drift.EXTRA:
            return "extra in the copy"
        assert self.source is not None and self.copy is not None
        if self.drift is Drift.MODE:
            return f"mode {self.copy.mode:04o} -> {self.source.mode:04o}"
        if self.source.is_link != self.copy.is_link:
            kinds = ("symlink" if s.is_link else "file" for s in (self.copy, self.source))
            return "changed: {} -> {}".format(*kinds)
        extra = ""
        if not self.source.is_link and self.copy.mode != self.source.mode:
            extra = f", mode {self.copy.mode:04o} -> {self.source.mode:04o}"
        return f"changed{extra}"


def compare(source: Tree, copy: Tree) -> list[FileDiff]:
    """Every path whose entry differs between ``source`` and ``copy``, sorted by path."""
    diffs: list[FileDiff] = []
    for path, want in source.items():
        have = copy.get(path)
        if have == want:
            continue
        if have is None:
            diffs.append(FileDiff(path, Drift.MISSING, want, None))
        elif not want.same_content(have):
            diffs.append(FileDiff(path, Drift.CHANGED, want, have))
        elif not want.is_link and want.mode != have.mode:
            diffs.append(FileDiff(path, Drift.MODE, want, have))
    diffs += [FileDiff(p, Drift.EXTRA, None, copy[p]) for p in copy if p not in source]
    diffs.sort(key=lambda d: d.path)
    return diffs


# -- origins -------------------------------------------------------------------------------


def token(state: FileState) -> str:
    """A file's identity for last-synced records: content and mode, or link target."""
    if state.link is not None:
        return f"link:{state.link}"
    return f"{state.sha256[:20]}:{state.mode:o}"


def file_origin(diff: FileDiff, synced: Mapping[str, str]) -> Origin:
    """Who moved, per file: the source (desired), the copy (live), both, or never synced."""
    last = synced.get(diff.path)
    if last is None:
        return Origin.NEW
    source = token(diff.source) if diff.source is not None else None
    copy = token(diff.copy) if diff.copy is not None else None
    if copy == last:
        return Origin.DESIRED
    if source == last:
        return Origin.LIVE
    return Origin.CONFLICT


def overall_origin(origins: Iterable[Origin]) -> Origin:
    found = set(origins)
    if len(found) == 1:
        return found.pop()
    for origin in (Origin.CONFLICT, Origin.LIVE, Origin.DESIRED):
        if origin in found:
            return origin
    return Origin.NEW


def field_change(diff: FileDiff) -> FieldChange:
    """One file's drift as the report shows it: the copy's state -> the source's."""
    return FieldChange(
        diff.pointer,
        diff.copy.describe() if diff.copy is not None else None,
        diff.source.describe() if diff.source is not None else None,
    )


# -- display -------------------------------------------------------------------------------


def is_text(data: bytes) -> bool:
    """UTF-8 without NUL bytes: shown as a unified diff."""
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def unified_diff(
    path: str,
    live: bytes,
    desired: bytes,
    *,
    detect: Detector,
    limit: int = DIFF_LINES_PER_FILE,
) -> list[str] | None:
    """A unified diff from the copy's bytes to the source's, or None for binary content.

    Lines that look like a secret to ``detect`` (the secrets layer's detector: a token
    shape, or a random value under a secret-like key) are replaced by a placeholder: no
    secret value reaches any output.
    """
    if not (is_text(live) and is_text(desired)):
        return None
    old = live.decode("utf-8").splitlines(keepends=True)
    new = desired.decode("utf-8").splitlines(keepends=True)
    out: list[str] = []
    for line in difflib.unified_diff(
        old, new, fromfile=f"copy/{path}", tofile=f"source/{path}", lineterm=""
    ):
        if line.startswith(("---", "+++", "@@")):
            out.append(line.rstrip("\r\n"))
            continue
        body = line.rstrip("\n").rstrip("\r")
        out.append(_guard(body, detect))
        if not line.endswith("\n"):
            out.append("\\ No newline at end of file")
    if not out:
        return ["(only line endings differ)"]
    if len(out) > limit:
        left = len(out) - limit
        out = [*out[:limit], f"... ({left} more diff line{'s' if left != 1 else ''})"]
    return out


_ASSIGNMENT = re.compile(
    r"""^\s*(?:export\s+)?["']?([A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[:=]\s*(.*)$"""
)


def _guard(line: str, detect: Detector) -> str:
    """A diff line, or a placeholder when its text looks like a secret."""
    sigil, text = line[:1], line[1:]
    kind = detect(text, None)
    if kind is None:
        found = _ASSIGNMENT.match(text)
        if found:
            value = found.group(2).strip().rstrip(",;").strip().strip("\"'")
            kind = detect(value, found.group(1))
    if kind is None:
        return line
    return f"{sigil}‹line hidden: looks like a {kind}›"


def binary_summary(diff: FileDiff) -> str:
    """Size and hash of both sides, for content that is not shown as text."""
    assert diff.source is not None and diff.copy is not None
    return f"binary: {diff.copy.describe()} -> {diff.source.describe()}"
