"""The broker rewind stands on fails while work flows: `kill -9` and a restart on the same storage,
SIGSTOP for longer than the clients' session and transaction timeouts, a clean restart. The tap (a
`rewind tap` process) must journal every source transaction exactly once, and the rollback worker (a
`rewind worker` process) emit every step's command exactly once and finish the request, both without a
human: no restart of rewind, no intervention."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from processor.rollback.request import FieldPredicate, Selector, SelectorKind
from tests.faults.faultkit import (
    FAULTS,
    Bouncer,
    Outcome,
    Report,
    SteadyProducer,
    exactly_once,
    restarts,
    rewind,
    stop,
)
from tests.integration.rollkit import RollbackTopics, Services, StatusReader, publish_journal, send_request
from tests.integration.tapkit import TapTopics, headers_of, interleave, read_journal, read_topic, transaction
from tests.unit.rollback.world import World

TRANSACTIONS = 300  # fed over ~12 s
ORDERS = 40  # 160 steps
FINAL = {"COMPLETED", "PARTIALLY_ROLLED_BACK", "REJECTED", "FAILED", "ABORTED"}


@pytest.mark.parametrize("fault", FAULTS)
def test_the_tap_journals_every_transaction_exactly_once_through_a_broker_fault(
    fault: str, bouncer: Bouncer, unique: str, tmp_path: Path, report: Report
) -> None:
    topics = TapTopics(unique)
    base = topics.settings(bouncer.bootstrap)
    topics.create(base)
    settings = {
        "bootstrap_servers": bouncer.bootstrap, "group_id": base.group_id,
        "transactional_id_prefix": base.transactional_id_prefix, "topics": base.topics.model_dump(mode="json"),
        "tap": {"outbox": {"topic_prefix": base.tap.outbox.topic_prefix}, "commit_interval_ms": 100},
    }  # fmt: skip
    log = tmp_path / "tap.log"
    txs = [transaction(10_000 + i, with_note=i % 4 == 0) for i in range(TRANSACTIONS)]
    source = SteadyProducer(bouncer.bootstrap)

    def feed() -> None:  # ~12 s of source transactions, as Debezium would write them
        for start in range(0, TRANSACTIONS, 25):
            source.send(topics, interleave(txs[start : start + 25], seed=start))
            time.sleep(1.0)

    tap = rewind("tap", settings, tmp_path, log)
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        time.sleep(3)  # the tap is up and journaling
        feeder.start()
        time.sleep(3)
        bouncer.fault(fault)()
        fault_ended = time.monotonic()
        feeder.join(120)
        source.drain()
        entries = read_journal(bouncer.bootstrap, topics.journal, expect=TRANSACTIONS, timeout_s=120)
        recovered = time.monotonic() - fault_ended
    finally:
        stop(tap, log, stacks=len(locals().get("entries", [])) < TRANSACTIONS)
    missing, doubled = exactly_once(
        (e.action_id for e in entries), {f"evt-{10_000 + i}" for i in range(TRANSACTIONS)}
    )
    report.add(Outcome(
        f"tap journals {TRANSACTIONS} source transactions", f"broker: {bouncer.log[-1]}", TRANSACTIONS,
        len(entries), len(missing), len(doubled), "no", recovered, restarts(log),
    ))  # fmt: skip
    assert not missing and not doubled, (
        f"missing {len(missing)}, doubled {doubled}\n{log.read_text()[-3000:]}"
    )
    assert all(e.complete for e in entries)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_rollback_emits_every_step_once_and_finishes_through_a_broker_fault(
    fault: str, bouncer: Bouncer, unique: str, tmp_path: Path, report: Report
) -> None:
    topics = RollbackTopics(unique)
    base = topics.settings(bouncer.bootstrap)
    topics.create(base)
    world = World()
    for n in range(ORDERS):
        world.order(n, rule="v7", price=90)
    world.order(ORDERS, rule="v6", price=100)  # untouched
    publish_journal(bouncer.bootstrap, base.topics.journal, world.entries)
    settings = {
        "bootstrap_servers": bouncer.bootstrap, "group_id": base.group_id,
        "transactional_id_prefix": base.transactional_id_prefix, "topics": base.topics.model_dump(mode="json"),
        "signing": base.signing.model_dump(mode="json"),
        "rollback": {
            "catalog_file": str(topics.catalog(tmp_path)), "notify_topic": base.rollback.notify_topic,
            "approve_over_irreversible": 1000, "approve_over_steps": 1000, "confirm_timeout_s": 180,
            "max_emits_per_transaction": 2, "max_emits_per_s": 20,
        },
    }  # fmt: skip
    log = tmp_path / "worker.log"
    services = Services(bouncer.bootstrap, topics, base.topics.journal).start()
    worker = rewind("worker", settings, tmp_path, log)
    status = StatusReader(base)
    steps = ORDERS * 4
    try:
        request_id = send_request(
            base,
            Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"')),
        )
        deadline = time.monotonic() + 120
        while len(services.seen) < steps // 4 and time.monotonic() < deadline:  # mid-emission
            time.sleep(0.05)
        bouncer.fault(fault)()
        fault_ended = time.monotonic()
        final = status.wait(request_id, FINAL, 240)
        recovered = time.monotonic() - fault_ended
    finally:
        stop(worker, log)
        services.stop()
        status.close()
    commands = [m for t in topics.commands for m in read_topic(bouncer.bootstrap, t, expect=0, timeout_s=10)]
    keys = [headers_of(m)["rewind.idempotency_key"].decode() for m in commands]
    expected = {s.idempotency_key for s in final.plan.steps} if final.plan else set()
    missing, doubled = exactly_once(keys, expected)
    stuck = "no" if final.state.value == "COMPLETED" else f"{final.state.value}: {final.reason}"
    report.add(Outcome(
        f"rollback of {ORDERS} orders ({steps} steps)", f"broker: {bouncer.log[-1]}", steps, len(keys),
        len(missing), len(doubled), stuck, recovered, restarts(log),
    ))  # fmt: skip
    assert final.state.value == "COMPLETED", f"{final.reason}\n{log.read_text()[-3000:]}"
    assert len(expected) == steps and not missing and not doubled, (missing, doubled)
