"""Journal entries to the Avro journal schema and back, plus the JSON view `rewind decode` prints.

This is the single serialization boundary of the journal: JSON-valued fields (keys, row images,
payloads) become the schema's ``*_json`` text here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from processor.errors import SchemaError
from processor.journal.model import (
    JournalEntry,
    Op,
    OutboxEvent,
    Phase,
    RowChange,
    SourcePosition,
    TraceContext,
)
from processor.jsonvalue import canonical_json, loads
from processor.schemas import Record, SchemaName, decode, encode
from processor.undo import Reversibility

_OUTBOX_EVENT = "io.kafkarewind.journal.OutboxEvent"
_TRACE = "io.kafkarewind.journal.TraceContext"


def _json(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def _parse(text: str | None) -> Any:
    return None if text is None else loads(text)


def _position(p: SourcePosition) -> Record:
    return {
        "topic": p.topic,
        "partition": p.partition,
        "offset": p.offset,
        "lsn": p.lsn,
        "tx_id": p.tx_id,
        "connector": p.connector,
        "ts_ms": p.ts_ms,
        "log_position": p.log_position,
    }


def _change(c: RowChange) -> Record:
    return {
        "database": c.database,
        "schema": c.schema,
        "table": c.table,
        "key_json": canonical_json(c.key),
        "op": c.op.value,
        "before_json": _json(c.before),
        "after_json": _json(c.after),
        "changed_fields": list(c.changed_fields),
        "before_complete": c.before_complete,
        "other_key_json": _json(c.other_key),
        "position": _position(c.position),
    }


def _event(e: OutboxEvent) -> Record:
    return {
        "event_id": e.event_id,
        "event_type": e.event_type,
        "aggregate_type": e.aggregate_type,
        "aggregate_id": e.aggregate_id,
        "payload_json": _json(e.payload),
        "headers": dict(e.headers),
        "position": _position(e.position),
        "type_fallback": e.type_fallback,
    }


def _trace(t: TraceContext) -> Record:
    return {
        "traceparent": t.traceparent,
        "tracestate": t.tracestate,
        "trace_id": t.trace_id,
        "span_id": t.span_id,
    }


def to_record(entry: JournalEntry) -> Record:
    t = entry.trace
    return {
        "action_id": entry.action_id,
        "action_type": entry.action_type,
        "service": entry.service,
        "aggregate_type": entry.aggregate_type,
        "aggregate_id": entry.aggregate_id,
        "changes": [_change(c) for c in entry.changes],
        # Unions holding a record are tagged with the branch name: fastavro would otherwise try each
        # branch against the value, which costs more than writing it.
        "event": (_OUTBOX_EVENT, _event(entry.event)) if entry.event else None,
        "commit_ts_ms": entry.commit_ts_ms,
        "journal_ts_ms": entry.journal_ts_ms,
        "tx_id": entry.tx_id,
        "complete": entry.complete,
        "causation_ids": list(entry.causation_ids),
        "correlation_id": entry.correlation_id,
        "trace": None if t is None else (_TRACE, _trace(t)),
        "decision": dict(entry.decision),
        "entities": list(entry.entities),
        "external_systems": list(entry.external_systems),
        "phase": entry.phase.value,
        "intent_id": entry.intent_id,
        "reversibility": entry.reversibility.value,
        "rewind_request_id": entry.rewind_request_id,
        "compensated_action_id": entry.compensated_action_id,
    }


def _from_position(r: Record) -> SourcePosition:
    return SourcePosition(
        r["topic"], r["partition"], r["offset"], r["lsn"], r["tx_id"], r["connector"], r["ts_ms"],
        r.get("log_position"),
    )  # fmt: skip


def _from_change(r: Record) -> RowChange:
    return RowChange(
        database=r["database"],
        schema=r["schema"],
        table=r["table"],
        key=loads(r["key_json"]),
        op=Op(r["op"]),
        before=_parse(r["before_json"]),
        after=_parse(r["after_json"]),
        changed_fields=tuple(r["changed_fields"]),
        before_complete=r["before_complete"],
        position=_from_position(r["position"]),
        other_key=_parse(r.get("other_key_json")),
    )


def from_record(r: Record) -> JournalEntry:
    e, t = r["event"], r["trace"]
    return JournalEntry(
        action_id=r["action_id"],
        action_type=r["action_type"],
        changes=tuple(_from_change(c) for c in r["changes"]),
        journal_ts_ms=r["journal_ts_ms"],
        service=r["service"],
        aggregate_type=r["aggregate_type"],
        aggregate_id=r["aggregate_id"],
        event=None
        if e is None
        else OutboxEvent(
            e["event_id"],
            e["event_type"],
            e["aggregate_type"],
            e["aggregate_id"],
            _parse(e["payload_json"]),
            dict(e["headers"]),
            _from_position(e["position"]),
            e.get("type_fallback", False),
        ),
        commit_ts_ms=r["commit_ts_ms"],
        tx_id=r["tx_id"],
        complete=r["complete"],
        causation_ids=tuple(r["causation_ids"]),
        correlation_id=r["correlation_id"],
        trace=None
        if t is None
        else TraceContext(t["traceparent"], t["trace_id"], t["span_id"], t["tracestate"]),
        decision=dict(r["decision"]),
        entities=tuple(r["entities"]),
        external_systems=tuple(r["external_systems"]),
        phase=Phase(r["phase"]),
        intent_id=r["intent_id"],
        reversibility=Reversibility(r["reversibility"]),
        rewind_request_id=r["rewind_request_id"],
        compensated_action_id=r["compensated_action_id"],
    )


def serialize(entry: JournalEntry) -> bytes:
    return encode(to_record(entry), SchemaName.JOURNAL_ENTRY)


def deserialize(data: bytes) -> JournalEntry:
    """An entry from the journal topic's bytes; SchemaError (naming what) where they are not one:
    Avro that does not fit the schema, or a ``*_json`` field whose text is not JSON or a value out of
    its enum (bench/fuzz's journal target found the JSON case)."""
    record = decode(data, SchemaName.JOURNAL_ENTRY)
    try:
        return from_record(record)
    except ValueError as exc:  # JsonInvalid is one
        raise SchemaError(f"bytes are not a valid {SchemaName.JOURNAL_ENTRY.value}: {exc}") from exc


def journal_key(entry: JournalEntry) -> bytes:
    """Keyed by workflow, so one workflow's entries stay in one partition, in order."""
    return (entry.correlation_id or entry.action_id).encode()


def to_json_view(entry: JournalEntry) -> dict[str, Any]:
    """The record with JSON text fields parsed back into values: what a person reads."""
    view = to_record(entry)
    view["event"] = view["event"][1] if view["event"] else None
    view["trace"] = view["trace"][1] if view["trace"] else None
    for change in view["changes"]:
        change["key"] = loads(change.pop("key_json"))
        change["before"] = _parse(change.pop("before_json"))
        change["after"] = _parse(change.pop("after_json"))
        change["other_key"] = _parse(change.pop("other_key_json"))
    if view["event"] is not None:
        view["event"]["payload"] = _parse(view["event"].pop("payload_json"))
    return view


def from_json_view(view: dict[str, Any]) -> JournalEntry:
    """The inverse of ``to_json_view``: read a journal dump (e.g. `rewind decode` output) back."""
    record = dict(view)
    record["changes"] = [
        {
            **{k: v for k, v in c.items() if k not in ("key", "before", "after", "other_key")},
            "key_json": canonical_json(c["key"]),
            "before_json": _json(c.get("before")),
            "after_json": _json(c.get("after")),
            "other_key_json": _json(c.get("other_key")),
        }
        for c in view["changes"]
    ]
    if view.get("event") is not None:
        event = dict(view["event"])
        event["payload_json"] = _json(event.pop("payload", None))
        record["event"] = event
    return from_record(record)
