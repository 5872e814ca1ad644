"""The shop as many deployments run Debezium: keys through StringConverter (the bare aggregate id) and
the outbox router's default configuration, placing only the event type as a header. The services write
correlation, causation, trace and transaction id into each payload; rewind journals every action from
that, joined with its transaction's rows, and the rollback of the bad rule passes as with full headers.
"""

from __future__ import annotations

import os
from pathlib import Path

from examples.shop.scenario import ACTIONS_PER_ORDER, Deployment, Scenario
from processor.devenv.postgres import Dsn
from tests.e2e.conftest import ConnectLauncher
from tests.integration.tapkit import read_topic

ORDERS = int(os.environ.get("REWIND_SHOP_DEFAULT_ROUTER_ORDERS", "200"))


def test_string_keys_and_the_default_router_journal_every_action_and_roll_back(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path
) -> None:
    scenario = Scenario(
        kafka_bootstrap, postgres, debezium.start, tmp_path, orders=ORDERS, progress=print,
        deployment=Deployment.default_router(), mode="undo",
    )  # fmt: skip
    config = scenario.spec
    outcome = scenario.run()
    final, after, oracle, bad = outcome.status, outcome.after, outcome.oracle, outcome.bad

    assert config.overrides["key.converter"].endswith("StringConverter")
    assert final.state.value == "COMPLETED", final.reason
    assert final.verification == []
    assert after["orders"] == oracle["orders"] and after["stock"] == oracle["stock"]
    assert outcome.gateway_net == outcome.oracle_gateway_net

    undo = [
        e for e in outcome.journal if e.action_type in ("RowsRestored", "StockReleased", "PaymentRefunded")
    ]
    rebuilds = [e for e in outcome.journal if e.event is None and {c.table for c in e.changes} == {"revenue"}]
    assert len(outcome.journal) == ORDERS * ACTIONS_PER_ORDER + 3 + len(undo) + len(rebuilds)
    assert len(undo) == 3 * len(bad)
    priced = [e for e in outcome.journal if e.action_type == "OrderPriced"]
    assert len(priced) == ORDERS
    for entry in priced:  # the bare key, the type header, and the payload's tx id joining pricing's rows
        assert entry.aggregate_id == str(entry.event.payload["order_id"]) if entry.event else False
        assert sorted(c.table for c in entry.changes) == ["applied_commands", "orders"] and entry.complete
        assert entry.correlation_id == f"order-{entry.aggregate_id}" and entry.trace is not None
    assert not any(e.type_fallback for e in outcome.journal)
    assert read_topic(kafka_bootstrap, scenario.settings.topics.deadletter, expect=0, timeout_s=5) == []
