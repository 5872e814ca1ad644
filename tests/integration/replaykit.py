"""Shared parts of the filtered replay's broker tests: a source topic of known records, a journal dump
whose actions point at some of them (the scope), and reading a target back by origin."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from processor.config import Settings
from processor.journal.model import JournalEntry, OutboxEvent, SourcePosition
from processor.journal.serde import to_json_view
from processor.kafka import clients
from processor.kafka.messages import header_pairs
from processor.replay.scope import HEADER_REPLAY_OF, Origin

PARTITIONS = 3


@dataclass(frozen=True)
class Sourced:
    """One source record as written: where it landed and what it holds."""

    origin: Origin
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    bad: bool


def is_bad(n: int) -> bool:
    return n % 7 == 3


def fill_source(bootstrap: str, settings: Settings, topic: str, count: int) -> list[Sourced]:
    """``count`` records over the partitions, every 7th a bad one; returns them with their positions."""
    clients.ensure_topics(clients.admin(settings, bootstrap), [topic], partitions=PARTITIONS,
                          replication_factor=1)  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    written: list[Sourced] = []

    def delivered(err: object, msg: object) -> None:
        assert err is None, err
        n = int((msg.key() or b"k-0").split(b"-")[1])  # type: ignore[attr-defined]
        origin = Origin(topic, msg.partition(), msg.offset())  # type: ignore[attr-defined]
        written.append(Sourced(origin, msg.key(), msg.value(), _headers(n), is_bad(n)))  # type: ignore[attr-defined]

    for n in range(count):
        value = json.dumps({"n": n, "bad": is_bad(n), "pad": "x" * 200}).encode()
        producer.produce(topic, key=f"k-{n}".encode(), value=value, partition=n % PARTITIONS,
                         headers=list(_headers(n)), on_delivery=delivered)  # fmt: skip
        if n % 5000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return written


def _headers(n: int) -> tuple[tuple[str, bytes], ...]:
    return (("id", f"ev-{n}".encode()), ("n", str(n).encode()))


def scope_entries(records: Iterable[Sourced]) -> list[JournalEntry]:
    """One action per source record; the bad ones match ``bad == true``."""
    entries = []
    for r in records:
        n = int(r.key.split(b"-")[1])
        position = SourcePosition(r.origin.topic, r.origin.partition, r.origin.offset)
        event = OutboxEvent(f"ev-{n}", "Thing", "thing", str(n), {"n": n, "bad": r.bad}, {}, position)
        entry = JournalEntry(f"a-{n}", "Thing", (), 1_700_000_000_000 + n, event=event,
                             commit_ts_ms=1_700_000_000_000 + n, correlation_id=f"c-{n}")  # fmt: skip
        entries.append(entry)
    return entries


def scope_dump(records: list[Sourced], path: Path) -> Path:
    """A journal dump of ``scope_entries``."""
    path.write_text("".join(json.dumps(to_json_view(e)) + "\n" for e in scope_entries(records)))
    return path


@dataclass(frozen=True)
class Copy:
    """One record of the target, its origin header taken apart."""

    partition: int
    origin: Origin
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]  # without the origin


def read_target(bootstrap: str, topic: str, expect: int, timeout_s: float = 120) -> list[Copy]:
    """Every committed record of the target, waiting for ``expect`` of them and then for any more."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    found: list[Copy] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(found) < expect:
            found += [_copy(m) for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
        found += [_copy(m) for m in consumer.consume(1000, timeout=2) if m.error() is None]  # nothing more
        return found
    finally:
        consumer.close()


def _copy(msg: Message) -> Copy:
    headers = header_pairs(msg.headers())
    origins = [Origin.parse((v or b"").decode()) for k, v in headers if k == HEADER_REPLAY_OF]
    assert len(origins) == 1, headers
    rest = tuple((k, v) for k, v in headers if k != HEADER_REPLAY_OF)
    return Copy(msg.partition() or 0, origins[0], msg.key(), msg.value(), rest)
