"""The tap on a real broker: interleaved transactions, redeliveries and bad records into the journal."""

from __future__ import annotations

import threading
from collections import Counter

from processor.catalog.catalog import Catalog
from processor.config import Settings
from processor.kafka.messages import SourceRecord
from processor.tap.engine import tap_core
from processor.tap.runner import TapRunner
from tests.integration.tapkit import TapTopics, interleave, produce, read_journal, read_topic, transaction
from tests.unit.tap.builders import OUTBOX_TOPIC


def run_tap_until(settings: Settings, done: threading.Event) -> threading.Thread:
    runner = TapRunner(
        settings, settings.bootstrap_servers or "", lambda: tap_core(settings, Catalog.empty())
    )
    thread = threading.Thread(target=runner.run, args=(done,), daemon=True)
    thread.start()
    return thread


def test_interleaved_transactions_become_exactly_the_expected_actions(
    kafka_bootstrap: str, unique: str
) -> None:
    topics = TapTopics(unique)
    settings = topics.settings(kafka_bootstrap)
    topics.create(settings)
    txs = [transaction(1000 + i, with_note=i % 3 == 0) for i in range(60)]
    records = interleave(txs, seed=7)
    redelivered = transaction(1005, with_note=False)  # Debezium after a connector restart: same changes again
    bad = SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b"{not json")
    produce(kafka_bootstrap, topics, [*records, bad, *redelivered])

    done = threading.Event()
    thread = run_tap_until(settings, done)
    entries = read_journal(kafka_bootstrap, topics.journal, expect=60)
    done.set()
    thread.join(30)

    ids = Counter(e.action_id for e in entries)
    assert ids == Counter({f"evt-{1000 + i}": 1 for i in range(60)})
    for e in entries:
        tx = int(e.action_id.removeprefix("evt-"))
        tables = sorted(c.table for c in e.changes)
        assert tables == (["notes", "orders"] if (tx - 1000) % 3 == 0 else ["orders"]), e.action_id
        assert e.complete and e.tx_id == str(tx) and e.correlation_id == f"wf-{tx}"

    dead = read_topic(kafka_bootstrap, topics.deadletter, expect=1)
    assert len(dead) == 1
    headers = dict(dead[0].headers() or [])
    assert headers["rewind.dlq.reason"] == b"bad_json"
    assert headers["rewind.dlq.source.topic"] == topics.map["shop.public.orders"].encode()
    assert dead[0].value() == b"{not json"


def test_restart_continues_without_duplicates(kafka_bootstrap: str, unique: str) -> None:
    topics = TapTopics(unique)
    settings = topics.settings(kafka_bootstrap)
    topics.create(settings)
    produce(
        kafka_bootstrap,
        topics,
        interleave([transaction(1, with_note=False), transaction(2, with_note=True)], 1),
    )
    first = threading.Event()
    thread = run_tap_until(settings, first)
    assert len(read_journal(kafka_bootstrap, topics.journal, expect=2)) == 2
    first.set()
    thread.join(30)

    # A redelivery of both, then a new transaction, seen by a fresh tap process-equivalent.
    produce(
        kafka_bootstrap,
        topics,
        [*transaction(1, with_note=False), *transaction(2, with_note=True), *transaction(3, with_note=False)],
    )
    second = threading.Event()
    thread = run_tap_until(settings, second)
    entries = read_journal(kafka_bootstrap, topics.journal, expect=3)
    second.set()
    thread.join(30)
    assert sorted(e.action_id for e in entries) == ["evt-1", "evt-2", "evt-3"]


def test_outbox_without_transaction_metadata_journals_each_event(kafka_bootstrap: str, unique: str) -> None:
    topics = TapTopics(unique)
    settings = topics.settings(kafka_bootstrap)
    settings = settings.model_copy(
        update={"topics": settings.topics.model_copy(update={"tx_metadata": [], "cdc": []})}
    )
    topics.create(settings)
    records = [
        r
        for tx in (transaction(7, with_note=False), transaction(8, with_note=False))
        for r in tx
        if r.topic == OUTBOX_TOPIC
    ]
    produce(kafka_bootstrap, topics, records)
    done = threading.Event()
    thread = run_tap_until(settings, done)
    entries = read_journal(kafka_bootstrap, topics.journal, expect=2)
    done.set()
    thread.join(30)
    assert sorted(e.action_id for e in entries) == ["evt-7", "evt-8"]
    assert all(e.changes == () for e in entries)
