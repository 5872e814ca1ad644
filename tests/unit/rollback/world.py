"""A small shop's journal for rollback tests: orders priced by a rule, stock reserved, payments
captured, emails sent, each action shaped as the tap journals it (row changes + an outbox event)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.catalog.catalog import Catalog, load_catalog
from processor.journal.model import JournalEntry, Op, OutboxEvent, RowChange, SourcePosition, TraceContext

CATALOG = """
actions:
  OrderPriced:
    mechanism: restore
    topic: orders.commands
    fields: [price, rule_version]
  StockReserved:
    mechanism: compensate
    topic: inventory.commands
    event_type: ReleaseStock
    key: "{payload.sku}"
    payload: {sku: "{payload.sku}", quantity: "{payload.quantity}", order_id: "{payload.order_id}"}
  PaymentCaptured:
    mechanism: compensate
    topic: payments.commands
    event_type: RefundPayment
    key: "{payload.payment_id}"
    payload: {payment_id: "{payload.payment_id}", amount: "{payload.amount}"}
  EmailSent:
    mechanism: irreversible
    topic: ops.notifications
    text: "email to {payload.to} was sent"
  StockAdjusted:
    mechanism: restore
    topic: inventory.commands
"""


def catalog(tmp_path: Path, text: str = CATALOG) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return load_catalog(path)


@dataclass
class World:
    entries: list[JournalEntry] = field(default_factory=list)
    clock: int = 1_000

    def act(
        self,
        action_id: str,
        action_type: str,
        *,
        wf: str,
        causes: tuple[str, ...] = (),
        payload: dict[str, Any] | None = None,
        rows: tuple[tuple[str, dict[str, Any], Op, dict[str, Any] | None, dict[str, Any] | None], ...] = (),
        service: str = "shop",
        before_complete: bool = True,
        trace_id: str | None = None,
    ) -> JournalEntry:
        self.clock += 10
        pos = SourcePosition(
            "t", 0, len(self.entries), lsn=self.clock, tx_id=f"tx-{action_id}", ts_ms=self.clock
        )
        changes = tuple(
            RowChange(
                "shop",
                "public",
                table,
                key,
                op,
                before,
                after,
                tuple(sorted(k for k in (after or {}) if (before or {}).get(k) != (after or {}).get(k))),
                before_complete,
                pos,
            )
            for table, key, op, before, after in rows
        )
        event = (
            OutboxEvent(action_id, action_type, "Agg", wf, payload, {}, pos) if payload is not None else None
        )
        trace = TraceContext.parse(f"00-{trace_id}-{self.clock:016x}-01") if trace_id else None
        entry = JournalEntry(
            action_id=action_id, action_type=action_type, changes=changes, journal_ts_ms=self.clock,
            service=service, aggregate_id=wf, event=event, commit_ts_ms=self.clock, tx_id=pos.tx_id,
            causation_ids=causes, correlation_id=wf, trace=trace,
            decision={"rule_version": payload["rule_version"]} if payload and "rule_version" in payload else {},
            entities=tuple(dict.fromkeys(c.entity for c in changes)),
        )  # fmt: skip
        self.entries.append(entry)
        return entry

    def order(
        self, n: int, *, rule: str, price: int, trace_id: str | None = None, requested: bool = False
    ) -> list[JournalEntry]:
        """One order's workflow: priced -> stock reserved -> payment captured -> email sent (with
        ``requested``, a checkout's OrderRequested event comes first and causes the pricing)."""
        wf = f"order-{n}"
        old = {"id": n, "price": 100, "rule_version": "v6", "status": "new"}
        causes: tuple[str, ...] = ()
        if requested:
            causes = (self.act(f"req-{n}", "OrderRequested", wf=wf, service="checkout", trace_id=trace_id,
                               payload={"order_id": n, "sku": "sku-1", "quantity": 2}).action_id,)  # fmt: skip
        priced = self.act(
            f"price-{n}", "OrderPriced", wf=wf, service="orders", trace_id=trace_id, causes=causes,
            payload={"order_id": n, "price": price, "rule_version": rule},
            rows=(("orders", {"id": n}, Op.UPDATE, old, {**old, "price": price, "rule_version": rule}),),
        )  # fmt: skip
        reserved = self.act(
            f"reserve-{n}", "StockReserved", wf=wf, causes=(priced.action_id,), service="inventory",
            payload={"order_id": n, "sku": "sku-1", "quantity": 2},
            rows=(("stock", {"sku": "sku-1"}, Op.UPDATE, {"sku": "sku-1", "available": 50 - n},
                   {"sku": "sku-1", "available": 48 - n}),),
        )  # fmt: skip
        paid = self.act(
            f"pay-{n}",
            "PaymentCaptured",
            wf=wf,
            causes=(reserved.action_id,),
            service="payments",
            payload={"order_id": n, "payment_id": f"p-{n}", "amount": price},
        )
        mailed = self.act(
            f"mail-{n}",
            "EmailSent",
            wf=wf,
            causes=(paid.action_id,),
            service="notifications",
            payload={"order_id": n, "to": f"c{n}@example.com"},
        )
        return [priced, reserved, paid, mailed]

    def row(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The row as the latest action that changed it left it."""
        for entry in reversed(self.entries):
            for c in entry.changes:
                if c.table == table and c.key == key:
                    return None if c.op is Op.DELETE else c.after
        return None

    def released(self, sku: str, quantity: int) -> tuple[Any, ...]:
        """What inventory's ReleaseStock does: the stock row's available goes up by the quantity."""
        now = self.row("stock", {"sku": sku})
        assert now is not None
        return (("stock", {"sku": sku}, Op.UPDATE, now, {**now, "available": now["available"] + quantity}),)

    def confirm(self, event_id: str, action_id: str, *, wf: str, rows: tuple[Any, ...] = ()) -> JournalEntry:
        """A service applied rewind's command: its action names the command's event as the cause."""
        return self.act(action_id, "Applied", wf=wf, causes=(event_id,), payload={"done": True}, rows=rows)
