"""The tap's pure pipeline: one source record in, journal entries and dead letters out.

The live runner and ``rewind decode --capture`` both drive this object; only where records come from
and where outputs go differ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from processor.catalog.catalog import Catalog
from processor.config import Settings
from processor.errors import DeadLetterReason, InvalidRecord
from processor.journal.model import JournalEntry, Phase
from processor.journal.serde import deserialize, journal_key, serialize
from processor.jsonvalue import JsonInvalid, loads
from processor.kafka.deadletters import DeadLetter
from processor.kafka.messages import KafkaMessage, SourceRecord, is_error
from processor.tap.assembler import Assembler, DedupeIndex, TapStats
from processor.tap.cdc import STRUCT_TEXT, ChangeEvent, Tombstone, parse_change
from processor.tap.decoding import SchemaLookup, decode_enveloped, decode_text, unwrap
from processor.tap.outbox import OutboxMessage, parse_outbox
from processor.tap.transactions import TxBoundary, looks_like_tx_metadata, parse_tx_metadata
from processor.undo import Reversibility


class RecordKind(StrEnum):
    CDC = "cdc"
    TX_METADATA = "tx_metadata"
    OUTBOX = "outbox"
    HEARTBEAT = "heartbeat"  # Debezium's heartbeats: routine, not actions
    SCHEMA_CHANGE = "schema_change"  # a connector's schema change topic (MySQL, MariaDB)


HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"


@dataclass(frozen=True, slots=True)
class Routine:
    """A record a connector sends besides changes (heartbeat, schema change): read, not journaled."""

    kind: RecordKind


@dataclass
class TapOutput:
    entries: list[JournalEntry] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def extend(self, other: TapOutput) -> None:
        self.entries += other.entries
        self.dead_letters += other.dead_letters


@dataclass
class Produced:
    """What the live loop writes for a batch: journal (key, Avro value) pairs and dead letters, plus
    the next offset per consumed partition."""

    journal: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, out: TapOutput) -> None:
        self.journal += [(journal_key(e), serialize(e)) for e in out.entries]
        self.dead_letters += out.dead_letters


class Journaled(Protocol):
    """What metrics read of a journaled action (a JournalEntry, or the native engine's summary)."""

    @property
    def action_type(self) -> str: ...
    @property
    def reversibility(self) -> Reversibility: ...
    @property
    def complete(self) -> bool: ...
    @property
    def phase(self) -> Phase: ...
    @property
    def type_fallback(self) -> bool: ...


class TapObserver(Protocol):
    """What the metrics adapter hears; the core never touches metric objects."""

    def consumed(self, topic: str, kind: RecordKind | None, count: int = 1) -> None: ...
    def journaled(self, entry: Journaled) -> None: ...
    def dead_lettered(self, dead: DeadLetter) -> None: ...
    def duplicate_dropped(self, count: int = 1) -> None: ...


class SilentObserver:
    def consumed(self, topic: str, kind: RecordKind | None, count: int = 1) -> None: ...
    def journaled(self, entry: Journaled) -> None: ...
    def dead_lettered(self, dead: DeadLetter) -> None: ...
    def duplicate_dropped(self, count: int = 1) -> None: ...


class TapCore(Protocol):
    """The tap's one role: records in, journal entries and dead letters out. Two implementations:
    ``PythonTapCore`` (here, the reference) and ``NativeTapCore`` (tap/native.py, around the Rust
    extension's engine); ``tap.engine.tap_core()`` chooses one from the settings.

    ``process``/``tick``/``finish`` give entries as objects (tests, ``rewind decode``); ``consume`` and
    ``expire`` give the live loop bytes to produce."""

    engine: str  # "python" or "native", for logs

    def process(self, record: SourceRecord, now_ms: int) -> TapOutput: ...
    def tick(self, now_ms: int) -> TapOutput: ...
    def finish(self, now_ms: int) -> TapOutput: ...
    def consume(self, messages: Sequence[KafkaMessage], now_ms: int) -> Produced: ...
    def expire(self, now_ms: int) -> Produced: ...
    def seed(self, entries: Iterable[JournalEntry]) -> int: ...
    def seed_journal(self, values: Sequence[bytes]) -> int: ...
    def safe_offsets(self) -> dict[tuple[str, int], int]: ...
    @property
    def stats(self) -> TapStats: ...
    @property
    def open_transactions(self) -> int: ...
    @property
    def pending_intents(self) -> int: ...
    @property
    def dedupe_size(self) -> int: ...


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


Parsed = ChangeEvent | Tombstone | TxBoundary | OutboxMessage | Routine


class PythonTapCore:
    """The reference tap core, in Python: the native engine is held byte for byte to it."""

    engine = "python"

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        group_transactions: bool | None = None,
        lookup: SchemaLookup | None = None,
        observer: TapObserver | None = None,
        dedupe: DedupeIndex | None = None,
        offline: bool = False,
    ) -> None:
        self.settings = settings
        self.tap = settings.tap
        self.lookup = lookup
        self.observer: TapObserver = observer or SilentObserver()
        self.router = TopicRouter(settings.topics.cdc, settings.topics.tx_metadata, settings.topics.outbox)
        group = bool(settings.topics.tx_metadata) if group_transactions is None else group_transactions
        if dedupe is None and offline:
            dedupe = DedupeIndex(None)
        self.assembler = Assembler(
            settings.tap, catalog.reversibility, group_transactions=group, dedupe=dedupe
        )

    def process(self, record: SourceRecord, now_ms: int) -> TapOutput:
        out = TapOutput()
        duplicates = self.assembler.stats.duplicates
        kind, parsed = self.parse(record)
        if isinstance(parsed, InvalidRecord):
            out.dead_letters.append(DeadLetter(record, parsed.reason, str(parsed)))
        elif not isinstance(parsed, Tombstone | Routine):
            out.entries = self.assembler.add(parsed, now_ms)
        self.observer.consumed(record.topic, kind)
        if self.assembler.stats.duplicates > duplicates:
            self.observer.duplicate_dropped(self.assembler.stats.duplicates - duplicates)
        return self._observed(out)

    def parse(self, record: SourceRecord) -> tuple[RecordKind | None, Parsed | InvalidRecord]:
        """The record's kind (None when unrecognized) and what it parses to, or why it cannot."""
        kind = self.router.kind(record.topic)
        try:
            if record.size > self.tap.max_record_bytes:
                raise InvalidRecord(
                    DeadLetterReason.OVERSIZED,
                    f"{record.size} bytes exceeds the limit of {self.tap.max_record_bytes} "
                    "(REWIND_TAP__MAX_RECORD_BYTES)",
                    where=record.where,
                )
            if kind is RecordKind.OUTBOX:
                return kind, self._outbox(record, decode_text(record.value, record, self.lookup, "value"))
            value, value_schema = decode_enveloped(record.value, record, self.lookup, "value")
            routine = routine_kind(record, value) if kind in (None, RecordKind.CDC) else None
            if routine is not None:
                return routine, Routine(routine)
            kind = kind or _sniff(record, value, self.tap.outbox.event_id_header)
            if kind is RecordKind.TX_METADATA:
                return kind, parse_tx_metadata(record, value)
            if kind is RecordKind.OUTBOX:
                return kind, self._outbox(record, value)
            key, key_schema = _change_key(record, self.lookup)
            return kind, parse_change(record, key, value, key_schema, value_schema)
        except InvalidRecord as exc:
            return kind, exc

    def _outbox(self, record: SourceRecord, value: Any) -> OutboxMessage:
        key = decode_text(record.key, record, self.lookup, "key")
        return parse_outbox(record, key, value, self.tap.outbox)

    def tick(self, now_ms: int) -> TapOutput:
        return self._observed(TapOutput(entries=self.assembler.expire(now_ms)))

    def finish(self, now_ms: int) -> TapOutput:
        return self._observed(TapOutput(entries=self.assembler.finish(now_ms)))

    def consume(self, messages: Sequence[KafkaMessage], now_ms: int) -> Produced:
        produced = Produced()
        for msg in messages:
            if is_error(msg):
                continue
            record = SourceRecord.from_message(msg)
            produced.positions[(record.topic, record.partition)] = record.offset + 1
            produced.add(self.process(record, now_ms))
        return produced

    def expire(self, now_ms: int) -> Produced:
        produced = Produced()
        produced.add(self.tick(now_ms))
        return produced

    def seed(self, entries: Iterable[JournalEntry]) -> int:
        count = 0
        for entry in entries:
            self.assembler.seed(entry)
            count += 1
        return count

    def seed_journal(self, values: Sequence[bytes]) -> int:
        """Learn from journal entries as Avro bytes, as start-up reads them back."""
        return self.seed(deserialize(v) for v in values)

    def safe_offsets(self) -> dict[tuple[str, int], int]:
        return self.assembler.safe_offsets()

    @property
    def stats(self) -> TapStats:
        return replace(self.assembler.stats)

    @property
    def open_transactions(self) -> int:
        return self.assembler.open_transactions

    @property
    def pending_intents(self) -> int:
        return self.assembler.pending_intents

    @property
    def dedupe_size(self) -> int:
        return len(self.assembler.dedupe)

    def _observed(self, out: TapOutput) -> TapOutput:
        for entry in out.entries:
            self.observer.journaled(entry)
        for dead in out.dead_letters:
            self.observer.dead_lettered(dead)
        return out


def routine_kind(record: SourceRecord, value: Any) -> RecordKind | None:
    """Heartbeats ({ts_ms} on __debezium-heartbeat.<prefix>) and schema changes (DDL records on the
    MySQL/MariaDB connectors' <prefix> topic, or a schema history topic)."""
    if record.topic.startswith(HEARTBEAT_TOPIC_PREFIX):
        return RecordKind.HEARTBEAT
    if isinstance(value, dict):
        if value.keys() == {"ts_ms"}:
            return RecordKind.HEARTBEAT
        if "op" not in value and ("ddl" in value or "tableChanges" in value):
            return RecordKind.SCHEMA_CHANGE
    return None


def _change_key(record: SourceRecord, lookup: SchemaLookup | None) -> tuple[Any, Any]:
    """The key and its schema; Kafka Connect's text of a struct (key.converter=StringConverter) stays
    text, read against the row image by the change parser."""
    try:
        return decode_enveloped(record.key, record, lookup, "key")
    except InvalidRecord:
        if record.key is not None and record.key.startswith(STRUCT_TEXT):
            try:
                return record.key.decode("utf-8"), None
            except UnicodeDecodeError:
                pass
        raise


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
            if looks_like_tx_metadata(unwrap(loads(record.value or b"null"))):
                return True
        except JsonInvalid:
            continue
    return False
