"""The graph builder on a real broker: `kill -9` it mid-stream, restart, and get the same graph,
resumed from its checkpoint rather than from the start of the journal."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from confluent_kafka import Producer

from processor.config import Settings
from processor.graph import store
from processor.graph.builder import CausalGraph
from processor.journal.model import JournalEntry
from processor.journal.serde import journal_key, serialize
from processor.kafka import clients

WORKFLOWS = 12_000  # ~90k entries: seconds of work, so kills land while the builder catches up
KILLS = 10


def workload(seed: int) -> list[JournalEntry]:
    rnd, entries, ts = random.Random(seed), [], 0
    for w in range(WORKFLOWS):
        ids: list[str] = []
        for i in range(rnd.randint(3, 12)):
            aid = f"w{w}-a{i}"
            causes = tuple(rnd.sample(ids, min(len(ids), rnd.randint(1, 2)))) if ids else ()
            if w and i == 0 and rnd.random() < 0.1:
                causes = (f"w{w - 1}-a0",)  # an explicit cause in another workflow
            ts += 1
            entries.append(JournalEntry(action_id=aid, action_type="T", changes=(), journal_ts_ms=ts, commit_ts_ms=ts,
                                        causation_ids=causes, correlation_id=f"wf-{w}",
                                        entities=(f"public.stock:{rnd.randint(0, 50)}",)))  # fmt: skip
            ids.append(aid)
    return entries


def test_kill_9_and_restart_gives_the_same_graph_from_the_checkpoint(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    journal = f"{unique}.journal"
    settings = Settings(bootstrap_servers=kafka_bootstrap)
    clients.ensure_topics(
        clients.admin(settings, kafka_bootstrap), [journal], partitions=3, replication_factor=1
    )
    entries = workload(seed=3)
    checkpoint = tmp_path / "graph.npz"
    config = tmp_path / "rewind.yaml"
    config.write_text(yaml.safe_dump({
        "bootstrap_servers": kafka_bootstrap, "group_id": f"g-{unique}", "metrics_port": 0,
        "topics": {"journal": journal, "deadletter": f"{unique}.dlq", "requests": f"{unique}.rq",
                   "control": f"{unique}.ctl", "status": f"{unique}.st", "partitions": 3},
        "graph": {"checkpoint_path": str(checkpoint), "checkpoint_interval_s": 0.3},
    }))  # fmt: skip

    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 200_000}
    )
    for e in entries:
        producer.produce(journal, key=journal_key(e), value=serialize(e))
    producer.flush(60)

    log = tmp_path / "graph.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", "processor.cli", "--config", str(config), "graph", "build"],
                                    stdout=out, stderr=out, env=env)  # fmt: skip

    rnd = random.Random(unique)
    builder = start()
    try:
        for _ in range(KILLS):
            time.sleep(rnd.uniform(1.5, 3.0))
            os.kill(builder.pid, signal.SIGKILL)
            builder.wait(10)
            builder = start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = store.load(checkpoint, journal) if checkpoint.exists() else None
            if found is not None and len(found.graph) == len(entries):
                break
            time.sleep(0.5)
    finally:
        builder.send_signal(signal.SIGTERM)
        builder.wait(60)

    text = log.read_text()
    assert found is not None, text[-3000:]
    expected = CausalGraph()
    for e in entries:
        expected.add(e)
    assert len(found.graph) == len(expected)
    assert found.graph.edge_set() == expected.edge_set()
    assert found.graph.dangling() == {} and found.graph.cross_workflow_edges == expected.cross_workflow_edges
    resumed = [int(n) for n in re.findall(r"resumed (\d+) actions", text)]
    # A kill can land before a fresh process has logged; the first start had nothing to resume.
    assert resumed and resumed[0] == 0
    assert any(0 < n < len(entries) for n in resumed[1:]), f"no restart resumed from a checkpoint: {resumed}"
    # Piped, the catch-up shows as plain progress lines: the first start had the whole journal to
    # read, and the last one reached its end.
    catch_up = [(int(d), int(t)) for d, t in re.findall(r"graph catch-up: (\d+)/(\d+) entries", text)]
    assert catch_up and catch_up[0][1] == len(entries), catch_up
    assert catch_up[-1][0] == catch_up[-1][1], catch_up
