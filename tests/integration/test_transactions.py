"""What rewind builds on: Kafka transactions as a read_committed consumer sees them, on a real broker."""

from __future__ import annotations

import uuid

from confluent_kafka import TopicPartition

from processor.config import Settings
from processor.kafka import clients, loop
from processor.kafka.selfcheck import transactional_round_trip
from processor.schemas import SchemaName, decode, encode
from tests.integration.tapkit import read_topic
from tests.unit import samples


def _setup(settings: Settings, topic: str) -> None:
    clients.ensure_topics(
        clients.admin(settings, settings.bootstrap_servers or ""), [topic], partitions=1, replication_factor=1
    )


def test_committed_transaction_is_read_once_with_its_avro_intact(settings: Settings, topic: str) -> None:
    _setup(settings, topic)
    bootstrap = settings.bootstrap_servers or ""
    entries = []
    for i in range(5):
        entry = samples.journal_entry()
        entry["action_id"] = f"action-{i}"
        entries.append(entry)
    producer = clients.producer(settings, bootstrap, transactional_id=f"t-{uuid.uuid4().hex}")
    producer.init_transactions(30)
    producer.begin_transaction()
    for entry in entries:
        producer.produce(
            topic, key=entry["correlation_id"].encode(), value=encode(entry, SchemaName.JOURNAL_ENTRY)
        )
    producer.commit_transaction(30)

    read = [
        decode(m.value() or b"", SchemaName.JOURNAL_ENTRY)
        for m in read_topic(bootstrap, topic, partitions=1, expect=5)
    ]
    assert [r["action_id"] for r in read] == [f"action-{i}" for i in range(5)]
    assert read[0]["changes"][1]["before_complete"] is False
    assert read[0]["trace"]["trace_id"] == samples.journal_entry()["trace"]["trace_id"]


def test_aborted_transaction_is_never_seen_by_read_committed(settings: Settings, topic: str) -> None:
    _setup(settings, topic)
    bootstrap = settings.bootstrap_servers or ""
    producer = clients.producer(settings, bootstrap, transactional_id=f"t-{uuid.uuid4().hex}")
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"aborted-{i}".encode())
    producer.flush(30)  # the records are in the log before the abort
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed-0")
    producer.commit_transaction(30)

    committed_view = [m.value() for m in read_topic(bootstrap, topic, partitions=1, expect=1)]
    assert committed_view == [b"committed-0"]
    # The aborted records did reach the log: an uncommitted reader sees them, so the check above
    # is about isolation, not about records that were never written.
    raw_view = [m.value() for m in read_topic(bootstrap, topic, partitions=1, expect=4, read_committed=False)]
    assert raw_view == [b"aborted-0", b"aborted-1", b"aborted-2", b"committed-0"]


def test_selfcheck_proves_the_cluster_fit_for_rewind(settings: Settings, unique: str) -> None:
    check = transactional_round_trip(settings, settings.bootstrap_servers or "", f"selfcheck.{unique}")
    assert check.ok
    assert check.seen == check.committed and not set(check.seen) & set(check.aborted)


def test_ensure_topics_creates_once(settings: Settings, unique: str) -> None:
    admin = clients.admin(settings, settings.bootstrap_servers or "")
    names = [f"own.{unique}.a", f"own.{unique}.b"]
    assert sorted(clients.ensure_topics(admin, names, partitions=3, replication_factor=1)) == names
    assert clients.ensure_topics(admin, names, partitions=3, replication_factor=1) == []
    meta = admin.list_topics(timeout=10)
    assert len(meta.topics[names[0]].partitions) == 3


def test_a_reader_assigned_at_the_end_is_at_the_end_before_it_consumes_anything(
    settings: Settings, topic: str
) -> None:
    """A partition the reader consumed nothing from has no position (librdkafka's -1001): only the
    offset it was assigned says it stands at the end (a drill hung here on a quiet journal partition)."""
    bootstrap = settings.bootstrap_servers or ""
    clients.ensure_topics(clients.admin(settings, bootstrap), [topic], partitions=3, replication_factor=1)
    producer = clients.producer(settings, bootstrap, transactional_id=f"t-{uuid.uuid4().hex}")
    producer.init_transactions(30)
    producer.begin_transaction()
    for p in range(3):
        producer.produce(topic, value=b"old", partition=p)
    producer.commit_transaction(30)

    reader = clients.consumer(settings, bootstrap, f"g-{uuid.uuid4().hex}")
    try:
        starts = loop.ends(reader, topic, loop.partitions(reader, topic))
        reader.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        assert reader.consume(10, timeout=1) == []
        assert loop.at_end(reader, starts)
        assert not loop.at_end(reader)  # without its starts, nothing read is not the end

        producer.begin_transaction()
        producer.produce(topic, value=b"new", partition=1)
        producer.commit_transaction(30)
        assert not loop.at_end(reader, starts)
        assert [m.value() for m in reader.consume(10, timeout=5)] == [b"new"]
        assert loop.at_end(reader, starts)  # past the commit marker too
    finally:
        reader.close()
