"""The planner on plain data, one case per file in ``data/plans/``.

Each case gives the slots (desired essences per placed server), the live and last-applied
essences, the target's options, and the expected plan. The planner is pure, so these cases
pin down the whole three-way decision table without a file or a process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.model import OnDrift
from reconciler.core.plan import Slot, plan_target

CASES = Path(__file__).parent / "data" / "plans"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text())
    return data


@pytest.mark.parametrize("case", sorted(CASES.glob("*.yaml")), ids=lambda p: p.stem)
def test_plan_case(case: Path) -> None:
    data = load(case)
    options = data.get("options", {})
    slots = [
        Slot(s["server"], s.get("entry", s["server"]), s["desired"], s.get("required", False))
        for s in data.get("slots", [])
    ]
    scope = frozenset(data["scope"]) if "scope" in data else None

    plan = plan_target(
        slots,
        data.get("live", {}),
        data.get("last", {}),
        frozenset(data.get("created", [])),
        on_drift=OnDrift(options.get("on_drift", "sync")),
        prune=options.get("prune", False),
        exclusive=options.get("exclusive", False),
        may_delete=options.get("may_delete", True),
        scope=scope,
    )

    expect = data["expect"]
    got = [
        {
            "server": c.server,
            **({"entry": c.entry} if c.entry != c.server else {}),
            "action": c.action.value,
            "origin": c.origin.value,
            "paths": c.paths,
            "apply": c.apply,
        }
        for c in plan.changes
    ]
    assert got == expect.get("changes", [])
    assert list(plan.in_sync) == expect.get("in_sync", [])
    assert list(plan.unmanaged) == expect.get("unmanaged", [])
    assert list(plan.orphaned) == expect.get("orphaned", [])
