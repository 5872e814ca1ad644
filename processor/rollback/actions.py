"""Every journaled action by id, for the planner: its entry, and the lookups selectors need.

SQLite (in memory, or a file) holds each entry's journal bytes with the columns a selector filters on;
field predicates are prefiltered by the field's name in a text column and then decided by
``Selector.matches``, so a store can never disagree with the selector's semantics.

A file store also records the journal position a restarted worker resumes from (``mark``), so it reads
only the journal after it. It is derived from the journal alone: one that cannot be read, or belongs to
another journal, is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from processor.journal.derived import DerivedFile
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
"""


class ActionLookup(Protocol):
    """What the planner needs to know about actions beyond the graph."""

    def get_many(self, action_ids: Iterable[str]) -> dict[str, JournalEntry]: ...

    def select(self, selector: Selector) -> list[str]: ...

    def unreadable(self, selector: Selector) -> list[str]: ...


class ActionStore(DerivedFile):
    what = "action store"
    schema = _SCHEMA

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
