"""Rollback worker: time from a request to its last command emitted, in a 1M-action graph, side by side
with a raw transactional producer emitting the same number of same-sized commands on the same broker.

The graph and the action store are filled in-process (the background of bench/graph's workload, plus
one workflow per measured request: a tree of N actions rooted at the selected one, half compensations,
half restores of rows of their own). The worker then runs its real Kafka loop against them: request
consumed from its topic, planned, commands and status records produced in Kafka transactions. The
clock stops when a read_committed consumer of the command topic has seen all N commands. Waves are
gated on emission (``wave_barrier=emitted``): no service confirms in this benchmark.

    .venv/bin/python -m bench.rollback.run [--actions 1000000] [--runs 20]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.graph.run import journal, percentile, rss
from processor.catalog.catalog import load_catalog
from processor.config import LocalBrokerSettings, RollbackSettings, Settings, SigningSettings, TopicSettings
from processor.devenv.procs import free_port
from processor.graph.builder import CausalGraph
from processor.journal.model import JournalEntry, Op, OutboxEvent, RowChange, SourcePosition
from processor.journal.serde import journal_key, serialize
from processor.kafka import clients
from processor.kafka.local_broker import LocalBroker
from processor.rollback.actions import ActionStore
from processor.rollback.engine import RollbackEngine
from processor.rollback.request import Mode, RollbackRequest, Selector, SelectorKind
from processor.rollback.serde import encode_request
from processor.rollback.worker import RollbackWorker, engine_config

SCOPES = (10, 1_000, 10_000)
CATALOG = """
actions:
  PaymentCaptured:
    mechanism: compensate
    topic: {topic}
    event_type: RefundPayment
    key: "{{payload.payment_id}}"
    payload: {{payment_id: "{{payload.payment_id}}", amount: "{{payload.amount}}"}}
  OrderPriced:
    mechanism: restore
    topic: {topic}
    fields: [price]
"""


def scoped_workflow(size: int, tag: str, rnd: random.Random, ts: int) -> list[JournalEntry]:
    """A tree of ``size`` actions: each caused by an earlier one of the tree (the first is the seed)."""
    entries: list[JournalEntry] = []
    for i in range(size):
        aid = f"{tag}-{i:06d}"
        cause = (entries[rnd.randrange(i)].action_id,) if i else ()
        pos = SourcePosition("bench", 0, i, lsn=ts + i, tx_id=aid, ts_ms=ts + i)
        if i % 2:
            changes: tuple[RowChange, ...] = (
                RowChange("shop", "public", "orders", {"id": aid}, Op.UPDATE, {"id": aid, "price": 100},
                          {"id": aid, "price": 90}, ("price",), True, pos),
            )  # fmt: skip
            kind, payload = "OrderPriced", {"order_id": aid, "price": 90}
        else:
            changes, kind, payload = (), "PaymentCaptured", {"payment_id": aid, "amount": 90}
        entries.append(JournalEntry(
            action_id=aid, action_type=kind, changes=changes, journal_ts_ms=ts + i, commit_ts_ms=ts + i,
            service="bench", event=OutboxEvent(aid, kind, "Order", tag, payload, {}, pos),
            causation_ids=cause, correlation_id=tag, entities=tuple(c.entity for c in changes),
        ))  # fmt: skip
    return entries


def build(
    actions: int, runs: int, path: Path
) -> tuple[CausalGraph, ActionStore, dict[int, list[str]], float]:
    rnd = random.Random(7)
    graph, store = CausalGraph(), ActionStore(path)
    seeds: dict[int, list[str]] = {n: [] for n in SCOPES}
    scoped = [(n, r) for n in SCOPES for r in range(runs if n < 10_000 else max(runs // 4, 3))]
    background = actions - sum(n for n, _ in scoped)
    started = time.perf_counter()
    batch: list[tuple[JournalEntry, bytes | None]] = []
    for entry, _ in journal(background):
        graph.add(entry)
        batch.append((entry, None))
        if len(batch) == 20_000:
            store.add_many(batch)
            batch = []
    for n, r in scoped:
        tree = scoped_workflow(n, f"scope-{n}-{r}", rnd, background + len(batch))
        for entry in tree:
            graph.add(entry)
        batch += [(e, None) for e in tree]
        seeds[n].append(tree[0].action_id)
    store.add_many(batch)
    return graph, store, seeds, time.perf_counter() - started


class CommandCounter:
    """A read_committed consumer of the command topic, counting records as they become visible."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4()}",
                                  "isolation.level": "read_committed", "enable.auto.commit": False,
                                  "auto.offset.reset": "latest"})  # fmt: skip
        self.consumer.assign([TopicPartition(topic, p, -1) for p in range(3)])  # from the end
        self.consumer.consume(1, timeout=1)

    def wait_for(self, count: int, timeout_s: float = 300) -> float:
        seen, deadline = 0, time.monotonic() + timeout_s
        while seen < count:
            seen += sum(1 for m in self.consumer.consume(1000, timeout=0.05) if m.error() is None)
            if time.monotonic() > deadline:
                raise TimeoutError(f"saw {seen} of {count} commands")
        return time.perf_counter()


def raw_emit(
    bootstrap: str, topic: str, count: int, size: int, per_tx: int, counter: CommandCounter
) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"raw-{uuid.uuid4()}",
                         "linger.ms": 5, "compression.type": "zstd"})  # fmt: skip
    producer.init_transactions(30)
    value = bytes(random.Random(1).getrandbits(8) for _ in range(size))
    started = time.perf_counter()
    for start in range(0, count, per_tx):
        producer.begin_transaction()
        for i in range(start, min(start + per_tx, count)):
            producer.produce(topic, key=str(i), value=value)
        producer.commit_transaction(30)
    return counter.wait_for(count) - started


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("rewind.librdkafka").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20, help="requests per scope size (10k: a quarter)")
    parser.add_argument(
        "--live",
        type=int,
        default=10,
        help="new journal entries produced before each request (0: static graph)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rewind-bench-rollback-"))
    base_rss = rss()
    graph, store, seeds, build_s = build(args.actions, args.runs, work / "actions.sqlite")
    print(f"graph: {len(graph):,} actions, store {len(store):,}, built in {build_s:.0f}s, "
          f"RSS +{(rss() - base_rss) / 2**20:,.0f} MiB")  # fmt: skip

    broker = LocalBroker(
        LocalBrokerSettings(data_dir=work / "broker", port=free_port(), controller_port=free_port())
    )
    bootstrap = broker.start()
    try:
        u = uuid.uuid4().hex[:8]
        topic = f"{u}.commands"
        catalog_path = work / "catalog.yaml"
        catalog_path.write_text(CATALOG.format(topic=topic))
        settings = Settings(
            bootstrap_servers=bootstrap, group_id=f"bench-{u}", transactional_id_prefix=f"bench-{u}", metrics_port=0,
            topics=TopicSettings(journal=f"{u}.journal", deadletter=f"{u}.dlq", requests=f"{u}.requests",
                                 control=f"{u}.control", status=f"{u}.status", partitions=3),
            rollback=RollbackSettings(notify_topic=f"{u}.notify", wave_barrier="emitted",
                                      approve_over_steps=10**9),
            signing=SigningSettings(required=False),  # requests go unsigned: the bench times planning and emission
        )  # fmt: skip
        clients.ensure_topics(
            clients.admin(settings, bootstrap),
            [*settings.topics.own(), settings.rollback.notify_topic, topic, f"{topic}.raw"],
            partitions=3, replication_factor=1,
            configs={settings.topics.status: {"max.message.bytes": str(settings.rollback.status_max_bytes)}},
        )  # fmt: skip
        catalog = load_catalog(catalog_path)
        engine = RollbackEngine(catalog, engine_config(settings), graph=graph, actions=store)
        worker = RollbackWorker(settings, bootstrap, catalog, engine=engine)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        assert worker.ready.wait(120)
        counter, raw_counter = CommandCounter(bootstrap, topic), CommandCounter(bootstrap, f"{topic}.raw")
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        per_tx = settings.rollback.max_emits_per_transaction
        print(f"{'scope':>7} {'runs':>5} {'rewind p50 ms':>14} {'p99 ms':>9} {'raw p50 ms':>11} {'p99 ms':>9} "
              f"{'ratio p50':>10}")  # fmt: skip
        for n in SCOPES:
            ours, raw = [], []
            for r, seed in enumerate(seeds[n]):
                if args.live:  # the journal keeps flowing: the worker reads these before it plans
                    fresh = scoped_workflow(args.live, f"live-{n}-{r}", random.Random(r), 10**12)
                    for e in fresh:
                        producer.produce(settings.topics.journal, key=journal_key(e), value=serialize(e))
                    producer.flush(10)
                request = RollbackRequest(str(uuid.uuid4()), "bench", "bench", int(time.time() * 1000),
                                          Selector(SelectorKind.ACTION_IDS, action_ids=(seed,)), Mode.EXECUTE)  # fmt: skip
                started = time.perf_counter()
                producer.produce(
                    settings.topics.requests, key=request.request_id, value=encode_request(request)
                )
                producer.flush(10)
                ours.append((counter.wait_for(n) - started) * 1000)
                raw.append(raw_emit(bootstrap, f"{topic}.raw", n, 420, per_tx, raw_counter) * 1000)
            print(f"{n:>7,} {len(ours):>5} {percentile(ours, 0.5):>14,.1f} {percentile(ours, 0.99):>9,.1f} "
                  f"{percentile(raw, 0.5):>11,.1f} {percentile(raw, 0.99):>9,.1f} "
                  f"{percentile(ours, 0.5) / percentile(raw, 0.5):>10.1f}")  # fmt: skip
        stop.set()
        thread.join(30)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
