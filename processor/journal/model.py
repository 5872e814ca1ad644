"""The journal's domain records: plain, frozen, and free of Kafka, Avro and Prometheus.

Row images and payloads are kept as decoded JSON values (dicts, lists, scalars); the serde at the
journal boundary turns them into the Avro schema's JSON-text fields and back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from processor.jsonvalue import canonical_json, text_of
from processor.undo import Reversibility

JsonObject = dict[str, Any]


class Op(StrEnum):
    """A row change's operation, named as in the journal schema."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    READ = "READ"  # snapshot read
    TRUNCATE = "TRUNCATE"
    MESSAGE = "MESSAGE"  # logical decoding message

    @classmethod
    def from_debezium(cls, code: str) -> Op | None:
        return _DEBEZIUM_OPS.get(code)


_DEBEZIUM_OPS = {
    "c": Op.CREATE,
    "u": Op.UPDATE,
    "d": Op.DELETE,
    "r": Op.READ,
    "t": Op.TRUNCATE,
    "m": Op.MESSAGE,
}


class Phase(StrEnum):
    ACTION = "ACTION"
    INTENT = "INTENT"  # about to call the outside world
    OUTCOME = "OUTCOME"  # the call's result
    IN_DOUBT = "IN_DOUBT"  # an intent whose outcome never came: attempted, may not have completed


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a source record was read, and where its change sits in the database's log."""

    topic: str
    partition: int
    offset: int
    lsn: int | None = None
    tx_id: str | None = None
    connector: str | None = None
    ts_ms: int | None = None
    # Where the change sits in a log without LSNs: MySQL/MariaDB binlog 'file:pos:row'.
    log_position: str | None = None


@dataclass(frozen=True, slots=True)
class RowChange:
    database: str | None
    schema: str | None
    table: str
    key: JsonObject
    op: Op
    before: JsonObject | None
    after: JsonObject | None
    changed_fields: tuple[str, ...]
    before_complete: bool
    position: SourcePosition
    # For a primary-key change: the new key on the delete, the old key on the create.
    other_key: JsonObject | None = None

    @property
    def collection(self) -> str:
        """As Debezium names data collections in transaction metadata: 'schema.table' (PostgreSQL),
        'database.table' (MySQL, MariaDB: no schemas)."""
        prefix = self.schema or (self.database if self.op is not Op.MESSAGE else None)
        return f"{prefix}.{self.table}" if prefix else self.table

    @property
    def entity(self) -> str:
        return entity_ref(self.collection, self.key)

    @property
    def identity(self) -> str:
        """Same change, delivered twice by Debezium, has the same identity: (txId, log position,
        table, key), the log position being the LSN or the binlog file:pos:row."""
        return row_identity(self.position, self.collection, canonical_json(self.key))


def row_identity(p: SourcePosition, collection: str, key_json: str) -> str:
    where = p.lsn if p.log_position is None else p.log_position
    return f"row|{p.connector}|{p.tx_id}|{where}|{collection}|{key_json}"


def entity_ref(collection: str, key: JsonObject) -> str:
    """'public.orders:1042' for a one-column key, else 'public.lines:{"line":2,"order":1042}'."""
    if not key:
        return f"{collection}:*"  # the whole table, e.g. a TRUNCATE
    text = text_of(next(iter(key.values()))) if len(key) == 1 else canonical_json(key)
    return f"{collection}:{text}"


_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    traceparent: str
    trace_id: str
    span_id: str
    tracestate: str | None = None

    @classmethod
    def parse(cls, traceparent: str | None, tracestate: str | None = None) -> TraceContext | None:
        """W3C traceparent 'vv-trace-span-flags'; None when absent or malformed."""
        if not traceparent:
            return None
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match is None or set(match.group(2)) == {"0"} or set(match.group(3)) == {"0"}:
            return None
        return cls(match.group(0), match.group(2), match.group(3), tracestate or None)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    event_id: str
    event_type: str
    aggregate_type: str | None
    aggregate_id: str | None
    payload: Any
    headers: dict[str, str]
    position: SourcePosition
    # No event type came with it (the router's default configuration): the aggregate type stands in.
    type_fallback: bool = False


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One action: what changed, when, why, what it affected, phase, and whether it can be undone."""

    action_id: str
    action_type: str
    changes: tuple[RowChange, ...]
    journal_ts_ms: int
    service: str | None = None
    aggregate_type: str | None = None
    aggregate_id: str | None = None
    event: OutboxEvent | None = None
    commit_ts_ms: int | None = None
    tx_id: str | None = None
    complete: bool = True
    causation_ids: tuple[str, ...] = ()
    correlation_id: str | None = None
    trace: TraceContext | None = None
    decision: dict[str, str] = field(default_factory=dict)
    entities: tuple[str, ...] = ()
    external_systems: tuple[str, ...] = ()
    phase: Phase = Phase.ACTION
    intent_id: str | None = None
    reversibility: Reversibility = Reversibility.UNCLASSIFIED
    rewind_request_id: str | None = None
    compensated_action_id: str | None = None

    @property
    def type_fallback(self) -> bool:
        """No event type came with its outbox event: the aggregate type stands in."""
        return self.event is not None and self.event.type_fallback

    @property
    def positions(self) -> tuple[SourcePosition, ...]:
        own = tuple(c.position for c in self.changes)
        return (*own, self.event.position) if self.event else own

    @property
    def identities(self) -> tuple[str, ...]:
        """What a duplicate delivery of this action's inputs would repeat."""
        ids = [c.identity for c in self.changes]
        if self.event is not None:
            ids.append(event_identity(self.event.event_id))
        if self.tx_id is not None:
            ids.append(transaction_identity(None, self.tx_id))
        return tuple(ids)


def event_identity(event_id: str) -> str:
    return f"event|{event_id}"


def transaction_identity(connector: str | None, tx_id: str) -> str:
    return f"tx|{connector}|{tx_id}"
