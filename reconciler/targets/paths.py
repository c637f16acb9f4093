"""Where client files live: home-relative folders per platform, and a target's project.

Each client documents its own locations (reference/CLIENTS.md 1.x); what they share is
resolved here: ``~`` and relative paths in desired state (relative to the desired
repository's root), the XDG config folder, and Windows' APPDATA.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.core.errors import TargetError
from reconciler.core.model import TargetSpec
from reconciler.store import paths as store_paths
from reconciler.targets.base import Context


def expand(path: str, context: Context) -> Path:
    """A path from desired state: ``~`` is the home, relative is under the repository root."""
    return store_paths.expand(path, home=context.home, root=context.root)


def project_dir(spec: TargetSpec, context: Context) -> Path:
    """The project a ``scope: project`` or ``scope: local`` target belongs to, made absolute."""
    if not spec.project:  # validation requires it; this guards direct use
        raise TargetError(f"scope {spec.scope!r} needs 'project:'", recoverable=False)
    return Path(expand(spec.project, context)).absolute()


def scope(spec: TargetSpec) -> str:
    return spec.scope or "user"


def xdg_config(context: Context) -> Path:
    value = context.environ.get("XDG_CONFIG_HOME")
    return Path(value) if value and Path(value).is_absolute() else context.home / ".config"


def appdata(context: Context) -> Path:
    value = context.environ.get("APPDATA")
    return Path(value) if value else context.home / "AppData" / "Roaming"


def user_config(context: Context) -> Path:
    """The per-user settings folder applications use on this platform (VS Code's layout)."""
    if context.platform == "darwin":
        return context.home / "Library" / "Application Support"
    if context.platform == "win32":
        return appdata(context)
    return xdg_config(context)
