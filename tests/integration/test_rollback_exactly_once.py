"""Each step's command is emitted exactly once, proven by killing the worker (`kill -9`) at several
points of a paced rollback, restarting it, and counting commands by idempotency key (read_committed):
the worker alone (rebuilding its graph at each start), and inside `rewind run` beside the graph builder
(starting from its checkpoint and the worker's action store)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from processor.config import Settings
from processor.graph import store as graph_store
from processor.rollback.request import FieldPredicate, Selector, SelectorKind
from tests.integration.principals import Cluster
from tests.integration.rollkit import (
    RollbackTopics,
    Services,
    StatusReader,
    publish_journal,
    send_request,
    sent_commands,
)
from tests.unit.rollback.world import World

ORDERS = 50  # 200 steps in 4 waves
KILLS = 4


def _config(topics: RollbackTopics, bootstrap: str, tmp_path: Path, cluster: Cluster | None = None) -> Path:
    """The worker's settings file (on the secured broker: as the worker's principal)."""
    s = topics.settings(bootstrap)
    path = tmp_path / "rewind.yaml"
    path.write_text(yaml.safe_dump({
        "bootstrap_servers": bootstrap, "group_id": s.group_id,
        "transactional_id_prefix": s.transactional_id_prefix, "metrics_port": 0,
        "topics": s.topics.model_dump(mode="json"), "signing": s.signing.model_dump(mode="json"),
        **(cluster.file_settings(s, "worker") if cluster else {}),
        "catalog_file": str(topics.catalog(tmp_path)),
        "rollback": {
            "notify_topic": s.rollback.notify_topic,
            "approve_over_irreversible": 1000, "approve_over_steps": 1000, "confirm_timeout_s": 120,
            "max_emits_per_transaction": 2, "max_emits_per_s": 25,
        },
    }))  # fmt: skip
    return path


def _start(config: Path, log: Path, command: str = "worker") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "processor.cli", "--config", str(config), command],
                                stdout=out, stderr=out, env=env)  # fmt: skip


def _orders_journaled(bootstrap: str, unique: str) -> tuple[RollbackTopics, Settings, World]:
    """ORDERS orders priced by the bad rule and one untouched, journaled; rewind's topics created."""
    topics = RollbackTopics(unique)
    settings = topics.settings(bootstrap)
    topics.create(settings)
    world = World()
    for n in range(ORDERS):
        world.order(n, rule="v7", price=90)
    world.order(ORDERS, rule="v6", price=100)  # untouched
    publish_journal(bootstrap, settings.topics.journal, world.entries)
    return topics, settings, world


def _wait_for(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def test_kill_9_at_several_points_emits_every_step_exactly_once(
    cluster: Cluster, unique: str, tmp_path: Path
) -> None:
    """On the plain broker, and on the secured one with the worker, the services, the tap (the
    journal's writer) and the operator each on its own principal."""
    kafka_bootstrap, topics = cluster.bootstrap, RollbackTopics(unique)
    base = topics.settings(kafka_bootstrap)
    cluster.prepare(topics, base, topics.catalog(tmp_path))
    world = World()
    for n in range(ORDERS):
        world.order(n, rule="v7", price=90)
    world.order(ORDERS, rule="v6", price=100)  # untouched
    publish_journal(kafka_bootstrap, base.topics.journal, world.entries, cluster.conf(base, "tap"))
    config, log = _config(topics, kafka_bootstrap, tmp_path, cluster), tmp_path / "worker.log"
    services = Services(kafka_bootstrap, topics, base.topics.journal, conf=cluster.conf(base, "service"),
                        journal_conf=cluster.conf(base, "tap"), journal_group=f"{base.group_id}-seed").start()  # fmt: skip
    settings = cluster.settings(base, "operator")  # who requests, and reads the status
    status = StatusReader(settings)
    rnd = random.Random(unique)

    def ready() -> int:
        return log.read_text().count("requests resumed") if log.exists() else 0

    worker, readied = _start(config, log), 0
    kills_mid_emission = 0
    try:
        # Kill points: while the request is being planned, then, once the restarted worker is ready,
        # each time a further share of the commands has reached the services (so every kill lands
        # mid-emission of a resumed request, whatever the start-up time).
        request_id = send_request(settings, Selector(SelectorKind.FIELD_PREDICATE,
                                                     predicate=FieldPredicate.parse('rule_version == "v7"')))  # fmt: skip
        time.sleep(rnd.uniform(0.0, 0.5))
        targets = [0, *sorted(rnd.sample(range(10, ORDERS * 4 - 20), KILLS - 1))]
        for target in targets:
            if target:
                _wait_for(lambda r=readied: ready() > r, 120)
            _wait_for(lambda t=target: len(services.seen) >= t, 120)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            kills_mid_emission += 0 < len(services.seen) < ORDERS * 4
            worker, readied = _start(config, log), ready()
        final = status.wait(request_id, {"COMPLETED", "PARTIALLY_ROLLED_BACK", "REJECTED", "FAILED"}, 240)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        services.stop()
        status.close()

    assert final.state.value == "COMPLETED", f"{final.reason}\n{log.read_text()[-3000:]}"
    keys = Counter(key for key, _ in sent_commands(kafka_bootstrap, topics, cluster.conf(base, "admin")))
    doubled = {k: n for k, n in keys.items() if n > 1}
    expected = {s.idempotency_key for s in final.plan.steps}  # type: ignore[union-attr]
    assert not doubled and set(keys) == expected, f"doubled {doubled}, missing {expected - set(keys)}"
    assert len(expected) == ORDERS * 4
    assert all(s.attempts == 1 for s in final.plan.steps)  # type: ignore[union-attr]
    assert kills_mid_emission >= KILLS - 1, "the kills did not land while commands were flowing"
    assert ready() >= KILLS, "a restarted worker was killed before it was ready"
    # The first worker may die before it reads the request; every later one resumes it.
    assert log.read_text().count(", 1 requests resumed") >= KILLS - 1


def test_kill_9_after_a_checkpoint_restarts_from_it_and_emits_every_step_exactly_once(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topics, settings, world = _orders_journaled(kafka_bootstrap, unique)
    config, log = _config(topics, kafka_bootstrap, tmp_path), tmp_path / "run.log"
    checkpoint = tmp_path / "graph.npz"
    text = yaml.safe_load(config.read_text())
    text["graph"] = {"checkpoint_path": str(checkpoint), "checkpoint_interval_s": 0.5}
    text["rollback"]["store_path"] = str(tmp_path / "actions.sqlite")
    config.write_text(yaml.safe_dump(text))

    def checkpointed() -> int:
        found = graph_store.load(checkpoint, settings.topics.journal) if checkpoint.is_file() else None
        return len(found.graph) if found else 0

    services = Services(kafka_bootstrap, topics, settings.topics.journal).start()
    status = StatusReader(settings)
    rnd = random.Random(unique)
    process = _start(config, log, "run")
    try:
        _wait_for(lambda: checkpointed() >= len(world.entries), 120)
        assert checkpointed() >= len(world.entries), "the graph builder never checkpointed the journal"
        request_id = send_request(settings, Selector(SelectorKind.FIELD_PREDICATE,
                                                     predicate=FieldPredicate.parse('rule_version == "v7"')))  # fmt: skip
        for started, target in enumerate(sorted(rnd.sample(range(10, ORDERS * 4 - 20), KILLS)), start=1):
            # each kill lands on a worker that is up: two targets close together would otherwise kill
            # a process before it started, which proves nothing
            _wait_for(lambda n=started: log.read_text().count("rollback: ready with") >= n, 120)
            _wait_for(lambda t=target: len(services.seen) >= t, 120)
            os.kill(process.pid, signal.SIGKILL)  # graph builder and worker together, mid-emission
            process.wait(10)
            process = _start(config, log, "run")
        final = status.wait(request_id, {"COMPLETED", "PARTIALLY_ROLLED_BACK", "REJECTED", "FAILED"}, 240)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"rewind run did not stop on SIGTERM\n{log.read_text()[-3000:]}") from None
        services.stop()
        status.close()

    out = log.read_text()
    assert final.state.value == "COMPLETED", f"{final.reason}\n{out[-3000:]}"
    keys = Counter(key for key, _ in sent_commands(kafka_bootstrap, topics))
    expected = {s.idempotency_key for s in final.plan.steps}  # type: ignore[union-attr]
    assert max(keys.values()) == 1 and set(keys) == expected and len(expected) == ORDERS * 4
    assert all(s.attempts == 1 for s in final.plan.steps), "a confirmation was lost at a restart"  # type: ignore[union-attr]
    restarts = [line for line in out.splitlines() if "rollback: ready with" in line][1:]
    assert len(restarts) == KILLS
    assert out.count("rollback: graph checkpoint at") >= KILLS, "the restarts did not use the checkpoint"
    for line in restarts:  # "ready with N actions (M journal records read in ..."
        total, read = (
            int(x) for x in re.findall(r"with (\d+) actions \((\d+) journal records read", line)[0]
        )
        assert read < total // 2, f"a restart read most of the journal again: {line}"
