"""Drill verdicts on the drills topic (Avro, schemas/drill_verdict.avsc) <-> the domain."""

from __future__ import annotations

from processor.drill.verdict import Outcome, Verdict
from processor.errors import SchemaError, Where
from processor.schemas import Record, SchemaName, decode, encode


def verdict_record(v: Verdict) -> Record:
    return {
        "drill_id": v.drill_id, "asked": v.asked, "outcome": v.outcome.value, "reason": v.reason,
        "started_ts_ms": v.started_ts_ms, "ended_ts_ms": v.ended_ts_ms, "request_id": v.request_id,
        "failed_step": v.failed_step, "journaled_ms": v.journaled_ms, "undone_ms": v.undone_ms,
        "exercised": list(v.exercised), "action_types": list(v.action_types),
    }  # fmt: skip


def encode_verdict(v: Verdict) -> bytes:
    return encode(verdict_record(v), SchemaName.DRILL_VERDICT)


def decode_verdict(data: bytes, where: Where | None = None) -> Verdict:
    r = decode(data, SchemaName.DRILL_VERDICT, where)
    if r["outcome"] not in Outcome.__members__:
        raise SchemaError(
            f"drill {r['drill_id']} has an outcome this version does not know: {r['outcome']}", where=where
        )
    return Verdict(
        r["drill_id"], r["asked"], Outcome(r["outcome"]), r["reason"], r["started_ts_ms"], r["ended_ts_ms"],
        r["request_id"], r["failed_step"], r["journaled_ms"], r["undone_ms"], tuple(r["exercised"]),
        tuple(r["action_types"]),
    )  # fmt: skip
