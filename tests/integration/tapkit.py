"""Shared parts of the tap's broker tests: topic names, a Debezium-shaped workload, journal reading."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from processor.config import Settings, TapSettings, TopicSettings
from processor.journal.model import JournalEntry
from processor.journal.serde import deserialize
from processor.kafka import clients
from processor.kafka.messages import SourceRecord
from tests.unit.tap.builders import OUTBOX_TOPIC, TX_TOPIC, begin, change, end, outbox


@dataclass(frozen=True)
class TapTopics:
    unique: str

    @property
    def map(self) -> dict[str, str]:
        """Builder topic -> this test's own topic."""
        u = self.unique
        return {
            "shop.public.orders": f"{u}.shop.public.orders",
            "shop.public.notes": f"{u}.shop.public.notes",
            TX_TOPIC: f"{u}.shop.transaction",
            OUTBOX_TOPIC: f"{u}.outbox.event.order",
        }

    @property
    def journal(self) -> str:
        return f"{self.unique}.journal"

    @property
    def deadletter(self) -> str:
        return f"{self.unique}.deadletter"

    def settings(self, bootstrap: str, **tap: object) -> Settings:
        m = self.map
        return Settings(
            bootstrap_servers=bootstrap,
            group_id=f"tap-{self.unique}",
            transactional_id_prefix=f"tx-{self.unique}",
            metrics_port=0,
            topics=TopicSettings(
                journal=self.journal, deadletter=self.deadletter,
                requests=f"{self.unique}.requests", control=f"{self.unique}.control", status=f"{self.unique}.status",
                cdc=[m["shop.public.orders"], m["shop.public.notes"]], tx_metadata=[m[TX_TOPIC]],
                outbox=[m[OUTBOX_TOPIC]], partitions=3,
            ),
            tap=TapSettings(outbox=TapSettings().outbox.model_copy(update={"topic_prefix": f"{self.unique}.outbox.event."}), **tap),
        )  # fmt: skip

    def create(self, settings: Settings) -> None:
        clients.ensure_topics(
            clients.admin(settings, settings.bootstrap_servers or ""),
            [*self.map.values(), *settings.topics.own()], partitions=3, replication_factor=1,
        )  # fmt: skip


def transaction(tx: int, *, with_note: bool) -> list[SourceRecord]:
    """One service transaction: an order row, maybe a note row, an outbox event, BEGIN/END."""
    order = tx
    records = [
        begin(tx, offset=0),
        change(
            "orders", "c", {"id": order}, after={"id": order, "total_cents": tx % 997}, tx=tx, lsn=tx * 10
        ),
        outbox(
            f"evt-{tx}",
            "OrderPlaced",
            {"order_id": order},
            tx=tx,
            aggregate_id=str(order),
            correlation=f"wf-{tx}",
        ),
    ]
    counts = {"public.orders": 1, "public.outbox": 1}
    if with_note:
        records.append(
            change("notes", "c", {"id": order}, after={"id": order, "body": "n"}, tx=tx, lsn=tx * 10 + 1)
        )
        counts["public.notes"] = 1
    records.append(end(tx, counts, offset=1))
    return records


def interleave(transactions: list[list[SourceRecord]], seed: int) -> list[SourceRecord]:
    """Per topic in commit order (as Debezium writes), the topics themselves interleaved at random."""
    by_topic: dict[str, list[SourceRecord]] = {}
    for tx in transactions:
        for r in tx:
            by_topic.setdefault(r.topic, []).append(r)
    rnd, queues, out = random.Random(seed), [q for q in by_topic.values()], []
    while queues:
        q = rnd.choice(queues)
        out.append(q.pop(0))
        queues = [q for q in queues if q]
    return out


def produce(
    bootstrap: str, topics: TapTopics, records: list[SourceRecord], conf: dict[str, Any] | None = None
) -> None:
    """The records on their source topics (``conf``: as the connector's principal, on a secured broker)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, **(conf or {}), "linger.ms": 5, "enable.idempotence": True}
    )
    for r in records:
        partition = hash(r.key) % 3 if r.topic != TX_TOPIC else 0
        while True:
            try:
                producer.produce(
                    topics.map[r.topic],
                    key=r.key,
                    value=r.value,
                    headers=list(r.headers),
                    partition=abs(partition),
                )
                break
            except BufferError:  # the client's queue is full: let deliveries drain it
                producer.poll(0.1)
    producer.flush(30)


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    partitions: int = 3,
    expect: int = 0,
    timeout_s: float = 120,
    read_committed: bool = True,
    conf: dict[str, Any] | None = None,
) -> list[Message]:
    """Every record of the topic from the start (in partition order within each partition), waiting
    until at least ``expect`` arrived and the topic has been quiet for 3 s, or the time is up."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, **(conf or {}), "group.id": f"reader-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted", "enable.auto.commit": False,
    })  # fmt: skip
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: list[Message] = []
    deadline = quiet_since = time.monotonic()
    deadline += timeout_s
    while time.monotonic() < deadline:
        batch = consumer.consume(500, timeout=0.5)
        for msg in batch:
            assert msg.error() is None, msg.error()
        records += batch
        if batch:
            quiet_since = time.monotonic()
        elif len(records) >= expect and time.monotonic() - quiet_since > 3:
            break
    consumer.close()
    return records


def read_journal(
    bootstrap: str, topic: str, expect: int, timeout_s: float = 120, conf: dict[str, Any] | None = None
) -> list[JournalEntry]:
    """Every committed journal entry, waiting until at least ``expect`` arrived (or the time is up)."""
    return [
        deserialize(m.value() or b"")
        for m in read_topic(bootstrap, topic, expect=expect, timeout_s=timeout_s, conf=conf)
    ]


def headers_of(msg: Message) -> dict[str, bytes]:
    """A consumed record's headers by name (the last of a repeated name), as bytes."""
    out: dict[str, bytes] = {}
    raw = msg.headers() or []
    for name, value in raw.items() if isinstance(raw, dict) else raw:
        out[name] = value.encode() if isinstance(value, str) else value or b""
    return out
