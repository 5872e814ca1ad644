"""The graph builder keeps the entity index on a real broker: every row version once, restart-safe
(stopped and started again, or with the index file lost while the graph checkpoint stays)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition

from processor.app import Rewind
from processor.config import GraphSettings, Settings, TopicSettings
from processor.graph.entities import EntityIndex, index_path
from processor.graph.history import EntityHistory, HistoryQueryInvalid, Moment
from processor.graph.runner import GraphBuilder
from processor.journal.model import JournalEntry, Op, RowChange, SourcePosition
from processor.journal.serde import journal_key, serialize
from processor.kafka import clients


def _entries(start: int, count: int) -> list[JournalEntry]:
    """Price changes of 20 orders, round robin: each action writes one row version."""
    found = []
    for n in range(start, start + count):
        key = {"id": n % 20}
        pos = SourcePosition("cdc", 0, n, lsn=1000 + n, tx_id=f"tx{n}", ts_ms=n)
        change = RowChange("shop", "public", "orders", key, Op.UPDATE if n >= 20 else Op.CREATE, None,
                           {"id": n % 20, "price": n}, ("price",), True, pos)  # fmt: skip
        found.append(JournalEntry(f"a{n}", "PriceSet", (change,), 1_000 + n, commit_ts_ms=1_000 + n,
                                  correlation_id=f"order-{n % 20}", entities=(change.entity,)))  # fmt: skip
    return found


def _publish(bootstrap: str, topic: str, entries: list[JournalEntry]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for e in entries:
        producer.produce(topic, key=journal_key(e), value=serialize(e))
    producer.flush(30)


def _build_until(settings: Settings, bootstrap: str, versions: int) -> None:
    """Run the graph builder until its index holds ``versions`` (then stop it: it checkpoints)."""
    stop = threading.Event()
    builder = GraphBuilder(settings, bootstrap)
    thread = threading.Thread(target=builder.run, args=(stop,), daemon=True)
    thread.start()
    path = index_path(settings.graph.checkpoint_path, settings.topics.journal)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.is_file() and len(EntityIndex(path)) >= versions:
            break
        time.sleep(0.2)
    stop.set()
    thread.join(30)


def test_the_index_holds_every_version_once_across_restarts_and_a_lost_file(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{unique}", metrics_port=0,
        topics=TopicSettings(journal=f"{unique}.journal", partitions=3),
        graph=GraphSettings(checkpoint_path=tmp_path / "graph.npz", checkpoint_interval_s=0.2),
    )  # fmt: skip
    clients.ensure_topics(clients.admin(settings, kafka_bootstrap), [settings.topics.journal], partitions=3,
                          replication_factor=1)  # fmt: skip
    first, later = _entries(0, 300), _entries(300, 200)
    _publish(kafka_bootstrap, settings.topics.journal, first)
    _build_until(settings, kafka_bootstrap, 300)
    path = index_path(settings.graph.checkpoint_path, settings.topics.journal)
    assert len(EntityIndex(path)) == 300
    _publish(kafka_bootstrap, settings.topics.journal, later)
    _build_until(settings, kafka_bootstrap, 500)  # resumed: only the new ones added
    index = EntityIndex(path)
    assert len(index) == 500 and sum(index.positions().values()) >= 500
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)  # the index lost, the graph checkpoint kept
    _build_until(settings, kafka_bootstrap, 500)
    rebuilt = EntityIndex(path)
    assert len(rebuilt) == 500
    reference = EntityHistory()
    reference.add_many(first + later)
    for n in (0, 7, 19):
        entity = reference.entity("orders", str(n))
        assert [v.action_id for v in rebuilt.history(entity)] == [
            v.action_id for v in reference.history(entity)
        ]
        at = Moment(ts_ms=1_000 + 250)
        ours, theirs = rebuilt.state(entity, at), reference.state(entity, at)
        assert ours is not None and theirs is not None and ours.row == theirs.row


def test_after_retention_a_time_before_the_journals_start_is_refused_by_index_and_scan(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{unique}", metrics_port=0,
        topics=TopicSettings(journal=f"{unique}.journal", partitions=1),
        graph=GraphSettings(checkpoint_path=tmp_path / "graph.npz", checkpoint_interval_s=0.2),
    )  # fmt: skip
    admin = clients.admin(settings, kafka_bootstrap)
    clients.ensure_topics(admin, [settings.topics.journal], partitions=1, replication_factor=1)
    _publish(kafka_bootstrap, settings.topics.journal, _entries(0, 100))
    # What retention does: the oldest 40 entries (the creations and 20 updates) are gone.
    [future] = admin.delete_records([TopicPartition(settings.topics.journal, 0, 40)]).values()
    future.result(30)
    _build_until(settings, kafka_bootstrap, 60)
    index = EntityIndex(index_path(settings.graph.checkpoint_path, settings.topics.journal))
    scan = Rewind(settings.model_copy(update={"graph": GraphSettings(checkpoint_path=tmp_path / "none.npz")}))
    for history in (index, scan.history()):
        assert history.horizon_ms == 1_040  # a40's commit time
        entity = history.entity("orders", "3")
        with pytest.raises(HistoryQueryInvalid, match="before the journal's retention"):
            history.state(entity, Moment(ts_ms=1_020))
        then = history.state(entity, Moment(ts_ms=1_070))
        assert then is not None and then.action_id == "a63"
