"""The one reading of a path written in desired state: ``~``, absolute, or repository-relative.

Desired state is shared through git and applied on many machines, so a path in it is
either in the user's home (``~/...``), absolute, or relative to the desired repository's
root (the folder that holds ``desired/``), never to the current directory. Every layer that
reads such a path (client file targets, mirrors, ``${file:...}`` secrets, record paths in
reports) goes through here.
"""

from __future__ import annotations

from pathlib import Path


def repository_root(desired_dir: Path) -> Path:
    """The desired repository's root: the folder that holds the desired directory."""
    return desired_dir.resolve().parent


def expand(text: str, *, home: Path, root: Path) -> Path:
    """``~`` and ``~/x`` under ``home``, an absolute path as it is, anything else under ``root``."""
    if text == "~" or text.startswith("~/"):
        return home / text[2:]
    path = Path(text)
    return path if path.is_absolute() else root / path
