"""The shop's services on Kafka: events from the outbox topics (Debezium's outbox router) and rewind's
commands (JSON envelopes) in, database transactions out. Offsets are committed after each handled
record: a redelivery after a crash finds its id in ``applied_commands`` and does nothing."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message

from examples.shop.services import Event, Shop

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShopTopics:
    outbox_prefix: str  # Debezium routes each aggregate type to <prefix><aggregatetype>
    commands: tuple[str, ...]  # the catalog's command topics
    redrive: tuple[str, ...] = ()  # the catalog's re-drive targets: events in the outbox's shape
    entry: tuple[str, ...] = ()  # checkout's entry point (CheckoutRequested events, the outbox's shape)

    @property
    def events(self) -> tuple[str, ...]:
        routed = tuple(f"{self.outbox_prefix}{a}" for a in ("checkout", "order", "stock", "payment"))
        return routed + self.redrive + self.entry


def event_from_outbox(msg: Message) -> Event:
    found = msg.headers() or []
    raw: list[tuple[str, Any]] = list(found.items()) if isinstance(found, dict) else list(found)
    headers = {k: v.decode() if isinstance(v, bytes) else str(v or "") for k, v in raw}
    value: Any = json.loads(msg.value() or b"null")
    if isinstance(value, str):  # the router may carry the payload as an escaped JSON string
        value = json.loads(value)
    fallback = value if isinstance(value, dict) else {}  # a router that places no extra columns
    return Event(
        headers["id"], headers["eventType"], value,
        headers.get("correlationId") or fallback.get("correlation_id"),
        headers.get("traceparent") or fallback.get("traceparent"),
    )  # fmt: skip


def event_from_command(msg: Message) -> Event:
    envelope = json.loads(msg.value() or b"{}")
    payload = json.loads(envelope["payload_json"])
    return Event(envelope["event_id"], envelope["event_type"], payload, envelope.get("correlation_id"),
                 envelope.get("traceparent"))  # fmt: skip


class ShopRunner:
    def __init__(
        self, bootstrap: str, group_id: str, shop: Shop, topics: ShopTopics,
        conf: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """``conf``: further client properties (how the services' principal connects)."""
        self.shop = shop
        self.topics = topics
        self.handled = 0
        self.consumer = Consumer({
            **(conf or {}),
            "bootstrap.servers": bootstrap, "group.id": group_id, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 2000,
        })  # fmt: skip

    def run(self, stop: threading.Event) -> None:
        self.consumer.subscribe([*self.topics.events, *self.topics.commands])
        try:
            while not stop.is_set():
                for msg in self.consumer.consume(100, timeout=0.2):
                    if msg.error() is not None:
                        continue
                    is_command = msg.topic() in self.topics.commands
                    event = event_from_command(msg) if is_command else event_from_outbox(msg)
                    if self.shop.handle(event):
                        self.handled += 1
                    self.consumer.commit(message=msg, asynchronous=False)
        finally:
            self.consumer.close()
