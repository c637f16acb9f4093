"""The effects around divergence records: writing and committing them, and reviewing them.

``divergence`` decides (pure); this module acts: it writes record files, commits them with
``gitlog``, remembers rejected records in the state directory, and carries out the commands
``reconcile allow`` and ``reconcile divergences list|show|accept|renew|reject|prune-stale``.

A rejection is remembered in the state directory (``rejected.json``) until a pass has synced
the entry back: without it, a target with ``on_drift: record`` would just record the same
live edit again on the next pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from reconciler.core import divergence
from reconciler.core.compare import Origin, diff, origin, resolve_pointer
from reconciler.core.divergence import Record, State, covered
from reconciler.core.errors import ReconcilerError, RepositoryError, UsageError
from reconciler.core.essence import display
from reconciler.core.report import Phase, TargetReport, json_value
from reconciler.engine import Divergences, Engine, Inspection
from reconciler.secrets import detect, redact
from reconciler.store import fsutil, gitlog, recordfiles
from reconciler.store.yamlio import make_yaml
from reconciler.targets import MIRROR

FILE_MODE = 0o644  # desired/ files are shared through git: not private


# -- helpers shared by the pass and the commands -------------------------------------------


def _holds_secret(text: str) -> bool:
    """Whether a literal secret (by the secrets module's shapes) appears in ``text``."""
    return detect(text) is not None or any(
        detect(word.strip(".,;:()[]'\"")) is not None for word in text.split()
    )


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _subject_paths(paths: Sequence[str]) -> str:
    if not paths:
        return divergence.WHOLE_ENTRY
    text = ", ".join(paths[:3])
    return text + (f", +{len(paths) - 3} more" if len(paths) > 3 else "")


def _trailers(
    action: str, target: str, server: str, paths: Sequence[str], expires: date | None
) -> list[tuple[str, str]]:
    trailers = [
        ("Action", action),
        ("Target", target),
        ("Server", server),
        ("Paths", ", ".join(paths) if paths else divergence.WHOLE_ENTRY),
    ]
    if expires is not None:
        trailers.append(("Expires", expires.isoformat()))
    return trailers


def _write_record(record: Record) -> None:
    fsutil.atomic_write(record.file, recordfiles.render(record).encode("utf-8"), mode=FILE_MODE)


# -- the pass: write and commit the records it drafted -------------------------------------


AUTO_REASON = (
    "Recorded by `reconcile` (on_drift: record): {server} was edited on {target} at {paths} "
    "(origin {origin}). Review it with `reconcile divergences show {id}`, then accept or "
    "reject it."
)


def record_drafts(
    engine: Engine, found: Divergences, results: Sequence[TargetReport]
) -> list[TargetReport]:
    """Commit one record per live edit a pass drafted (the engine's ``Recorder``)."""
    out = list(results)
    if any(found.drafts.values()):
        with gitlog.open_repository(engine.desired_dir) as repo:
            taken = {r.id for r in found.records}
            for index, report in enumerate(out):
                drafts = found.drafts.get(report.name, ())
                if not drafts or report.error is not None:
                    continue
                recorded: set[str] = set()
                try:
                    for draft in drafts:
                        record = _record_from_draft(engine.desired_dir, draft, found, taken)
                        _write_record(record)
                        message = gitlog.build_message(
                            f"divergence: record {draft.server} on {draft.target} "
                            f"({_subject_paths(draft.paths)})",
                            record.reason,
                            _trailers("record", draft.target, draft.server, draft.paths, None),
                            redact=redact,
                        )
                        repo.commit([record.file], message)
                        recorded.add(draft.entry)
                except ReconcilerError as e:
                    out[index] = replace(
                        report,
                        applied=report.applied | recorded,
                        error=f"recording a divergence failed: {e}",
                        phase=Phase.APPLY,
                    )
                    continue
                out[index] = replace(report, applied=report.applied | recorded)
    return out


def _record_from_draft(
    desired_dir: Path, draft: divergence.Draft, found: Divergences, taken: set[str]
) -> Record:
    record_id = draft.replaces or recordfiles.record_id(draft.target, draft.server, taken)
    taken.add(record_id)
    return Record(
        id=record_id,
        file=recordfiles.directory(desired_dir) / f"{record_id}.yaml",
        target=draft.target,
        server=draft.server,
        paths=draft.paths,
        observed=draft.observed,
        reason=AUTO_REASON.format(
            server=draft.server,
            target=draft.target,
            paths=_subject_paths(draft.paths),
            origin=draft.origin,
            id=record_id,
        ),
        created=_now(),
        created_by=gitlog.user_at_host(),
        reviewed=False,
    )


# -- reconcile allow -----------------------------------------------------------------------

MAX_EXPIRY_DAYS = 365  # divergences are meant to be temporary: further out needs --force


def check_expiry(expires: date | None, today: date, force: bool) -> None:
    """Refuse an expiry in the past (it would cover nothing), or over a year out unless forced."""
    if expires is None:
        return
    if expires < today:
        raise UsageError(
            f"--expires {expires} is in the past: the record would cover nothing (today is {today})"
        )
    if (expires - today).days > MAX_EXPIRY_DAYS and not force:
        raise UsageError(
            f"--expires {expires} is more than a year out; divergences are meant to be "
            "temporary (pass --force to record it anyway)"
        )


@dataclass(frozen=True)
class Done:
    """What a committing command did: the record(s), the commit, and anything to tell."""

    records: tuple[Record, ...]
    shown: tuple[str, ...]
    commit: str | None
    expired: bool = False
    notes: tuple[str, ...] = ()

    def to_json(self, code: int) -> dict[str, Any]:
        return {
            "schema": 1,
            "exit_code": code,
            "records": [
                {
                    "id": r.id,
                    "file": f,
                    "target": r.target,
                    "server": r.server,
                    "paths": list(r.paths),
                    "expires": r.expires.isoformat() if r.expires else None,
                }
                for r, f in zip(self.records, self.shown, strict=True)
            ],
            "commit": self.commit,
            "notes": list(self.notes),
        }


def allow(
    engine: Engine,
    server: str,
    target: str,
    paths: Sequence[str],
    reason: str,
    expires: date | None,
    force: bool = False,
) -> Done:
    """Record the current drift of ``server`` on ``target`` (or its ``paths``) and commit it."""
    reason = reason.strip()
    if not reason:
        raise UsageError("--reason must say why the difference is intended")
    check_expiry(expires, engine.today(), force)
    for p in paths:
        if not p.startswith("/"):
            raise UsageError(f"--path {p!r} is not a JSON Pointer (for example /env/TOKEN)")
    if _holds_secret(reason):
        raise UsageError("--reason looks like it holds a secret value; describe it, never paste it")
    gitlog.require_repository(engine.desired_dir)
    state = engine.load()
    inspection = engine.inspect(target, (server,) if server in state.servers else (), state=state)
    change = next(
        (c for c in inspection.report.changes if server in (c.server, c.entry)),
        None,
    )
    if change is None:
        already = sorted({a.record for a in inspection.report.allowed if a.server == server})
        if already:
            raise UsageError(
                f"{server} on {target}: its drift is already allowed by {', '.join(already)}"
            )
        raise UsageError(f"{server} on {target} has no drift to allow (it is in sync or absent)")
    for p in paths:
        if not any(covered(f, [p]) or covered(p, [f]) for f in change.paths):
            raise UsageError(
                f"{server} on {target} has no drift at {p}; drifted: {', '.join(change.paths)}"
            )
    chosen = tuple(paths) or tuple(change.paths)
    observed = divergence.fingerprint(
        inspection.sealed.get(change.entry), chosen, inspection.fingerprint
    )
    records = inspection.found.records
    record_id = recordfiles.record_id(target, change.server, {r.id for r in records})
    with gitlog.open_repository(engine.desired_dir) as repo:
        record = Record(
            id=record_id,
            file=recordfiles.directory(engine.desired_dir) / f"{record_id}.yaml",
            target=target,
            server=change.server,
            paths=chosen,
            observed=observed,
            reason=reason,
            expires=expires,
            created=_now(),
            created_by=gitlog.user_at_host(),
            reviewed=False,
        )
        _write_record(record)
        message = gitlog.build_message(
            f"divergence: allow {change.server} on {target} ({_subject_paths(chosen)})",
            reason,
            _trailers("allow", target, change.server, chosen, expires),
            redact=redact,
        )
        sha = repo.commit([record.file], message, author=repo.identity())
    expired = record.expired(engine.today())
    notes = []
    if expired:
        notes.append(
            f"record '{record_id}' expired on {expires}: it covers nothing, the drift remains"
        )
    elif record.expiring(engine.today()):
        notes.append(f"record '{record_id}' expires on {expires}, within a week")
    shown = recordfiles.shown_paths(engine.desired_dir, [record])[record.id]
    return Done((record,), (shown,), sha, expired, tuple(notes))


# -- reconcile divergences -----------------------------------------------------------------


NO_LAST = object()  # a drift that is no conflict: no last-applied value to show


@dataclass(frozen=True)
class Listed:
    record: Record
    file: str
    state: State
    commit: gitlog.CommitInfo | None
    uncommitted: bool
    # (path, live, desired, last applied): sealed values; ``NO_LAST`` unless a conflict
    drift: tuple[tuple[str, Any, Any, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "id": r.id,
            "file": self.file,
            "target": r.target,
            "server": r.server,
            "paths": list(r.paths),
            "reason": r.reason,
            "expires": r.expires.isoformat() if r.expires else None,
            "created": r.created,
            "created_by": r.created_by,
            "reviewed": r.reviewed,
            "state": self.state.value,
            "commit": self.commit.sha if self.commit else None,
            "author": self.commit.author if self.commit else None,
            "date": self.commit.date if self.commit else None,
            "uncommitted": self.uncommitted,
            "drift": [
                {"path": p, "live": json_value(lv), "desired": json_value(dv)}
                | ({"last_applied": json_value(la)} if la is not NO_LAST else {})
                for p, lv, dv, la in self.drift
            ],
        }


def list_records(engine: Engine, only: str | None = None) -> list[Listed]:
    """Every record (or the one with id ``only``) with its state, commit and current drift."""
    records = recordfiles.load(engine.desired_dir)
    if only is not None:
        records = tuple(r for r in records if r.id == only)
        if not records:
            known = ", ".join(r.id for r in recordfiles.load(engine.desired_dir)) or "none"
            raise UsageError(f"no divergence record '{only}' (records: {known})")
    if not records:
        return []
    state = engine.load()
    inspections: dict[str, Inspection | None] = {}
    for name in sorted({r.target for r in records}):
        inspections[name] = None
        if name in state.targets:
            try:
                inspections[name] = engine.inspect(name, state=state, create_key=False)
            except ReconcilerError:
                inspections[name] = None
    commits: dict[str, gitlog.CommitInfo] = {}
    dirty: set[str] = set()
    try:
        with gitlog.open_repository(engine.desired_dir) as repo:
            folder = recordfiles.directory(engine.desired_dir)
            commits = repo.last_commits(folder)
            dirty = set(repo.is_modified([r.file for r in records]))
            rel = {r.id: repo.relative(r.file) for r in records}
    except RepositoryError:
        rel = {r.id: r.file.as_posix() for r in records}
    shown = recordfiles.shown_paths(engine.desired_dir, records)
    today = engine.today()
    listed = []
    for record in records:
        inspection = inspections.get(record.target)
        drift: tuple[tuple[str, Any, Any, Any], ...] = ()
        if inspection is None:
            status = State.EXPIRED if record.expired(today) else State.UNKNOWN
        else:
            status = inspection.matched.states.get(record.id) or (
                State.EXPIRED if record.expired(today) else State.STALE
            )
            kind = inspection.state.targets[record.target].kind
            last = {} if kind == MIRROR else engine.store.inventory(record.target).entries
            drift = _drift_of(inspection, record, last)
        listed.append(
            Listed(
                record,
                shown[record.id],
                status,
                commits.get(rel[record.id]),
                rel[record.id] in dirty,
                drift,
            )
        )
    return listed


def _drift_of(
    inspection: Inspection, record: Record, last_applied: Mapping[str, Any]
) -> tuple[tuple[str, Any, Any, Any], ...]:
    """The difference a record is about, as it stands now; secrets shown as fingerprints."""
    entry = next(
        (c.entry for c in inspection.report.changes if c.server == record.server),
        next((a.entry for a in inspection.report.allowed if a.server == record.server), None),
    )
    if entry is None:
        return ()
    live = inspection.sealed.get(entry)
    desired = None
    for change in inspection.report.changes:
        if change.entry == entry:
            conflict = change.origin is Origin.CONFLICT
            return tuple(
                (f.path, f.old, f.new, f.last if conflict else NO_LAST)
                for f in change.fields
                if record.covers(f.path)
            )
    # Fully covered: the plan dropped the change, so diff the entry itself.
    for item in inspection.matched.allowed:
        if item.entry == entry:
            desired = inspection.desired.get(entry)
    fields = diff(live, desired) if desired is not None else ()
    last = last_applied.get(entry)
    conflict = last is not None and origin(desired, live, last) is Origin.CONFLICT
    return tuple(
        (
            f.path,
            f.old,
            f.new,
            resolve_pointer(last, f.path) if conflict else NO_LAST,
        )
        for f in fields
        if record.covers(f.path)
    )


def render_list(listed: Sequence[Listed]) -> str:
    if not listed:
        return "no divergence records"
    lines = []
    for item in listed:
        r = item.record
        label = item.state.value
        if not r.reviewed and item.state not in (State.UNREVIEWED,):
            label += ", unreviewed"
        commit = (
            f"{item.commit.short} {item.commit.author} {item.commit.date}"
            if item.commit
            else "(not committed)"
        )
        if item.uncommitted and item.commit:
            commit += " (modified since)"
        lines.append(f"{r.id}  [{label}]  {r.target}/{r.server} {r.shown_paths}")
        lines.append(f"    commit:  {commit}")
        lines.append(f"    reason:  {r.reason}")
        lines.append(f"    expires: {r.expires.isoformat() if r.expires else 'never'}")
    return "\n".join(lines)


def render_show(item: Listed, message: str | None) -> str:
    r = item.record
    lines = [
        f"record:   {r.id} ({item.file})",
        f"state:    {item.state.value}"
        + ("" if r.reviewed or item.state is State.UNREVIEWED else " (unreviewed)"),
        f"target:   {r.target}",
        f"server:   {r.server}",
        f"paths:    {r.shown_paths}",
        f"observed: {display(r.observed)}",
        f"reason:   {r.reason}",
        f"expires:  {r.expires.isoformat() if r.expires else 'never'}",
        f"created:  {r.created} by {r.created_by}",
    ]
    if item.commit is not None:
        lines.append(f"commit:   {item.commit.sha} {item.commit.author} {item.commit.date}")
        if message:
            lines += ["", *(f"    {line}" for line in message.rstrip().splitlines())]
    else:
        lines.append("commit:   (not committed)")
    lines.append("")
    if item.drift:
        lines.append("current difference (live -> desired):")
        for p, live, want, last in item.drift:
            if last is NO_LAST:
                lines.append(f"    ~ {p}: {display(live)} -> {display(want)}")
            else:  # a conflict: git and live both moved since the last apply
                lines.append(
                    f"    ~ {p}: desired {display(want)}, live {display(live)}, "
                    f"last applied {display(last)}"
                )
    else:
        lines.append("current difference: none at the record's paths")
    return "\n".join(lines)


def show(engine: Engine, record_id: str) -> tuple[Listed, str | None]:
    item = list_records(engine, record_id)[0]
    message = None
    if item.commit is not None:
        with gitlog.open_repository(engine.desired_dir) as repo:
            message = repo.message(item.commit.sha)
    return item, message


def _find(engine: Engine, record_id: str) -> Record:
    records = recordfiles.load(engine.desired_dir)
    for record in records:
        if record.id == record_id:
            return record
    known = ", ".join(r.id for r in records) or "none"
    raise UsageError(f"no divergence record '{record_id}' (records: {known})")


def accept(engine: Engine, record_id: str) -> Done:
    """Mark a record reviewed (``reviewed: true``, layout kept) and commit it."""
    gitlog.require_repository(engine.desired_dir)
    record = _find(engine, record_id)
    if record.reviewed:
        raise UsageError(f"record '{record_id}' is already accepted")

    yaml = make_yaml()
    document = yaml.load(record.file.read_text(encoding="utf-8"))
    document[divergence.KEY]["reviewed"] = True
    import io

    buffer = io.StringIO()
    yaml.dump(document, buffer)
    with gitlog.open_repository(engine.desired_dir) as repo:
        fsutil.atomic_write(record.file, buffer.getvalue().encode("utf-8"))
        message = gitlog.build_message(
            f"divergence: accept {record.server} on {record.target} "
            f"({_subject_paths(record.paths)})",
            f"Record {record.id} reviewed and accepted.\n\n{record.reason}",
            _trailers("accept", record.target, record.server, record.paths, record.expires),
            redact=redact,
        )
        sha = repo.commit([record.file], message, author=repo.identity())
    accepted = replace(record, reviewed=True)
    return Done(
        (accepted,), tuple(recordfiles.shown_paths(engine.desired_dir, [accepted]).values()), sha
    )


def renew(
    engine: Engine,
    record_id: str,
    expires: date,
    reason: str | None = None,
    force: bool = False,
) -> Done:
    """Give a record a new expiry (and optionally a new reason) and commit it."""
    check_expiry(expires, engine.today(), force)
    if reason is not None:
        reason = reason.strip()
        if not reason:
            raise UsageError("--reason must say why the difference is still intended")
        if _holds_secret(reason):
            raise UsageError(
                "--reason looks like it holds a secret value; describe it, never paste it"
            )
    gitlog.require_repository(engine.desired_dir)
    record = _find(engine, record_id)
    if record.expires == expires and reason in (None, record.reason):
        raise UsageError(f"record '{record_id}' already expires on {expires}")
    renewed = replace(record, expires=expires, reason=reason or record.reason)
    before = record.expires.isoformat() if record.expires else "never"
    with gitlog.open_repository(engine.desired_dir) as repo:
        _write_record(renewed)
        message = gitlog.build_message(
            f"divergence: renew {record.server} on {record.target} until {expires}",
            f"Record {record.id} renewed: expires {expires} (was {before}).\n\n{renewed.reason}",
            _trailers("renew", record.target, record.server, record.paths, expires),
            redact=redact,
        )
        sha = repo.commit([record.file], message, author=repo.identity())
    notes: tuple[str, ...] = ()
    if renewed.expiring(engine.today()):
        notes = (f"record '{record_id}' expires on {expires}, within a week",)
    shown = recordfiles.shown_paths(engine.desired_dir, [renewed])[renewed.id]
    return Done((renewed,), (shown,), sha, notes=notes)


def reject(engine: Engine, record_id: str) -> Done:
    """Remove a record in a revert-style commit; the next pass syncs its entry back."""
    gitlog.require_repository(engine.desired_dir)
    record = _find(engine, record_id)
    shown = recordfiles.shown_paths(engine.desired_dir, [record])[record.id]
    with gitlog.open_repository(engine.desired_dir) as repo:
        made = repo.last_commits(recordfiles.directory(engine.desired_dir)).get(
            repo.relative(record.file)
        )
        record.file.unlink()
        origin = f'This reverts commit {made.sha} ("{made.subject}").\n\n' if made else ""
        message = gitlog.build_message(
            f"divergence: reject {record.server} on {record.target} "
            f"({_subject_paths(record.paths)})",
            f"{origin}Record {record.id} is rejected and removed: the next `reconcile` pass "
            f"syncs {record.server} on {record.target} back to desired state.",
            _trailers("reject", record.target, record.server, record.paths, record.expires),
            redact=redact,
        )
        sha = repo.commit([record.file], message, author=repo.identity())
    rejected = engine.store.rejections()
    rejected.setdefault(record.target, {})[record.server] = record.id
    engine.store.save_rejections(rejected)
    return Done((record,), (shown,), sha)


def prune_stale(engine: Engine) -> Done:
    """Remove every stale record in one commit."""
    gitlog.require_repository(engine.desired_dir)
    stale = [item for item in list_records(engine) if item.state is State.STALE]
    if not stale:
        return Done((), (), None, notes=("no stale divergence records",))
    with gitlog.open_repository(engine.desired_dir) as repo:
        for item in stale:
            item.record.file.unlink()
        targets = sorted({i.record.target for i in stale})
        servers = sorted({i.record.server for i in stale})
        body = "Their drift is gone: the targets agree with desired state at their paths.\n\n"
        body += "\n".join(f"- {i.record.id} ({i.record.shown_paths})" for i in stale)
        message = gitlog.build_message(
            f"divergence: prune {len(stale)} stale record{'s' if len(stale) > 1 else ''}",
            body,
            [
                ("Action", "prune"),
                ("Target", ", ".join(targets)),
                ("Server", ", ".join(servers)),
                ("Paths", ", ".join(sorted({p for i in stale for p in i.record.paths}))),
            ],
            redact=redact,
        )
        sha = repo.commit([i.record.file for i in stale], message, author=repo.identity())
    return Done(
        tuple(i.record for i in stale),
        tuple(i.file for i in stale),
        sha,
    )
