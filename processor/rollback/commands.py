"""Build the command rewind emits for a step (pure): a restore, a compensation, or a notification.

Every command carries the request id, the compensated action id, the idempotency key (also the event
id the confirming action must name as its cause) and a ``traceparent`` in the original action's trace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from processor.catalog.catalog import ActionSpec, Envelope, RedriveTarget
from processor.catalog.templates import context, render
from processor.journal.model import JournalEntry, JsonObject, Op, RowChange
from processor.jsonvalue import canonical_json
from processor.rollback.plan import Redrive, Step
from processor.rollback.preview import restored_changes
from processor.undo import Mechanism

HEADER_REQUEST = "rewind.request_id"
HEADER_ACTION = "rewind.compensated_action_id"
HEADER_KEY = "rewind.idempotency_key"
HEADER_MECHANISM = "rewind.mechanism"
HEADER_ATTEMPT = "rewind.attempt"
HEADER_REPLAY_OF = "rewind.replay_of"  # a re-driven event: the original's id


_MECHANISM = {Mechanism.RESTORE: "RESTORE", Mechanism.COMPENSATE: "COMPENSATE",
              Mechanism.IRREVERSIBLE: "NOTIFY", Mechanism.REPLAY: "REPLAY"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Command:
    topic: str
    key: str | None
    envelope: dict[str, Any]  # a Compensation record (schemas/compensation.avsc)
    headers: list[tuple[str, str | bytes | None]]
    value: bytes | None = None  # sent as is (a re-drive in the outbox router's shape), else the envelope

    @property
    def event_id(self) -> str:
        return str(self.envelope["event_id"])


def build(
    request_id: str, step: Step, entry: JournalEntry, spec: ActionSpec, now_ms: int, notify_topic: str
) -> Command:
    if spec.mechanism is Mechanism.RESTORE:
        topic, key, body = _restore(entry, spec)
    elif spec.mechanism is Mechanism.COMPENSATE:
        topic, key, body = _compensate(entry, spec)
    elif spec.mechanism is Mechanism.REPLAY:
        topic, key, body = _rebuild(request_id, entry, spec, notify_topic)
    else:
        topic, key, body = _notify(entry, spec, notify_topic)
    envelope = {
        "event_id": step.idempotency_key,
        "request_id": request_id,
        "compensated_action_id": entry.action_id,
        "idempotency_key": step.idempotency_key,
        "mechanism": _MECHANISM[spec.mechanism],
        "event_type": body["event_type"],
        "entity": body.get("entity"),
        "key_json": canonical_json(key) if key is not None else None,
        "payload_json": canonical_json(body["payload"]),
        "expected_json": canonical_json(body["expected"]) if "expected" in body else None,
        "correlation_id": entry.correlation_id,
        "traceparent": traceparent(entry, step.idempotency_key),
        "emitted_ts_ms": now_ms,
    }
    headers: list[tuple[str, str | bytes | None]] = [
        (HEADER_REQUEST, request_id),
        (HEADER_ACTION, entry.action_id),
        (HEADER_KEY, step.idempotency_key),
        (HEADER_MECHANISM, envelope["mechanism"]),
        (HEADER_ATTEMPT, str(step.attempts + 1)),
        ("traceparent", envelope["traceparent"]),
    ]
    return Command(topic, None if key is None else _key_text(key), envelope, headers)


def build_redrive(
    request_id: str, item: Redrive, entry: JournalEntry, target: RedriveTarget, now_ms: int
) -> Command:
    """The input event sent again to the fixed consumer: a new event id (the same on every attempt),
    the original's payload, correlation id and key, a new span in its trace, and where it came from."""
    assert entry.event is not None  # planned only for journaled events
    trace = traceparent(entry, item.idempotency_key)
    key = entry.event.aggregate_id or entry.aggregate_id or entry.correlation_id
    payload = canonical_json(entry.event.payload)
    common: list[tuple[str, str | bytes | None]] = [
        (HEADER_REPLAY_OF, entry.event.event_id), (HEADER_REQUEST, request_id),
        (HEADER_KEY, item.idempotency_key), (HEADER_ATTEMPT, str(item.attempts + 1)),
    ]  # fmt: skip
    envelope = {
        "event_id": item.idempotency_key, "request_id": request_id, "compensated_action_id": entry.action_id,
        "idempotency_key": item.idempotency_key, "mechanism": "REDRIVE", "event_type": item.event_type,
        "entity": None, "key_json": canonical_json(key) if key is not None else None,
        "payload_json": payload, "expected_json": None,
        "correlation_id": entry.correlation_id, "traceparent": trace, "emitted_ts_ms": now_ms,
        "replay_of": entry.event.event_id,
    }  # fmt: skip
    if target.envelope is Envelope.COMMAND:
        return Command(item.topic, key, envelope, [*common, ("traceparent", trace)])
    names = target.headers
    headers: list[tuple[str, str | bytes | None]] = [
        (names["id"], item.idempotency_key), (names["type"], item.event_type),
        (names["traceparent"], trace), *common,
    ]  # fmt: skip
    if entry.correlation_id:
        headers.append((names["correlation_id"], entry.correlation_id))
    return Command(item.topic, key, envelope, headers, value=payload.encode())


def _restore(entry: JournalEntry, spec: ActionSpec) -> tuple[str, Any, dict[str, Any]]:
    rows = [restore_row(c, spec) for c in restored_changes(entry, spec)]
    body = {
        "event_type": spec.event_type or "RestoreRow",
        "entity": rows[0]["entity"] if len(rows) == 1 else None,
        "payload": {"rows": rows},
        "expected": {r["entity"]: r["expected"] for r in rows},
    }
    key = rows[0]["entity"] if len(rows) == 1 else entry.correlation_id or entry.action_id
    assert spec.topic is not None  # validated on load
    return spec.topic, key, body


def restore_row(change: RowChange, spec: ActionSpec) -> dict[str, Any]:
    """Put one row back as it was before the action: delete what it created, set back what it changed."""
    if change.op is Op.CREATE:
        return {"entity": change.entity, "table": change.collection, "key": change.key,
                "op": "DELETE", "set": None, "expected": None}  # fmt: skip
    before: JsonObject = change.before or {}
    names = spec.fields or (change.changed_fields if change.op is Op.UPDATE else ()) or tuple(before)
    values = {n: before.get(n) for n in names if n in before}
    expected = values if spec.fields else before
    return {"entity": change.entity, "table": change.collection, "key": change.key,
            "op": "UPSERT", "set": values, "image": before, "expected": expected}  # fmt: skip


def _compensate(entry: JournalEntry, spec: ActionSpec) -> tuple[str, Any, dict[str, Any]]:
    ctx = context(entry)
    key = render(spec.key, ctx) if spec.key is not None else entry.aggregate_id or entry.correlation_id
    assert spec.topic is not None and spec.event_type is not None
    return spec.topic, key, {"event_type": spec.event_type, "payload": render(spec.payload, ctx)}


def _notify(entry: JournalEntry, spec: ActionSpec, default_topic: str) -> tuple[str, Any, dict[str, Any]]:
    default = f"{entry.action_type} {entry.action_id} cannot be undone"
    text = render(spec.text, context(entry)) if spec.text else default
    payload = {"text": text, "action_id": entry.action_id, "action_type": entry.action_type}
    return (
        spec.topic or default_topic,
        entry.correlation_id,
        {"event_type": "IrreversibleAction", "payload": payload},
    )


def _rebuild(
    request_id: str, entry: JournalEntry, spec: ActionSpec, default_topic: str
) -> tuple[str, Any, dict[str, Any]]:
    """Tell the store's owner it rebuilds from a filtered replay (the step needs no answer)."""
    topics = " ".join(spec.replay_topics)
    text = render(spec.text, context(entry)) if spec.text else (
        f"{spec.store} holds the effect of {entry.action_type} {entry.action_id}: rebuild it from "
        f"rewind replay --request {request_id} {topics}"
    )  # fmt: skip
    payload = {"text": text, "store": spec.store, "topics": list(spec.replay_topics),
               "action_id": entry.action_id, "action_type": entry.action_type}  # fmt: skip
    return spec.topic or default_topic, spec.store, {"event_type": "RebuildFromReplay", "payload": payload}


def traceparent(entry: JournalEntry, key: str) -> str:
    """A new span in the original action's trace (or a trace of its own), the same on every attempt."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    trace_id = entry.trace.trace_id if entry.trace else digest[16:48]
    return f"00-{trace_id}-{digest[:16]}-01"


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else canonical_json(key)
