"""A SQLite file of data derived from the journal alone (the worker's action store, the graph
builder's entity index): opened for one journal topic, with the journal position it reflects.

One that cannot be read, or belongs to another journal, is replaced: everything in it came from the
journal, which is read again. In memory (``:memory:``) nothing survives; a file is written in WAL mode,
so a ``kill -9`` mid-write loses at most what was not committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from processor.errors import RewindError, Where

MEMORY = ":memory:"
_MEMORY_PRAGMAS = "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"  # nothing to survive
_FILE_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"  # survives a kill -9 mid-write
_COMMON = """
CREATE TABLE IF NOT EXISTS journal (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class DerivedFileError(RewindError):
    """A derived file that cannot be used; it is rebuilt from the journal."""


class DerivedFile:
    """Subclasses name what they hold (``what``) and their tables (``schema``)."""

    what = "derived file"
    schema = ""

    def __init__(self, path: Path | str = MEMORY) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            pragmas = _MEMORY_PRAGMAS if self.path == MEMORY else _FILE_PRAGMAS
            self._db.executescript(pragmas + _COMMON + self.schema)
        except sqlite3.DatabaseError as exc:
            raise DerivedFileError(f"{self.what} is unreadable: {exc}", where=Where(file=self.path)) from exc

    @classmethod
    def open(cls, path: Path | str, journal_topic: str) -> tuple[Self, str | None]:
        """The file at ``path`` for this journal topic, and why it starts empty when it does."""
        if str(path) == MEMORY:
            return cls(path), f"the {cls.what} is in memory"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            found = cls(path)
            topic = found._meta("journal_topic")
        except (DerivedFileError, sqlite3.DatabaseError) as exc:
            why = f"the {cls.what} at {path} is unreadable ({exc})"
        else:
            if topic == journal_topic:
                return found, None
            found.close()
            why = f"the {cls.what} at {path} is of journal {topic!r}" if topic else f"no {cls.what} at {path}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        fresh = cls(path)
        fresh._set_meta("journal_topic", journal_topic)
        return fresh, why

    def positions(self) -> dict[int, int]:
        """The journal position the file reflects: partition -> next offset to read."""
        return {int(p): int(o) for p, o in self._db.execute("SELECT partition, next_offset FROM journal")}

    def mark(self, positions: Mapping[int, int]) -> None:
        """The journal position a restart resumes from (partition -> next offset): every entry before
        it is in the file. It never goes back."""
        with self._db:
            self._db.executemany(
                "INSERT INTO journal VALUES (?, ?) ON CONFLICT (partition) "
                "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                list(positions.items()),
            )

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._db.close()
