"""Tap throughput and CPU per record, side by side with a raw transactional consume -> produce pipe.

The tap (native engine; and the Python reference unless --no-python), with its Prometheus metrics as
`rewind tap` runs it, and the raw pipe read the same Debezium-shaped records (BEGIN, a row, an outbox
event, END per transaction) from the same broker, read_committed, and write transactionally with
offsets at the same commit interval. They run
alternately, ROUNDS times each; the table shows the median round. Time and CPU are counted from the
first batch of records consumed to the commit that carries the last output, so consumer-group
start-up and shutdown, which vary by seconds from run to run, are left out of both. (The raw pipe
commits as soon as it has copied the last record; the tap commits on its interval, up to 100 ms later.)

    .venv/bin/python -m bench.tap.run [--transactions 50000] [--rounds 5] [--no-python]

With REWIND_BENCH_BOOTSTRAP unset, it starts a local broker of its own.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from processor.catalog.catalog import Catalog
from processor.config import LocalBrokerSettings, Settings
from processor.devenv.procs import free_port
from processor.kafka import clients
from processor.kafka.deadletters import DeadLetter
from processor.kafka.local_broker import LocalBroker
from processor.kafka.messages import KafkaMessage
from processor.metrics import Metrics
from processor.tap import native
from processor.tap.core import Journaled, Produced, RecordKind, TapCore
from processor.tap.engine import tap_core
from processor.tap.runner import TapRunner
from tests.integration.tapkit import TapTopics, interleave, produce, transaction

COMMIT_INTERVAL_MS = 100


@dataclass
class Result:
    name: str
    records: int
    actions: int
    wall_s: float
    cpu_s: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s

    @property
    def actions_per_s(self) -> float:
        return self.actions / self.wall_s

    @property
    def cpu_us_per_record(self) -> float:
        return self.cpu_s / self.records * 1e6


class _Count:
    """The tap's Prometheus metrics, as `rewind tap` has them, plus a count of journal entries so the
    run knows when it is done."""

    def __init__(self) -> None:
        self.entries = 0
        self.metrics = Metrics(CollectorRegistry())

    def consumed(self, topic: str, kind: RecordKind | None, count: int = 1) -> None:
        self.metrics.consumed(topic, kind, count)

    def journaled(self, entry: Journaled) -> None:
        self.entries += 1
        self.metrics.journaled(entry)

    def dead_lettered(self, dead: DeadLetter) -> None:
        self.metrics.dead_lettered(dead)

    def duplicate_dropped(self, count: int = 1) -> None:
        self.metrics.duplicate_dropped(count)


class _Timed:
    """The tap core, noting wall and CPU time when the first batch of records reaches it."""

    def __init__(self, core: TapCore) -> None:
        self.core = core
        self.first: tuple[float, float] | None = None

    def consume(self, messages: Sequence[KafkaMessage], now_ms: int) -> Produced:
        if self.first is None and messages:
            self.first = (time.perf_counter(), time.process_time())
        return self.core.consume(messages, now_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)


class _CommitClock:
    """The runner's metrics, noting wall and CPU time when a commit carries the last entry."""

    def __init__(self, counter: _Count, actions: int) -> None:
        self.counter, self.actions = counter, actions
        self.last: tuple[float, float] | None = None

    def tap_committed(self, seconds: float, core: TapCore) -> None:
        self.counter.metrics.tap_committed(seconds, core)
        if self.last is None and self.counter.entries >= self.actions:
            self.last = (time.perf_counter(), time.process_time())

    def tap_lag(self, topic: str, partition: int, lag: int) -> None:
        self.counter.metrics.tap_lag(topic, partition, lag)


def run_tap(settings: Settings, bootstrap: str, actions: int, records: int, engine: str) -> Result:
    counter = _Count()
    stop = threading.Event()
    settings = settings.model_copy(update={"tap": settings.tap.model_copy(update={"engine": engine})})
    timed = _Timed(tap_core(settings, Catalog.empty(), observer=counter))
    clock = _CommitClock(counter, actions)
    runner = TapRunner(settings, bootstrap, lambda: timed, clock)  # type: ignore[arg-type]
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    while clock.last is None and thread.is_alive():
        time.sleep(0.01)
    stop.set()
    thread.join()
    if clock.last is None or timed.first is None:
        raise SystemExit(f"the tap stopped after {counter.entries} of {actions} actions")
    (wall, cpu), (wall_end, cpu_end) = timed.first, clock.last
    name = "tap" if engine == "native" else f"tap ({engine})"
    return Result(name, records, actions, wall_end - wall, cpu_end - cpu)


def run_raw_pipe(
    settings: Settings, bootstrap: str, topics: list[str], out_topic: str, records: int, actions: int
) -> Result:
    """The baseline: every record copied as-is, in transactions with the consumed offsets."""
    producer = clients.producer(settings, bootstrap, transactional_id=f"raw-{uuid.uuid4().hex}")
    consumer: Consumer = clients.consumer(settings, bootstrap, f"raw-{uuid.uuid4().hex}")
    producer.init_transactions(30)
    consumer.subscribe(topics)
    producer.begin_transaction()
    seen, started = 0, time.monotonic()
    positions: dict[tuple[str, int], int] = {}
    wall = cpu = 0.0
    while seen < records:
        for msg in consumer.consume(500, timeout=0.1):
            if msg.error():
                continue
            if seen == 0:
                wall, cpu = time.perf_counter(), time.process_time()
            producer.produce(out_topic, key=msg.key(), value=msg.value(), headers=msg.headers())
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1  # type: ignore[index, operator]
            seen += 1
        producer.poll(0)
        if time.monotonic() - started >= COMMIT_INTERVAL_MS / 1000 or seen >= records:
            _commit(producer, consumer, positions)
            producer.begin_transaction()
            started = time.monotonic()
    _commit(producer, consumer, positions)
    consumer.close()
    return Result("raw pipe", records, actions, time.perf_counter() - wall, time.process_time() - cpu)


def _commit(producer: Producer, consumer: Consumer, positions: dict[tuple[str, int], int]) -> None:
    offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
    producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--no-python", dest="python", action="store_false", help="leave out the Python reference engine"
    )
    args = parser.parse_args()

    bootstrap = os.environ.get("REWIND_BENCH_BOOTSTRAP")
    broker = None
    if not bootstrap:
        data = Path(tempfile.mkdtemp(prefix="rewind-bench-"))
        broker = LocalBroker(
            LocalBrokerSettings(data_dir=data, port=free_port(), controller_port=free_port())
        )
        bootstrap = broker.start()
    try:
        unique = uuid.uuid4().hex[:8]
        topics = TapTopics(unique)
        base = topics.settings(bootstrap)
        topics.create(base)
        txs = [transaction(1_000_000 + i, with_note=False) for i in range(args.transactions)]
        produce(bootstrap, topics, interleave(txs, seed=1))
        records = sum(len(tx) for tx in txs)
        sources = list(topics.map.values())
        out = f"{unique}.raw-out"
        clients.ensure_topics(clients.admin(base, bootstrap), [out], partitions=3, replication_factor=1)
        engines = (
            ["native", "python"]
            if native.available() and args.python
            else ["native" if native.available() else "python"]
        )
        runs: dict[str, list[Result]] = {}
        for i in range(args.rounds):
            runs.setdefault("raw pipe", []).append(
                run_raw_pipe(base, bootstrap, sources, out, records, args.transactions)
            )
            for engine in engines:
                settings = base.model_copy(update={
                    "group_id": f"bench-{unique}-{engine}-{i}",
                    "transactional_id_prefix": f"bench-{unique}-{engine}-{i}",
                    "topics": base.topics.model_copy(update={"journal": f"{unique}.journal.{engine}.{i}"}),
                    "tap": base.tap.model_copy(update={"commit_interval_ms": COMMIT_INTERVAL_MS}),
                })  # fmt: skip
                clients.ensure_topics(
                    clients.admin(base, bootstrap),
                    [settings.topics.journal],
                    partitions=3,
                    replication_factor=1,
                )
                result = run_tap(settings, bootstrap, args.transactions, records, engine)
                runs.setdefault(result.name, []).append(result)
        report(runs, args.transactions, records)
    finally:
        if broker:
            broker.stop()


def report(runs: dict[str, list[Result]], transactions: int, records: int) -> None:
    median = {name: sorted(rs, key=lambda r: r.wall_s)[len(rs) // 2] for name, rs in runs.items()}
    raw = median["raw pipe"]
    rounds = len(runs["raw pipe"])
    print(f"settings: {transactions} transactions = {records} records (BEGIN, row, outbox event, END each), "
          f"3 partitions per topic, commit interval {COMMIT_INTERVAL_MS} ms, read_committed, median of {rounds} rounds")  # fmt: skip
    print(
        f"{'pipeline':<14} {'records/s':>11} {'actions/s':>11} {'CPU µs/record':>14} {'wall s':>8} {'rate / raw':>11}"
    )
    for r in median.values():
        print(
            f"{r.name:<14} {r.records_per_s:>11,.0f} {r.actions_per_s:>11,.0f} {r.cpu_us_per_record:>14,.1f} "
            f"{r.wall_s:>8.2f} {r.records_per_s / raw.records_per_s:>11.2f}"
        )
    print("target: the tap's rate / the raw pipe's >= 0.5")
    print("all rounds (wall s): " + " | ".join(
        f"{name} " + ", ".join(f"{r.wall_s:.2f}" for r in rs) for name, rs in runs.items()))  # fmt: skip


if __name__ == "__main__":
    main()
