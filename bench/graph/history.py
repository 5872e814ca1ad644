"""Point-in-time state and row history from the graph builder's entity index, side by side with a scan
of the journal in the same run.

The journal: ``--actions`` actions, each writing one row version (a price update of one of
``actions / 10`` orders, random; one order, the "hot" one, gets 1,000 versions). The index is filled
in-process (as the graph builder fills it); the journal is produced to a local broker for the scan.
Measured: p50/p99 of ``state`` (a random order at a random time) and of ``history`` of the hot row,
over ``--queries`` queries each; the index's bytes per row version (file size / versions); and the
same two answers by a scan (read the journal topic to its end, fold the versions in memory), timed
``--scans`` times.

    .venv/bin/python -m bench.graph.history [--actions 10000000] [--queries 1000] [--scans 2]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka import Producer

from bench.graph.run import percentile
from processor.config import LocalBrokerSettings, Settings, TopicSettings
from processor.devenv.procs import free_port
from processor.graph.entities import EntityIndex
from processor.graph.history import EntityHistory, Moment
from processor.journal.model import JournalEntry, Op, RowChange, SourcePosition
from processor.journal.serde import deserialize, journal_key, serialize
from processor.kafka import clients, loop
from processor.kafka.local_broker import LocalBroker

HOT_VERSIONS = 1_000
ASKED = {"public.orders:0", "public.orders:1"}
T0 = 1_700_000_000_000


def journal(actions: int, seed: int = 5) -> Iterator[JournalEntry]:
    rnd = random.Random(seed)
    orders = max(actions // 10, 1)
    hot_every = max(actions // HOT_VERSIONS, 1)
    for n in range(actions):
        order = 0 if n % hot_every == 0 else rnd.randrange(1, orders + 1)
        key, ts = {"id": order}, T0 + n
        pos = SourcePosition("pg.public.orders", n % 3, n // 3, lsn=10_000 + n, tx_id=str(n), ts_ms=ts)
        row = {"id": order, "customer": f"c{order}", "sku": f"sku-{order % 7}", "price_cents": rnd.randrange(100, 9_999),
               "rule_version": "v6", "status": "PRICED"}  # fmt: skip
        change = RowChange("shop", "public", "orders", key, Op.UPDATE, None, row, ("price_cents",), True, pos)
        yield JournalEntry(f"a{n}", "PriceSet", (change,), ts, commit_ts_ms=ts, correlation_id=f"order-{order}",
                           causation_ids=(f"a{n - 1}",) if n else (), entities=(change.entity,))  # fmt: skip


def _scan(settings: Settings, bootstrap: str) -> Iterator[JournalEntry]:
    """Every entry of the journal topic, decoded one by one (read to its end as rewind reads it)."""
    reader = clients.consumer(settings, bootstrap, f"scan-{time.monotonic_ns()}")
    try:
        parts = loop.partitions(reader, "bench.journal")
        reader.assign(loop.from_beginning("bench.journal", parts))
        ends = loop.ends(reader, "bench.journal", parts)
        done: set[int] = set()
        while len(done) < len(parts):
            for msg in reader.consume(10_000, timeout=1):
                if msg.error() is None:
                    yield deserialize(msg.value() or b"")
                    if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
                        done.add(msg.partition() or 0)
    finally:
        reader.close()


def timed(fn: object, *args: object) -> float:
    started = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("rewind.librdkafka").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actions", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--scans", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rewind-bench-history-"))
    path = work / "history.sqlite"
    index, _ = EntityIndex.open(path, "bench.journal")
    started, batch = time.perf_counter(), []
    for entry in journal(args.actions):
        batch.append(entry)
        if len(batch) == 50_000:
            index.add_many(batch)
            batch = []
    index.add_many(batch)
    fill_s = time.perf_counter() - started
    size = sum(p.stat().st_size for p in work.iterdir() if p.name.startswith("history.sqlite"))
    print(
        f"index: {len(index):,} versions in {fill_s:.0f}s, {size / 2**20:,.0f} MiB, {size / len(index):.0f} bytes per version"
    )

    rnd = random.Random(9)
    orders = max(args.actions // 10, 1)
    hot = index.entity("orders", "0")
    state_ms, history_ms = [], []
    for _ in range(args.queries):
        entity = index.entity("orders", str(rnd.randrange(1, orders + 1)))
        at = Moment(ts_ms=T0 + rnd.randrange(args.actions))
        state_ms.append(timed(lambda e=entity, a=at: index.state(e, a)))
        history_ms.append(timed(lambda: index.history(hot)))
    versions = len(index.history(hot))
    print(f"index: state p50/p99 {percentile(state_ms, 0.5):.2f}/{percentile(state_ms, 0.99):.2f} ms, "
          f"history ({versions} versions) p50/p99 {percentile(history_ms, 0.5):.2f}/"
          f"{percentile(history_ms, 0.99):.2f} ms", flush=True)  # fmt: skip

    broker = LocalBroker(
        LocalBrokerSettings(data_dir=work / "broker", port=free_port(), controller_port=free_port())
    )
    bootstrap = broker.start()
    try:
        settings = Settings(
            bootstrap_servers=bootstrap, metrics_port=0, topics=TopicSettings(journal="bench.journal")
        )
        clients.ensure_topics(
            clients.admin(settings, bootstrap), ["bench.journal"], partitions=3, replication_factor=1
        )
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                             "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})  # fmt: skip
        for entry in journal(args.actions):
            while True:
                try:
                    producer.produce("bench.journal", key=journal_key(entry), value=serialize(entry))
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.flush(300)
        scans = []
        for _ in range(args.scans):
            t = time.perf_counter()
            scanned = EntityHistory()
            # Keep only the two rows asked about: at 10M actions a fold of every row would not fit in
            # memory, and a scan answering one question needs no more (the decode is the cost).
            scanned.add_many(e for e in _scan(settings, bootstrap) if e.entities[0] in ASKED)
            scanned.state(scanned.entity("orders", "1"), Moment(ts_ms=T0 + args.actions // 2))
            scanned.history(scanned.entity("orders", "0"))
            scans.append((time.perf_counter() - t) * 1000)
    finally:
        broker.stop()
    print(
        f"{'query':>22} {'n':>6} {'index p50 ms':>13} {'p99 ms':>8} {'scan ms':>10} {'scan / index p99':>17}"
    )
    print(f"{'state':>22} {len(state_ms):>6} {percentile(state_ms, 0.5):>13.2f} {percentile(state_ms, 0.99):>8.2f} "
          f"{min(scans):>10,.0f} {min(scans) / percentile(state_ms, 0.99):>17,.0f}")  # fmt: skip
    print(f"{f'history ({versions} versions)':>22} {len(history_ms):>6} {percentile(history_ms, 0.5):>13.2f} "
          f"{percentile(history_ms, 0.99):>8.2f} {min(scans):>10,.0f} {min(scans) / percentile(history_ms, 0.99):>17,.0f}")  # fmt: skip
    print("(the scan reads the journal topic once and answers both; its best of the runs is shown)")


if __name__ == "__main__":
    main()
