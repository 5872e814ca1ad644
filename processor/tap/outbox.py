"""Outbox event router messages: key = aggregate id, header `id` = event id, value = the payload.

Extra outbox columns placed as headers carry the event type, correlation, causation, transaction id,
trace context, phase and decision metadata; payload fields serve as fallbacks. Names are configurable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from processor.config import OutboxConvention
from processor.errors import DeadLetterReason, InvalidRecord
from processor.model import OutboxEvent, Phase, SourcePosition, TraceContext
from processor.tap.cdc import normalize_tx_id
from processor.tap.decoding import unwrap
from processor.tap.records import SourceRecord


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    event: OutboxEvent
    tx_id: str | None
    correlation_id: str | None
    causation_ids: tuple[str, ...]
    trace: TraceContext | None
    phase: Phase
    intent_id: str | None
    decision: dict[str, str] = field(default_factory=dict)
    external_systems: tuple[str, ...] = ()


def parse_outbox(record: SourceRecord, key: Any, value: Any, conv: OutboxConvention) -> OutboxMessage:
    payload = _payload(record, value)
    event_id = _clean(record.header(conv.event_id_header))
    if not event_id:
        raise _bad(record, f"no event id: header '{conv.event_id_header}' is missing or empty")
    event_type = _clean(record.header(conv.event_type_header)) or _field(payload, "type", "eventType")
    if not event_type:
        raise _bad(record, f"no event type: header '{conv.event_type_header}' is missing")
    aggregate_type = _clean(record.header(conv.aggregate_type_header)) or _topic_suffix(record.topic, conv)
    tx_raw = _clean(record.header(conv.tx_header))
    headers = {k: (v or b"").decode("utf-8", errors="replace") for k, v in record.headers}
    event = OutboxEvent(
        event_id=event_id,
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=_aggregate_id(unwrap(key)),
        payload=payload,
        headers=headers,
        position=SourcePosition(
            record.topic,
            record.partition,
            record.offset,
            tx_id=normalize_tx_id(tx_raw) if tx_raw else None,
            ts_ms=record.timestamp_ms,
        ),
    )
    return OutboxMessage(
        event=event,
        tx_id=event.position.tx_id,
        correlation_id=_clean(record.header(conv.correlation_header))
        or _field(payload, conv.correlation_field),
        causation_ids=_id_list(record.header(conv.causation_header) or _field(payload, conv.causation_field)),
        trace=TraceContext.parse(
            _first(record, conv.traceparent_headers), _first(record, conv.tracestate_headers)
        ),
        phase=_phase(record, conv),
        intent_id=_clean(record.header(conv.intent_header)),
        decision=_decision(record, payload, conv),
        external_systems=_id_list(record.header(conv.external_systems_header)),
    )


def _payload(record: SourceRecord, value: Any) -> Any:
    value = unwrap(value)
    if isinstance(value, str):  # the router's default: the payload column as an escaped JSON string
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _clean(text: str | None) -> str | None:
    """Header values set through the JSON header converter arrive quoted; strip that."""
    if text is None:
        return None
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text or None


def _field(payload: Any, *names: str) -> str | None:
    if not isinstance(payload, dict):
        return None
    for name in names:
        value = payload.get(name)
        if value not in (None, ""):
            return value if isinstance(value, str) else json.dumps(value)
    return None


def _id_list(raw: str | None) -> tuple[str, ...]:
    """'a', 'a,b', or a JSON array '["a","b"]' -> ('a', 'b')."""
    text = _clean(raw) if raw else None
    if not text:
        return ()
    if text.startswith("["):
        try:
            items = json.loads(text)
            return tuple(str(i) for i in items if i)
        except json.JSONDecodeError:
            pass
    return tuple(part.strip().strip('"') for part in text.split(",") if part.strip().strip('"'))


def _first(record: SourceRecord, names: list[str]) -> str | None:
    for name in names:
        value = _clean(record.header(name))
        if value:
            return value
    return None


def _phase(record: SourceRecord, conv: OutboxConvention) -> Phase:
    text = (_clean(record.header(conv.phase_header)) or "").lower()
    return {"intent": Phase.INTENT, "outcome": Phase.OUTCOME}.get(text, Phase.ACTION)


def _decision(record: SourceRecord, payload: Any, conv: OutboxConvention) -> dict[str, str]:
    decision = {name: value for name in conv.decision_fields if (value := _field(payload, name))}
    for key, raw in record.headers:
        if key.startswith(conv.decision_header_prefix) and raw is not None:
            decision[key[len(conv.decision_header_prefix) :]] = raw.decode("utf-8", errors="replace")
    return decision


def _aggregate_id(key: Any) -> str | None:
    if key is None:
        return None
    return key if isinstance(key, str) else json.dumps(key, sort_keys=True)


def _topic_suffix(topic: str, conv: OutboxConvention) -> str | None:
    return topic[len(conv.topic_prefix) :] if topic.startswith(conv.topic_prefix) else None


def _bad(record: SourceRecord, message: str) -> InvalidRecord:
    return InvalidRecord(DeadLetterReason.BAD_OUTBOX, message, where=record.where)
