"""Undo only (``--mode undo``): a bad pricing rule ships, 400 orders (REWIND_SHOP_ORDERS; the demo runs
1,000) flow through real PostgreSQL -> Debezium -> the tap -> the journal; a rollback selected by a field predicate is
approved, compensated and restored by the services; the world then equals an oracle database in which
the bad rule's orders never happened, table by table, except what the catalog declares irreversible,
which the final status lists.

Equivalences, per table (what "equal" means after a compensation, written down here on purpose):
- orders: every row equal to the oracle's, column by column (a bad order's row is restored away: the
  pricing action created it, so its before-image is "no row", as in the oracle).
- stock: equal to the oracle's exactly (a reservation released is stock never reserved).
- payments: the CAPTURED rows equal the oracle's (order, amount); every other row is REFUNDED and belongs
  to a bad order (a refunded payment counts as money never captured); the gateway's net money per order
  equals the oracle's.
- emails: the oracle's plus exactly the bad orders' emails, which are the EmailSent actions the final
  status lists as irreversible (an email cannot be unsent).
- revenue (reporting's read model): rebuilt from a filtered replay of the priced orders without the
  scope's, it equals the oracle's.
- no row of an unaffected order changed between just before the rollback and the end, nor at any time
  in between (every database change reaches the journal through CDC).
"""

from __future__ import annotations

import os
from pathlib import Path

from examples.shop.scenario import ACTIONS_PER_ORDER, Outcome, Scenario
from processor.devenv.postgres import Dsn
from tests.e2e.conftest import ConnectLauncher

ORDERS = int(os.environ.get("REWIND_SHOP_ORDERS", "400"))
UNDO = ("RowsRestored", "StockReleased", "PaymentRefunded")


def test_rollback_restores_the_world_the_bad_rule_never_touched(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path
) -> None:
    outcome = Scenario(
        kafka_bootstrap, postgres, debezium.start, tmp_path, orders=ORDERS, progress=print, mode="undo"
    ).run()
    final, bad = outcome.status, outcome.bad

    assert final.state.value == "COMPLETED", final.reason
    assert final.verification == []
    failed = [(name, text) for name, text, holds in outcome.checks() if not holds]
    assert not failed, failed

    plan = final.plan
    assert plan is not None
    irreversible = [s for s in plan.steps if s.action_id in plan.irreversible]
    assert {s.action_type for s in irreversible} == {"EmailSent", "PaymentRequested"}
    assert sum(s.action_type == "EmailSent" for s in irreversible) == len(bad)
    assert len(plan.steps) == 6 * len(bad) and plan.conflicts == [] and plan.unclassified == []
    assert [(r.store, len(r.action_ids)) for r in plan.replays] == [("revenue_per_sku", len(bad))]
    assert outcome.replay is not None and outcome.replay.skipped == len(bad)
    assert outcome.replay.copied == ORDERS - len(bad)
    assert_only_bad_orders_changed(outcome, 3 * len(bad))


def assert_only_bad_orders_changed(outcome: Outcome, undo_actions: int, extra: int = 0) -> None:
    """The journal holds the workload's actions, the services' answers to rewind's commands (each
    touching a bad order), the read model's rebuild, and ``extra`` actions more."""
    bad = outcome.bad
    undo = [e for e in outcome.journal if e.action_type in UNDO]
    rebuilds = [e for e in outcome.journal if e.event is None and {c.table for c in e.changes} == {"revenue"}]
    assert len(undo) == undo_actions and len(rebuilds) == 1
    assert len(outcome.journal) == outcome.orders * ACTIONS_PER_ORDER + 3 + len(undo) + len(rebuilds) + extra
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
