"""Mirrors below the engine: globs, the per-file comparison, diffs, tree walks, the hash cache,
and syncs that never follow a symlink. Every tree lives in a temp dir."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from reconciler.core.mirrordiff import (
    Drift,
    FileState,
    Selection,
    compare,
    glob_matches,
    nested,
    path_of,
    pointer,
    unified_diff,
)
from reconciler.core.model import MirrorCopySpec, OnDrift, mirror_target_name, mirror_targets
from reconciler.core.plan import Action
from reconciler.secrets import detect
from reconciler.store.state import CACHE_DIR
from reconciler.targets.base import Context, Write
from reconciler.targets.mirror import (
    HashCache,
    MirrorTarget,
    TreeSnapshot,
    scan,
)

# -- globs and selection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**/*.ts", "index.ts", True),
        ("**/*.ts", "lib/deep/util.ts", True),
        ("**/*.ts", "lib/util.js", False),
        ("*.ts", "lib/deep/util.ts", True),  # no slash: a name at any depth
        ("src/*.ts", "src/a.ts", True),
        ("src/*.ts", "src/sub/a.ts", False),  # '*' never crosses '/'
        ("src/**", "src/sub/a.ts", True),
        ("src/**", "lib/src/a.ts", False),  # a slash anchors at the root
        ("dist", "dist/bundle.js", True),  # a folder name matches what is under it
        ("dist", "app/dist/bundle.js", True),
        ("build/", "build/x.o", True),
        ("/build", "app/build/x.o", False),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file10.txt", False),
        ("[ab].md", "a.md", True),
        ("[!ab].md", "a.md", False),
        ("[!ab].md", "c.md", True),
        ("*.min.js", "x.min.js", True),
    ],
)
def test_glob_rules(pattern: str, path: str, expected: bool) -> None:
    assert glob_matches(pattern, path) is expected


def test_selection_always_skips_vcs_and_dependency_folders() -> None:
    everything = Selection()
    assert everything.selects("src/index.ts")
    for skipped in (".git/config", "node_modules/x/index.js", "a/__pycache__/m.pyc"):
        assert not everything.selects(skipped)
    assert everything.skips_folder("pkg/node_modules")
    chosen = Selection(include=("**/*.ts",), exclude=("generated",))
    assert chosen.selects("a/b.ts")
    assert not chosen.selects("a/b.js")
    assert not chosen.selects("generated/b.ts")
    assert chosen.skips_folder("generated")
    assert not chosen.skips_folder("src")


# -- the pure comparison -------------------------------------------------------------------


def _f(text: str, mode: int = 0o644) -> FileState:
    data = text.encode()
    return FileState(hashlib.sha256(data).hexdigest(), len(data), mode)


def test_compare_classifies_every_kind_of_drift() -> None:
    source = {
        "same.ts": _f("x"),
        "changed.ts": _f("new"),
        "missing.ts": _f("m"),
        "mode.sh": _f("run", 0o755),
        "link": FileState(link="target.ts"),
        "was-file": FileState(link="same.ts"),
    }
    copy = {
        "same.ts": _f("x"),
        "changed.ts": _f("old"),
        "extra.ts": _f("e"),
        "mode.sh": _f("run", 0o644),
        "link": FileState(link="elsewhere.ts"),
        "was-file": _f("a file now"),
    }
    found = {d.path: d.drift for d in compare(source, copy)}
    assert found == {
        "changed.ts": Drift.CHANGED,
        "extra.ts": Drift.EXTRA,
        "link": Drift.CHANGED,
        "missing.ts": Drift.MISSING,
        "mode.sh": Drift.MODE,
        "was-file": Drift.CHANGED,
    }
    by_path = {d.path: d for d in compare(source, copy)}
    assert by_path["mode.sh"].summary() == "mode 0644 -> 0755"
    assert by_path["was-file"].summary() == "changed: file -> symlink"


def test_pointers_and_nested_essence() -> None:
    assert pointer("src/index.ts") == "/src/index.ts"
    assert pointer("a~b/c") == "/a~0b/c"
    assert path_of("/a~0b/c") == "a~b/c"
    tree = {"src/index.ts": _f("x"), "src/lib/u.ts": _f("y"), "top": FileState(link="src")}
    essence = nested(tree)
    assert essence["src"]["index.ts"]["sha256"] == _f("x").sha256
    assert essence["src"]["lib"]["u.ts"]["mode"] == "0644"
    assert essence["top"] == {"link": "src"}


def test_unified_diff_text_binary_and_secrets() -> None:
    lines = unified_diff("index.ts", b"a\nb\nc\n", b"a\nB\nc\n", detect=detect)
    assert lines is not None
    assert lines[:2] == ["--- copy/index.ts", "+++ source/index.ts"]
    assert "-b" in lines and "+B" in lines
    assert unified_diff("logo.png", b"\x89PNG\0\1", b"\x89PNG\0\2", detect=detect) is None
    no_newline = unified_diff("a.txt", b"x\n", b"x\ny", detect=detect)
    assert no_newline is not None and no_newline[-1] == "\\ No newline at end of file"
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    hidden = unified_diff(".env", b"A=1\n", f"A=1\nGITHUB_TOKEN={token}\n".encode(), detect=detect)
    assert hidden is not None
    assert not any(token in line for line in hidden)
    assert any("line hidden" in line for line in hidden)
    long = unified_diff(
        "big.txt", b"", "".join(f"{i}\n" for i in range(500)).encode(), detect=detect, limit=20
    )
    assert long is not None and len(long) == 21 and long[-1].startswith("... (")


def test_mirror_copy_targets_are_named_after_the_mirror() -> None:
    from reconciler.core.model import Mirror

    one = Mirror(source="a", copies=("b",))
    two = Mirror(source="a", copies=("b", "c"), on_drift=OnDrift.SYNC, prune=True)
    made = mirror_targets({"one": one, "two": two})
    assert list(made) == ["one", "two:b", "two:c"]
    assert made["two:c"].copy_path == "c" and made["two:c"].prune
    assert made["one"].on_drift is OnDrift.REPORT  # the mirror default
    assert mirror_target_name("m", "x/y", 2) == "m:x/y"


# -- walking real trees --------------------------------------------------------------------


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def _context(tmp_path: Path, *, dry_run: bool) -> Context:
    state = tmp_path / "state"
    return Context(
        home=tmp_path / "home",
        platform="linux",
        root=tmp_path / "repo",
        lock_dir=None if dry_run else state / "locks",
        state_dir=state,
    )


def _target(
    tmp_path: Path, *, dry_run: bool = False, prune: bool = False, **selection: tuple[str, ...]
) -> MirrorTarget:
    spec = MirrorCopySpec(
        kind="mirror",
        servers=(),
        on_drift=OnDrift.SYNC,
        prune=prune,
        mirror="m",
        source="src",
        copy_path="copy",
        **selection,
    )
    return MirrorTarget("m", spec, _context(tmp_path, dry_run=dry_run))


def test_walk_skips_always_skipped_folders_and_applies_globs(tmp_path: Path) -> None:
    src = tmp_path / "repo" / "src"
    for rel in (
        "index.ts",
        "lib/u.ts",
        "lib/u.js",
        "gen/g.ts",
        ".git/HEAD",
        "node_modules/dep/index.ts",
        "lib/__pycache__/x.ts",
    ):
        _write(src, rel, rel)
    everything = scan(src, Selection(), None, missing_ok=False)
    assert sorted(everything.tree) == ["gen/g.ts", "index.ts", "lib/u.js", "lib/u.ts"]
    chosen = scan(src, Selection(("**/*.ts",), ("gen",)), None, missing_ok=False)
    assert sorted(chosen.tree) == ["index.ts", "lib/u.ts"]


def test_symlinks_are_compared_as_links_and_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(outside, "secret.txt", "outside the tree")
    src = tmp_path / "repo" / "src"
    _write(src, "index.ts", "x")
    (src / "escape").symlink_to(outside)  # a folder link pointing out of the tree
    (src / "alias.ts").symlink_to("index.ts")
    found = scan(src, Selection(), None, missing_ok=False)
    assert found.tree["escape"] == FileState(link=str(outside))
    assert found.tree["alias.ts"] == FileState(link="index.ts")
    assert not any(p.startswith("escape/") for p in found.tree)  # not walked into


def test_hash_cache_rehashes_only_changed_files(tmp_path: Path) -> None:
    src = tmp_path / "repo" / "src"
    for i in range(20):
        _write(src, f"f{i}.txt", f"content {i}")
    state = tmp_path / "state"
    later = lambda: 10**19  # noqa: E731 - a scan "long after" every write: nothing is racy
    cache = HashCache(state, src, writable=True)
    cold = scan(src, Selection(), cache, missing_ok=False, now_ns=later)
    cache.save(cold)
    assert cold.hashed == 20
    warm_cache = HashCache(state, src, writable=True)
    warm = scan(src, Selection(), warm_cache, missing_ok=False, now_ns=later)
    assert warm.hashed == 0 and warm.tree == cold.tree
    _write(src, "f3.txt", "CONTENT 3")  # same size: caught by mtime/ctime
    third = scan(src, Selection(), HashCache(state, src, writable=True), missing_ok=False)
    assert third.hashed == 1
    assert third.tree["f3.txt"].sha256 == hashlib.sha256(b"CONTENT 3").hexdigest()


def test_fresh_entries_are_stored_racy_and_hashed_again(tmp_path: Path) -> None:
    src = tmp_path / "repo" / "src"
    _write(src, "a.txt", "a")
    state = tmp_path / "state"
    cache = HashCache(state, src, writable=True)
    first = scan(src, Selection(), cache, missing_ok=False)  # now: the file is seconds old
    cache.save(first)
    again = scan(src, Selection(), HashCache(state, src, writable=True), missing_ok=False)
    assert again.hashed == 1  # too fresh to trust: a same-tick edit would be invisible


def test_a_dry_run_never_writes_the_cache(tmp_path: Path) -> None:
    _write(tmp_path / "repo" / "src", "a.txt", "a")
    _write(tmp_path / "repo" / "copy", "a.txt", "b")
    target = _target(tmp_path, dry_run=True)
    target.observe()
    assert not (tmp_path / "state").exists()
    applying = _target(tmp_path)
    applying.observe()
    assert len(list((tmp_path / "state" / CACHE_DIR).glob("*.json"))) == 2  # source, copy


# -- syncing -------------------------------------------------------------------------------


def _sync(target: MirrorTarget, *, prune: bool) -> TreeSnapshot:
    observation = target.observe()
    snapshot: TreeSnapshot = observation.snapshot
    writes = []
    for d in snapshot.diffs():
        if d.drift is Drift.EXTRA:
            if prune:
                writes.append(Write(d.pointer, None, Action.DELETE))
        else:
            assert d.source is not None
            writes.append(Write(d.pointer, d.source.essence(), Action.COPY))
    target.apply(observation, writes)
    after: TreeSnapshot = target.observe().snapshot
    return after


def test_sync_copies_modes_links_and_prunes_only_when_asked(tmp_path: Path) -> None:
    src = tmp_path / "repo" / "src"
    copy = tmp_path / "repo" / "copy"
    _write(src, "index.ts", "new\n")
    _write(src, "bin/run.sh", "#!/bin/sh\n", 0o755)
    (src / "alias.ts").symlink_to("index.ts")
    _write(copy, "index.ts", "old\n")
    _write(copy, "stale/old.ts", "gone\n")
    after = _sync(_target(tmp_path), prune=False)
    assert [d.path for d in after.diffs()] == ["stale/old.ts"]  # extra kept without prune
    assert (copy / "bin/run.sh").stat().st_mode & 0o777 == 0o755
    assert os.readlink(copy / "alias.ts") == "index.ts"
    assert (copy / "index.ts").read_bytes() == (src / "index.ts").read_bytes()
    after = _sync(_target(tmp_path, prune=True), prune=True)
    assert after.diffs() == []
    assert not (copy / "stale").exists()  # the emptied folder went too
    assert after.copy.tree == after.source.tree


def test_sync_replaces_a_link_in_the_copy_without_writing_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("must stay")
    src = tmp_path / "repo" / "src"
    copy = tmp_path / "repo" / "copy"
    _write(src, "config.json", "{}\n")
    copy.mkdir(parents=True)
    (copy / "config.json").symlink_to(outside)
    after = _sync(_target(tmp_path), prune=False)
    assert after.diffs() == []
    assert not (copy / "config.json").is_symlink()
    assert outside.read_text() == "must stay"


def test_sync_never_writes_into_a_linked_folder_of_the_copy(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "repo" / "src"
    copy = tmp_path / "repo" / "copy"
    _write(src, "lib/u.ts", "u\n")
    copy.mkdir(parents=True)
    (copy / "lib").symlink_to(outside)
    from reconciler.core.errors import TargetError

    with pytest.raises(TargetError, match="not followed"):
        _sync(_target(tmp_path), prune=False)
    assert list(outside.iterdir()) == []
    after = _sync(_target(tmp_path, prune=True), prune=True)  # prune removes the link
    assert after.diffs() == [] and list(outside.iterdir()) == []
    assert (copy / "lib").is_dir() and not (copy / "lib").is_symlink()


def test_a_concurrent_edit_of_the_copy_is_not_overwritten(tmp_path: Path) -> None:
    from reconciler.core.errors import ConcurrentChange

    src = tmp_path / "repo" / "src"
    copy = tmp_path / "repo" / "copy"
    _write(src, "a.txt", "source\n")
    _write(copy, "a.txt", "copy\n")
    target = _target(tmp_path)
    observation = target.observe()
    _write(copy, "a.txt", "someone else\n")
    d = observation.snapshot.diffs()[0]
    with pytest.raises(ConcurrentChange):
        target.apply(observation, [Write(d.pointer, d.source.essence(), Action.COPY)])
    assert (copy / "a.txt").read_text() == "someone else\n"


def test_cache_file_holds_no_content(tmp_path: Path) -> None:
    _write(tmp_path / "repo" / "src", "a.txt", "private words")
    _target(tmp_path).observe()
    for path in (tmp_path / "state" / CACHE_DIR).glob("*.json"):
        data = json.loads(path.read_text())
        assert "private words" not in path.read_text()
        assert data["format"] == 1


def test_a_source_edited_after_observe_is_not_copied_half_seen(tmp_path: Path) -> None:
    from reconciler.core.errors import ConcurrentChange

    src = tmp_path / "repo" / "src"
    copy = tmp_path / "repo" / "copy"
    _write(src, "a.txt", "compared\n")
    target = _target(tmp_path)
    observation = target.observe()
    _write(src, "a.txt", "edited after the comparison\n")
    d = observation.snapshot.diffs()[0]
    with pytest.raises(ConcurrentChange):
        target.apply(observation, [Write(d.pointer, d.source.essence(), Action.COPY)])
    assert not (copy / "a.txt").exists()
