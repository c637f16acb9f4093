"""Allowed divergences: records that a difference is intended, and matching them to drift.

A record is one small YAML file in ``desired/divergences/`` (DESIGN section 3), committed to
git with a reason and an optional expiry. It names a target, a server (or any entry: a mirror
uses file paths), the JSON Pointers it allows to differ (``[]``: the whole entry) and
``observed``, a keyed fingerprint of the live values at those paths when it was made. The
fingerprint is taken over the *sealed* essence, so a secret value never reaches a record.

Matching is pure. A record covers a drifted field while:

- the record names the target and the server, and one of its paths is the field's path or
  a parent of it;
- it has not expired (``expires`` is the last day it covers);
- the live values at its paths still have the recorded fingerprint. When someone edits the
  value again, the fingerprint differs and the field is drift again.

Covered drift does not count for the exit code and is reported under ``allowed``. A record
whose drift is gone is ``stale``; a record whose live values moved on is ``changed``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from reconciler.core.compare import FieldChange, pointer_parts, resolve_pointer
from reconciler.core.essence import SECRET_FIELDS, Essence, Sealer, is_sealed_value
from reconciler.core.model import OnDrift
from reconciler.core.plan import Action, Change

KEY = "divergence"
EXPIRY_WARNING = timedelta(days=7)
WHOLE_ENTRY = "(whole entry)"


class State(StrEnum):
    """Where a record stands against the live target (precedence in this order)."""

    EXPIRED = "expired"  # past its expiry: covers nothing
    STALE = "stale"  # its drift is gone: the target agrees with desired at its paths
    CHANGED = "changed"  # the live values moved on since it was recorded: covers nothing
    EXPIRING = "expiring"  # covers, and expires within a week
    UNREVIEWED = "unreviewed"  # covers, not accepted yet
    ACTIVE = "active"  # covers, reviewed
    UNKNOWN = "unknown"  # its target was not observed (not selected, or it failed)


COVERING = frozenset({State.EXPIRING, State.UNREVIEWED, State.ACTIVE})


@dataclass(frozen=True)
class Record:
    """One allowed-divergence record; ``id`` is the file stem."""

    id: str
    file: Path
    target: str
    server: str
    paths: tuple[str, ...]
    observed: str
    reason: str
    expires: date | None = None
    created: str = ""
    created_by: str = ""
    reviewed: bool = False

    def covers(self, path: str) -> bool:
        """Whether a difference at ``path`` lies under one of the record's pointers."""
        return covered(path, self.paths)

    def expired(self, today: date) -> bool:
        return self.expires is not None and today > self.expires

    def expiring(self, today: date) -> bool:
        return (
            self.expires is not None
            and not self.expired(today)
            and self.expires - today <= EXPIRY_WARNING
        )

    @property
    def shown_paths(self) -> str:
        return ", ".join(self.paths) if self.paths else WHOLE_ENTRY


def covered(path: str, pointers: Sequence[str]) -> bool:
    """``path`` equals or lies under one of ``pointers``; no pointers means everything."""
    if not pointers:
        return True
    parts = pointer_parts(path)
    for pointer in pointers:
        prefix = pointer_parts(pointer)
        if parts[: len(prefix)] == prefix:
            return True
    return False


def fingerprint(entry: Any, paths: Sequence[str], seal: Sealer) -> str:
    """The keyed fingerprint of the values at ``paths`` in ``entry`` (all of it if no paths).

    ``entry`` must already be sealed (secret values replaced by their fingerprints), so the
    result says nothing about any secret even to someone holding the key.
    """
    payload: Any = entry
    if paths:
        payload = {p: resolve_pointer(entry, p) for p in sorted(set(paths))}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return seal(text)


def all_sealed(entry: Any, seal: Sealer) -> Any:
    """``entry`` with every env and header value sealed, as records written before only
    secrets were masked saw it: such a record still matches the entry it was made from."""
    if not isinstance(entry, dict) or not any(k in entry for k in SECRET_FIELDS):
        return entry
    out = dict(entry)
    for name in SECRET_FIELDS:
        if isinstance(out.get(name), dict):
            out[name] = {k: v if is_sealed_value(v) else seal(str(v)) for k, v in out[name].items()}
    return out


# -- matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowed:
    """Drift of one entry covered by one record, as reports show it."""

    server: str
    entry: str
    paths: tuple[str, ...]
    record: str  # record id
    file: str  # the record's path as shown (relative to the repository)
    expires: date | None = None
    state: State = State.ACTIVE

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "paths": list(self.paths),
            "record": self.file,
            "id": self.record,
            "expires": self.expires.isoformat() if self.expires else None,
            "state": self.state.value,
        }


@dataclass(frozen=True)
class Draft:
    """A record a non-dry pass must write and commit (``on_drift: record``)."""

    target: str
    server: str
    entry: str
    paths: tuple[str, ...]
    observed: str
    origin: str
    replaces: str | None = None  # id of a record of the same paths whose live value moved on


@dataclass(frozen=True)
class Match:
    """The outcome of matching one target's plan against the records."""

    changes: tuple[Change, ...]  # what remains actionable (covered fields removed)
    allowed: tuple[Allowed, ...] = ()
    keep: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # entry -> live pointers
    states: Mapping[str, State] = field(default_factory=dict)  # record id -> state
    notes: tuple[str, ...] = ()
    drafts: tuple[Draft, ...] = ()


def record_state(
    record: Record,
    drift: Sequence[FieldChange] | None,
    live_entry: Any,
    seal: Sealer,
    today: date,
) -> State:
    """A record's state given the current drift of its entry (None: not observed)."""
    if record.expired(today):
        return State.EXPIRED
    if drift is None:
        return State.UNKNOWN
    if not any(record.covers(f.path) for f in drift):
        return State.STALE
    if fingerprint(live_entry, record.paths, seal) != record.observed and (
        fingerprint(all_sealed(live_entry, seal), record.paths, seal) != record.observed
    ):
        return State.CHANGED
    if record.expiring(today):
        return State.EXPIRING
    return State.ACTIVE if record.reviewed else State.UNREVIEWED


def match(
    target: str,
    changes: Sequence[Change],
    live: Mapping[str, Any],
    records: Sequence[Record],
    seal: Sealer,
    today: date,
    *,
    on_drift: OnDrift = OnDrift.SYNC,
    in_scope: Iterable[str] = (),
    shown: Mapping[str, str] | None = None,
) -> Match:
    """Split one target's changes into covered (allowed) and remaining drift.

    ``live`` holds the sealed live essences by entry name; ``in_scope`` are the servers this
    pass looked at (records of other servers get no state); ``shown`` maps record ids to the
    file path reports show.
    """
    mine = [r for r in records if r.target == target]
    if not mine:
        return Match(tuple(changes))
    shown = shown or {}
    by_server = {c.server: c for c in changes}
    scope = set(in_scope) | set(by_server)
    remaining: list[Change] = []
    allowed: list[Allowed] = []
    keep: dict[str, tuple[str, ...]] = {}
    states: dict[str, State] = {}
    notes: list[str] = []

    for record in mine:
        if record.server not in scope:
            continue
        change = by_server.get(record.server)
        entry = change.entry if change is not None else record.server
        drift = change.fields if change is not None else ()
        states[record.id] = record_state(record, drift, live.get(entry), seal, today)

    for change in changes:
        candidates = [r for r in mine if r.server == change.server]
        covering = [r for r in candidates if states.get(r.id) in COVERING]
        uncovered = tuple(f for f in change.fields if not any(r.covers(f.path) for r in covering))
        for record in covering:
            paths = tuple(f.path for f in change.fields if record.covers(f.path))
            allowed.append(
                Allowed(
                    change.server,
                    change.entry,
                    paths,
                    record.id,
                    shown.get(record.id, record.id),
                    record.expires,
                    states[record.id],
                )
            )
            if record.expiring(today):
                notes.append(
                    f"divergence record '{record.id}' expires on {record.expires}: "
                    f"renew it with `reconcile divergences renew {record.id} --expires DATE`, "
                    "or let it lapse"
                )
        if covering:
            keep[change.entry] = tuple(sorted({p for r in covering for p in r.paths or ("",)}))
        if not uncovered:
            continue
        rest = replace(change, fields=uncovered) if len(uncovered) < len(change.fields) else change
        lapsed = [
            r
            for r in candidates
            if states.get(r.id) is State.EXPIRED
            and fingerprint(live.get(change.entry), r.paths, seal) == r.observed
            and any(r.covers(f.path) for f in uncovered)
        ]
        if lapsed:
            names = ", ".join(r.id for r in lapsed)
            notes.append(
                f"divergence record {names} expired; the drift of {change.server} is actionable "
                "again (`reconcile divergences reject` syncs it, `reconcile divergences renew` "
                "extends it)"
            )
            if on_drift is OnDrift.RECORD and rest.action is Action.RECORD:
                # Re-recording would renew an expired record silently: report it instead.
                rest = replace(rest, apply=False)
        remaining.append(rest)

    for record in mine:
        if states.get(record.id) is State.STALE:
            notes.append(
                f"divergence record '{record.id}' is stale (its drift is gone); "
                "`reconcile divergences prune-stale` removes it"
            )
    return Match(tuple(remaining), tuple(allowed), keep, states, tuple(notes))


def resolve(
    target: str,
    on_drift: OnDrift,
    changes: Sequence[Change],
    sync_changes: Sequence[Change] | None,
    sealed: Mapping[str, Essence],
    seal: Sealer,
    records: Sequence[Record],
    rejected: Mapping[str, str],
    today: date,
    *,
    servers: Sequence[str] = (),
    placed: Iterable[str] = (),
    shown: Mapping[str, str] | None = None,
) -> Match:
    """Everything divergence records do to one target's plan, in one pure step.

    ``sealed`` holds the target's live entries, sealed as the plan compared them;
    ``rejected`` maps servers whose record was rejected to the record id: their live edits
    are synced once instead of recorded again. ``sync_changes`` is the plan under
    ``on_drift: sync``, needed only when something was rejected.
    """
    mine = [r for r in records if r.target == target]
    recording = any(c.action is Action.RECORD for c in changes)
    if not mine and not recording:
        return Match(tuple(changes))
    if rejected and sync_changes is not None:
        instead = {c.entry: c for c in sync_changes}
        changes = [
            instead.get(c.entry, c) if c.action is Action.RECORD and c.server in rejected else c
            for c in changes
        ]
    scope = {c.server for c in changes} | set(sealed) | set(placed)
    if servers:
        scope &= set(servers)
    result = match(
        target, changes, sealed, mine, seal, today, on_drift=on_drift, in_scope=scope, shown=shown
    )
    drafts = []
    for change in result.changes:
        if change.action is not Action.RECORD or not change.apply:
            continue
        paths = tuple(change.paths)
        previous = next(
            (
                r.id
                for r in mine
                if r.server == change.server
                and result.states.get(r.id) is State.CHANGED
                and set(r.paths) == set(paths)
            ),
            None,
        )
        drafts.append(
            Draft(
                target,
                change.server,
                change.entry,
                paths,
                fingerprint(sealed.get(change.entry), paths, seal),
                change.origin.value,
                previous,
            )
        )
    return replace(result, drafts=tuple(drafts))


# -- patching writes -----------------------------------------------------------------------


def keep_live(write: Any, live: Any, pointers: Sequence[str]) -> Any:
    """``write`` with the values at ``pointers`` taken from ``live`` (the allowed ones).

    A sync of the uncovered part of an entry must not revert its covered part, the gap that
    Argo CD's ``RespectIgnoreDifferences`` option papers over. ``""`` is the whole entry.
    """
    if any(p in ("", "/") for p in pointers) or not pointers:
        return live
    result = json.loads(json.dumps(write)) if write is not None else {}
    for pointer in pointers:
        result = _set(result, pointer_parts(pointer), resolve_pointer(live, pointer))
    return result


def _set(node: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(node, list) and head.isdigit():
        index = int(head)
        items = list(node)
        if index < len(items):
            if value is None and not rest:
                del items[index]
            else:
                items[index] = _set(items[index], rest, value)
        elif value is not None:
            items.append(_set(None, rest, value))
        return items
    mapping = dict(node) if isinstance(node, dict) else {}
    if value is None and not rest:
        mapping.pop(head, None)
    else:
        mapping[head] = _set(mapping.get(head), rest, value)
    return mapping
