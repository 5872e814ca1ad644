"""Every row's versions, from the journal's before/after images (pure): what a row looked like at a
time or log position, and who changed it since and why.

A version is what one action left in one row: the after-image (or, for a delete, that the row was
gone), with the action, its commit time, its log position and the journal time it was known at.
Versions of a row are ordered by commit time, then log position, which is the database's own order
within one source. ``as_known_at`` answers from the versions the journal held by
then, so the history before a rollback or repair stays readable after it.

Once retention has deleted the journal's oldest entries, the holder is complete only from its
*horizon* (the commit time of the first entry it read after the gap): a question about a time before
it, or one whose answer would rest on the absence of a version before it, is refused, never guessed.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from processor.errors import RewindError
from processor.journal.model import JournalEntry, JsonObject, Op, entity_ref
from processor.jsonvalue import JsonInvalid, loads

_LSN = re.compile(r"lsn:(\d+)")


class HistoryQueryInvalid(RewindError):
    """A history or state query that cannot be answered as written (not retryable)."""


@dataclass(frozen=True, slots=True)
class Moment:
    """A point in a row's history: a commit time (epoch ms) or a log position (PostgreSQL LSN)."""

    ts_ms: int | None = None
    lsn: int | None = None

    @classmethod
    def parse(cls, text: str) -> Moment:
        """ISO-8601 with a zone, epoch milliseconds, or ``lsn:N``."""
        text = text.strip()
        if match := _LSN.fullmatch(text):
            return cls(lsn=int(match.group(1)))
        if text.isdigit():
            return cls(ts_ms=int(text))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise HistoryQueryInvalid(
                f"time {text!r} is none of an ISO-8601 time, epoch milliseconds or lsn:N"
            ) from None
        if moment.tzinfo is None:
            raise HistoryQueryInvalid(f"time {text!r} needs a time zone (e.g. +00:00 or Z)")
        return cls(ts_ms=int(moment.timestamp() * 1000))


@dataclass(frozen=True, slots=True)
class Undo:
    """How a version's action was later undone: by which request, how (restored, compensated,
    repaired, ...), and the action that shows it (the service's answer)."""

    request_id: str
    how: str
    by_action: str | None = None


@dataclass(frozen=True, slots=True)
class Version:
    entity: str
    collection: str
    key: JsonObject
    exists: bool
    row: JsonObject | None  # the whole row after the action (None: deleted, or a key-only image)
    action_id: str
    action_type: str
    commit_ts_ms: int
    lsn: int | None
    known_ts_ms: int  # when the journal had it
    correlation_id: str | None
    causation_ids: tuple[str, ...]
    op: Op

    @property
    def sort_key(self) -> tuple[int, int, str]:
        """The database's order (commit time, log position); ties, which one source never has, by
        action id, as the entity index orders them."""
        return (self.commit_ts_ms, self.lsn if self.lsn is not None else -1, self.action_id)


class RowVersions:
    """The queries, over whoever holds the versions (in memory here, or the graph builder's index)."""

    def __init__(self) -> None:
        self._undone: dict[str, Undo] = {}  # action id -> how it was later undone
        self.horizon_ms: int | None = None  # complete from this commit time on (None: from the start)

    def raise_horizon(self, commit_ts_ms: int) -> None:
        """Retention deleted journal entries before one committed at ``commit_ts_ms``: versions older
        than it may be missing."""
        self.horizon_ms = max(self.horizon_ms or commit_ts_ms, commit_ts_ms)

    def add_many(self, entries: Iterable[JournalEntry]) -> None:
        """The row versions of these actions (an action added before changes nothing)."""
        raise NotImplementedError

    def versions_of(self, entity: str) -> list[Version] | None:
        """The entity's versions in order; None when the journal never saw the row."""
        raise NotImplementedError

    def collections(self, table: str) -> set[str]:
        """The collections ('schema.table') a TABLE argument can name."""
        raise NotImplementedError

    def note_undo(self, action_id: str, undo: Undo) -> None:
        """A request later undid (or repaired) what ``action_id`` did (from rewind's status records, or
        from an entry that names the action it compensates)."""
        self._undone[action_id] = undo

    def undone(self, version: Version) -> Undo | None:
        return self._undone.get(version.action_id)

    def entity(self, table: str, key_text: str) -> str:
        """The entity a TABLE and KEY name: the key's JSON object, or the bare value of a one-column
        key; the table as 'schema.table' or, when only one schema has it, 'table'."""
        collections = self.collections(table)
        if not collections:
            raise HistoryQueryInvalid(f"no table {table!r} in the journal")
        if len(collections) > 1:
            raise HistoryQueryInvalid(
                f"table {table!r} is in {', '.join(sorted(collections))}: name one as schema.table"
            )
        [collection] = collections
        return entity_ref(collection, _key(key_text))

    def history(self, entity: str, as_known_at: int | None = None) -> list[Version]:
        versions = self.versions_of(entity)
        if versions is None:
            raise HistoryQueryInvalid(f"no row {entity} in the journal")
        return [v for v in versions if as_known_at is None or v.known_ts_ms <= as_known_at]

    def state(self, entity: str, at: Moment, as_known_at: int | None = None) -> Version | None:
        """The version in force at ``at`` (None: the row did not exist yet)."""
        versions = self.history(entity, as_known_at)
        if self.horizon_ms is not None and at.ts_ms is not None and at.ts_ms < self.horizon_ms:
            raise HistoryQueryInvalid(
                f"time {at.ts_ms} is before the journal's retention: it holds every version from "
                f"{_iso(self.horizon_ms)} ({self.horizon_ms}) on"
            )
        if at.lsn is not None:
            if not any(v.lsn is not None for v in versions):
                why = f"{entity} has no LSN positions (its source has none): ask by time"
                raise HistoryQueryInvalid(why)
            found = [v for v in versions if v.lsn is not None and v.lsn <= at.lsn]
        else:
            assert at.ts_ms is not None
            found = [v for v in versions if v.commit_ts_ms <= at.ts_ms]
        if found:
            return found[-1]
        if self.horizon_ms is not None and versions and versions[0].op is not Op.CREATE:
            # Its first version held is not its creation: what it was before may have been deleted.
            raise HistoryQueryInvalid(
                f"{entity} at {at.ts_ms if at.lsn is None else f'lsn:{at.lsn}'}: its first version the "
                f"journal still holds ({versions[0].action_id}, {_iso(versions[0].commit_ts_ms)}) is not its "
                f"creation, and retention deleted the versions before {_iso(self.horizon_ms)}"
            )
        return None


def versions_of_entry(entry: JournalEntry) -> list[Version]:
    """The row versions one action left (its undo, if it names one, is ``undo_named``)."""
    versions: list[Version] = []
    for change in entry.changes:
        if change.op in (Op.TRUNCATE, Op.MESSAGE):
            continue  # not one row's version
        exists = change.op is not Op.DELETE
        versions.append(Version(
            entity=change.entity, collection=change.collection, key=change.key, exists=exists,
            row=change.after if exists else None, action_id=entry.action_id, action_type=entry.action_type,
            commit_ts_ms=committed_at(entry), lsn=change.position.lsn,
            known_ts_ms=entry.journal_ts_ms, correlation_id=entry.correlation_id,
            causation_ids=entry.causation_ids, op=change.op,
        ))  # fmt: skip
    return versions


def committed_at(entry: JournalEntry) -> int:
    """An action's commit time at its source (its journal time when the source gave none)."""
    return entry.commit_ts_ms or entry.journal_ts_ms


def table_names(collection: str) -> tuple[str, str]:
    """What a TABLE argument may say for a collection: the bare table, or 'schema.table' itself."""
    return collection.rpartition(".")[2], collection


def undo_named(entry: JournalEntry) -> tuple[str, Undo] | None:
    """An entry that names the action it compensates, and the request: that action's later undo."""
    if entry.compensated_action_id and entry.rewind_request_id:
        return entry.compensated_action_id, Undo(entry.rewind_request_id, "undone", entry.action_id)
    return None


class EntityHistory(RowVersions):
    """Every row's versions in memory (a capture, a dump, or a scan of the journal topic)."""

    def __init__(self) -> None:
        super().__init__()
        self._versions: dict[str, list[Version]] = {}
        self._tables: dict[str, set[str]] = {}  # table or collection -> collections
        self._seen: set[str] = set()  # action ids added (a re-read changes nothing)
        self._count = 0

    def add(self, entry: JournalEntry) -> None:
        if entry.action_id in self._seen:
            return
        self._seen.add(entry.action_id)
        if (named := undo_named(entry)) is not None:
            self.note_undo(*named)
        for version in versions_of_entry(entry):
            self._count += 1
            bisect.insort(self._versions.setdefault(version.entity, []), version, key=lambda v: v.sort_key)
            for name in table_names(version.collection):
                self._tables.setdefault(name, set()).add(version.collection)

    def add_many(self, entries: Iterable[JournalEntry]) -> None:
        for entry in entries:
            self.add(entry)

    def versions_of(self, entity: str) -> list[Version] | None:
        return self._versions.get(entity)

    def collections(self, table: str) -> set[str]:
        return self._tables.get(table, set())

    def __len__(self) -> int:
        return self._count


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _key(text: str) -> JsonObject:
    """A key as a JSON object, or a bare value standing for a one-column key."""
    try:
        value: Any = loads(text)
    except JsonInvalid:
        value = text  # a bare word: a text key
    if isinstance(value, dict):
        if not value:
            raise HistoryQueryInvalid("the key {} names no column")
        return value
    if isinstance(value, list):
        raise HistoryQueryInvalid(f"key {text!r} is a list: give a JSON object or one column's value")
    return {"": value}  # entity_ref of a one-column key uses only the value
