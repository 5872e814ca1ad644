"""The rollback worker's metrics, heard through the engine's observer hooks, on a fresh registry."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from processor.journal.model import Op
from processor.metrics import Metrics
from processor.rollback.engine import EngineConfig, RollbackEngine
from processor.rollback.progress import Policy
from processor.rollback.request import Mode, RollbackRequest, Selector, SelectorKind, Thresholds
from tests.unit.rollback.world import World, catalog


def value(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def test_a_rollback_is_counted_by_outcome_steps_confirmations_failures_and_conflicts(tmp_path: Path) -> None:
    w = World()
    w.order(2, rule="v7", price=90)
    w.act("fix", "StockAdjusted", wf="ops",
          rows=(("orders", {"id": 2}, Op.UPDATE, {"id": 2, "price": 90}, {"id": 2, "price": 95}),))  # fmt: skip
    metrics = Metrics(CollectorRegistry())
    config = EngineConfig(
        Thresholds(irreversible=5, conflicts=5), Policy(confirm_timeout_ms=1000, max_attempts=1)
    )
    engine = RollbackEngine(catalog(tmp_path), config, observer=metrics)
    engine.add_entries([(e, None) for e in w.entries], 0)
    selector = Selector(SelectorKind.ACTION_IDS, action_ids=("price-2",))
    engine.on_request(RollbackRequest("r", "a", "why", 0, selector, Mode.EXECUTE), 0)
    [_notify, refund] = engine.tick(10).commands
    confirmation = w.confirm(refund.event_id, "refunded", wf="order-2")
    engine.add_entries([(confirmation, None)], 510)
    engine.tick(600)  # the stock release goes out, and is never confirmed
    engine.tick(5000)

    assert value(metrics, "rewind_rollback_requests_total", outcome="partially_rolled_back") == 1
    assert value(metrics, "rewind_rollback_plan_steps_count") == 1
    assert value(metrics, "rewind_rollback_plan_steps_sum") == 4
    assert value(metrics, "rewind_rollback_conflicts_total") == 1
    assert value(metrics, "rewind_rollback_steps_total", mechanism="COMPENSATE", state="CONFIRMED") == 1
    assert value(metrics, "rewind_rollback_steps_total", mechanism="RESTORE", state="CONFLICT") == 1
    assert value(metrics, "rewind_rollback_step_failures_total", mechanism="COMPENSATE") == 1
    assert value(metrics, "rewind_rollback_confirmation_seconds_count") == 1
    assert value(metrics, "rewind_rollback_confirmation_seconds_sum") == 0.5
    assert value(metrics, "rewind_rollback_request_to_last_emission_seconds_count") == 1
