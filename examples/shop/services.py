"""The shop's services: checkout, pricing, inventory, payments, notifications and reporting, on PostgreSQL.

Each handler runs one database transaction that writes its business rows and its outbox events
together (Debezium's outbox router publishes them), so what a service did and why travel as one
action. Correlation id, causation id and ``traceparent`` flow from every event into the next. The
services also apply the commands rewind emits (restore rows, release stock, refund payments), each
exactly once per idempotency key, and name the command's event as the cause of what they did.

    checkout ──OrderRequested──▶ pricing ──OrderPriced──▶ inventory ──StockReserved──▶ payments ──▶ ...
    (the customer's               (orders row,       │        (stock row)                 (intent, gateway,
     request)                      rule in force)    │                                      payments row)
                                                     └──▶ reporting (revenue per SKU: a read model)
    ... ──PaymentCaptured──▶ notifications (email: cannot be unsent)

Each consumer records what it handled under its own name, so one event reaches several consumers once
each, and a re-driven event (a new id) is handled again by the one consumer it is sent to.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql

BASE_PRICE_CENTS = 1_000
DRILL_TAG = "drill-"  # the correlation ids of rewind's drill canaries (REWIND_DRILL__* settings)


def price_cents(rule_version: str, qty: int) -> int:
    """v6: list price. v7 brought a bulk discount (10% from 3 items) and a bug: half price for all.
    v8 is v7 fixed."""
    list_price = BASE_PRICE_CENTS * qty
    if rule_version == "v6":
        return list_price
    if rule_version == "v7":
        return list_price // 2
    if rule_version == "v8":
        return list_price * 9 // 10 if qty >= 3 else list_price
    raise ValueError(f"no pricing rule {rule_version!r}")


@dataclass
class RuleInForce:
    """The pricing rule deployed now (a deploy flips it; pricing reads it for every order)."""

    version: str = "v6"


@dataclass(frozen=True)
class Event:
    """What a service consumes: an outbox event, or a rewind command (``event_id`` = idempotency key)."""

    event_id: str
    event_type: str
    payload: dict[str, Any]
    correlation_id: str | None = None
    traceparent: str | None = None


class Gateway(Protocol):
    def capture(self, payment_id: str, amount_cents: int) -> None: ...
    def refund(self, payment_id: str, amount_cents: int) -> None: ...


class Mailer(Protocol):
    def send(self, recipient: str, body: str) -> None: ...


@dataclass
class FakeGateway:
    """The outside world's payment provider: it keeps its own ledger, which the tests read."""

    captured: dict[str, int] = field(default_factory=dict)
    refunded: dict[str, int] = field(default_factory=dict)

    def capture(self, payment_id: str, amount_cents: int) -> None:
        self.captured[payment_id] = amount_cents

    def refund(self, payment_id: str, amount_cents: int) -> None:
        self.refunded[payment_id] = amount_cents

    def net(self) -> dict[str, int]:
        """Money kept, per order (payment ids are 'pay-<order>-<attempt>')."""
        by_order: dict[str, int] = {}
        for p, amount in self.captured.items():
            order = p.rsplit("-", 1)[0]
            by_order[order] = by_order.get(order, 0) + amount - self.refunded.get(p, 0)
        return {o: n for o, n in by_order.items() if n}


@dataclass
class FakeMailer:
    sent: list[tuple[str, str]] = field(default_factory=list)

    def send(self, recipient: str, body: str) -> None:
        self.sent.append((recipient, body))


def child_traceparent(parent: str | None) -> str:
    """A new span in the parent's trace, or a new trace."""
    trace = parent.split("-")[1] if parent and parent.count("-") == 3 else secrets.token_hex(16)
    return f"00-{trace}-{secrets.token_hex(8)}-01"


class Shop:
    def __init__(
        self,
        conninfo: str,
        schema: str,
        gateway: Gateway,
        mailer: Mailer,
        *,
        payload_metadata: bool = False,
        rule: RuleInForce | None = None,
    ) -> None:
        """``payload_metadata``: also write the event's metadata (correlation, causation, trace, phase,
        intent, transaction id) into its payload, for an outbox router that places no extra columns."""
        # Each world is one schema; the search path makes every statement below refer to it.
        self.conn = psycopg.connect(conninfo, autocommit=False, options=f"-c search_path={schema}")
        self.gateway = gateway
        self.mailer = mailer
        self.payload_metadata = payload_metadata
        self.rule = rule or RuleInForce()
        self.refuse: set[str] = set()  # event types this shop never applies (a broken consumer)

    def close(self) -> None:
        self.conn.close()

    # -- the workload ---------------------------------------------------------------------------

    def stock(self, sku: str, available: int) -> None:
        with self.conn.transaction():
            self.conn.execute("INSERT INTO stock VALUES (%s, %s, 0)", (sku, available))

    def request_order(self, order_id: int, customer: str, sku: str, qty: int) -> str:
        """Checkout: the customer asks for an order; returns the event id (pricing takes it from there)."""
        payload = {"order_id": order_id, "customer": customer, "sku": sku, "qty": qty}
        with self.conn.transaction():
            return self._emit(
                "checkout", order_id, "OrderRequested", payload, f"order-{order_id}", None, None
            )

    # -- consuming events and commands --------------------------------------------------------

    def checkout(self, e: Event) -> bool:
        """Checkout's entry point on Kafka (a CheckoutRequested event): the order is requested as
        ``request_order`` would, under the event's correlation id (a drill's canary keeps its own)."""
        p = e.payload
        payload = {"order_id": p["order_id"], "customer": p["customer"], "sku": p["sku"], "qty": p["qty"]}
        with self.conn.transaction():
            if not self._first_time(e, "checkout"):
                return False
            self._emit("checkout", p["order_id"], "OrderRequested", payload,
                       e.correlation_id or f"order-{p['order_id']}", e.event_id, e.traceparent)  # fmt: skip
        return True

    def handle(self, event: Event) -> bool:
        """Apply one event or command in every consumer it is for; False when none took it (not for this
        shop, or each had handled it already)."""
        consumers: dict[str, tuple[Callable[[Event], bool], ...]] = {
            "CheckoutRequested": (self.checkout,),
            "OrderRequested": (self._price_order,),
            "OrderPriced": (self._reserve_stock, self._count_revenue),
            "StockReserved": (self._capture_payment,),
            "PaymentCaptured": (self._send_email,),
            "RestoreRow": (self._restore_rows,),
            "ReleaseStock": (self._release_stock,),
            "RefundPayment": (self._refund_payment,),
        }
        if event.event_type in self.refuse:
            return False
        results = [handler(event) for handler in consumers.get(event.event_type, ())]
        return any(results)

    def _price_order(self, e: Event) -> bool:
        """Pricing: price the requested order with the rule in force and record it."""
        p = e.payload
        rule = self.rule.version
        price = price_cents(rule, p["qty"])
        payload = {"order_id": p["order_id"], "customer": p["customer"], "sku": p["sku"], "qty": p["qty"],
                   "price_cents": price, "rule_version": rule}  # fmt: skip
        with self.conn.transaction():
            if not self._first_time(e, "pricing"):
                return False
            self.conn.execute(
                "INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, 'PRICED')",
                (p["order_id"], p["customer"], p["sku"], p["qty"], price, rule),
            )
            self._emit("order", p["order_id"], "OrderPriced", payload, e.correlation_id, e.event_id,
                       e.traceparent)  # fmt: skip
        return True

    def _count_revenue(self, e: Event) -> bool:
        """Reporting: revenue per SKU, a read model kept from the priced orders."""
        p = e.payload
        with self.conn.transaction():
            if not self._first_time(e, "reporting"):
                return False
            self._add_revenue(p["sku"], p["price_cents"])
            self._emit("revenue", p["sku"], "RevenueCounted", {"sku": p["sku"], "cents": p["price_cents"]},
                       e.correlation_id, e.event_id, e.traceparent)  # fmt: skip
        return True

    def _add_revenue(self, sku: str, cents: int) -> None:
        self.conn.execute(
            "INSERT INTO revenue VALUES (%s, %s, 1) ON CONFLICT (sku) DO UPDATE "
            "SET cents = revenue.cents + EXCLUDED.cents, orders = revenue.orders + 1",
            (sku, cents),
        )

    def rebuild_revenue(self, priced: list[dict[str, Any]]) -> None:
        """Reporting rebuilds its read model from a (replayed) stream of OrderPriced payloads, in one
        transaction: readers see the old model or the new one, never half of it."""
        totals: dict[str, tuple[int, int]] = {}
        for p in priced:
            cents, orders = totals.get(p["sku"], (0, 0))
            totals[p["sku"]] = (cents + p["price_cents"], orders + 1)
        with self.conn.transaction():
            self.conn.execute("DELETE FROM revenue")
            for sku, (cents, orders) in sorted(totals.items()):
                self.conn.execute("INSERT INTO revenue VALUES (%s, %s, %s)", (sku, cents, orders))

    def _reserve_stock(self, e: Event) -> bool:
        p = e.payload
        with self.conn.transaction():
            if not self._first_time(e, "inventory"):
                return False
            self.conn.execute(
                "UPDATE stock SET available = available - %s, reserved = reserved + %s WHERE sku = %s",
                (p["qty"], p["qty"], p["sku"]),
            )
            payload = {
                "order_id": p["order_id"],
                "sku": p["sku"],
                "qty": p["qty"],
                "price_cents": p["price_cents"],
            }
            self._emit(
                "stock", p["sku"], "StockReserved", payload, e.correlation_id, e.event_id, e.traceparent
            )
        return True

    def _capture_payment(self, e: Event) -> bool:
        """An intent before calling the gateway, the outcome after: a crash between them is in doubt."""
        p = e.payload
        payment_id = f"pay-{p['order_id']}-{e.event_id[:8]}"  # an order repaired is paid again
        intent = str(uuid.uuid4())
        trace = child_traceparent(e.traceparent)
        request = {"payment_id": payment_id, "order_id": p["order_id"], "amount_cents": p["price_cents"]}
        with self.conn.transaction():
            if not self._first_time(e, "payments"):
                return False
            self._emit("payment", payment_id, "PaymentRequested", request, e.correlation_id, e.event_id,
                       trace, phase="intent", intent_id=intent)  # fmt: skip
        self.gateway.capture(payment_id, p["price_cents"])
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO payments VALUES (%s, %s, %s, 'CAPTURED')",
                (payment_id, p["order_id"], p["price_cents"]),
            )
            payload = {"payment_id": payment_id, "order_id": p["order_id"], "amount_cents": p["price_cents"]}
            self._emit("payment", payment_id, "PaymentCaptured", payload, e.correlation_id, e.event_id, trace,
                       phase="outcome", intent_id=intent)  # fmt: skip
        return True

    def _send_email(self, e: Event) -> bool:
        p = e.payload
        recipient = f"customer-{p['order_id']}@example.com"
        body = f"Thank you: we charged {p['amount_cents'] / 100:.2f} for order {p['order_id']}"
        with self.conn.transaction():
            if not self._first_time(e, "notifications"):
                return False
            if not (e.correlation_id or "").startswith(DRILL_TAG):  # a drill's canary mails nobody
                self.mailer.send(recipient, body)
            mail_id = f"mail-{p['order_id']}-{e.event_id[:8]}"  # a repaired order is mailed again
            self.conn.execute(
                "INSERT INTO emails VALUES (%s, %s, %s, %s)", (mail_id, p["order_id"], recipient, body)
            )
            payload = {"order_id": p["order_id"], "to": recipient}
            self._emit(
                "email", p["order_id"], "EmailSent", payload, e.correlation_id, e.event_id, e.traceparent
            )
        return True

    # -- rewind's commands: each applied once per idempotency key ------------------------------

    def _first_time(self, e: Event, consumer: str) -> bool:
        """Record that this consumer handled the event (or command) in this transaction: a redelivery
        finds it and does nothing."""
        row = self.conn.execute(
            "INSERT INTO applied_commands VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (f"{consumer}/{e.event_id}", e.event_type),
        ).fetchone()
        return row is not None

    def _restore_rows(self, e: Event) -> bool:
        with self.conn.transaction():
            if not self._first_time(e, "orders"):
                return False
            for row in e.payload["rows"]:
                self._restore_row(row)
            self._emit("restore", e.event_id, "RowsRestored", {"rows": len(e.payload["rows"])},
                       e.correlation_id, e.event_id, e.traceparent)  # fmt: skip
        return True

    def _restore_row(self, row: dict[str, Any]) -> None:
        table = sql.Identifier(row["table"].rpartition(".")[2])
        key: dict[str, Any] = row["key"]
        where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key)
        if row["op"] == "DELETE":
            self.conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(table, where), tuple(key.values()))
            return
        image = {**row["image"], **row["set"]}
        updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in row["set"] or key]
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
            table,
            sql.SQL(", ").join(map(sql.Identifier, image)),
            sql.SQL(", ").join(sql.Placeholder() * len(image)),
            sql.SQL(", ").join(map(sql.Identifier, key)),
            sql.SQL(", ").join(updates),
        )
        self.conn.execute(statement, tuple(image.values()))

    def _release_stock(self, e: Event) -> bool:
        p = e.payload
        with self.conn.transaction():
            if not self._first_time(e, "inventory"):
                return False
            self.conn.execute(
                "UPDATE stock SET available = available + %s, reserved = reserved - %s WHERE sku = %s",
                (p["qty"], p["qty"], p["sku"]),
            )
            self._emit("stock", p["sku"], "StockReleased", p, e.correlation_id, e.event_id, e.traceparent)
        return True

    def _refund_payment(self, e: Event) -> bool:
        p = e.payload
        with self.conn.transaction():
            if not self._first_time(e, "payments"):
                return False
            self.conn.execute("UPDATE payments SET status = 'REFUNDED' WHERE id = %s", (p["payment_id"],))
            self.gateway.refund(p["payment_id"], p["amount_cents"])
            self._emit(
                "payment", p["payment_id"], "PaymentRefunded", p, e.correlation_id, e.event_id, e.traceparent
            )
        return True

    # -- the outbox ----------------------------------------------------------------------------

    def _emit(
        self,
        aggregate: str,
        aggregate_id: object,
        event_type: str,
        payload: dict[str, Any],
        correlation_id: str | None,
        causation_id: str | None,
        parent_trace: str | None,
        *,
        phase: str | None = None,
        intent_id: str | None = None,
    ) -> str:
        event_id = str(uuid.uuid4())
        trace = child_traceparent(parent_trace) if phase is None else parent_trace
        if self.payload_metadata:
            tx_id = self.conn.execute("SELECT txid_current()").fetchone()[0]  # type: ignore[index]
            metadata = {"correlation_id": correlation_id, "causation_id": causation_id, "traceparent": trace,
                        "phase": phase, "intent_id": intent_id, "tx_id": tx_id}  # fmt: skip
            payload = payload | {k: v for k, v in metadata.items() if v is not None}
        self.conn.execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, correlation_id, "
            "causation_id, traceparent, phase, intent_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (event_id, aggregate, str(aggregate_id), event_type, json.dumps(payload), correlation_id,
             causation_id, trace, phase, intent_id),
        )  # fmt: skip
        return event_id
