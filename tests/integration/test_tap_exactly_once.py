"""Exactly once, proven by killing the tap (`kill -9`) mid-work, restarting it, and counting."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from processor.tap import native
from tests.integration.principals import Cluster
from tests.integration.tapkit import TapTopics, interleave, produce, read_journal, transaction

TRANSACTIONS = 400
KILLS = 4


def _config(topics: TapTopics, bootstrap: str, path: Path, cluster: Cluster | None = None) -> Path:
    s = topics.settings(bootstrap)
    path.write_text(yaml.safe_dump({
        "bootstrap_servers": bootstrap,
        "group_id": s.group_id,
        "transactional_id_prefix": s.transactional_id_prefix,
        "metrics_port": 0,
        "topics": s.topics.model_dump(mode="json"),
        "tap": {"outbox": {"topic_prefix": s.tap.outbox.topic_prefix}, "commit_interval_ms": 100},
        **(cluster.file_settings(s, "tap") if cluster else {}),
    }))  # fmt: skip
    return path


def _start_tap(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "processor.cli", "--config", str(config), "tap"],
                                stdout=out, stderr=out, env=env)  # fmt: skip


def test_kill_9_at_random_points_journals_every_action_exactly_once(
    cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    """On the plain broker, and on the secured one with the tap on its own principal (the records
    written by the connector's, here the admin's, and the journal read back as the admin)."""
    kafka_bootstrap, topics = cluster.bootstrap, TapTopics(unique)
    base = topics.settings(kafka_bootstrap)
    if cluster.secured is None:
        topics.create(base)
    else:
        cluster.admin_step(base, list(topics.map.values()))
    source = cluster.conf(base, "admin")
    config = _config(topics, kafka_bootstrap, tmp_path / "rewind.yaml", cluster)
    log = tmp_path / "tap.log"
    txs = [transaction(10_000 + i, with_note=i % 4 == 0) for i in range(TRANSACTIONS)]

    def feed() -> None:
        """A steady stream over ~12 s, so kills land while records keep arriving. In each batch, three
        transactions' END records come only with the next batch: their records stay held across many
        commits while later transactions are journaled, so a crash re-reads journaled work."""
        late: list = []  # type: ignore[type-arg]
        for start in range(0, TRANSACTIONS, 20):
            batch = txs[start : start + 20]
            ends = [tx[-1] for tx in batch[:3]]
            records = late + interleave([tx[:-1] for tx in batch[:3]] + batch[3:], seed=start)
            produce(kafka_bootstrap, topics, records, source)
            late = ends
            time.sleep(0.6)
        produce(kafka_bootstrap, topics, late, source)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    rnd = random.Random(unique)
    tap = _start_tap(config, log)
    kills_while_feeding = 0
    try:
        for _ in range(KILLS):
            time.sleep(rnd.uniform(1.5, 4.0))
            kills_while_feeding += feeder.is_alive()
            os.kill(tap.pid, signal.SIGKILL)
            tap.wait(10)
            tap = _start_tap(config, log)
        feeder.join(120)
        entries = read_journal(
            kafka_bootstrap, topics.journal, expect=TRANSACTIONS, timeout_s=180, conf=source
        )
    finally:
        tap.send_signal(signal.SIGTERM)
        tap.wait(60)

    counts = Counter(e.action_id for e in entries)
    missing = {f"evt-{10_000 + i}" for i in range(TRANSACTIONS)} - set(counts)
    doubled = {k: v for k, v in counts.items() if v > 1}
    assert not missing and not doubled, (
        f"missing {len(missing)}, doubled {doubled}; log:\n{log.read_text()[-3000:]}"
    )
    assert len(entries) == TRANSACTIONS
    assert kills_while_feeding >= 2, "the kills did not land mid-work"
    engine = "native" if native.available() else "python"
    assert f"tap ({engine} engine) seeded" in log.read_text(), "the tap that was killed is the one users run"
    for e in entries:
        tx = int(e.action_id.removeprefix("evt-")) - 10_000
        assert len(e.changes) == (2 if tx % 4 == 0 else 1) and e.complete, e.action_id
