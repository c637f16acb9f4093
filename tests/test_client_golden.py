"""Each client dialect on real files, one folder per case in ``data/clients/<kind>/<case>/``.

A case holds the file as the client left it (``before.*``, absent for a file that does not
exist yet), the essences observing it must give (``essences.json``), the writes to apply
(``writes.json``: entry -> essence, ``null`` to remove), and the file as it must be written
(``after.*``), byte for byte, or the error that must refuse the write (``error.txt``).
``target.json`` adds target options (scope, project). The cases carry foreign keys, comments
where the format has them, and fields only the client uses inside entries: all must survive.

``UPDATE_GOLDEN=1 pytest tests/test_client_golden.py`` rewrites the ``after.*`` files; review
the diff before committing it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler import targets
from reconciler.core.errors import ConcurrentChange, TargetError
from reconciler.core.model import TargetSpec
from reconciler.core.plan import Action
from reconciler.targets import Context, Write, yamlclients

CASES = Path(__file__).parent / "data" / "clients"
ALL = sorted(p for p in CASES.glob("*/*") if p.is_dir())
# Every client kind a family declares (the gateway and mirror copies have no client file).
CLIENT_KINDS = frozenset(targets.FAMILIES) - {targets.MCPJUNGLE, targets.MIRROR}


def _one(case: Path, stem: str) -> Path | None:
    found = sorted(case.glob(f"{stem}.*"))
    return found[0] if found else None


def _load(case: Path, name: str, default: Any) -> Any:
    path = case / name
    return json.loads(path.read_text()) if path.exists() else default


def build(case: Path, tmp_path: Path) -> tuple[Any, Path]:
    kind = case.parent.name
    before = _one(case, "before")
    after = _one(case, "after")
    suffix = (before or after or Path("x.toml" if kind == "codex" else "x.json")).suffix
    path = tmp_path / f"config{suffix}"
    if before is not None:
        shutil.copyfile(before, path)
    options = _load(case, "target.json", {})
    spec = TargetSpec(kind=kind, path=str(path), **options)
    home = tmp_path / "home"
    context = Context(home=home, platform="linux", root=tmp_path, lock_dir=tmp_path / "locks")
    return targets.build("t", spec, context), path


@pytest.mark.parametrize("case", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_observe_then_write(case: Path, tmp_path: Path) -> None:
    target, path = build(case, tmp_path)

    observation = target.observe()
    assert dict(observation.entries) == _load(case, "essences.json", {})

    writes = [
        Write(entry, essence, Action.DELETE if essence is None else Action.UPDATE)
        for entry, essence in _load(case, "writes.json", {}).items()
    ]
    error = case / "error.txt"
    if error.exists():
        before = path.read_bytes()
        with pytest.raises(TargetError) as raised:
            target.apply(observation, writes)
        assert error.read_text().strip() in str(raised.value)
        assert path.read_bytes() == before, "a refused write leaves the file as it was"
        return
    target.apply(observation, writes)

    expected = _one(case, "after")
    if os.environ.get("UPDATE_GOLDEN"):
        expected = expected or case / f"after{path.suffix}"
        expected.write_bytes(path.read_bytes())
    assert expected is not None, f"{case}: needs after.* or error.txt"
    assert path.read_text() == expected.read_text()

    # What was written reads back as exactly what was asked, and nothing else moved.
    again = target.observe().entries
    wanted = {w.entry: w.essence for w in writes}
    for entry, essence in observation.entries.items():
        if entry not in wanted:
            assert again[entry] == essence, f"unmanaged entry {entry} changed"
    for entry, essence in wanted.items():
        assert again.get(entry) == essence


def test_every_client_kind_has_cases() -> None:
    kinds = {p.parent.name for p in ALL}
    clients = set(CLIENT_KINDS)
    assert clients <= kinds, f"kinds without golden cases: {sorted(clients - kinds)}"


def test_each_kind_is_declared_by_exactly_one_family_class() -> None:
    declared = [c.kind for module in targets._MODULES for c in module.KIND_CLASSES]
    assert sorted(declared) == sorted(set(declared)), "a kind name declared twice"
    assert set(declared) == set(targets.FAMILIES)
    for kind, family in targets.FAMILIES.items():
        assert family.scopes == targets.SCOPES[kind]
        assert isinstance(family.tool_control, str | None), kind


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("GitHub MCP", "githubmcp"),  # whitespace dropped, lowercased
        ("hand-made", "hand-made"),  # '-' and '_' kept
        ("a.b/c:d", "a_b_c_d"),  # anything else '_'
        ("Ünï code", "_n_code"),  # ASCII letters only
    ],
)
def test_goose_keys_an_extension_as_goose_does(name: str, key: str) -> None:
    assert yamlclients.goose_key(name) == key


@pytest.mark.parametrize(
    "case",
    [CASES / "goose" / "extensions-and-builtins", CASES / "continue" / "list-and-request-options"],
    ids=["goose", "continue"],
)
def test_a_yaml_client_file_changed_since_observe_is_not_written(
    case: Path, tmp_path: Path
) -> None:
    target, path = build(case, tmp_path)
    observation = target.observe()
    edited = path.read_bytes() + b"# the client saved meanwhile\n"
    path.write_bytes(edited)
    time = {"transport": "stdio", "command": "uvx", "args": ["mcp-server-time"]}
    if target.capability.enabled_switch:
        time["enabled"] = True

    with pytest.raises(ConcurrentChange):
        target.apply(observation, [Write("time", time, Action.CREATE)])

    assert path.read_bytes() == edited  # the pass is retried; nothing lost
