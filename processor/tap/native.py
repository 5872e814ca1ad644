"""The native tap engine (Rust, ``native/``) behind the same interface as the Python ``PythonTapCore``.

The engine takes a whole consumed batch and returns Avro journal entries, without a Python object per
record: the tap's hot path. ``PythonTapCore`` stays the reference: tests hold both to byte-identical
journal output, and the engine hands back what it does not do itself:

- an invalid record: the reference parser names the reason and the message for the dead letter;
- a record in Confluent's Avro wire format: the reference decodes it through the schema registry and
  checks it, and the engine takes it as JSON from there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import NamedTuple

from processor.catalog.catalog import Catalog
from processor.config import OutboxConvention, Settings
from processor.errors import ConfigError, DeadLetterReason, InvalidRecord, SchemaError
from processor.journal.model import JournalEntry, Phase
from processor.journal.serde import deserialize
from processor.jsonvalue import dumps
from processor.kafka.deadletters import DeadLetter
from processor.kafka.messages import KafkaMessage, SourceRecord, is_error
from processor.tap.assembler import TapStats
from processor.tap.core import (
    Produced,
    PythonTapCore,
    RecordKind,
    SilentObserver,
    TapObserver,
    TapOutput,
)
from processor.tap.decoding import SchemaLookup, decode, framed
from processor.undo import Reversibility

rewind_native: ModuleType | None
try:
    import rewind_native
except ImportError:  # not built: the Python engine serves
    rewind_native = None

logger = logging.getLogger(__name__)

# (journal key, Avro value, action type, reversibility, complete, phase, type fallback), as the engine
# returns them
_Out = tuple[bytes, bytes, str, str, bool, str, bool]


_REVERSIBILITY = {r.value: r for r in Reversibility}
_PHASE = {p.value: p for p in Phase}


def available() -> bool:
    return rewind_native is not None


class Summary(NamedTuple):
    """What metrics read of an entry the engine journaled, without decoding it."""

    action_type: str
    reversibility: Reversibility
    complete: bool
    phase: Phase
    type_fallback: bool


class EngineSettings(OutboxConvention):
    """What the engine is told, field for field its ``Config`` (native/src/parse.rs reads these names
    off this object): the outbox convention and the tap's settings, built in ``engine_config`` only."""

    max_record_bytes: int
    outbox_tables: list[str]
    outbox_rows_deleted_in_tx: bool
    tx_timeout_ms: int
    intent_timeout_ms: int
    dedupe_window_ms: int | None  # None: a capture read whole, nothing forgotten
    group_transactions: bool


def engine_config(settings: Settings, group_transactions: bool, offline: bool = False) -> EngineSettings:
    tap = settings.tap
    return EngineSettings(
        **tap.outbox.model_dump(),
        max_record_bytes=tap.max_record_bytes,
        outbox_tables=list(tap.outbox_tables),
        outbox_rows_deleted_in_tx=tap.outbox_rows_deleted_in_tx,
        tx_timeout_ms=tap.tx_timeout_ms,
        intent_timeout_ms=tap.intent_timeout_ms,
        dedupe_window_ms=None if offline else int(tap.dedupe_window_hours * 3_600_000),
        group_transactions=group_transactions,
    )


class NativeTapCore:
    engine = "native"

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        group_transactions: bool | None = None,
        lookup: SchemaLookup | None = None,
        observer: TapObserver | None = None,
        offline: bool = False,
    ) -> None:
        if rewind_native is None:
            raise ConfigError(
                "the native tap engine is not installed",
                hint="`pip install ./native` (needs a Rust toolchain), or set REWIND_TAP__ENGINE=python",
            )
        self.observer: TapObserver = observer or SilentObserver()
        self.lookup = lookup
        # The reference parses what the engine hands back; its own assembler stays unused.
        self.reference = PythonTapCore(
            settings, catalog, group_transactions=group_transactions, lookup=lookup
        )
        router, group = self.reference.router, self.reference.assembler.group_transactions
        self._engine = rewind_native.TapEngine(
            engine_config(settings, group, offline),
            lambda topic: router.kind(topic),
            lambda action_type: catalog.reversibility(action_type).value,
        )
        self._duplicates = 0

    # -- the live loop ----------------------------------------------------------------------------

    def consume(self, messages: Sequence[KafkaMessage], now_ms: int) -> Produced:
        produced = Produced()
        start = 0
        while start < len(messages):
            outs, invalid, consumed, positions, stop = self._engine.process_messages(messages, start, now_ms)
            self._journal(outs, produced)
            for i in invalid:
                produced.dead_letters.append(self._dead_letter(SourceRecord.from_message(messages[i])))
            for topic, kind, count in consumed:
                self.observer.consumed(topic, RecordKind(kind) if kind else None, count)
            for topic, partition, offset in positions:
                produced.positions[(topic, partition)] = offset
            if stop < len(messages) and not is_error(messages[stop]):  # Avro: through the reference
                record = SourceRecord.from_message(messages[stop])
                produced.positions[(record.topic, record.partition)] = record.offset + 1
                outs, refused = self._process(record, now_ms)
                self._journal(outs, produced)
                produced.dead_letters += refused
            start = stop + 1
        self._observe_duplicates()
        for dead in produced.dead_letters:
            self.observer.dead_lettered(dead)
        return produced

    def expire(self, now_ms: int) -> Produced:
        produced = Produced()
        self._journal(self._engine.tick(now_ms), produced)
        return produced

    def _journal(self, outs: list[_Out], produced: Produced) -> None:
        for key, value, action_type, reversibility, complete, phase, fallback in outs:
            produced.journal.append((key, value))
            summary = Summary(action_type, _REVERSIBILITY[reversibility], complete, _PHASE[phase], fallback)
            self.observer.journaled(summary)

    # -- one record at a time (tests, rewind decode) ----------------------------------------------

    def process(self, record: SourceRecord, now_ms: int) -> TapOutput:
        outs, dead = self._process(record, now_ms)
        self._observe_duplicates()
        for letter in dead:
            self.observer.dead_lettered(letter)
        return TapOutput(entries=self._entries(outs), dead_letters=dead)

    def tick(self, now_ms: int) -> TapOutput:
        return TapOutput(entries=self._entries(self._engine.tick(now_ms)))

    def finish(self, now_ms: int) -> TapOutput:
        return TapOutput(entries=self._entries(self._engine.finish(now_ms)))

    def _entries(self, outs: list[_Out]) -> list[JournalEntry]:
        entries = [deserialize(value) for _key, value, *_ in outs]
        for entry in entries:
            self.observer.journaled(entry)
        return entries

    def _process(self, record: SourceRecord, now_ms: int) -> tuple[list[_Out], list[DeadLetter]]:
        key, value = record.key, record.value
        kind: str | None
        if _framed(key) or _framed(value):
            kind_, parsed = self.reference.parse(record)
            if isinstance(parsed, InvalidRecord):
                self.observer.consumed(record.topic, kind_)
                return [], [DeadLetter(record, parsed.reason, str(parsed))]
            key, value = self._as_json(record, key, "key"), self._as_json(record, value, "value")
        outs, status, kind = self._engine.process_record(
            record.topic, record.partition, record.offset, key, value, list(record.headers),
            record.timestamp_ms, now_ms,
        )  # fmt: skip
        self.observer.consumed(record.topic, RecordKind(kind) if kind else None)
        if status == "ok":
            return outs, []
        return [], [self._dead_letter(record)]

    def _as_json(self, record: SourceRecord, data: bytes | None, part: str) -> bytes | None:
        """A registry-framed key or value as JSON text (the reference has accepted the record)."""
        if not _framed(data):
            return data
        try:
            return dumps(decode(data, record, self.lookup, part)).encode()
        except InvalidRecord:  # a key the record's kind never reads (transaction metadata)
            return None

    def _dead_letter(self, record: SourceRecord) -> DeadLetter:
        _kind, parsed = self.reference.parse(record)
        if isinstance(parsed, InvalidRecord):
            return DeadLetter(record, parsed.reason, str(parsed))
        logger.error("native tap engine refused a record the reference accepts: %s", record.where)
        return DeadLetter(
            record,
            DeadLetterReason.UNRECOGNIZED,
            f"the native tap engine refused this record, the reference accepts it (at {record.where}); "
            "report it, and set REWIND_TAP__ENGINE=python meanwhile",
        )

    def _observe_duplicates(self) -> None:
        total = self._engine.duplicates
        if total > self._duplicates:
            self.observer.duplicate_dropped(total - self._duplicates)
            self._duplicates = total

    # -- state -------------------------------------------------------------------------------------

    def seed(self, entries: Iterable[JournalEntry]) -> int:
        count = 0
        for entry in entries:
            self._engine.seed(entry)
            count += 1
        return count

    def seed_journal(self, values: Sequence[bytes]) -> int:
        """Learn from journal entries as Avro bytes, read by the engine (no Python object per entry)."""
        values = list(values)
        bad = self._engine.seed_journal(values)
        if bad is not None:
            deserialize(values[bad])  # names what is wrong with it
            raise SchemaError(f"journal entry {bad} of those read back at start-up does not read as one")
        return len(values)

    def safe_offsets(self) -> dict[tuple[str, int], int]:
        return {(topic, partition): offset for topic, partition, offset in self._engine.safe_offsets()}

    @property
    def stats(self) -> TapStats:
        e = self._engine
        return TapStats(e.duplicates, e.incomplete, e.in_doubt)

    @property
    def open_transactions(self) -> int:
        return int(self._engine.open_transactions)

    @property
    def pending_intents(self) -> int:
        return int(self._engine.pending_intents)

    @property
    def dedupe_size(self) -> int:
        return int(self._engine.dedupe_size)


_framed = framed
