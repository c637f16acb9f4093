"""A short soak of the watch loop: no growth in open files, child processes or memory.

The long run (10,000 passes) is ``bench/watch_soak.py``, with its numbers in bench/REPORT.md;
this one runs the same loop briefly so a leak per pass (a file left open, a ``git`` child not
reaped, a cache that grows) fails the test suite.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "watch_soak.py"


@pytest.mark.timeout(300)
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts through /proc")
def test_passes_leak_no_files_children_or_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    spec = importlib.util.spec_from_file_location("watch_soak", BENCH)
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    sys.modules["watch_soak"] = soak
    try:
        spec.loader.exec_module(soak)
        logging.disable(logging.INFO)
        result = soak.soak(tmp_path, passes=200, warmup=100)
    finally:
        logging.disable(logging.NOTSET)
        sys.modules.pop("watch_soak", None)
    growth = result["growth"]
    assert growth["fds"] <= 0, result
    assert growth["children"] == 0 and result["samples"]["end"]["children"] == 0, result
    assert growth["rss_mb"] < 3.0, result
