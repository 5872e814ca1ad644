"""Tap start-up: seeding the dedupe index and open intents from journal entries read back (Avro
bytes), native engine and Python reference side by side, offline (the read from Kafka is left out).

    .venv/bin/python -m bench.tap.seed [--transactions 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from processor.catalog.catalog import Catalog
from processor.journal.serde import serialize
from processor.tap import native
from processor.tap.core import PythonTapCore, TapCore
from processor.tap.native import NativeTapCore
from tests.integration.tapkit import TapTopics, transaction


def journal(transactions: int) -> tuple[TapTopics, list[bytes]]:
    topics = TapTopics("bench")
    core = PythonTapCore(topics.settings("unused:9092"), Catalog.empty())
    offsets: dict[str, int] = {}
    values: list[bytes] = []
    for i in range(transactions):
        for r in transaction(3_000_000 + i, with_note=i % 4 == 0):
            offset = offsets[r.topic] = offsets.get(r.topic, -1) + 1
            record = dataclasses.replace(r, topic=topics.map[r.topic], offset=offset)
            values += [serialize(e) for e in core.process(record, 1_000_000).entries]
    return topics, values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=100_000)
    args = parser.parse_args()
    topics, values = journal(args.transactions)
    settings = topics.settings("unused:9092")
    engines: list[tuple[str, type[TapCore]]] = [("python", PythonTapCore)]
    if native.available():
        engines.insert(0, ("native", NativeTapCore))
    print(f"{'engine':<8} {'entries':>10} {'µs/entry':>10} {'s':>8} {'identities':>12}")
    for name, cls in engines:
        core = cls(settings, Catalog.empty())  # type: ignore[call-arg]
        started = time.perf_counter()
        core.seed_journal(values)
        took = time.perf_counter() - started
        print(
            f"{name:<8} {len(values):>10,} {took / len(values) * 1e6:>10.1f} {took:>8.2f} {core.dedupe_size:>12,}"
        )


if __name__ == "__main__":
    main()
