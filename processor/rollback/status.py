"""A request's progress on the status topic: full records, and progress deltas between them (pure).

A plan of 10k steps is ~1 MB of Avro. Re-encoding it with every transaction of 500 commands made the
encoding, not Kafka, the cost of a large rollback or repair. So the worker writes a full record when a
request is planned, when the session starts, every ``snapshot_every`` records and whenever a delta
would carry more than ``max_delta_share`` of the items; in between, a delta carries the request's whole
top-level state but only the steps and re-drives that changed since the last record written. Readers
fold them in topic order (``StatusReader``); a delta whose full record is not there is an error, never
a guess (the status topic is therefore not compacted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields

from processor.errors import SchemaError, Where
from processor.rollback.plan import Attempted, Plan, Redrive, Step, StepState
from processor.rollback.progress import RequestProgress
from processor.rollback.serde import progress_from_record, status_record
from processor.schemas import Record, SchemaName, decode, encode

_CHANGING = tuple(f.name for f in fields(Attempted) if f.name != "state")


def _change(item: Step | Redrive) -> Record:
    """What can change of a planned step or re-drive (an ItemChange)."""
    return {"action_id": item.action_id, "state": item.state.value} | {n: getattr(item, n) for n in _CHANGING}


def _apply(item: Attempted, change: Record) -> None:
    item.state = StepState(change["state"])
    for name in _CHANGING:
        setattr(item, name, change[name])


@dataclass(slots=True)
class _Written:
    plan: Plan
    snapshot_ts_ms: int
    step_at: dict[str, int]
    redrive_at: dict[str, int]
    deltas: int = 0


@dataclass
class StatusWriter:
    """One per worker session: what it wrote last for each request (a new session starts with full
    records, so no delta ever refers to a record of an aborted transaction). The progress says which
    steps and re-drives it changed since the last record (``take_touched``)."""

    snapshot_every: int = 50
    max_delta_share: float = 0.25
    _written: dict[str, _Written] = field(default_factory=dict)

    def encode(self, p: RequestProgress) -> bytes:
        last = self._written.get(p.request_id)
        plan = p.plan
        steps, redrive = p.take_touched()
        if plan is None or last is None or last.plan is not plan or last.deltas >= self.snapshot_every:
            return self._full(p)
        if len(steps) + len(redrive) > self.max_delta_share * (len(plan.steps) + len(plan.redrive)):
            return self._full(p)
        record = status_record(p, with_plan=False)
        record["delta"] = {
            "snapshot_ts_ms": last.snapshot_ts_ms,
            "steps": [_change(plan.steps[last.step_at[a]]) for a in sorted(steps)],
            "redrive": [_change(plan.redrive[last.redrive_at[a]]) for a in sorted(redrive)],
        }
        last.deltas += 1
        return encode(record, SchemaName.ROLLBACK_STATUS)

    def _full(self, p: RequestProgress) -> bytes:
        if p.plan is not None:
            self._written[p.request_id] = _Written(
                p.plan, p.ts_ms, {s.action_id: i for i, s in enumerate(p.plan.steps)},
                {r.action_id: i for i, r in enumerate(p.plan.redrive)},
            )  # fmt: skip
        return encode(status_record(p), SchemaName.ROLLBACK_STATUS)


@dataclass
class StatusReader:
    """Folds a status topic's records, read in order, into each request's progress."""

    _latest: dict[str, tuple[RequestProgress, int, dict[str, int], dict[str, int]]] = field(
        default_factory=dict
    )

    def read(self, data: bytes, where: Where | None = None) -> RequestProgress:
        record = decode(data, SchemaName.ROLLBACK_STATUS, where)
        progress = progress_from_record(record)
        delta = record.get("delta")
        if delta is None:
            if progress.plan is not None:
                steps = {s.action_id: i for i, s in enumerate(progress.plan.steps)}
                redrive = {r.action_id: i for i, r in enumerate(progress.plan.redrive)}
                self._latest[progress.request_id] = (progress, progress.ts_ms, steps, redrive)
            return progress
        known = self._latest.get(progress.request_id)
        if known is None or known[1] != delta["snapshot_ts_ms"]:
            raise SchemaError(
                f"a progress delta of {progress.request_id} whose full record (at {delta['snapshot_ts_ms']}) "
                "was not read before it",
                where=where,
                hint="read the status topic from its beginning; it must not be compacted",
            )
        base, snapshot_ts, step_at, redrive_at = known
        plan = base.plan
        assert plan is not None
        for change in delta["steps"]:
            _apply(plan.steps[step_at[change["action_id"]]], change)
        for change in delta["redrive"]:
            _apply(plan.redrive[redrive_at[change["action_id"]]], change)
        progress.plan = plan
        self._latest[progress.request_id] = (progress, snapshot_ts, step_at, redrive_at)
        return progress

    def latest(
        self, records: Iterable[tuple[bytes, Where | None]], on_unreadable: Callable[[SchemaError], None]
    ) -> dict[str, RequestProgress]:
        """Each request's latest progress from a status topic's records (value, where) in order; one that
        cannot be read is handed to ``on_unreadable`` (the error names where) and passed over."""
        found: dict[str, RequestProgress] = {}
        for data, where in records:
            try:
                progress = self.read(data, where)
            except SchemaError as exc:
                on_unreadable(exc)
                continue
            found[progress.request_id] = progress
        return found
