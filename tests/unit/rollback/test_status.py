"""The status topic's records: a full record, then deltas of what changed, folded back in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.errors import SchemaError, Where
from processor.rollback.engine import EngineConfig, RollbackEngine
from processor.rollback.progress import RequestProgress, RequestState
from processor.rollback.request import Mode, RollbackRequest, Selector, SelectorKind, Thresholds
from processor.rollback.serde import decode_status, encode_status, plan_record, status_record
from processor.rollback.status import StatusReader, StatusWriter
from processor.schemas import SchemaName, decode, encode
from tests.unit.rollback.world import World, catalog


def _executing(tmp_path: Path, orders: int = 40) -> RollbackEngine:
    w = World()
    for n in range(orders):
        w.order(n, rule="v7", price=90)
    engine = RollbackEngine(
        catalog(tmp_path), EngineConfig(thresholds=Thresholds(steps=10**6, irreversible=10**6))
    )
    engine.add_entries([(e, None) for e in w.entries], 0)
    seeds = tuple(f"price-{n}" for n in range(orders))
    engine.on_request(RollbackRequest("r1", "a", "b", 0, Selector(SelectorKind.ACTION_IDS, action_ids=seeds),
                                      Mode.EXECUTE), 1)  # fmt: skip
    return engine


def _same(a: RequestProgress, b: RequestProgress) -> bool:
    assert a.plan is not None and b.plan is not None
    return status_record(a) == status_record(b) and plan_record(a.plan) == plan_record(b.plan)


def test_deltas_carry_only_what_changed_and_fold_back_to_the_same_progress(tmp_path: Path) -> None:
    engine = _executing(tmp_path)
    progress = engine.requests["r1"]
    writer, reader = StatusWriter(max_delta_share=1.0), StatusReader()
    full = writer.encode(progress)
    assert _same(reader.read(full), progress)
    sizes = []
    for now in range(10, 200, 10):
        engine.tick(now)  # emits a wave's notices: a few steps change each time
        record = writer.encode(progress)
        sizes.append(len(record))
        folded = reader.read(record)
        assert _same(folded, progress)
    assert max(sizes) < len(full) / 2  # the biggest: a wave of 40 of the 160 steps emitted
    assert sum(sizes) / len(sizes) < len(full) / 10  # the deltas are small beside the plan


def test_a_full_record_is_written_after_many_deltas_or_when_most_items_changed(tmp_path: Path) -> None:
    progress = _executing(tmp_path).requests["r1"]
    assert progress.plan is not None
    writer = StatusWriter(snapshot_every=2)
    full = len(writer.encode(progress))
    assert len(writer.encode(progress)) < full and len(writer.encode(progress)) < full
    assert len(writer.encode(progress)) == full  # the third in a row is full again
    for step in progress.plan.steps:
        progress.mark_emitted(step, 5)  # every item changed: a delta would be no smaller
    assert len(writer.encode(progress)) > full * 0.9


def test_a_delta_without_its_full_record_is_refused_not_guessed(tmp_path: Path) -> None:
    progress = _executing(tmp_path).requests["r1"]
    writer = StatusWriter()
    writer.encode(progress)
    delta = writer.encode(progress)
    with pytest.raises(SchemaError) as refused:
        StatusReader().read(delta)
    assert "full record" in str(refused.value) and "compacted" in str(refused.value)


def test_the_latest_progress_of_each_request_skips_an_unreadable_record_and_names_where(
    tmp_path: Path,
) -> None:
    progress = _executing(tmp_path).requests["r1"]
    writer = StatusWriter()
    records = [writer.encode(progress), b"\x00not a status", writer.encode(progress)]
    where = [Where(topic="st", partition=0, offset=n) for n in range(3)]
    unreadable: list[SchemaError] = []
    latest = StatusReader().latest(zip(records, where, strict=True), unreadable.append)
    assert list(latest) == ["r1"] and _same(latest["r1"], progress)
    [error] = unreadable
    assert "st[0]@1" in str(error)


def test_a_status_record_naming_an_unknown_mode_is_a_schema_error_not_a_crash() -> None:
    """Found by fuzzing (bench/fuzz, the status target): the worker reads every status record back at
    start, and one it cannot read must be skipped by name, not end the session."""
    progress = RequestProgress(
        "r1", RequestState.COMPLETED, 7, "olivia", "why", Mode.EXECUTE, "sel", 3, "done"
    )
    record = decode(encode_status(progress), SchemaName.ROLLBACK_STATUS)
    record["mode"] = "EXEFUTE"
    with pytest.raises(SchemaError, match="status of 'r1' cannot be read: 'EXEFUTE' is not a valid Mode"):
        decode_status(encode(record, SchemaName.ROLLBACK_STATUS), Where(component="test"))
