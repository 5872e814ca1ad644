"""`kill -9` at exact steps of the transactional commit (failpoints: before the offsets are sent, after
they are sent and before the commit, after the commit), at random commit counts, again and again: the
tap (`rewind tap`) journals every source transaction exactly once, the rollback worker (`rewind worker`)
emits every step's command exactly once and finishes the request. Kills from outside at random times
are in tests/integration (test_tap_exactly_once, test_rollback_exactly_once)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from processor.kafka.failpoints import ENV, STEPS
from processor.rollback.request import FieldPredicate, Selector, SelectorKind
from tests.faults.faultkit import (
    BAD_RULE,
    Outcome,
    Report,
    SteadyProducer,
    bad_orders_journaled,
    exactly_once,
    rewind,
    stop,
    tap_settings,
)
from tests.integration.rollkit import Services, StatusReader, send_request, sent_commands
from tests.integration.tapkit import TapTopics, interleave, read_journal, transaction

KILLS = 10  # the three steps of the commit in turn
ORDERS = 30  # 120 steps
FINAL = {"COMPLETED", "PARTIALLY_ROLLED_BACK", "REJECTED", "FAILED", "ABORTED"}


def _kill_plan(seed: str, most: int) -> list[tuple[str, int]]:
    rnd = random.Random(seed)
    return [(STEPS[i % len(STEPS)], rnd.randint(1, most)) for i in range(KILLS)]


def test_the_tap_killed_at_each_step_of_its_commit_journals_every_transaction_exactly_once(
    kafka_bootstrap: str, unique: str, tmp_path: Path, report: Report
) -> None:
    topics = TapTopics(unique)
    _base, settings = tap_settings(topics, kafka_bootstrap)
    log, source = tmp_path / "tap.log", SteadyProducer(kafka_bootstrap)
    fed: list[str] = []
    done = threading.Event()

    def feed() -> None:  # source transactions until every kill has happened: each commit has work
        tx = 10_000
        while not done.is_set():
            batch = [transaction(tx + i, with_note=i % 4 == 0) for i in range(8)]
            source.send(topics, interleave(batch, seed=tx))
            fed.extend(f"evt-{tx + i}" for i in range(8))
            tx += 8
            time.sleep(0.25)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    started = time.monotonic()
    try:
        for step, count in _kill_plan(unique, 12):
            tap = rewind("tap", settings, tmp_path, log, {ENV: f"{step}={count}"})
            assert tap.wait(120) == -9, (
                f"the tap never reached {step} {count} times:\n{log.read_text()[-2000:]}"
            )
    finally:
        done.set()
        feeder.join(30)
    source.drain()
    tap = rewind("tap", settings, tmp_path, log)  # unarmed: it journals the rest
    try:
        entries = read_journal(kafka_bootstrap, topics.journal, expect=len(fed), timeout_s=120)
    finally:
        stop(tap, log, stacks=len(locals().get("entries", [])) < len(fed))
    missing, doubled = exactly_once((e.action_id for e in entries), set(fed))
    kills = log.read_text().count("failpoint commit.")
    report.add(Outcome(
        f"tap journals {len(fed)} source transactions", f"tap: kill -9 at {kills} commit steps", len(fed),
        len(entries), len(missing), len(doubled), "no", time.monotonic() - started, kills,
    ))  # fmt: skip
    assert kills == KILLS
    assert not missing and not doubled, (
        f"missing {len(missing)}, doubled {doubled}\n{log.read_text()[-3000:]}"
    )


def test_the_worker_killed_at_each_step_of_its_commit_emits_every_step_once_and_finishes(
    kafka_bootstrap: str, unique: str, tmp_path: Path, report: Report
) -> None:
    topics, base, settings = bad_orders_journaled(
        kafka_bootstrap, unique, ORDERS, tmp_path, max_emits_per_s=40
    )
    log, steps = tmp_path / "worker.log", ORDERS * 4
    services = Services(kafka_bootstrap, topics, base.topics.journal).start()
    status = StatusReader(base)
    started = time.monotonic()
    try:
        request_id = send_request(
            base,
            Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse(BAD_RULE)),
        )
        for step, count in _kill_plan(unique, 5):
            worker = rewind("worker", settings, tmp_path, log, {ENV: f"{step}={count}"})
            if worker.wait(120) != -9:  # it finished the request before reaching the step: fine, if so
                break
        worker = rewind("worker", settings, tmp_path, log)
        final = status.wait(request_id, FINAL, 240)
    finally:
        stop(worker, log)
        services.stop()
        status.close()
    keys = [key for key, _attempt in sent_commands(kafka_bootstrap, topics)]
    expected = {s.idempotency_key for s in final.plan.steps} if final.plan else set()
    missing, doubled = exactly_once(keys, expected)
    kills = log.read_text().count("failpoint commit.")
    stuck = "no" if final.state.value == "COMPLETED" else f"{final.state.value}: {final.reason}"
    report.add(Outcome(
        f"rollback of {ORDERS} orders ({steps} steps)", f"worker: kill -9 at {kills} commit steps", steps,
        len(keys), len(missing), len(doubled), stuck, time.monotonic() - started, kills,
    ))  # fmt: skip
    assert final.state.value == "COMPLETED", f"{final.reason}\n{log.read_text()[-3000:]}"
    assert len(expected) == steps and not missing and not doubled, (missing, doubled)
    assert kills >= 10, f"only {kills} kills landed before the request finished"
