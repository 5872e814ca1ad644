"""The proof: a bad pricing rule ships, 1,000 orders (REWIND_SHOP_ORDERS) flow through real PostgreSQL ->
Debezium -> the tap -> the journal; a rollback selected by a field predicate is approved, compensated and
restored by the services; the world then equals an oracle database in which the bad rule's actions never
happened, table by table, except what the catalog declares irreversible, which the final status lists.

Equivalences, per table (what "equal" means after a compensation, written down here on purpose):
- orders: every row equal to the oracle's, column by column (a bad order's row is restored away: the
  pricing action created it, so its before-image is "no row", as in the oracle).
- stock: equal to the oracle's exactly (a reservation released is stock never reserved).
- payments: the CAPTURED rows equal the oracle's rows; every other row is REFUNDED and belongs to a bad
  order (a refunded payment counts as money never captured); the gateway's net ledger equals the oracle's.
- emails: the oracle's plus exactly the bad orders' emails, which are the EmailSent actions the final
  status lists as irreversible (an email cannot be unsent).
- no row of an unaffected order changed between just before the rollback and the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from examples.shop.scenario import Scenario
from processor.devenv.postgres import Dsn
from tests.e2e.conftest import ConnectLauncher

ORDERS = int(os.environ.get("REWIND_SHOP_ORDERS", "1000"))


def test_rollback_restores_the_world_the_bad_rule_never_touched(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path
) -> None:
    outcome = Scenario(
        kafka_bootstrap, postgres, debezium.start, tmp_path, orders=ORDERS, progress=print
    ).run()
    final, after, oracle, bad = outcome.status, outcome.after, outcome.oracle, outcome.bad

    assert final.state.value == "COMPLETED", final.reason
    assert final.verification == []
    assert after["orders"] == oracle["orders"]
    assert after["stock"] == oracle["stock"]
    captured = {r for r in after["payments"] if r[3] == "CAPTURED"}
    refunded = after["payments"] - captured
    assert captured == oracle["payments"]
    assert {r[1] for r in refunded} == bad and {r[3] for r in refunded} == {"REFUNDED"}
    assert outcome.gateway_net == outcome.oracle_gateway_net
    assert oracle["emails"] <= after["emails"]
    assert {r[1] for r in after["emails"] - oracle["emails"]} == bad

    plan = final.plan
    assert plan is not None
    irreversible = [s for s in plan.steps if s.action_id in plan.irreversible]
    assert {s.action_type for s in irreversible} == {"EmailSent", "PaymentRequested"}
    assert sum(s.action_type == "EmailSent" for s in irreversible) == len(bad)
    assert len(plan.steps) == 5 * len(bad) and plan.conflicts == [] and plan.unclassified == []

    for table, order_column in (("orders", 0), ("payments", 1), ("emails", 1)):

        def unaffected(rows: set[tuple[Any, ...]], c: int = order_column) -> set[tuple[Any, ...]]:
            return {r for r in rows if r[c] not in bad}

        assert unaffected(outcome.before[table]) == unaffected(after[table]), table

    # ... and at no time: every database change reaches the journal through CDC, and the journal holds the
    # workload's actions plus only the services' answers to rewind's commands, each touching a bad order.
    undo = [
        e for e in outcome.journal if e.action_type in ("RowsRestored", "StockReleased", "PaymentRefunded")
    ]
    assert len(outcome.journal) == ORDERS * 5 + 3 + len(undo) and len(undo) == 3 * len(bad)
    for entry in undo:
        assert entry.correlation_id in {f"order-{n}" for n in bad}, entry.action_id
        for change in entry.changes:
            image = change.after or change.before or {}
            if change.table == "orders":
                assert change.key["id"] in bad
            elif change.table == "payments":
                assert image["order_id"] in bad
            else:  # stock rows belong to a sku, applied_commands is the services' bookkeeping
                assert change.table in ("stock", "applied_commands"), change.table
