"""A record too large to write to the dead-letter topic whole, on a real broker: it is written as a
reference (first bytes, size, digest, source position) and the tap goes on with the next records."""

from __future__ import annotations

import hashlib
import json
import threading

from confluent_kafka import Producer

from processor.kafka import clients
from tests.integration.tapkit import TapTopics, headers_of, read_journal, read_topic, transaction
from tests.integration.test_tap import run_tap_until

BIG = 2_500_000  # past the producer's default message.max.bytes (1,000,000) and the topic's default


def test_an_oversized_record_becomes_a_reference_and_nothing_else_stops(
    kafka_bootstrap: str, unique: str
) -> None:
    topics = TapTopics(unique)
    settings = topics.settings(kafka_bootstrap)
    orders = topics.map["shop.public.orders"]
    big_topics = {orders: {"max.message.bytes": str(4 * BIG)}}
    clients.ensure_topics(
        clients.admin(settings, kafka_bootstrap), [*topics.map.values(), *settings.topics.own()],
        partitions=3, replication_factor=1, configs=big_topics,
    )  # fmt: skip
    huge = json.dumps(
        {"op": "c", "after": {"id": 1, "blob": "x" * BIG}, "source": {"table": "orders", "lsn": 1}}
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 4 * BIG})
    producer.produce(orders, key=b'{"id":1}', value=huge.encode(), partition=0, headers=[("trace", b"t")])
    for r in transaction(7, with_note=False):  # the work after it must still be journaled
        producer.produce(topics.map[r.topic], key=r.key, value=r.value, headers=list(r.headers), partition=0)
    producer.flush(30)

    done = threading.Event()
    thread = run_tap_until(settings, done)
    entries = read_journal(kafka_bootstrap, topics.journal, expect=1)
    [dead] = read_topic(kafka_bootstrap, topics.deadletter, expect=1)
    done.set()
    thread.join(30)

    assert [e.action_id for e in entries] == ["evt-7"]
    headers = headers_of(dead)
    assert headers["rewind.dlq.reason"] == b"oversized"
    assert headers["rewind.dlq.source.topic"] == orders.encode()
    source = {m.offset(): m.value() for m in read_topic(kafka_bootstrap, orders, expect=3, timeout_s=30)}
    assert source[int(headers["rewind.dlq.source.offset"])] == huge.encode()  # the reference finds it
    assert int(headers["rewind.dlq.truncated"]) > BIG
    assert headers["rewind.dlq.value.sha256"] == hashlib.sha256(huge.encode()).hexdigest().encode()
    assert dead.value() == huge.encode()[:4096] and dead.key() == b'{"id":1}'
    assert "trace" not in headers  # the original headers are dropped with the value
