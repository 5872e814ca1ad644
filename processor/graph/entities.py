"""The graph builder's entity index: every row's versions on disk, so ``rewind state`` and ``rewind
history`` answer without scanning the journal.

A SQLite file beside the graph checkpoint (``history-<journal>.sqlite``), filled as the builder reads
the journal and marked with the position it reflects when the checkpoint is written; a restart reads
the journal from the older of the two positions, and a version already there is not added twice (its
key is the row, the commit time, the log position and the action). The table is clustered on that
key, so a row's versions are one range read in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from processor.errors import SchemaError
from processor.graph.history import RowVersions, Undo, Version, table_names, undo_named, versions_of_entry
from processor.journal.derived import DerivedFile
from processor.journal.model import JournalEntry, Op
from processor.jsonvalue import canonical_json, loads_own

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    entity TEXT NOT NULL, commit_ts INTEGER NOT NULL, lsn INTEGER NOT NULL, action_id TEXT NOT NULL,
    action_type TEXT NOT NULL, op TEXT NOT NULL, known_ts INTEGER NOT NULL,
    correlation_id TEXT, causes TEXT NOT NULL, collection TEXT NOT NULL, key TEXT NOT NULL, row TEXT,
    PRIMARY KEY (entity, commit_ts, lsn, action_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tables (
    name TEXT NOT NULL, collection TEXT NOT NULL, PRIMARY KEY (name, collection)
);
CREATE TABLE IF NOT EXISTS undone (
    action_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, how TEXT NOT NULL, by_action TEXT
);
"""
NO_LSN = -1  # the key's columns are NOT NULL: a source without LSNs stores this
CAUSE_SEPARATOR = "\x1f"


_INSERT = "INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def index_path(checkpoint_path: Path, journal_topic: str) -> Path:
    return checkpoint_path.with_name(f"history-{journal_topic}.sqlite")


class EntityIndex(DerivedFile, RowVersions):
    what = "entity index"
    schema = _SCHEMA

    def __init__(self, path: Path | str = ":memory:") -> None:
        DerivedFile.__init__(self, path)
        RowVersions.__init__(self)
        self._undone.update(
            (a, Undo(r, h, b)) for a, r, h, b in self._db.execute("SELECT * FROM undone")
        )  # fmt: skip
        if (horizon := self._meta("horizon_ms")) is not None:
            self.horizon_ms = int(horizon)

    def raise_horizon(self, commit_ts_ms: int) -> None:
        super().raise_horizon(commit_ts_ms)
        self._set_meta("horizon_ms", str(self.horizon_ms))

    def add_many(self, entries: Iterable[JournalEntry]) -> None:
        """Entries' row versions (one transaction); an action added before changes nothing."""
        rows: list[tuple[Any, ...]] = []
        tables: set[tuple[str, str]] = set()
        undone: list[tuple[str, str, str, str | None]] = []
        for entry in entries:
            if (named := undo_named(entry)) is not None:
                undone.append((named[0], named[1].request_id, named[1].how, named[1].by_action))
                self.note_undo(*named)
            for v in versions_of_entry(entry):
                rows.append((
                    v.entity, v.commit_ts_ms, NO_LSN if v.lsn is None else v.lsn, v.action_id,
                    v.action_type, v.op.value, v.known_ts_ms, v.correlation_id,
                    CAUSE_SEPARATOR.join(v.causation_ids), v.collection,
                    canonical_json(v.key), None if v.row is None else canonical_json(v.row),
                ))  # fmt: skip
                tables.update((name, v.collection) for name in table_names(v.collection))
        with self._db:
            self._db.executemany(_INSERT, rows)
            self._db.executemany("INSERT OR IGNORE INTO tables VALUES (?, ?)", sorted(tables))
            self._db.executemany("INSERT OR REPLACE INTO undone VALUES (?, ?, ?, ?)", undone)

    def versions_of(self, entity: str) -> list[Version] | None:
        rows = self._db.execute(
            "SELECT commit_ts, lsn, action_id, action_type, op, known_ts, correlation_id, causes, "
            "collection, key, row FROM versions WHERE entity = ? ORDER BY commit_ts, lsn, action_id",
            (entity,),
        ).fetchall()
        if not rows:
            return None
        found = []
        key_of: dict[str, Any] = {}  # a row's versions share its key: decoded once
        for ts, lsn, action, kind, op, known, correlation, causes, collection, key, row in rows:
            try:
                if key not in key_of:
                    key_of[key] = loads_own(key)
                found.append(Version(
                    entity=entity, collection=collection, key=key_of[key], exists=op != Op.DELETE.value,
                    row=None if row is None else loads_own(row), action_id=action, action_type=kind,
                    commit_ts_ms=ts, lsn=None if lsn == NO_LSN else lsn, known_ts_ms=known,
                    correlation_id=correlation, causation_ids=_causes(causes),
                    op=Op(op),
                ))  # fmt: skip
            except ValueError as exc:
                raise SchemaError(f"entity index {self.path}: unreadable version of {entity}: {exc}") from exc
        return found

    def collections(self, table: str) -> set[str]:
        return {c for (c,) in self._db.execute("SELECT collection FROM tables WHERE name = ?", (table,))}

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM versions").fetchone()[0])


def _causes(text: str) -> tuple[str, ...]:
    return tuple(text.split(CAUSE_SEPARATOR)) if text else ()
