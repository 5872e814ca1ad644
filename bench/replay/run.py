"""Filtered replay and repair re-drive, each side by side with the raw Kafka operation on the same broker
in one run.

1. Filtered replay: ``--records`` source records (3 partitions, ~300-byte values, two headers), every
   7th in the scope. Rewind's replay (transactional, offsets committed with their ranges, the origin
   header added, the scope skipped, waiting until its copies are readable) against a raw transactional
   copy of the same records (consume, produce, send offsets, commit every 5,000 records, no filter).
   Rate: source records handled per second; target ratio >= 0.8.
2. Re-drive: a repair of 1k and 10k seeds, each caused by an input event. The undo is a notice per seed
   (nothing to confirm), so the clock runs from the moment the last undo notice is readable to the last
   re-drive readable, against a raw transactional producer of the same number of same-sized events
   (500 per transaction, as the worker's max_emits_per_transaction). Target <= 2x.

    .venv/bin/python -m bench.replay.run [--records 1000000] [--rounds 3] [--runs 3]
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

from bench.graph.run import percentile
from bench.rollback.run import CommandCounter, raw_emit
from processor.catalog.catalog import load_catalog
from processor.config import LocalBrokerSettings, RollbackSettings, Settings, SigningSettings, TopicSettings
from processor.devenv.procs import free_port
from processor.graph.builder import CausalGraph
from processor.journal.model import JournalEntry, OutboxEvent, SourcePosition
from processor.kafka import clients
from processor.kafka.local_broker import LocalBroker
from processor.replay.runner import FilteredReplay
from processor.replay.scope import ReplayJob, Scope, StartKind, StartPoint
from processor.rollback.actions import ActionStore
from processor.rollback.engine import RollbackEngine
from processor.rollback.request import FieldPredicate, Mode, RollbackRequest, Selector, SelectorKind
from processor.rollback.serde import encode_request
from processor.rollback.worker import RollbackWorker, engine_config

PARTITIONS = 3
COMMIT_EVERY = 5_000
BATCHES = (1_000, 10_000)
CATALOG = """
actions:
  OrderPriced:
    mechanism: irreversible
    topic: {notify}
    redrive: {{topic: {redrive}}}
"""


# -- 1. filtered replay --------------------------------------------------------------------------


def fill(bootstrap: str, topic: str, records: int) -> Scope:
    """The source records, and a scope of every 7th record of each partition. One idempotent producer
    writing to explicit partitions: record i of a partition lands at offset i."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                         "batch.size": 1_000_000, "compression.type": "lz4"})  # fmt: skip
    pad = "x" * 250
    for n in range(records):
        while True:
            try:
                producer.produce(topic, key=f"k-{n}", value=f'{{"n": {n}, "pad": "{pad}"}}', partition=n % PARTITIONS,
                                 headers=[("id", f"ev-{n}"), ("type", "Thing")])  # fmt: skip
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0
    per_partition = -(-records // PARTITIONS)
    skip = {p: frozenset(o for o in range(per_partition) if o % 7 == 3) for p in range(PARTITIONS)}
    return Scope({topic: skip}, None, sum(len(s) for s in skip.values()))


def raw_copy(bootstrap: str, source: str, target: str, records: int) -> float:
    """The baseline: a transactional consume-produce copy of every record, offsets in the transaction."""
    admin_settings = Settings(bootstrap_servers=bootstrap)
    clients.ensure_topics(clients.admin(admin_settings, bootstrap), [target], partitions=PARTITIONS,
                          replication_factor=1)  # fmt: skip
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"raw-{uuid.uuid4()}",
                         "linger.ms": 20, "batch.size": 1_000_000, "compression.type": "lz4"})  # fmt: skip
    started = time.perf_counter()
    producer.init_transactions(30)
    consumer.assign([TopicPartition(source, p, 0) for p in range(PARTITIONS)])
    producer.begin_transaction()
    seen = pending = 0
    while seen < records:
        for msg in consumer.consume(1000, timeout=0.5):
            if msg.error() is not None:
                continue
            while True:
                try:
                    producer.produce(target, key=msg.key(), value=msg.value(), headers=msg.headers(),
                                     partition=msg.partition() or 0)  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.1)
            seen += 1
            pending += 1
        if pending >= COMMIT_EVERY or seen >= records:
            offsets = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
            producer.begin_transaction()
            pending = 0
    elapsed = time.perf_counter() - started
    consumer.close()
    return records / elapsed


def rewind_copy(settings: Settings, bootstrap: str, source: str, target: str, scope: Scope) -> float:
    replay = FilteredReplay(settings, bootstrap, uuid.uuid4().hex[:8], [ReplayJob(source, target)], scope,
                            StartPoint(StartKind.EARLIEST), commit_every=COMMIT_EVERY)  # fmt: skip
    started = time.perf_counter()
    report = replay.run(threading.Event())
    return (report.copied + report.skipped) / (time.perf_counter() - started)


def bench_replay(settings: Settings, bootstrap: str, records: int, rounds: int) -> None:
    u = uuid.uuid4().hex[:6]
    source = f"{u}.source"
    clients.ensure_topics(
        clients.admin(settings, bootstrap), [source], partitions=PARTITIONS, replication_factor=1
    )
    started = time.perf_counter()
    scope = fill(bootstrap, source, records)
    print(
        f"source: {records:,} records in {time.perf_counter() - started:.0f}s; scope {scope.actions:,} of them"
    )
    ours: list[float] = []
    raw: list[float] = []
    for r in range(rounds):  # alternate who goes first: the page cache and the broker warm up
        runs = [("raw", lambda r=r: raw_copy(bootstrap, source, f"{source}.raw{r}", records)),
                ("rewind", lambda r=r: rewind_copy(settings, bootstrap, source, f"{source}.replay{r}", scope))]  # fmt: skip
        for name, run in runs if r % 2 == 0 else reversed(runs):
            (ours if name == "rewind" else raw).append(run())
    print(f"{'round':>5} {'raw copy rec/s':>15} {'filtered replay rec/s':>22} {'ratio':>6}")
    for r, (a, b) in enumerate(zip(raw, ours, strict=True), start=1):
        print(f"{r:>5} {a:>15,.0f} {b:>22,.0f} {b / a:>6.2f}")
    ratios = [b / a for a, b in zip(raw, ours, strict=True)]
    print(f"{'median':>5} {percentile(raw, 0.5):>15,.0f} {percentile(ours, 0.5):>22,.0f} "
          f"{percentile(ratios, 0.5):>6.2f}  (ratio: the median of each round's pair)")  # fmt: skip


# -- 2. re-drive -----------------------------------------------------------------------------------


def workflows(n: int, tag: str, ts: int) -> list[JournalEntry]:
    """n inputs (OrderRequested, outside any scope), each the cause of a seed (OrderPriced, tagged)."""
    entries = []
    for i in range(n):
        wf, pos = f"{tag}-{i}", SourcePosition("bench", 0, i, ts_ms=ts + i)
        payload = {"order_id": i, "customer": f"c{i}", "sku": "sku-a", "qty": 2, "pad": "x" * 200}
        entries.append(JournalEntry(f"{wf}-req", "OrderRequested", (), ts + i, commit_ts_ms=ts + i,
                                    event=OutboxEvent(f"{wf}-req", "OrderRequested", "checkout", str(i), payload, {}, pos),
                                    correlation_id=wf))  # fmt: skip
        entries.append(JournalEntry(f"{wf}-price", "OrderPriced", (), ts + i, commit_ts_ms=ts + i,
                                    event=OutboxEvent(f"{wf}-price", "OrderPriced", "order", str(i),
                                                      {"order_id": i, "batch": tag}, {}, pos),
                                    causation_ids=(f"{wf}-req",), correlation_id=wf))  # fmt: skip
    return entries


def bench_redrive(settings: Settings, bootstrap: str, runs: int, work: Path) -> None:
    u = uuid.uuid4().hex[:6]
    notify, redrive = f"{u}.notify", f"{u}.redrive"
    s = settings.model_copy(update={
        "topics": TopicSettings(journal=f"{u}.journal", deadletter=f"{u}.dlq", requests=f"{u}.requests",
                                control=f"{u}.control", status=f"{u}.status", partitions=3),
        "rollback": RollbackSettings(notify_topic=notify, wave_barrier="emitted", approve_over_steps=10**9,
                                     approve_over_irreversible=10**9),
    })  # fmt: skip
    clients.ensure_topics(clients.admin(s, bootstrap), [*s.topics.own(), notify, redrive, f"{redrive}.raw"],
                          partitions=3, replication_factor=1,
                          configs={s.topics.status: {"max.message.bytes": str(s.rollback.status_max_bytes)}})  # fmt: skip
    catalog_path = work / "redrive-catalog.yaml"
    catalog_path.write_text(CATALOG.format(notify=notify, redrive=redrive))
    catalog = load_catalog(catalog_path)
    graph, store = CausalGraph(), ActionStore(work / "redrive.sqlite")
    tags = {n: [f"b{n}-{r}" for r in range(runs)] for n in BATCHES}
    ts = 1_700_000_000_000
    for n, names in tags.items():
        for tag in names:
            entries = workflows(n, tag, ts)
            for e in entries:
                graph.add(e)
            store.add_many((e, None) for e in entries)
    engine = RollbackEngine(catalog, engine_config(s), graph=graph, actions=store)
    worker = RollbackWorker(s, bootstrap, catalog, engine=engine)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    assert worker.ready.wait(120)
    notices, redriven, raw_counter = (CommandCounter(bootstrap, notify), CommandCounter(bootstrap, redrive),
                                      CommandCounter(bootstrap, f"{redrive}.raw"))  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    per_tx = s.rollback.max_emits_per_transaction
    print(
        f"{'inputs':>7} {'runs':>5} {'re-drive p50 ms':>16} {'max ms':>8} {'raw p50 ms':>11} {'max ms':>8} {'ratio p50':>10}"
    )
    for n, names in tags.items():
        ours, raw = [], []
        for tag in names:
            selector = Selector(SelectorKind.FIELD_PREDICATE, action_type="OrderPriced",
                                predicate=FieldPredicate.parse(f'batch == "{tag}"'))  # fmt: skip
            request = RollbackRequest(str(uuid.uuid4()), "bench", "bench", int(time.time() * 1000), selector,
                                      Mode.EXECUTE, repair=True)  # fmt: skip
            producer.produce(s.topics.requests, key=request.request_id, value=encode_request(request))
            producer.flush(10)
            undone = notices.wait_for(n)
            ours.append((redriven.wait_for(n) - undone) * 1000)
            raw.append(raw_emit(bootstrap, f"{redrive}.raw", n, 330, per_tx, raw_counter) * 1000)
        print(f"{n:>7,} {len(ours):>5} {percentile(ours, 0.5):>16,.1f} {max(ours):>8,.1f} "
              f"{percentile(raw, 0.5):>11,.1f} {max(raw):>8,.1f} {percentile(ours, 0.5) / percentile(raw, 0.5):>10.2f}")  # fmt: skip
    stop.set()
    thread.join(30)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("rewind.librdkafka").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="source records of the replay")
    parser.add_argument("--rounds", type=int, default=3, help="replay rounds (raw and rewind each)")
    parser.add_argument("--runs", type=int, default=3, help="repairs per re-drive size")
    parser.add_argument("--only", choices=["replay", "redrive"], help="run one part")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rewind-bench-replay-"))
    broker = LocalBroker(
        LocalBrokerSettings(data_dir=work / "broker", port=free_port(), controller_port=free_port())
    )
    bootstrap = broker.start()
    try:
        u = uuid.uuid4().hex[:6]
        settings = Settings(
            bootstrap_servers=bootstrap,
            group_id=f"bench-{u}",
            transactional_id_prefix=f"bench-{u}",
            metrics_port=0,
            signing=SigningSettings(required=False),
        )  # fmt: skip (unsigned requests)
        if args.only in (None, "replay"):
            bench_replay(settings, bootstrap, args.records, args.rounds)
        if args.only in (None, "redrive"):
            bench_redrive(settings, bootstrap, args.runs, work)
    finally:
        broker.stop()


if __name__ == "__main__":
    random.seed(1)
    main()
