"""The proof: a bad pricing rule ships, 1,000 orders (REWIND_SHOP_ORDERS) flow through real PostgreSQL -> Debezium -> the tap ->
the journal; a rollback selected by a field predicate is approved, compensated and restored by the
services; the world then equals an oracle world in which the bad rule's actions never happened, table
by table, except what the catalog declares irreversible, which the final status lists.

Equivalences, per table (what "equal" means after a compensation, written down here on purpose):
- orders: every row equal to the oracle's, column by column (a bad order's row is restored away: the
  pricing action created it, so its before-image is "no row", as in the oracle).
- stock: equal to the oracle's exactly (a reservation released is stock never reserved).
- payments: the CAPTURED rows equal the oracle's rows; every other row is REFUNDED and belongs to a bad
  order (a refunded payment counts as money never captured); the gateway's net ledger equals the oracle's.
- emails: equal to the oracle's plus exactly the bad orders' emails, which are the EmailSent actions
  the final status lists as irreversible (an email cannot be unsent).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from examples.shop.runner import ShopRunner, ShopTopics
from examples.shop.schema import schema_sql, tables
from examples.shop.services import Event, FakeGateway, FakeMailer, Shop
from processor.config import RollbackSettings, Settings, TapSettings, TopicSettings
from processor.devenv.connect import CaptureSpec
from processor.devenv.postgres import Dsn
from processor.kafka import clients
from processor.rollback.catalog import load_catalog
from processor.rollback.request import ControlCommand, FieldPredicate, Selector, SelectorKind
from processor.rollback.worker import RollbackWorker
from processor.tap.core import TapCore
from processor.tap.runner import TapRunner
from tests.e2e.conftest import ConnectLauncher
from tests.integration.rollkit import StatusReader, send_control, send_request
from tests.integration.tapkit import read_journal

ORDERS = int(os.environ.get("REWIND_SHOP_ORDERS", "1000"))
SKUS = ("sku-a", "sku-b", "sku-c")
CATALOG = Path(__file__).parents[2] / "examples" / "shop" / "catalog.yaml"


def is_bad(n: int) -> bool:
    return n % 4 == 0  # the bad rule (v7) priced a quarter of the orders


def workload(shop: Shop) -> None:
    for sku in SKUS:
        shop.stock(sku, 1_000)
    for n in range(1, ORDERS + 1):
        shop.place_order(n, f"c{n}", SKUS[n % 3], 1 + n % 3, "v7" if is_bad(n) else "v6")


def oracle_world(dsn: Dsn, database: str) -> FakeGateway:
    """The same workload in a second database, where the bad rule's orders never happen at all."""
    gateway = FakeGateway()
    shop = Shop(dsn.conninfo(database), "shop", gateway, FakeMailer())
    try:
        for sku in SKUS:
            shop.stock(sku, 1_000)
        for n in range(1, ORDERS + 1):
            if is_bad(n):
                continue
            event_id = shop.place_order(n, f"c{n}", SKUS[n % 3], 1 + n % 3, "v6")
            _follow(shop, event_id)
    finally:
        shop.close()
    return gateway


def _follow(shop: Shop, event_id: str) -> None:
    """Hand each event the services emit to the services, until none is left (no Kafka needed here)."""
    todo = [event_id]
    while todo:
        row = shop.conn.execute(
            "SELECT id::text, type, payload, correlation_id, traceparent FROM outbox WHERE id = %s",
            (todo.pop(),),
        ).fetchone()
        assert row is not None
        shop.handle(Event(*row))
        shop.conn.commit()
        todo += [r[0] for r in shop.conn.execute(
            "SELECT id::text FROM outbox WHERE causation_id = %s AND type <> 'PaymentRequested'", (row[0],)
        ).fetchall()]  # fmt: skip


def rows(conn: psycopg.Connection[Any], table: str) -> set[tuple[Any, ...]]:
    return set(conn.execute(f"SELECT * FROM {table}").fetchall())


def test_rollback_restores_the_world_the_bad_rule_never_touched(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, unique: str, tmp_path: Path
) -> None:
    schema, oracle_db = f"shop{unique}", f"oracle{unique}"
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        admin.execute(schema_sql(schema).encode())
        admin.execute(f"CREATE DATABASE {oracle_db}".encode())
    with psycopg.connect(postgres.conninfo(oracle_db), autocommit=True) as admin:
        admin.execute(schema_sql("shop").encode())
    oracle_gateway = oracle_world(postgres, oracle_db)

    prefix, outbox_prefix = f"pg{unique}", f"{unique}.outbox."
    spec = CaptureSpec(name=f"shop-{unique}", dsn=postgres, topic_prefix=prefix, tables=tables(schema),
                       outbox_table=f"{schema}.outbox", outbox_topic_prefix=outbox_prefix)  # fmt: skip
    catalog_text = CATALOG.read_text().replace("shop.", f"{unique}.shop.")
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(catalog_text)
    catalog = load_catalog(catalog_file)
    command_topics = sorted({s.topic for s in catalog.actions.values() if s.topic})
    outbox_topics = [f"{outbox_prefix}{a}" for a in ("order", "stock", "payment", "email", "restore")]
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, group_id=f"rw-{unique}", transactional_id_prefix=f"tx-{unique}",
        metrics_port=0,
        topics=TopicSettings(
            journal=f"{unique}.journal", deadletter=f"{unique}.dlq", requests=f"{unique}.requests",
            control=f"{unique}.control", status=f"{unique}.status",
            cdc=[spec.table_topic(t) for t in tables(schema)[:-1]], tx_metadata=[spec.tx_topic],
            outbox=outbox_topics, partitions=3,
        ),
        tap=TapSettings(outbox_tables=[f"{schema}.outbox"], catalog_file=catalog_file, tx_timeout_ms=60_000,
                        outbox=TapSettings().outbox.model_copy(update={"topic_prefix": outbox_prefix})),
        rollback=RollbackSettings(notify_topic=f"{unique}.notify", command_format="json", confirm_timeout_s=60),
    )  # fmt: skip
    clients.ensure_topics(
        clients.admin(settings, kafka_bootstrap),
        [*settings.topics.own(), settings.rollback.notify_topic, *command_topics, *outbox_topics,
         *settings.topics.cdc, spec.tx_topic],
        partitions=3, replication_factor=1,
    )  # fmt: skip
    debezium.start(spec)

    stop = threading.Event()
    gateway, mailer = FakeGateway(), FakeMailer()
    shop = Shop(postgres.conninfo(), schema, gateway, mailer)
    services = ShopRunner(kafka_bootstrap, f"shop-{unique}", Shop(postgres.conninfo(), schema, gateway, mailer),
                          ShopTopics(outbox_prefix, tuple(t for t in command_topics if ".commands." in t)))  # fmt: skip
    tap = TapRunner(settings, kafka_bootstrap, lambda: TapCore(settings, catalog))
    worker = RollbackWorker(settings, kafka_bootstrap, catalog)
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in (services, tap, worker)]
    for t in threads:
        t.start()
    status = StatusReader(settings)
    try:
        workload(shop)
        _wait(lambda: len(mailer.sent) == ORDERS, 180, "every order reaches its email")
        assert worker.ready.wait(60)
        before = _snapshot(postgres.conninfo(), schema)
        predicate = FieldPredicate.parse('rule_version == "v7"')
        journal = read_journal(kafka_bootstrap, settings.topics.journal, expect=ORDERS * 5 + len(SKUS))
        assert len(journal) == ORDERS * 5 + len(SKUS), sorted(e.action_type for e in journal)
        request_id = send_request(settings, Selector(SelectorKind.FIELD_PREDICATE, predicate=predicate))
        waiting = status.wait(request_id, {"AWAITING_APPROVAL", "REJECTED", "EXECUTING"}, 120)
        assert waiting.state.value == "AWAITING_APPROVAL", waiting.reason
        send_control(settings, request_id, ControlCommand.APPROVE)
        final = status.wait(request_id, {"COMPLETED", "PARTIALLY_ROLLED_BACK", "FAILED", "ABORTED"}, 300)
        after = _snapshot(postgres.conninfo(), schema)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        status.close()
        shop.close()

    assert final.state.value == "COMPLETED", final.reason
    assert final.verification == []
    bad = {n for n in range(1, ORDERS + 1) if is_bad(n)}
    with psycopg.connect(postgres.conninfo(oracle_db), options="-c search_path=shop") as oracle:
        oracle_now = {t: rows(oracle, t) for t in ("orders", "stock", "payments", "emails")}
    assert after["orders"] == oracle_now["orders"]
    assert after["stock"] == oracle_now["stock"]
    captured = {r for r in after["payments"] if r[3] == "CAPTURED"}
    assert captured == oracle_now["payments"]
    assert {r[1] for r in after["payments"] - captured} == bad and all(
        r[3] == "REFUNDED" for r in after["payments"] - captured
    )
    assert gateway.net() == oracle_gateway.net()
    extra_emails = after["emails"] - oracle_now["emails"]
    assert oracle_now["emails"] <= after["emails"] and {r[1] for r in extra_emails} == bad
    plan = final.plan
    assert plan is not None
    irreversible_types = {s.action_type for s in plan.steps if s.action_id in plan.irreversible}
    assert irreversible_types == {"EmailSent", "PaymentRequested"}
    assert len([s for s in plan.steps if s.action_type == "EmailSent"]) == len(bad)
    # no row of an unaffected order changed at any time
    good = lambda r: r[1] not in bad  # noqa: E731
    assert {r for r in before["orders"] if r[0] not in bad} == {r for r in after["orders"] if r[0] not in bad}
    assert {r for r in before["payments"] if good(r)} == {r for r in after["payments"] if good(r)}
    assert {r for r in before["emails"] if good(r)} == {r for r in after["emails"] if good(r)}


def _snapshot(conninfo: str, schema: str) -> dict[str, set[tuple[Any, ...]]]:
    with psycopg.connect(conninfo, options=f"-c search_path={schema}") as conn:
        return {t: rows(conn, t) for t in ("orders", "stock", "payments", "emails")}


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)
