"""The example shop's services on real PostgreSQL, events handed over directly (no Kafka): each step
writes its rows and outbox events in one transaction, and rewind's commands are applied once."""

from __future__ import annotations

from typing import Any

import psycopg

from examples.shop.schema import schema_sql
from examples.shop.services import Event, FakeGateway, FakeMailer, RuleInForce, Shop
from processor.devenv.postgres import Dsn


def outbox(conn: psycopg.Connection[Any], schema: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"SELECT id::text, type, payload, correlation_id, causation_id, traceparent, phase, intent_id "
        f"FROM {schema}.outbox ORDER BY tx_id, type"
    ).fetchall()
    names = ("id", "type", "payload", "correlation_id", "causation_id", "traceparent", "phase", "intent_id")
    return [dict(zip(names, r, strict=True)) for r in rows]


def as_event(row: dict[str, Any]) -> Event:
    return Event(row["id"], row["type"], row["payload"], row["correlation_id"], row["traceparent"])


def test_an_order_flows_through_the_services_and_rewinds_commands_apply_once(
    postgres: Dsn, unique: str
) -> None:
    schema = f"shop{unique}"
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        admin.execute(schema_sql(schema).encode())
    gateway, mailer = FakeGateway(), FakeMailer()
    shop = Shop(postgres.conninfo(), schema, gateway, mailer, rule=RuleInForce("v7"))
    try:
        shop.stock("sku-1", 100)
        shop.request_order(7, "c7", "sku-1", 2)
        seen: set[str] = set()
        for _ in range(5):  # deliver each new event to the services, as the outbox topics would
            for row in outbox(shop.conn, schema):
                if row["id"] not in seen:
                    seen.add(row["id"])
                    shop.handle(as_event(row))
        events = outbox(shop.conn, schema)
        types = [e["type"] for e in events]
        assert sorted(types) == sorted(["OrderRequested", "OrderPriced", "StockReserved", "PaymentRequested",
                                        "PaymentCaptured", "EmailSent", "RevenueCounted"])  # fmt: skip
        by_type = {e["type"]: e for e in events}
        assert {e["correlation_id"] for e in events} == {"order-7"}
        assert by_type["OrderPriced"]["causation_id"] == by_type["OrderRequested"]["id"]
        assert by_type["OrderPriced"]["payload"]["price_cents"] == 1000  # v7: half of 2 x 1000
        assert by_type["RevenueCounted"]["causation_id"] == by_type["OrderPriced"]["id"]  # two consumers
        assert by_type["StockReserved"]["causation_id"] == by_type["OrderPriced"]["id"]
        assert by_type["PaymentCaptured"]["causation_id"] == by_type["StockReserved"]["id"]
        assert by_type["EmailSent"]["causation_id"] == by_type["PaymentCaptured"]["id"]
        traces = {e["traceparent"].split("-")[1] for e in events}
        assert len(traces) == 1  # one trace through every service
        intent, outcome = by_type["PaymentRequested"], by_type["PaymentCaptured"]
        assert (intent["phase"], outcome["phase"]) == ("intent", "outcome") and intent[
            "intent_id"
        ] == outcome["intent_id"]
        [payment_id] = gateway.captured
        assert (
            payment_id.startswith("pay-7-") and gateway.captured[payment_id] == 1000 and len(mailer.sent) == 1
        )
        assert shop.conn.execute(f"SELECT cents, orders FROM {schema}.revenue").fetchone() == (1000, 1)
        assert shop.conn.execute(f"SELECT available, reserved FROM {schema}.stock").fetchone() == (98, 2)

        # rewind's commands (JSON envelopes' payloads), each twice: the second delivery changes nothing
        refund = Event(
            "k-refund", "RefundPayment", {"payment_id": payment_id, "amount_cents": 1000}, "order-7"
        )
        release = Event("k-release", "ReleaseStock", {"sku": "sku-1", "qty": 2, "order_id": 7}, "order-7")
        restore = Event("k-restore", "RestoreRow", {"rows": [{"table": f"{schema}.orders", "key": {"id": 7},
                        "op": "DELETE", "set": None, "image": None}]}, "order-7")  # fmt: skip
        for command in (refund, release, restore):
            assert shop.handle(command) is True
            assert shop.handle(command) is False
        assert gateway.net() == {}
        assert shop.conn.execute(f"SELECT available, reserved FROM {schema}.stock").fetchone() == (100, 0)
        assert shop.conn.execute(f"SELECT count(*) FROM {schema}.orders").fetchone() == (0,)
        assert shop.conn.execute(f"SELECT status FROM {schema}.payments").fetchone() == ("REFUNDED",)
        applied = {
            e["causation_id"]: e["type"]
            for e in outbox(shop.conn, schema)
            if e["causation_id"] in ("k-refund", "k-release", "k-restore")
        }
        assert applied == {
            "k-refund": "PaymentRefunded",
            "k-release": "StockReleased",
            "k-restore": "RowsRestored",
        }

        upsert = Event("k-up", "RestoreRow", {"rows": [{"table": f"{schema}.orders", "key": {"id": 7}, "op": "UPSERT",
                       "set": {"price_cents": 2000, "rule_version": "v6"},
                       "image": {"id": 7, "customer": "c7", "sku": "sku-1", "qty": 2, "price_cents": 1000,
                                 "rule_version": "v7", "status": "PRICED"}}]})  # fmt: skip
        shop.handle(upsert)
        assert shop.conn.execute(f"SELECT price_cents, rule_version FROM {schema}.orders").fetchone() == (
            2000,
            "v6",
        )
    finally:
        shop.close()
