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

# Debezium's own bookkeeping headers (task, run id): not part of what the service said.
DEBEZIUM_CONTEXT = "__debezium.context."


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
    payload = _payload(value)
    headers = record.header_map()
    event_id = _clean(headers.get(conv.event_id_header))
    if not event_id:
        raise _bad(record, f"no event id: header '{conv.event_id_header}' is missing or empty")
    event_type = _clean(headers.get(conv.event_type_header)) or _field(payload, "type", "eventType")
    if not event_type:
        raise _bad(record, f"no event type: header '{conv.event_type_header}' is missing")
    aggregate_type = _clean(headers.get(conv.aggregate_type_header)) or _topic_suffix(record.topic, conv)
    tx_raw = _clean(headers.get(conv.tx_header))
    event = OutboxEvent(
        event_id=event_id,
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=_aggregate_id(unwrap(key)),
        payload=payload,
        headers={k: v or "" for k, v in headers.items() if not k.startswith(DEBEZIUM_CONTEXT)},
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
        correlation_id=_clean(headers.get(conv.correlation_header))
        or _field(payload, conv.correlation_field),
        causation_ids=_id_list(headers.get(conv.causation_header) or _field(payload, conv.causation_field)),
        trace=TraceContext.parse(
            _first(headers, conv.traceparent_headers), _first(headers, conv.tracestate_headers)
        ),
        phase=_phase(headers.get(conv.phase_header)),
        intent_id=_clean(headers.get(conv.intent_header)),
        decision=_decision(headers, payload, conv),
        external_systems=_id_list(headers.get(conv.external_systems_header)),
    )


def _payload(value: Any) -> Any:
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


def _trace(headers: dict[str, str | None], conv: OutboxConvention) -> TraceContext | None:
    return TraceContext.parse(
        _first(headers, conv.traceparent_headers), _first(headers, conv.tracestate_headers)
    )


def _first(headers: dict[str, str | None], names: list[str]) -> str | None:
    for name in names:
        value = _clean(headers.get(name))
        if value:
            return value
    return None


def _phase(raw: str | None) -> Phase:
    text = (_clean(raw) or "").lower()
    return {"intent": Phase.INTENT, "outcome": Phase.OUTCOME}.get(text, Phase.ACTION)


def _decision(headers: dict[str, str | None], payload: Any, conv: OutboxConvention) -> dict[str, str]:
    decision = {name: value for name in conv.decision_fields if (value := _field(payload, name))}
    prefix = conv.decision_header_prefix
    decision |= {k[len(prefix) :]: v for k, v in headers.items() if k.startswith(prefix) and v is not None}
    return decision


def _aggregate_id(key: Any) -> str | None:
    if key is None:
        return None
    return key if isinstance(key, str) else json.dumps(key, sort_keys=True)


def _topic_suffix(topic: str, conv: OutboxConvention) -> str | None:
    return topic[len(conv.topic_prefix) :] if topic.startswith(conv.topic_prefix) else None


def _bad(record: SourceRecord, message: str) -> InvalidRecord:
    return InvalidRecord(DeadLetterReason.BAD_OUTBOX, message, where=record.where)
