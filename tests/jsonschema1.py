"""A checker for the ``--json`` report, schema 1, exactly as DESIGN section 7 specifies it."""

from __future__ import annotations

from typing import Any

TARGET_STATUS = {"in_sync", "drifted", "error", "absent"}
ACTIONS = {
    "create",
    "update",
    "replace",
    "delete",
    "enable",
    "disable",
    "tool-enable",
    "tool-disable",
    "record",
    "copy",
}
ORIGINS = {"new", "desired", "live", "conflict"}
PHASES = {"observe", "plan", "apply", "verify", "spawn", "connect", "initialize", "list_tools"}


def assert_report_schema(report: Any) -> None:
    assert isinstance(report, dict)
    assert report["schema"] == 1
    assert report["exit_code"] in (0, 1, 2, 3)
    assert isinstance(report["dry_run"], bool)
    assert isinstance(report["targets"], list)
    for target in report["targets"]:
        assert isinstance(target["name"], str) and isinstance(target["kind"], str)
        assert target["status"] in TARGET_STATUS
        assert target["error"] is None or isinstance(target["error"], str)
        assert (target["error"] is not None) == (target["status"] == "error")
        for change in target["changes"]:
            assert isinstance(change["server"], str)
            assert change["action"] in ACTIONS
            assert change["origin"] in ORIGINS
            assert isinstance(change["paths"], list)
            assert all(p.startswith("/") for p in change["paths"])
        for allowed in target["allowed"]:
            assert {"server", "paths", "record"} <= set(allowed)
        assert all(isinstance(u, str) for u in target["unmanaged"])
    assert isinstance(report["degraded"], list)
    for entry in report["degraded"]:
        assert {"target", "phase", "required", "error", "recoverable"} <= set(entry)
        assert entry["phase"] in PHASES
    failed_required = any(d["required"] for d in report["degraded"])
    assert (report["exit_code"] == 3) == failed_required
