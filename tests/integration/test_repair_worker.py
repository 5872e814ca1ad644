"""Repair on a real broker: after the undo is confirmed and verified, the worker re-drives each seed's
input to the fixed consumer's topic as a new event, confirms it when the journal shows the action it
caused, and ends REPAIRED; a consumer that never answers leaves the request PARTIALLY_REPAIRED, listing
exactly the inputs not repaired."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from processor.catalog.catalog import load_catalog
from processor.journal.model import JournalEntry
from processor.journal.serde import journal_key, serialize
from processor.kafka import clients
from processor.rollback.worker import RollbackWorker
from tests.integration.rollkit import RollbackTopics, Services, StatusReader, publish_journal, send_request
from tests.integration.tapkit import headers_of
from tests.integration.test_rollback_worker import V7
from tests.unit.rollback.world import World

BAD = (2, 5)


class Pricing:
    """The fixed pricing service: it handles each re-driven request once and journals the new action,
    naming the re-driven event as its cause (or, ``silent``, never answers)."""

    def __init__(self, bootstrap: str, topic: str, journal: str, *, silent: bool) -> None:
        self.bootstrap, self.topic, self.journal, self.silent = bootstrap, topic, journal, silent
        self.received: list[tuple[dict[str, str], dict[str, object]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Pricing:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"pricing-{uuid.uuid4()}",
                             "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
        consumer.subscribe([self.topic])
        producer = Producer({"bootstrap.servers": self.bootstrap})
        handled: set[str] = set()
        while not self._stop.is_set():
            for msg in consumer.consume(100, timeout=0.2):
                if msg.error() is not None:
                    continue
                headers = {k: v.decode() for k, v in headers_of(msg).items()}
                self.received.append((headers, json.loads(msg.value() or b"{}")))
                if self.silent or headers["id"] in handled:
                    continue
                handled.add(headers["id"])
                now = int(time.time() * 1000)
                entry = JournalEntry(f"repriced-{headers['id']}", "OrderPriced", (), now, commit_ts_ms=now,
                                     causation_ids=(headers["id"],), correlation_id=headers["correlationId"])  # fmt: skip
                producer.produce(self.journal, key=journal_key(entry), value=serialize(entry))
            producer.flush(10)
        consumer.close()


@pytest.mark.parametrize("silent", [False, True], ids=["answered", "never-answered"])
def test_a_repair_re_drives_each_input_once_to_the_fixed_consumer(
    kafka_bootstrap: str, unique: str, tmp_path: Path, silent: bool
) -> None:
    topics = RollbackTopics(unique)
    settings = topics.settings(
        kafka_bootstrap, approve_over_irreversible=10, confirm_timeout_s=3, max_attempts=2
    )
    topics.create(settings)
    redrive = topics.command("pricing.redrive")
    clients.ensure_topics(
        clients.admin(settings, kafka_bootstrap), [redrive], partitions=3, replication_factor=1
    )
    world = World()
    for n in range(1, 7):
        world.order(n, rule="v7" if n in BAD else "v6", price=90 if n in BAD else 100, requested=True)
    publish_journal(kafka_bootstrap, settings.topics.journal, world.entries)
    catalog = topics.catalog(tmp_path)
    catalog.write_text(catalog.read_text().replace(
        "    fields: [price, rule_version]\n", f"    fields: [price, rule_version]\n    redrive: {{topic: {redrive}}}\n"
    ))  # fmt: skip
    stop = threading.Event()
    worker = RollbackWorker(settings, kafka_bootstrap, load_catalog(catalog))
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    services = Services(kafka_bootstrap, topics, settings.topics.journal)
    status = StatusReader(settings)
    try:
        assert worker.ready.wait(60)
        services.start()
        with Pricing(kafka_bootstrap, redrive, settings.topics.journal, silent=silent) as pricing:
            request_id = send_request(settings, V7, repair=True)
            final = status.wait(request_id, {"REPAIRED", "PARTIALLY_REPAIRED", "PARTIALLY_ROLLED_BACK",
                                             "REJECTED", "FAILED"}, 120)  # fmt: skip
            received = list(pricing.received)
    finally:
        stop.set()
        thread.join(30)
        services.stop()
        status.close()
    inputs = {f"req-{n}": next(e for e in world.entries if e.action_id == f"req-{n}") for n in BAD}
    by_origin: dict[str, set[str]] = {}
    for headers, payload in received:
        original = inputs[headers["rewind.replay_of"]]
        assert original.event is not None and payload == original.event.payload
        assert (
            headers["correlationId"] == original.correlation_id and headers["eventType"] == "OrderRequested"
        )
        assert headers["rewind.request_id"] == request_id and headers["id"] != original.event.event_id
        by_origin.setdefault(headers["rewind.replay_of"], set()).add(headers["id"])
    assert set(by_origin) == set(inputs) and all(
        len(ids) == 1 for ids in by_origin.values()
    )  # one new id each
    if not silent:
        assert final.state.value == "REPAIRED", final.reason
        assert "2 inputs re-driven and confirmed" in (final.reason or "")
        assert len(received) == len(BAD)  # each sent once: confirmed before its wait was over
        assert [s for s in status.history[request_id] if s.startswith("REPAIR")][-2:] == [
            "REPAIRING",
            "REPAIRED",
        ]
    else:
        assert final.state.value == "PARTIALLY_REPAIRED", final.reason
        assert (final.reason or "").endswith("2 not repaired: req-2, req-5")
        assert len(received) == 2 * len(BAD)  # retried once (max_attempts=2), under the same new id
