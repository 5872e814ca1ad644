"""Avro records of the rollback topics <-> the domain: requests, control commands, status, commands."""

from __future__ import annotations

from typing import Any

from processor.errors import SchemaError, Where
from processor.jsonvalue import JsonInvalid, dumps, loads
from processor.rollback.approvals import Approval, AuditEntry
from processor.rollback.plan import Conflict, Plan, PreviewRow, Redrive, Step, StepState, StoreReplay
from processor.rollback.progress import Diff, RequestProgress, RequestState
from processor.rollback.request import (
    Control,
    ControlCommand,
    FieldPredicate,
    Mode,
    PredicateOp,
    RequestInvalid,
    RollbackRequest,
    Selector,
    SelectorKind,
)
from processor.schemas import Record, SchemaName, decode, encode
from processor.security.keys import SigningKey
from processor.security.signature import Kind, signed_headers
from processor.undo import StepMechanism

# -- requests -------------------------------------------------------------------------------------


def request_to_record(r: RollbackRequest) -> Record:
    s = r.selector
    predicate = s.predicate
    return {
        "request_id": r.request_id, "requested_by": r.requested_by, "reason": r.reason,
        "requested_ts_ms": r.requested_ts_ms,
        "selector": {
            "kind": s.kind.value, "action_ids": list(s.action_ids), "correlation_id": s.correlation_id,
            "trace_id": s.trace_id, "action_type": s.action_type, "from_ts_ms": s.from_ts_ms,
            "to_ts_ms": s.to_ts_ms,
            "predicate": None if predicate is None else {
                "field": predicate.field, "op": predicate.op.value,
                "value_json": dumps(predicate.value)},
        },
        "mode": r.mode.value, "widen_on_overwrites": r.widen_on_overwrites,
        "repair": r.repair, "exclude_inputs": list(r.exclude_inputs),
        "exclude_input_types": list(r.exclude_input_types),
    }  # fmt: skip


def request_from_record(rec: Record) -> RollbackRequest:
    """The domain request; RequestInvalid names the field when the record cannot be one."""
    sel = rec["selector"]
    if sel["kind"] not in SelectorKind.__members__:
        raise RequestInvalid(f"unknown selector kind {sel['kind']!r}", field="selector.kind")
    predicate = None
    if (p := sel.get("predicate")) is not None:
        if p["op"] not in PredicateOp.__members__:
            raise RequestInvalid(f"unknown predicate op {p['op']!r}", field="selector.predicate.op")
        try:
            value = loads(p["value_json"])
        except JsonInvalid as exc:
            raise RequestInvalid(f"not JSON: {exc}", field="selector.predicate.value_json") from exc
        predicate = FieldPredicate(p["field"], PredicateOp(p["op"]), value)
    request = RollbackRequest(
        request_id=rec["request_id"], requested_by=rec["requested_by"], reason=rec["reason"],
        requested_ts_ms=rec["requested_ts_ms"],
        selector=Selector(
            SelectorKind(sel["kind"]), tuple(sel["action_ids"]), sel["correlation_id"], sel["trace_id"],
            sel["action_type"], sel["from_ts_ms"], sel["to_ts_ms"], predicate,
        ),
        mode=Mode(rec["mode"]), widen_on_overwrites=rec["widen_on_overwrites"],
        repair=rec.get("repair", False), exclude_inputs=tuple(rec.get("exclude_inputs", ())),
        exclude_input_types=tuple(rec.get("exclude_input_types", ())),
    )  # fmt: skip
    request.validate()
    return request


def encode_request(r: RollbackRequest) -> bytes:
    return encode(request_to_record(r), SchemaName.ROLLBACK_REQUEST)


def decode_request(data: bytes, where: Where | None = None) -> RollbackRequest:
    return request_from_record(decode(data, SchemaName.ROLLBACK_REQUEST, where))


def signed_request(
    r: RollbackRequest, key: SigningKey | None, now_ms: int
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The request's record and the headers signing it (unsigned without a key)."""
    body = encode_request(r)
    return body, signed_headers(key, Kind.REQUEST, body, now_ms)


# -- control --------------------------------------------------------------------------------------


def encode_control(c: Control) -> bytes:
    record = {"request_id": c.request_id, "command": c.command.value, "issued_by": c.issued_by,
              "issued_ts_ms": c.issued_ts_ms, "reason": c.reason, "plan_hash": c.plan_hash}  # fmt: skip
    return encode(record, SchemaName.ROLLBACK_CONTROL)


def signed_control(c: Control, key: SigningKey | None, now_ms: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    body = encode_control(c)
    return body, signed_headers(key, Kind.CONTROL, body, now_ms)


def decode_control(data: bytes, where: Where | None = None) -> Control:
    rec = decode(data, SchemaName.ROLLBACK_CONTROL, where)
    if rec["command"] not in ControlCommand.__members__:
        raise SchemaError(f"unknown control command {rec['command']!r}", where=where)
    return Control(rec["request_id"], ControlCommand(rec["command"]), rec["issued_by"], rec["issued_ts_ms"],
                   rec["reason"], rec.get("plan_hash"))  # fmt: skip


# -- status ---------------------------------------------------------------------------------------


def _step_record(s: Step) -> Record:
    return {"action_id": s.action_id, "action_type": s.action_type, "service": s.service,
            "mechanism": s.mechanism.value, "wave": s.wave, "state": s.state.value, "attempts": s.attempts,
            "idempotency_key": s.idempotency_key, "last_error": s.last_error,
            "emitted_ts_ms": s.emitted_ts_ms, "confirmed_by": s.confirmed_by,
            "confirmed_ts_ms": s.confirmed_ts_ms}  # fmt: skip


def _redrive_record(r: Redrive) -> Record:
    return {"action_id": r.action_id, "action_type": r.action_type,
            "seed_action_ids": list(r.seed_action_ids), "topic": r.topic, "event_type": r.event_type,
            "idempotency_key": r.idempotency_key,
            "state": r.state.value, "attempts": r.attempts, "last_error": r.last_error,
            "emitted_ts_ms": r.emitted_ts_ms, "confirmed_by": r.confirmed_by,
            "confirmed_ts_ms": r.confirmed_ts_ms}  # fmt: skip


def _redrive(r: Record) -> Redrive:
    return Redrive(
        action_id=r["action_id"], action_type=r["action_type"], seed_action_ids=tuple(r["seed_action_ids"]),
        topic=r["topic"], event_type=r["event_type"], idempotency_key=r["idempotency_key"],
        state=StepState(r["state"]), attempts=r["attempts"], last_error=r["last_error"],
        emitted_ts_ms=r["emitted_ts_ms"], confirmed_by=r["confirmed_by"],
        confirmed_ts_ms=r["confirmed_ts_ms"],
    )  # fmt: skip


def plan_record(p: Plan) -> Record:
    return {
        "scope": list(p.scope), "waves": p.waves, "steps": [_step_record(s) for s in p.steps],
        "conflicts": [{"action_id": c.action_id, "entity": c.entity, "overwritten_by": list(c.overwritten_by)}
                      for c in p.conflicts],
        "irreversible": p.irreversible, "in_doubt": p.in_doubt, "unclassified": p.unclassified,
        "blocked": p.blocked, "unreadable": p.unreadable,
        "blast_radius": [{"service": r.service, "action_type": r.action_type, "mechanism": r.mechanism.value,
                          "count": r.count} for r in p.blast_radius()],
        "needs_approval": p.needs_approval, "approval_reasons": p.approval_reasons,
        "approval_roles": p.approval_roles,
        "redrive": [_redrive_record(r) for r in p.redrive],
        "replays": [{"store": r.store, "topics": list(r.topics), "action_ids": list(r.action_ids)}
                    for r in p.replays],
        "preview": [_preview_record(r) for r in p.preview],
    }  # fmt: skip


def _preview_record(r: PreviewRow) -> Record:
    return {"entity": r.entity, "table": r.table, "key_json": dumps(r.key), "mechanism": r.mechanism.value,
            "action_ids": list(r.action_ids), "now_json": None if r.now is None else dumps(r.now),
            "sets_json": dumps(r.sets), "moves_json": dumps(r.moves), "gone": r.gone}  # fmt: skip


def _preview(r: Record) -> PreviewRow:
    return PreviewRow(
        r["entity"], r["table"], loads(r["key_json"]), StepMechanism(r["mechanism"]), list(r["action_ids"]),
        None if r["now_json"] is None else loads(r["now_json"]), loads(r["sets_json"]),
        loads(r["moves_json"]), r["gone"],
    )  # fmt: skip


def status_record(p: RequestProgress, *, with_plan: bool = True) -> Record:
    return {
        "request_id": p.request_id, "state": p.state.value, "reason": p.reason, "ts_ms": p.ts_ms,
        "plan": None if p.plan is None or not with_plan else plan_record(p.plan),
        "verification": [{"entity": d.entity, "field": d.field, "expected_json": d.expected_json,
                          "actual_json": d.actual_json} for d in p.verification],
        "requested_by": p.requested_by, "request_reason": p.request_reason, "mode": p.mode.value,
        "selector": p.selector, "requested_ts_ms": p.requested_ts_ms,
        "last_emitted_ts_ms": p.last_emitted_ts_ms, "repair": p.repair,
        "plan_hash": p.plan_hash, "requested_key": p.requested_key,
        "approvals": [{"key_id": a.key_id, "plan_hash": a.plan_hash, "ts_ms": a.ts_ms, "roles": list(a.roles)}
                      for a in p.approvals],
        "audit": [{"command": a.command, "key_id": a.key_id, "issued_ts_ms": a.issued_ts_ms, "nonce": a.nonce,
                   "plan_hash": a.plan_hash, "outcome": a.outcome, "roles": list(a.roles)} for a in p.audit],
        "request": p.request,
    }  # fmt: skip


def _step(r: Record) -> Step:
    return Step(
        action_id=r["action_id"], action_type=r["action_type"], service=r["service"],
        mechanism=StepMechanism(r["mechanism"]), wave=r["wave"], idempotency_key=r["idempotency_key"] or "",
        state=StepState(r["state"]), attempts=r["attempts"], last_error=r["last_error"],
        emitted_ts_ms=r["emitted_ts_ms"], confirmed_by=r["confirmed_by"],
        confirmed_ts_ms=r["confirmed_ts_ms"],
    )  # fmt: skip


def _plan(r: Record) -> Plan:
    return Plan(
        scope=tuple(r["scope"]), steps=[_step(s) for s in r["steps"]],
        conflicts=[Conflict(c["action_id"], c["entity"], tuple(c["overwritten_by"])) for c in r["conflicts"]],
        irreversible=list(r["irreversible"]), in_doubt=list(r["in_doubt"]),
        unclassified=list(r["unclassified"]), blocked=list(r["blocked"]),
        unreadable=list(r.get("unreadable", [])),
        approval_reasons=list(r["approval_reasons"]), approval_roles=list(r.get("approval_roles", [])),
        redrive=[_redrive(x) for x in r.get("redrive", [])],
        replays=[StoreReplay(x["store"], tuple(x["topics"]), tuple(x["action_ids"]))
                 for x in r.get("replays", [])],
        preview=[_preview(x) for x in r.get("preview", [])],
    )  # fmt: skip


def progress_from_record(r: Record) -> RequestProgress:
    if r["state"] not in RequestState.__members__:
        raise SchemaError(f"status of {r['request_id']} has an unknown state {r['state']!r}")
    return RequestProgress(
        request_id=r["request_id"], state=RequestState(r["state"]), ts_ms=r["ts_ms"], reason=r["reason"],
        plan=None if r["plan"] is None else _plan(r["plan"]),
        verification=[Diff(d["entity"], d["field"], d["expected_json"], d["actual_json"])
                      for d in r["verification"]],
        requested_by=r["requested_by"], request_reason=r["request_reason"],
        mode=Mode(r["mode"] or "DRY_RUN"), selector=r["selector"], requested_ts_ms=r["requested_ts_ms"],
        last_emitted_ts_ms=r["last_emitted_ts_ms"], repair=r.get("repair", False),
        plan_hash=r.get("plan_hash"), request=r.get("request"),
        approvals=[Approval(a["key_id"], a["plan_hash"], a["ts_ms"], tuple(a["roles"]))
                   for a in r.get("approvals", [])],
        audit=[AuditEntry(a["command"], a["key_id"], a["issued_ts_ms"], a["nonce"], a["plan_hash"],
                          a["outcome"], tuple(a.get("roles", []))) for a in r.get("audit", [])],
    )  # fmt: skip


def encode_status(p: RequestProgress) -> bytes:
    return encode(status_record(p), SchemaName.ROLLBACK_STATUS)


def decode_status(data: bytes, where: Where | None = None) -> RequestProgress:
    record = decode(data, SchemaName.ROLLBACK_STATUS, where)
    try:
        return progress_from_record(record)
    except ValueError as exc:  # an enum symbol the schema's strings allow but the domain has not
        raise SchemaError(
            f"status of {record.get('request_id')!r} cannot be read: {exc}", where=where
        ) from exc


def encode_command(envelope: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return dumps(envelope).encode()
    return encode(envelope, SchemaName.COMPENSATION)


def decode_command(data: bytes, fmt: str) -> dict[str, Any]:
    if fmt == "json":
        value: dict[str, Any] = loads(data)
        return value
    return decode(data, SchemaName.COMPENSATION)
