"""The proof of repair (the default of ``make demo``): pricing rule v7 misprices the orders it prices,
v8 fixes it; the operator asks rewind to repair ``rule_version == "v7"``. Rewind undoes what v7 caused,
re-drives the checkout's requests that v7 priced to pricing only (never to reporting or any other
consumer of the checkout topic), which prices them with v8; reporting's read model rebuilds from a
filtered replay. The world then equals an oracle database where v8 was in place from the start.

Equivalences, per table:
- orders: every row equal to the oracle's, column by column: the same order ids, v8's prices.
- stock: equal to the oracle's exactly.
- payments: the captured money per order equals the oracle's; each mispriced capture is refunded (one
  REFUNDED row per repaired order, the v7 amount); the gateway's net money per order equals the oracle's.
- emails: the oracle's plus the first emails of the repaired orders (irreversible, listed in the plan).
- revenue (reporting's read model), rebuilt from a filtered replay, equals the oracle's.
- no row of an unaffected order changed, at any time.
"""

from __future__ import annotations

import os
from pathlib import Path

from examples.shop.scenario import Scenario
from processor.devenv.postgres import Dsn
from tests.e2e.conftest import ConnectLauncher
from tests.e2e.test_shop_rollback import assert_only_bad_orders_changed

ORDERS = int(os.environ.get("REWIND_SHOP_ORDERS", "400"))


def test_repair_gives_the_world_where_the_fix_was_always_in_place(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path
) -> None:
    outcome = Scenario(
        kafka_bootstrap, postgres, debezium.start, tmp_path, orders=ORDERS, progress=print
    ).run()
    final, bad = outcome.status, outcome.bad

    assert final.state.value == "REPAIRED", final.reason
    assert final.verification == []
    failed = [(name, text) for name, text, holds in outcome.checks() if not holds]
    assert not failed, (failed, outcome.after["revenue"], outcome.oracle["revenue"])
    assert {r[5] for r in outcome.after["orders"] if r[0] in bad} == {"v8"}

    plan = final.plan
    assert plan is not None
    requests = {e.action_id: e for e in outcome.journal if e.action_type == "OrderRequested"}
    assert len(plan.redrive) == len(bad)
    for item in plan.redrive:  # each input: a request of a bad order, sent again to pricing only, confirmed
        original = requests[item.action_id]
        assert original.event is not None and original.event.payload["order_id"] in bad
        assert item.topic.endswith("shop.redrive.pricing") and item.state.value == "CONFIRMED"
        repriced = next(e for e in outcome.journal if e.action_id == item.confirmed_by)
        assert repriced.action_type == "OrderPriced" and repriced.causation_ids == (item.idempotency_key,)
        assert repriced.correlation_id == original.correlation_id
        assert repriced.trace is not None and original.trace is not None
        assert repriced.trace.trace_id == original.trace.trace_id  # a new span in the original's trace
    emails = [s for s in plan.steps if s.action_type == "EmailSent"]
    assert len(emails) == len(bad) and {s.action_id for s in emails} <= set(plan.irreversible)
    assert outcome.replay is not None and outcome.replay.skipped == len(bad)
    assert outcome.replay.copied == outcome.orders  # the good ones and the repaired ones
    # the repaired orders' workflows run again: 6 actions each (priced, reserved, payment requested,
    # captured, emailed, counted), on top of the undo's 3 answers
    assert_only_bad_orders_changed(outcome, 3 * len(bad), extra=6 * len(bad))
