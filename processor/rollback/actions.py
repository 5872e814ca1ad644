"""Every journaled action by id, for the planner: its entry, and the lookups selectors need.

SQLite (in memory, or a file) holds each entry's journal bytes with the columns a selector filters on;
field predicates are prefiltered by the field's name in a text column and then decided by
``Selector.matches``, so a store can never disagree with the selector's semantics.

A file store also records the journal position a restarted worker resumes from (``mark``), so it reads
only the journal after it. It is derived from the journal alone: one that cannot be read, or belongs to
another journal, is rebuilt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

from processor.errors import RewindError, Where
from processor.journal.model import JournalEntry
from processor.journal.serde import deserialize, serialize
from processor.rollback.request import Selector, SelectorKind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    action_id TEXT PRIMARY KEY,
    action_type TEXT NOT NULL,
    correlation_id TEXT,
    trace_id TEXT,
    ts INTEGER NOT NULL,
    fields TEXT NOT NULL,
    entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS by_correlation ON actions (correlation_id);
CREATE INDEX IF NOT EXISTS by_trace ON actions (trace_id);
CREATE INDEX IF NOT EXISTS by_type ON actions (action_type, ts);
CREATE TABLE IF NOT EXISTS journal (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
MEMORY = ":memory:"
_MEMORY_PRAGMAS = "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"  # nothing to survive
_FILE_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"  # survives a kill -9 mid-write


class ActionLookup(Protocol):
    """What the planner needs to know about actions beyond the graph."""

    def get_many(self, action_ids: Iterable[str]) -> dict[str, JournalEntry]: ...

    def select(self, selector: Selector) -> list[str]: ...

    def unreadable(self, selector: Selector) -> list[str]: ...


class ActionStoreError(RewindError):
    """A store file that cannot be used; it is rebuilt from the journal."""


class ActionStore:
    def __init__(self, path: Path | str = MEMORY) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            pragmas = _MEMORY_PRAGMAS if self.path == MEMORY else _FILE_PRAGMAS
            self._db.executescript(pragmas + _SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ActionStoreError(f"action store is unreadable: {exc}", where=Where(file=self.path)) from exc

    @classmethod
    def open(cls, path: Path | str, journal_topic: str) -> tuple[ActionStore, str | None]:
        """The store at ``path`` for this journal topic, and why it starts empty when it does. A file
        that cannot be read, or is of another journal, is replaced: everything in it came from the
        journal, which is read again."""
        if str(path) == MEMORY:
            return cls(path), "the action store is in memory"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            store = cls(path)
            topic = store._meta("journal_topic")
        except (ActionStoreError, sqlite3.DatabaseError) as exc:
            why = f"the action store at {path} is unreadable ({exc})"
        else:
            if topic == journal_topic:
                return store, None
            store.close()
            why = (
                f"the action store at {path} is of journal {topic!r}"
                if topic
                else f"no action store at {path}"
            )
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        store = cls(path)
        store._set_meta("journal_topic", journal_topic)
        return store, why

    def positions(self) -> dict[int, int]:
        """The journal position the store reflects: partition -> next offset to read."""
        return {int(p): int(o) for p, o in self._db.execute("SELECT partition, next_offset FROM journal")}

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def add(self, entry: JournalEntry, data: bytes | None = None) -> None:
        self.add_many([(entry, data)])

    def add_many(self, entries: Iterable[tuple[JournalEntry, bytes | None]]) -> None:
        """Entries with their journal bytes when at hand (re-encoded otherwise); duplicates ignored."""
        rows = (
            (
                e.action_id, e.action_type, e.correlation_id, e.trace.trace_id if e.trace else None,
                e.commit_ts_ms or e.journal_ts_ms, _field_names(e), data or serialize(e),
            )
            for e, data in entries
        )  # fmt: skip
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO actions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def mark(self, positions: Mapping[int, int]) -> None:
        """The journal position a restart resumes from (partition -> next offset): every entry before
        it is stored, and what it caused is committed. It never goes back."""
        with self._db:
            self._db.executemany(
                "INSERT INTO journal VALUES (?, ?) ON CONFLICT (partition) "
                "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                list(positions.items()),
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM actions").fetchone()[0])

    def get(self, action_id: str) -> JournalEntry | None:
        return self.get_many([action_id]).get(action_id)

    def get_many(self, action_ids: Iterable[str]) -> dict[str, JournalEntry]:
        ids = list(action_ids)
        found: dict[str, JournalEntry] = {}
        for chunk in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            part = ids[chunk : chunk + 900]
            marks = ",".join("?" * len(part))
            for action_id, blob in self._db.execute(
                f"SELECT action_id, entry FROM actions WHERE action_id IN ({marks})",  # noqa: S608 (only '?' marks)
                part,
            ):
                found[action_id] = deserialize(blob)
        return found

    def select(self, selector: Selector) -> list[str]:
        """Ids of the actions the selector picks, in time order."""
        return [e.action_id for e in self._candidates(selector) if selector.matches(e)]

    def unreadable(self, selector: Selector) -> list[str]:
        """Ids of actions whose field the selector's numeric predicate cannot read (see FieldPredicate)."""
        if selector.predicate is None or not selector.predicate.numeric:
            return []
        return [e.action_id for e in self._candidates(selector) if selector.unreadable(e)]

    def _candidates(self, s: Selector) -> Iterator[JournalEntry]:
        where: list[str] = ["ts >= ?", "ts <= ?"]
        args: list[object] = [s.from_ts_ms or -(2**62), s.to_ts_ms or 2**62]
        match s.kind:
            case SelectorKind.ACTION_IDS:
                yield from self.get_many(s.action_ids).values()
                return
            case SelectorKind.CORRELATION_ID:
                where.append("correlation_id = ?")
                args.append(s.correlation_id)
            case SelectorKind.TRACE_ID:
                where.append("trace_id = ?")
                args.append(s.trace_id)
            case SelectorKind.ACTION_TYPE_WINDOW:
                where.append("action_type = ?")
                args.append(s.action_type)
        if s.action_type and s.kind is SelectorKind.FIELD_PREDICATE:
            where.append("action_type = ?")
            args.append(s.action_type)
        if s.predicate is not None:
            where.append("instr(fields, ?) > 0")
            args.append(f"|{s.predicate.field.split('.')[-1]}|")
        # Only fixed clauses with '?' placeholders are joined here; values travel as parameters.
        query = f"SELECT entry FROM actions WHERE {' AND '.join(where)} ORDER BY ts, action_id"  # noqa: S608
        for (blob,) in self._db.execute(query, args):
            yield deserialize(blob)

    def close(self) -> None:
        self._db.close()


def _field_names(entry: JournalEntry) -> str:
    """'|name|name|…|': every key in the payload, decision and row images, for predicate prefilters."""
    names: set[str] = set(entry.decision)
    stack = [entry.event.payload] if entry.event else []
    stack += [img for c in entry.changes for img in (c.before, c.after) if img]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            names.update(str(k) for k in value)
            stack.extend(v for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, dict | list))
    return "|" + "|".join(sorted(names)) + "|" if names else "||"
