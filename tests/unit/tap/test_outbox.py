from __future__ import annotations

import json

import pytest

from processor.config import OutboxConvention
from processor.errors import DeadLetterReason, InvalidRecord
from processor.journal.model import Phase
from processor.kafka.messages import SourceRecord
from processor.tap.decoding import decode
from processor.tap.outbox import OutboxMessage, parse_outbox
from tests.unit.tap.builders import outbox

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def parse(record: SourceRecord, conv: OutboxConvention | None = None) -> OutboxMessage:
    key, value = decode(record.key, record, None, "key"), decode(record.value, record, None, "value")
    return parse_outbox(record, key, value, conv or OutboxConvention())


@pytest.mark.parametrize("escaped", [True, False], ids=["escaped-string", "json-object"])
def test_event_router_message(escaped: bool) -> None:
    msg = parse(outbox("e-1", "OrderPlaced", {"order_id": 1, "rule_version": "v7"}, tx=729,
                       traceparent=TRACEPARENT, escaped=escaped))  # fmt: skip
    e = msg.event
    assert (e.event_id, e.event_type, e.aggregate_type, e.aggregate_id) == (
        "e-1",
        "OrderPlaced",
        "order",
        "1",
    )
    assert e.payload == {"order_id": 1, "rule_version": "v7"}
    assert msg.tx_id == "729" and msg.correlation_id == "wf-1" and msg.causation_ids == ()
    assert msg.trace is not None and msg.trace.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert msg.trace.span_id == "00f067aa0ba902b7"
    assert msg.decision == {"rule_version": "v7"} and msg.phase is Phase.ACTION


def test_schema_envelope_around_payload_string() -> None:
    record = outbox("e-1", "T", {"a": 1})
    wrapped = json.dumps({"schema": {"type": "string"}, "payload": json.loads(record.value or b"")})
    msg = parse(SourceRecord(record.topic, 0, 0, record.key, wrapped.encode(), record.headers))
    assert msg.event.payload == {"a": 1}


@pytest.mark.parametrize(
    ("header", "expected"),
    [("a", ("a",)), ("a,b", ("a", "b")), (" a , b ", ("a", "b")), ('["a","b"]', ("a", "b")), ('"a"', ("a",))],
)
def test_causation_forms(header: str, expected: tuple[str, ...]) -> None:
    assert parse(outbox("e", "T", {}, causation=header)).causation_ids == expected


def test_payload_fields_are_fallbacks_for_correlation_and_causation() -> None:
    msg = parse(outbox("e", "T", {"correlation_id": "wf-9", "causation_id": "c-1,c-2"}, correlation=None))
    assert msg.correlation_id == "wf-9" and msg.causation_ids == ("c-1", "c-2")


def test_header_wins_over_payload_field() -> None:
    msg = parse(outbox("e", "T", {"correlation_id": "payload"}, correlation="header"))
    assert msg.correlation_id == "header"


def test_cloudevents_trace_header_and_quoted_values() -> None:
    msg = parse(
        outbox("e", "T", {}, extra=[("ce_traceparent", f'"{TRACEPARENT}"'), ("ce_tracestate", "v=1")])
    )
    assert msg.trace is not None and msg.trace.traceparent == TRACEPARENT and msg.trace.tracestate == "v=1"


def test_malformed_traceparent_is_ignored_not_fatal() -> None:
    assert parse(outbox("e", "T", {}, traceparent="00-zz-bad")).trace is None


def test_intent_and_outcome_phases() -> None:
    intent = parse(outbox("e", "ChargeRequested", {}, extra=[("phase", "intent"), ("intentId", "i-1")]))
    outcome = parse(outbox("f", "ChargeSucceeded", {}, extra=[("phase", "OUTCOME"), ("intentId", "i-1")]))
    assert (intent.phase, intent.intent_id) == (Phase.INTENT, "i-1")
    assert (outcome.phase, outcome.intent_id) == (Phase.OUTCOME, "i-1")


def test_decision_headers_and_external_systems() -> None:
    msg = parse(outbox("e", "T", {"model_version": "m3"},
                       extra=[("decision.rule", "pricing"), ("externalSystems", "stripe,smtp")]))  # fmt: skip
    assert msg.decision == {"model_version": "m3", "rule": "pricing"}
    assert msg.external_systems == ("stripe", "smtp")


def test_all_header_names_are_configurable() -> None:
    conv = OutboxConvention(event_id_header="ce_id", event_type_header="ce_type", correlation_header="wf")
    record = SourceRecord("events", 0, 0, b'"9"', b'"{}"',
                          (("ce_id", b"x"), ("ce_type", b"Y"), ("wf", b"w")))  # fmt: skip
    msg = parse(record, conv)
    assert (msg.event.event_id, msg.event.event_type, msg.correlation_id) == ("x", "Y", "w")
    assert msg.event.aggregate_type is None


def test_event_type_may_come_from_the_payload() -> None:
    record = outbox("e", "T", {"type": "FromPayload"})
    headers = tuple(h for h in record.headers if h[0] != "eventType")
    assert (
        parse(SourceRecord(record.topic, 0, 0, record.key, record.value, headers)).event.event_type
        == "FromPayload"
    )


def test_missing_id_is_a_dead_letter() -> None:
    record = outbox("e", "T", {})
    headers = tuple(h for h in record.headers if h[0] != "id")
    with pytest.raises(InvalidRecord) as info:
        parse(SourceRecord(record.topic, 0, 4, record.key, record.value, headers))
    assert info.value.reason is DeadLetterReason.BAD_OUTBOX and "'id'" in str(info.value)
    assert "outbox.event.order[0]@4" in str(info.value)


def test_without_an_event_type_the_aggregate_type_stands_in() -> None:
    """The router's default configuration places no type column: the event is still journaled."""
    record = outbox("e", "T", {})
    headers = tuple(h for h in record.headers if h[0] not in ("eventType", "aggregateType"))
    msg = parse(SourceRecord(record.topic, 0, 4, record.key, record.value, headers))
    assert (msg.event.event_type, msg.event.aggregate_type, msg.event.type_fallback) == (
        "order",
        "order",
        True,
    )
    assert not parse(record).event.type_fallback


def test_without_any_type_to_stand_in_the_error_names_the_router_setting() -> None:
    record = outbox("e", "T", {}, topic="events")
    headers = tuple(h for h in record.headers if h[0] not in ("eventType", "aggregateType"))
    with pytest.raises(InvalidRecord, match=r"table\.fields\.additional\.placement=type:header:eventType"):
        parse(SourceRecord(record.topic, 0, 4, record.key, record.value, headers))
