"""Rollback worker restart: time from start to ready (the graph and the action store hold the whole
journal, the request topics are assigned) at 1M journaled actions, side by side in one run:

- from the checkpoints: the graph builder's checkpoint and the worker's own action store file, both at
  the journal's end (a restart of `rewind run`);
- rebuilt: no graph checkpoint and an in-memory store, so the whole journal is read again (what every
  start did before the worker started from the graph builder's checkpoint).

The journal (bench/graph's workload) is produced to a local broker, the graph builder follows it to its
end and checkpoints, and one worker run fills the store file. Then the two paths alternate.

    .venv/bin/python -m bench.rollback.restart [--actions 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from bench.graph.run import journal, rss
from processor.catalog.catalog import Catalog
from processor.config import (
    GraphSettings,
    LocalBrokerSettings,
    RollbackSettings,
    Settings,
    SigningSettings,
    TopicSettings,
)
from processor.devenv.procs import free_port
from processor.graph import store as graph_store
from processor.graph.runner import GraphBuilder
from processor.journal.serde import journal_key, serialize
from processor.kafka import clients
from processor.kafka.local_broker import LocalBroker
from processor.rollback.worker import RollbackWorker


def produce_journal(bootstrap: str, topic: str, actions: int) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                         "compression.type": "zstd", "batch.size": 1_000_000})  # fmt: skip
    started = time.perf_counter()
    for n, (entry, _) in enumerate(journal(actions)):
        while True:
            try:
                producer.produce(topic, key=journal_key(entry), value=serialize(entry))
                break
            except BufferError:
                producer.poll(0.1)
        if n % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return time.perf_counter() - started


def checkpoint_journal(settings: Settings, bootstrap: str, actions: int) -> float:
    """Run the graph builder until its checkpoint holds the whole journal."""
    stop = threading.Event()
    builder = GraphBuilder(settings, bootstrap)
    thread = threading.Thread(target=builder.run, args=(stop,), daemon=True)
    started = time.perf_counter()
    thread.start()
    while builder.checkpoint is None or len(builder.checkpoint.graph) < actions:
        time.sleep(0.5)
    stop.set()
    thread.join(300)
    found = graph_store.load(settings.graph.checkpoint_path, settings.topics.journal)
    assert found is not None and len(found.graph) >= actions
    return time.perf_counter() - started


def time_to_ready(settings: Settings, bootstrap: str) -> tuple[float, int]:
    """Seconds from a worker's start to ready, and the actions its graph then holds."""
    worker = RollbackWorker(settings, bootstrap, Catalog.empty())
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    started = time.perf_counter()
    thread.start()
    if not worker.ready.wait(600):
        raise SystemExit("the worker did not get ready in 600 s")
    elapsed = time.perf_counter() - started
    assert worker.engine is not None
    held = len(worker.engine.graph)
    stop.set()
    thread.join(60)
    worker.engine.actions.close()
    return elapsed, held


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="restarts per path")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rewind-bench-restart-"))
    broker = LocalBroker(
        LocalBrokerSettings(data_dir=work / "broker", port=free_port(), controller_port=free_port())
    )
    bootstrap = broker.start()
    try:
        u = uuid.uuid4().hex[:8]
        base = Settings(
            bootstrap_servers=bootstrap, group_id=f"bench-{u}", transactional_id_prefix=f"bench-{u}", metrics_port=0,
            topics=TopicSettings(journal=f"{u}.journal", deadletter=f"{u}.dlq", requests=f"{u}.requests",
                                 control=f"{u}.control", status=f"{u}.status", partitions=3),
            graph=GraphSettings(checkpoint_path=work / "graph.npz", checkpoint_interval_s=3600),
            rollback=RollbackSettings(notify_topic=f"{u}.notify", store_path=work / "actions.sqlite"),
            signing=SigningSettings(required=False),  # no request is sent: the bench times the start
        )  # fmt: skip
        clients.ensure_topics(clients.admin(base, bootstrap), [*base.topics.own(), base.rollback.notify_topic],
                              partitions=3, replication_factor=1)  # fmt: skip
        produced = produce_journal(bootstrap, base.topics.journal, args.actions)
        print(f"journal: {args.actions:,} actions produced in {produced:.0f}s")
        print(
            f"graph builder: checkpoint of the whole journal in {checkpoint_journal(base, bootstrap, args.actions):.0f}s"
        )
        filled, _ = time_to_ready(base, bootstrap)
        print(f"worker, first start (fills its store file): {filled:.1f}s")
        rebuilt = base.model_copy(update={
            "graph": GraphSettings(checkpoint_path=work / "none.npz"),
            "rollback": base.rollback.model_copy(update={"store_path": Path(":memory:")}),
        })  # fmt: skip
        times: dict[str, list[float]] = {"checkpoints": [], "rebuilt": []}
        base_rss = rss()
        for _ in range(args.runs):
            for name, settings in (("checkpoints", base), ("rebuilt", rebuilt)):
                seconds, held = time_to_ready(settings, bootstrap)
                assert held >= args.actions, f"{name}: the graph holds {held} actions"
                times[name].append(seconds)
        print(f"RSS after the runs: +{(rss() - base_rss) / 2**20:,.0f} MiB")
        print(f"{'start':>12} {'runs':>5} {'min s':>7} {'median s':>9} {'max s':>7}")
        for name, values in times.items():
            print(f"{name:>12} {len(values):>5} {min(values):>7.1f} {statistics.median(values):>9.1f} "
                  f"{max(values):>7.1f}")  # fmt: skip
        ratio = statistics.median(times["checkpoints"]) / statistics.median(times["rebuilt"])
        print(f"ratio (checkpoints / rebuilt, median): {ratio:.3f}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
