"""The pure core of allowed divergences: pointers, fingerprints, matching, states, patching."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core import divergence
from reconciler.core.compare import FieldChange, Origin
from reconciler.core.divergence import Record, State
from reconciler.core.errors import DesiredStateError
from reconciler.core.essence import fingerprint_with
from reconciler.core.model import OnDrift
from reconciler.core.plan import Action, Change
from reconciler.store import recordfiles
from reconciler.store.yamlio import guess_indent, load_document

SEAL = fingerprint_with(b"k" * 32)
TODAY = date(2026, 11, 21)
LIVE = {"transport": "stdio", "command": "uvx", "args": ["a", "b"], "env": {"T": "hmac-sha256:x"}}


def record(paths: tuple[str, ...], live: object = LIVE, **kw: object) -> Record:
    base: dict[str, object] = {
        "id": "desktop--time",
        "file": Path("desired/divergences/desktop--time.yaml"),
        "target": "desktop",
        "server": "time",
        "paths": paths,
        "observed": divergence.fingerprint(live, paths, SEAL),
        "reason": "r",
    }
    base.update(kw)
    return Record(**base)  # type: ignore[arg-type]


def change(*paths: str, action: Action = Action.UPDATE) -> Change:
    fields = tuple(FieldChange(p, "live", "want") for p in paths)
    return Change("time", "time", action, Origin.LIVE, fields)


@pytest.mark.parametrize(
    ("path", "pointers", "expected"),
    [
        ("/args/1", ("/args/1",), True),
        ("/args/1", ("/args",), True),
        ("/args/10", ("/args/1",), False),
        ("/env/A~1B", ("/env/A~1B",), True),
        ("/env", ("/env/T",), False),
        ("/src~1index.ts", ("/src~1index.ts",), True),  # mirrors: files as pointers
        ("/anything", (), True),  # [] is the whole entry
    ],
)
def test_covered(path: str, pointers: tuple[str, ...], expected: bool) -> None:
    assert divergence.covered(path, pointers) is expected


def test_fingerprint_depends_only_on_the_values_at_the_paths() -> None:
    other = {**LIVE, "command": "npx"}
    assert divergence.fingerprint(LIVE, ["/args/1"], SEAL) == divergence.fingerprint(
        other, ["/args/1"], SEAL
    )
    assert divergence.fingerprint(LIVE, [], SEAL) != divergence.fingerprint(other, [], SEAL)
    assert divergence.fingerprint(LIVE, ["/args/1"], SEAL).startswith("hmac-sha256:")


def test_a_matching_record_covers_and_removes_the_change() -> None:
    m = divergence.match(
        "desktop", [change("/args/1")], {"time": LIVE}, [record(("/args/1",))], SEAL, TODAY
    )
    assert m.changes == ()
    assert [(a.server, a.paths, a.state) for a in m.allowed] == [
        ("time", ("/args/1",), State.UNREVIEWED)
    ]
    assert m.keep == {"time": ("/args/1",)}


def test_partial_cover_leaves_the_rest_as_drift() -> None:
    m = divergence.match(
        "desktop",
        [change("/args/1", "/command")],
        {"time": LIVE},
        [record(("/args/1",))],
        SEAL,
        TODAY,
    )
    assert [c.paths for c in m.changes] == [["/command"]]
    assert m.allowed[0].paths == ("/args/1",)


def test_a_changed_live_value_is_drift_again() -> None:
    edited = {**LIVE, "args": ["a", "c"]}
    m = divergence.match(
        "desktop", [change("/args/1")], {"time": edited}, [record(("/args/1",))], SEAL, TODAY
    )
    assert [c.paths for c in m.changes] == [["/args/1"]]
    assert m.states == {"desktop--time": State.CHANGED}


def test_expired_records_cover_nothing_and_are_not_rerecorded() -> None:
    old = record(("/args/1",), expires=date(2026, 11, 20))
    pending = change("/args/1", action=Action.RECORD)
    m = divergence.match(
        "desktop", [pending], {"time": LIVE}, [old], SEAL, TODAY, on_drift=OnDrift.RECORD
    )
    assert m.states == {"desktop--time": State.EXPIRED}
    assert m.changes[0].apply is False
    assert any("expired" in n for n in m.notes)


def test_expiry_day_itself_still_covers_and_warns() -> None:
    last_day = record(("/args/1",), expires=TODAY, reviewed=True)
    m = divergence.match("desktop", [change("/args/1")], {"time": LIVE}, [last_day], SEAL, TODAY)
    assert m.changes == ()
    assert m.states == {"desktop--time": State.EXPIRING}
    assert any("expires on 2026-11-21" in n for n in m.notes)


def test_a_record_without_drift_is_stale() -> None:
    m = divergence.match(
        "desktop", [], {"time": LIVE}, [record(("/args/1",))], SEAL, TODAY, in_scope=["time"]
    )
    assert m.states == {"desktop--time": State.STALE}


def test_records_of_other_targets_are_ignored() -> None:
    elsewhere = record(("/args/1",), target="code")
    m = divergence.match("desktop", [change("/args/1")], {"time": LIVE}, [elsewhere], SEAL, TODAY)
    assert len(m.changes) == 1 and m.allowed == ()


def test_resolve_drafts_a_record_for_each_live_edit_to_record() -> None:
    pending = change("/args/1", action=Action.RECORD)
    m = divergence.resolve(
        "desktop", OnDrift.RECORD, [pending], None, {"time": LIVE}, SEAL, [], {}, TODAY
    )
    (draft,) = m.drafts
    assert (draft.server, draft.paths, draft.replaces) == ("time", ("/args/1",), None)
    assert draft.observed == divergence.fingerprint(LIVE, ("/args/1",), SEAL)


def test_resolve_syncs_a_rejected_record_instead_of_recording_it() -> None:
    pending = change("/args/1", action=Action.RECORD)
    sync = change("/args/1", action=Action.UPDATE)
    m = divergence.resolve(
        "desktop", OnDrift.RECORD, [pending], [sync], {"time": LIVE}, SEAL, [], {"time": "x"}, TODAY
    )
    assert [c.action for c in m.changes] == [Action.UPDATE]
    assert m.drafts == ()


def test_keep_live_patches_only_the_allowed_pointers() -> None:
    want = {"command": "uvx", "args": ["a", "z"], "env": {"T": "new"}}
    live = {"command": "npx", "args": ["a", "b"], "env": {"T": "old", "U": "u"}}
    assert divergence.keep_live(want, live, ["/args/1", "/env/U"]) == {
        "command": "uvx",
        "args": ["a", "b"],
        "env": {"T": "new", "U": "u"},
    }
    assert divergence.keep_live(want, live, [""]) == live


def test_record_files_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "desired" / "divergences"
    folder.mkdir(parents=True)
    original = record(
        ("/args/1", "/env/A,B"), expires=date(2026, 12, 31), created="2026-11-21T10:04:00Z"
    )
    path = folder / "desktop--time.yaml"
    path.write_text(recordfiles.render(original))
    (loaded,) = recordfiles.load(tmp_path / "desired")
    assert loaded == original.__class__(**{**original.__dict__, "file": path})


def test_record_ids_are_file_safe_and_unique() -> None:
    assert recordfiles.record_id("media-agent:src/copy", "media-agent") == (
        "media-agent_src_copy--media-agent"
    )
    assert recordfiles.record_id("d", "s", {"d--s", "d--s-2"}) == "d--s-3"


@pytest.mark.parametrize(
    "text",
    [
        "servers:\n  a:\n    args: [x]\n    env:\n      K: v  # c\n",
        "servers:\n    a:\n        args:\n        - x   # first\n        - y\n",
        "servers:\n  a:\n    args:\n      - x\n      - y\n\n# tail\ntargets: {}\n",
    ],
)
def test_desired_files_round_trip_unchanged(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert load_document(path).dump().decode() == text


def test_guess_indent() -> None:
    assert guess_indent("a:\n    b:\n    - x\n") == (4, 2, 0)
    assert guess_indent("a:\n  b:\n    - x\n") == (2, 4, 2)


@settings(max_examples=150, deadline=None)
@given(
    target=st.text(min_size=1, max_size=12).filter(str.strip),
    server=st.text(min_size=1, max_size=12).filter(str.strip),
    reason=st.text(min_size=1, max_size=40).filter(str.strip),
    paths=st.lists(st.text(max_size=8).map(lambda t: "/" + t), max_size=3),
    reviewed=st.booleans(),
)
def test_a_rendered_record_loads_back_as_itself(
    tmp_path_factory: pytest.TempPathFactory,
    target: str,
    server: str,
    reason: str,
    paths: list[str],
    reviewed: bool,
) -> None:
    rec = record(tuple(paths), target=target, server=server, reason=reason, reviewed=reviewed)
    folder = tmp_path_factory.mktemp("records") / "desired" / "divergences"
    folder.mkdir(parents=True)
    path = folder / "r.yaml"
    path.write_text(recordfiles.render(rec), encoding="utf-8")
    (loaded,) = recordfiles.load(folder.parent)
    assert loaded == rec.__class__(**{**rec.__dict__, "file": path, "id": "r"})


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ("- a\n", "1:1", "a mapping with the single key 'divergence'"),
        ("divergence: x\n", "1:13", "divergence: input should be a valid dictionary"),
        (
            "divergence:\n  target: d\n  server: s\n  paths: []\n  observed: hmac-sha256:x\n",
            "1:1",
            "missing required key 'reason' in divergence",
        ),
        (
            "{RECORD}  reviewed: yes\n",
            "7:13",
            "divergence.reviewed: input should be a valid boolean",
        ),
        ("{RECORD}  expires: soon\n", "7:3", "divergence.expires: must be a date (YYYY-MM-DD)"),
        ("{RECORD}  extra: 1\n", "7:3", "unknown key 'extra' in divergence"),
        (
            "divergence:\n  target: ' '\n  server: s\n  paths: []\n  observed: hmac-sha256:x\n"
            "  reason: r\n",
            "2:3",
            "divergence.target: must be a non-empty string",
        ),
        (
            "divergence:\n  target: d\n  server: s\n  paths: /a\n  observed: hmac-sha256:x\n"
            "  reason: r\n",
            "4:10",
            "divergence.paths: input should be a valid list",
        ),
        ("divergence:\n  target: [\n", "3:1", ""),
    ],
)
def test_an_invalid_record_is_one_located_problem(
    tmp_path: Path, body: str, where: str, message: str
) -> None:
    base = "divergence:\n  target: d\n  server: s\n  paths: []\n  observed: hmac-sha256:x\n"
    folder = tmp_path / "desired" / "divergences"
    folder.mkdir(parents=True)
    (folder / "bad.yaml").write_text(body.replace("{RECORD}", base + "  reason: r\n"))
    with pytest.raises(DesiredStateError) as caught:
        recordfiles.load(tmp_path / "desired")
    (problem,) = caught.value.problems
    assert f"{problem.line}:{problem.column}" == where
    assert message.lower() in (problem.message + " " + problem.hint).lower(), problem


def test_a_record_made_when_every_env_value_was_sealed_still_matches() -> None:
    """Before only secrets were masked, a record's fingerprint covered ``env`` with every
    value sealed; the same live entry, now with plain values, is still that record's."""
    live = {"transport": "stdio", "command": "uvx", "env": {"ROOT": "/srv/a", "T": "hmac-sha256:x"}}
    old_style = {**live, "env": {"ROOT": SEAL("/srv/a"), "T": "hmac-sha256:x"}}
    drift = [FieldChange("/env/ROOT", "/srv/a", "/srv/b")]
    for made_from in (live, old_style):
        rec = record(("/env",), made_from)
        assert divergence.record_state(rec, drift, live, SEAL, TODAY) is not State.CHANGED
    moved = {**live, "env": {"ROOT": "/srv/other", "T": "hmac-sha256:x"}}
    assert divergence.record_state(record(("/env",), old_style), drift, moved, SEAL, TODAY) is (
        State.CHANGED
    )
