"""Outbox event router messages: key = aggregate id, header `id` = event id, value = the payload.

Extra outbox columns placed as headers (or, with ``envelope``, as fields of the value's envelope
beside ``payload``) carry the event type, correlation, causation, transaction id, trace context,
phase and decision metadata; payload fields serve as fallbacks. Names are configurable. With the
router's default configuration no event type is placed at all: the aggregate type stands in for it,
and the event is marked so (``type_fallback``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processor.config import OutboxConvention
from processor.errors import DeadLetterReason, InvalidRecord
from processor.journal.model import OutboxEvent, Phase, SourcePosition, TraceContext
from processor.jsonvalue import JsonInvalid, canonical_json, loads, text_of
from processor.kafka.messages import SourceRecord
from processor.tap.decoding import unwrap
from processor.tap.fields import normalize_tx_id

ENVELOPE_PAYLOAD = "payload"  # the router's name for the payload inside an envelope

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
    """``key`` and ``value`` as decoded, bare text included (StringConverter)."""
    envelope, payload = _split(unwrap(value), conv)
    headers = record.header_map()
    facts = _Facts(headers, envelope)
    event_id = facts.get(conv.event_id_header)
    if not event_id:
        where = "header or envelope field" if conv.envelope else "header"
        raise _bad(record, f"no event id: {where} '{conv.event_id_header}' is missing or empty")
    aggregate_type = facts.get(conv.aggregate_type_header) or _topic_suffix(record.topic, conv)
    event_type = facts.get(conv.event_type_header) or _field(payload, "type", "eventType")
    fallback = not event_type
    if not event_type:
        if not aggregate_type:
            raise _bad(
                record,
                f"no event type: no '{conv.event_type_header}' header, no 'type' in the payload, and no "
                "aggregate type to stand in (place the outbox 'type' column: "
                f"table.fields.additional.placement=type:header:{conv.event_type_header})",
            )
        event_type = aggregate_type
    tx_raw = facts.get(conv.tx_header) or _field(payload, conv.tx_field)
    event = OutboxEvent(
        event_id=event_id,
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=_aggregate_id(key),
        payload=payload,
        headers={k: v or "" for k, v in headers.items() if not k.startswith(DEBEZIUM_CONTEXT)},
        position=SourcePosition(
            record.topic,
            record.partition,
            record.offset,
            tx_id=normalize_tx_id(tx_raw) if tx_raw else None,
            ts_ms=record.timestamp_ms,
        ),
        type_fallback=fallback,
    )
    return OutboxMessage(
        event=event,
        tx_id=event.position.tx_id,
        correlation_id=facts.get(conv.correlation_header) or _field(payload, conv.correlation_field),
        causation_ids=_id_list(facts.raw(conv.causation_header) or _field(payload, conv.causation_field)),
        trace=TraceContext.parse(
            facts.first(conv.traceparent_headers) or _field(payload, conv.traceparent_field),
            facts.first(conv.tracestate_headers),
        ),
        phase=_phase(facts.raw(conv.phase_header) or _field(payload, conv.phase_field)),
        intent_id=facts.get(conv.intent_header) or _field(payload, conv.intent_field),
        decision=_decision(headers, payload, conv),
        external_systems=_id_list(facts.raw(conv.external_systems_header)),
    )


class _Facts:
    """Where the router placed extra columns: headers first, then the envelope's fields."""

    def __init__(self, headers: dict[str, str | None], envelope: dict[str, Any]) -> None:
        self.headers = headers
        self.envelope = envelope

    def raw(self, name: str) -> str | None:
        text = self.headers.get(name)
        if text:
            return text
        value = self.envelope.get(name)
        return None if value is None else text_of(value)

    def get(self, name: str) -> str | None:
        return _clean(self.raw(name))

    def first(self, names: list[str]) -> str | None:
        for name in names:
            value = self.get(name)
            if value:
                return value
        return None


def _split(value: Any, conv: OutboxConvention) -> tuple[dict[str, Any], Any]:
    """(envelope fields, payload): the envelope is the value itself when the router puts extra
    columns beside the payload (``envelope``), else empty."""
    if conv.envelope and isinstance(value, dict) and ENVELOPE_PAYLOAD in value:
        fields = {k: v for k, v in value.items() if k != ENVELOPE_PAYLOAD}
        return fields, _payload(value[ENVELOPE_PAYLOAD])
    return {}, _payload(value)


def _payload(value: Any) -> Any:
    value = unwrap(value)
    if isinstance(value, str):  # the router's default: the payload column as an escaped JSON string
        try:
            return loads(value)
        except JsonInvalid:
            return value  # not JSON: the text is the payload
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
        if value is not None and value != "":
            return text_of(value)
    return None


def _id_list(raw: str | None) -> tuple[str, ...]:
    """'a', 'a,b', or a JSON array '["a","b"]' -> ('a', 'b')."""
    text = _clean(raw) if raw else None
    if not text:
        return ()
    if text.startswith("["):
        try:
            items = loads(text)
        except JsonInvalid:
            items = None
        if isinstance(items, list):
            return tuple(text_of(i) for i in items if _truthy(i))
    return tuple(part.strip().strip('"') for part in text.split(",") if part.strip().strip('"'))


def _truthy(value: Any) -> bool:
    return bool(value)


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
    return key if isinstance(key, str) else canonical_json(key)


def _topic_suffix(topic: str, conv: OutboxConvention) -> str | None:
    return topic[len(conv.topic_prefix) :] if topic.startswith(conv.topic_prefix) else None


def _bad(record: SourceRecord, message: str) -> InvalidRecord:
    return InvalidRecord(DeadLetterReason.BAD_OUTBOX, message, where=record.where)
