"""The tap's pure pipeline: one source record in, journal entries and dead letters out.

The live runner and ``rewind decode --capture`` both drive this object; only where records come from
and where outputs go differ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from processor.config import Settings
from processor.errors import DeadLetterReason, InvalidRecord
from processor.model import JournalEntry
from processor.rollback.catalog import Catalog
from processor.tap.assembler import Assembler, DedupeIndex
from processor.tap.cdc import Tombstone, parse_change
from processor.tap.decoding import SchemaLookup, decode, unwrap
from processor.tap.outbox import parse_outbox
from processor.tap.records import SourceRecord
from processor.tap.transactions import looks_like_tx_metadata, parse_tx_metadata


class RecordKind(StrEnum):
    CDC = "cdc"
    TX_METADATA = "tx_metadata"
    OUTBOX = "outbox"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    reason: DeadLetterReason
    message: str


@dataclass
class TapOutput:
    entries: list[JournalEntry] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def extend(self, other: TapOutput) -> None:
        self.entries += other.entries
        self.dead_letters += other.dead_letters


class TapObserver(Protocol):
    """What the metrics adapter hears; the core never touches metric objects."""

    def consumed(self, record: SourceRecord, kind: RecordKind | None) -> None: ...
    def journaled(self, entry: JournalEntry) -> None: ...
    def dead_lettered(self, dead: DeadLetter) -> None: ...
    def duplicate_dropped(self) -> None: ...


class _Silent:
    def consumed(self, record: SourceRecord, kind: RecordKind | None) -> None: ...
    def journaled(self, entry: JournalEntry) -> None: ...
    def dead_lettered(self, dead: DeadLetter) -> None: ...
    def duplicate_dropped(self) -> None: ...


class TopicRouter:
    """Which kind a topic carries, from the configured lists; a name starting with '^' is a regex."""

    def __init__(self, cdc: list[str], tx_metadata: list[str], outbox: list[str]) -> None:
        self._rules = [
            (RecordKind.CDC, cdc),
            (RecordKind.TX_METADATA, tx_metadata),
            (RecordKind.OUTBOX, outbox),
        ]
        self._cache: dict[str, RecordKind | None] = {}

    def kind(self, topic: str) -> RecordKind | None:
        if topic not in self._cache:
            self._cache[topic] = next(
                (kind for kind, names in self._rules if any(_matches(n, topic) for n in names)), None
            )
        return self._cache[topic]


def _matches(pattern: str, topic: str) -> bool:
    return re.fullmatch(pattern, topic) is not None if pattern.startswith("^") else pattern == topic


class TapCore:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        group_transactions: bool | None = None,
        lookup: SchemaLookup | None = None,
        observer: TapObserver | None = None,
        dedupe: DedupeIndex | None = None,
    ) -> None:
        self.settings = settings
        self.tap = settings.tap
        self.lookup = lookup
        self.observer: TapObserver = observer or _Silent()
        self.router = TopicRouter(settings.topics.cdc, settings.topics.tx_metadata, settings.topics.outbox)
        group = bool(settings.topics.tx_metadata) if group_transactions is None else group_transactions
        self.assembler = Assembler(
            settings.tap, catalog.reversibility, group_transactions=group, dedupe=dedupe
        )

    def process(self, record: SourceRecord, now_ms: int) -> TapOutput:
        kind = self.router.kind(record.topic)
        out = TapOutput()
        duplicates = self.assembler.stats.duplicates
        try:
            if record.size > self.tap.max_record_bytes:
                raise InvalidRecord(
                    DeadLetterReason.OVERSIZED,
                    f"{record.size} bytes exceeds the limit of {self.tap.max_record_bytes} "
                    "(REWIND_TAP__MAX_RECORD_BYTES)",
                    where=record.where,
                )
            value = decode(record.value, record, self.lookup, "value")
            kind = kind or _sniff(record, value, self.tap.outbox.event_id_header)
            out.entries = self._parse_and_add(kind, record, value, now_ms)
        except InvalidRecord as exc:
            out.dead_letters.append(DeadLetter(record, exc.reason, str(exc)))
        self.observer.consumed(record, kind)
        for _ in range(self.assembler.stats.duplicates - duplicates):
            self.observer.duplicate_dropped()
        return self._observed(out)

    def _parse_and_add(
        self, kind: RecordKind, record: SourceRecord, value: Any, now_ms: int
    ) -> list[JournalEntry]:
        if kind is RecordKind.TX_METADATA:
            return self.assembler.add(parse_tx_metadata(record, value), now_ms)
        key = decode(record.key, record, self.lookup, "key")
        if kind is RecordKind.CDC:
            change = parse_change(record, key, value)
            return [] if isinstance(change, Tombstone) else self.assembler.add(change, now_ms)
        return self.assembler.add(parse_outbox(record, key, value, self.tap.outbox), now_ms)

    def tick(self, now_ms: int) -> TapOutput:
        return self._observed(TapOutput(entries=self.assembler.expire(now_ms)))

    def finish(self, now_ms: int) -> TapOutput:
        return self._observed(TapOutput(entries=self.assembler.finish(now_ms)))

    def seed(self, entries: Iterable[JournalEntry]) -> int:
        count = 0
        for entry in entries:
            self.assembler.seed(entry)
            count += 1
        return count

    def _observed(self, out: TapOutput) -> TapOutput:
        for entry in out.entries:
            self.observer.journaled(entry)
        for dead in out.dead_letters:
            self.observer.dead_lettered(dead)
        return out


def _sniff(record: SourceRecord, value: Any, event_id_header: str) -> RecordKind:
    """A topic not named in the settings: tell its kind from the record itself."""
    if looks_like_tx_metadata(value):
        return RecordKind.TX_METADATA
    if value is None or (isinstance(value, dict) and "op" in value and "source" in value):
        return RecordKind.CDC
    if record.header(event_id_header) is not None:
        return RecordKind.OUTBOX
    raise InvalidRecord(
        DeadLetterReason.UNRECOGNIZED,
        "neither a Debezium change event, a transaction BEGIN/END, nor an outbox event "
        f"(no '{event_id_header}' header); name the topic in REWIND_TOPICS__CDC/__TX_METADATA/__OUTBOX",
        where=record.where,
    )


def capture_has_tx_metadata(records: Iterable[SourceRecord]) -> bool:
    """Offline: group by transaction when the capture holds BEGIN/END records."""
    for record in records:
        try:
            if looks_like_tx_metadata(unwrap(json.loads(record.value or b"null"))):
                return True
        except (ValueError, UnicodeDecodeError):
            continue
    return False
