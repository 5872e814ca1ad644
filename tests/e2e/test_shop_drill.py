"""Drills on the live shop (real PostgreSQL + Debezium, the shop's services, the tap, the worker): a
canary order enters at checkout's entry point, reaches the journal, is undone through the normal
request path and judged. Every mechanism passes, alone and together, while real orders flow; no row
outside the drill's changes (checked against a snapshot); a compensation the service refuses fails the
drill naming its step; the report shows what passed and what no drill exercised."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner

from examples.shop.scenario import DRILL_CUSTOMER, DRILL_SKU, SKUS, TABLES, Live, Scenario
from processor.cli import main
from processor.devenv.postgres import Dsn
from processor.drill.verdict import Outcome
from tests.e2e.conftest import ConnectLauncher

REAL_ORDERS = range(1, 41)  # the orders this test places: canaries number theirs by the time in ms
ORDER_COLUMN = {"orders": 0, "payments": 1, "emails": 1}  # where a row names its order
SKU_COLUMN = {"stock": 0, "revenue": 0}


def _not_drill(conninfo: str, schema: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every row no drill owns: the real orders' and the real SKUs' (a canary's rows name the drill's
    SKU or its order, which a restore may have deleted while its payment and email stay)."""
    with psycopg.connect(conninfo, options=f"-c search_path={schema}") as conn:
        rows: dict[str, set[tuple[Any, ...]]] = {}
        for table in TABLES:
            found = conn.execute(f"SELECT * FROM {table}".encode()).fetchall()
            if table in ORDER_COLUMN:
                rows[table] = {r for r in found if r[ORDER_COLUMN[table]] in REAL_ORDERS}
            else:
                rows[table] = {r for r in found if r[SKU_COLUMN[table]] != DRILL_SKU}
    return rows


def _orders(scenario: Scenario, live: Live, first: int, count: int, stop: threading.Event) -> None:
    shop = scenario.shop(live.gateway, live.mailer)
    try:
        for n in range(first, first + count):
            if stop.is_set():
                return
            shop.request_order(n, f"c{n}", SKUS[n % 3], 1)
            time.sleep(0.2)
    finally:
        shop.close()


def test_drills_pass_on_the_live_shop_and_never_touch_real_rows(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path
) -> None:
    scenario = Scenario(kafka_bootstrap, postgres, debezium.start, tmp_path, orders=40)
    scenario.create_databases()
    conninfo, schema = postgres.conninfo(), scenario.schema
    with scenario.running() as live:
        shop = scenario.shop(live.gateway, live.mailer)
        for sku in (*SKUS, DRILL_SKU):
            shop.stock(sku, 100_000)
        shop.close()
        assert scenario.worker.ready.wait(120)
        stop = threading.Event()
        flowing = threading.Thread(target=_orders, args=(scenario, live, 1, 40, stop), daemon=True)
        flowing.start()
        try:  # while real orders flow: the whole canary workflow, every mechanism together
            together = scenario.app.drill("all", threading.Event())
            flowing.join(120)
        finally:
            stop.set()
        assert together.outcome is Outcome.PASSED, together.reason
        assert set(together.exercised) == {"RESTORE", "COMPENSATE", "REPLAY", "IRREVERSIBLE"}
        assert {"OrderPriced", "StockReserved", "PaymentCaptured", "RevenueCounted"} <= set(
            together.action_types
        )

        deadline = time.monotonic() + 180  # the real orders settle: every row from here on is compared
        while len(live.mailer.sent) < 40 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(live.mailer.sent) == 40
        before = _not_drill(conninfo, schema)
        assert len(before["orders"]) == len(before["payments"]) == len(before["emails"]) == 40
        alone = {m: scenario.app.drill(m, threading.Event()) for m in ("restore", "compensate", "replay")}
        after = _not_drill(conninfo, schema)
        for mechanism, verdict in alone.items():
            assert verdict.outcome is Outcome.PASSED, (mechanism, verdict.reason)
            assert mechanism.upper() in verdict.exercised
        assert before == after  # no real row changed, in any table
        with psycopg.connect(conninfo, options=f"-c search_path={schema}") as conn:
            canary = conn.execute(
                "SELECT count(*) FROM orders WHERE customer = %s", (DRILL_CUSTOMER,)
            ).fetchone()
            stock = conn.execute(
                "SELECT available, reserved FROM stock WHERE sku = %s", (DRILL_SKU,)
            ).fetchone()
        assert canary == (
            1,
        )  # restored away by every drill whose scope held the pricing: the compensate one's stays
        assert stock == (100_000, 0)  # every reservation released: the drill SKU's stock back where it began
        assert len(live.mailer.sent) == 40  # the canaries mailed nobody

        env = {"REWIND_BOOTSTRAP_SERVERS": kafka_bootstrap, "REWIND_METRICS_PORT": "0",
               "REWIND_TOPICS__DRILLS": scenario.settings.topics.drills,
               "REWIND_CATALOG_FILE": str(scenario.settings.catalog_file)}  # fmt: skip
        report = CliRunner().invoke(main, ["drill", "report", "--format", "json"], env=env)
        assert report.exit_code == 0, report.output
        import json

        found = json.loads(report.stdout)
        passed = {m["mechanism"]: m for m in found["mechanisms"]}
        assert all(
            passed[m]["last_passed_ts_ms"] for m in ("RESTORE", "COMPENSATE", "REPLAY", "IRREVERSIBLE")
        )
        assert found["stale_mechanisms"] == []
        # the undo's own answers (RowsRestored, ...) and types no canary runs are not exercised
        assert "RowsRestored" in found["unexercised_action_types"]
        assert "OrderPriced" not in found["unexercised_action_types"]


def test_a_drill_whose_compensation_the_service_refuses_fails_naming_the_step(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path
) -> None:
    scenario = Scenario(kafka_bootstrap, postgres, debezium.start, tmp_path, orders=1,
                        rollback={"confirm_timeout_s": 5, "max_attempts": 2, "backoff": 1})  # fmt: skip
    scenario.create_databases()
    with scenario.running() as live:
        shop = scenario.shop(live.gateway, live.mailer)
        shop.stock(DRILL_SKU, 10)
        shop.close()
        assert scenario.worker.ready.wait(120)
        live.services.shop.refuse.add("ReleaseStock")  # inventory is broken: it never releases stock
        verdict = scenario.app.drill("compensate", threading.Event())
    assert verdict.outcome is Outcome.FAILED
    assert verdict.failed_step is not None and verdict.failed_step in verdict.reason
    assert "(StockReserved, compensate) failed" in verdict.reason, verdict.reason
