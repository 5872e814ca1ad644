"""Replay as a catalog mechanism: an action whose effect lives in a derived store is rebuilt from a
filtered replay, not patched; the plan says which store rebuilds from which topics."""

from __future__ import annotations

import json
from pathlib import Path

from processor.rollback.engine import EngineConfig, RollbackEngine
from processor.rollback.progress import RequestState
from processor.rollback.request import Mode, RollbackRequest, Selector, SelectorKind, Thresholds
from processor.rollback.serde import decode_status, encode_status, plan_record
from processor.undo import StepMechanism
from tests.unit.rollback.world import CATALOG, World, catalog

REPLAY_CATALOG = (
    CATALOG
    + """
  RevenueCounted:
    mechanism: replay
    store: revenue_per_sku
    topics: [outbox.event.order]
"""
)


def _world() -> World:
    w = World()
    for n in (1, 2):
        priced, *_ = w.order(n, rule="v7" if n == 2 else "v6", price=90 if n == 2 else 100)
        w.act(f"revenue-{n}", "RevenueCounted", wf=f"order-{n}", causes=(priced.action_id,), service="reporting",
              payload={"sku": "sku-1", "cents": priced.event.payload["price"]})  # type: ignore[union-attr]  # fmt: skip
    return w


def test_a_replay_step_rebuilds_its_store_and_the_plan_names_store_and_topics(tmp_path: Path) -> None:
    w = _world()
    engine = RollbackEngine(
        catalog(tmp_path, REPLAY_CATALOG), EngineConfig(thresholds=Thresholds(irreversible=5))
    )
    engine.add_entries([(e, None) for e in w.entries], 0)
    selector = Selector(SelectorKind.ACTION_IDS, action_ids=("price-2",))
    engine.on_request(RollbackRequest("r1", "alice", "bad rule", 0, selector, Mode.EXECUTE), 1)
    progress = engine.requests["r1"]
    assert progress.plan is not None
    step = progress.plan.step("revenue-2")
    assert step is not None and step.mechanism is StepMechanism.REPLAY
    [replay] = progress.plan.replays
    assert (replay.store, replay.topics, replay.action_ids) == (
        "revenue_per_sku",
        ("outbox.event.order",),
        ("revenue-2",),
    )
    assert plan_record(progress.plan)["replays"] == [
        {"store": "revenue_per_sku", "topics": ["outbox.event.order"], "action_ids": ["revenue-2"]}
    ]
    first = engine.tick(10).commands
    rebuild = next(c for c in first if c.envelope["mechanism"] == "REPLAY")
    text = json.loads(rebuild.envelope["payload_json"])["text"]
    assert "rewind replay --request r1 outbox.event.order" in text and rebuild.key == "revenue_per_sku"
    assert decode_status(encode_status(progress)).plan.replays == progress.plan.replays  # type: ignore[union-attr]
    assert all(s.action_id != "revenue-1" for s in progress.plan.steps)  # the good order's count stays
    assert progress.state is RequestState.EXECUTING  # a notice needs no answer: later waves follow
