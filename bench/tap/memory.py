"""Memory the tap core keeps per journaled action (dedupe index, caches), native engine and Python
reference side by side, offline (no broker): RSS growth over N transactions, each in a fresh process.

    .venv/bin/python -m bench.tap.memory [--transactions 200000]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import subprocess
import sys

from processor.catalog.catalog import Catalog
from processor.tap import native
from processor.tap.core import PythonTapCore, TapCore
from processor.tap.native import NativeTapCore
from tests.integration.tapkit import TapTopics, transaction


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(engine: str, transactions: int) -> None:
    topics = TapTopics("bench")
    settings = topics.settings("unused:9092")
    core: TapCore = (NativeTapCore if engine == "native" else PythonTapCore)(settings, Catalog.empty())
    offsets: dict[str, int] = {}
    gc.collect()
    before = rss_bytes()
    for i in range(transactions):
        for r in transaction(2_000_000 + i, with_note=False):
            offset = offsets[r.topic] = offsets.get(r.topic, -1) + 1
            core.process(dataclasses.replace(r, topic=topics.map[r.topic], offset=offset), 1_000_000)
    gc.collect()
    grown = rss_bytes() - before
    print(f"{engine:<8} {transactions:>10,} {core.dedupe_size:>12,} {grown / transactions:>16,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument("--engine", help=argparse.SUPPRESS)  # one engine, in a child process
    args = parser.parse_args()
    if args.engine:
        measure(args.engine, args.transactions)
        return
    print(f"{'engine':<8} {'actions':>10} {'identities':>12} {'RSS bytes/action':>16}")
    for engine in ["native", "python"] if native.available() else ["python"]:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.tap.memory",
                "--transactions",
                str(args.transactions),
                "--engine",
                engine,
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
