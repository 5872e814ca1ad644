"""Prove a cluster does what rewind relies on: a committed transaction is seen, an aborted one never.

It writes real journal-schema records to a scratch topic (never to the journal itself).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from processor.config import Settings
from processor.errors import KafkaError
from processor.kafka import clients
from processor.schemas import SchemaName, decode, encode


@dataclass(frozen=True)
class SelfCheck:
    topic: str
    committed: list[str]
    aborted: list[str]
    seen: list[str]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.seen == self.committed


def probe_entry(action_id: str, now_ms: int) -> dict[str, object]:
    return {
        "action_id": action_id,
        "action_type": "rewind.selfcheck",
        "service": "kafka-rewind",
        "changes": [],
        "journal_ts_ms": now_ms,
        "correlation_id": "selfcheck",
        "decision": {"purpose": json.dumps("transactional round trip")},
    }


def transactional_round_trip(
    settings: Settings, bootstrap: str, topic: str, *, count: int = 3, timeout_s: float = 60.0
) -> SelfCheck:
    started = time.monotonic()
    clients.ensure_topics(clients.admin(settings, bootstrap), [topic], partitions=1, replication_factor=1)
    run = uuid.uuid4().hex[:8]
    committed = [f"committed-{run}-{i}" for i in range(count)]
    aborted = [f"aborted-{run}-{i}" for i in range(count)]
    producer = clients.producer(
        settings, bootstrap, transactional_id=f"{settings.transactional_id_prefix}-selfcheck-{run}"
    )
    try:
        producer.init_transactions(timeout_s)
        for ids, commit in ((committed, True), (aborted, False)):
            producer.begin_transaction()
            for action_id in ids:
                value = encode(probe_entry(action_id, int(time.time() * 1000)), SchemaName.JOURNAL_ENTRY)
                producer.produce(topic, key=b"selfcheck", value=value)
            if commit:
                producer.commit_transaction(timeout_s)
            else:
                producer.flush(timeout_s)  # the records reach the log, then are aborted
                producer.abort_transaction(timeout_s)
    except KafkaException as exc:
        raise KafkaError(f"transactional produce to {topic} failed: {exc}", retryable=True) from exc
    seen = _read_committed(settings, bootstrap, topic, {*committed, *aborted}, len(committed), timeout_s)
    return SelfCheck(topic, committed, aborted, seen, time.monotonic() - started)


def _read_committed(
    settings: Settings, bootstrap: str, topic: str, ours: set[str], expected: int, timeout_s: float
) -> list[str]:
    consumer = clients.consumer(settings, bootstrap, f"selfcheck-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        # Read until the partition's end as a read_committed consumer sees it, past our records.
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if len(seen) >= expected and _at_end(consumer, topic):
                    break
                continue
            if msg.error():
                raise KafkaError(f"consume from {topic} failed: {msg.error()}", retryable=True)
            action_id = decode(msg.value() or b"", SchemaName.JOURNAL_ENTRY)["action_id"]
            if action_id in ours:
                seen.append(action_id)
    finally:
        consumer.close()
    return seen


def _at_end(consumer: Consumer, topic: str) -> bool:
    """True once the consumer stands at the high watermark: past every record and marker."""
    partition = TopicPartition(topic, 0)
    high = consumer.get_watermark_offsets(partition, timeout=5)[1]
    return bool(consumer.position([partition])[0].offset >= high)
