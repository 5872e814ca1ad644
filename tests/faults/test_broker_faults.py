"""The broker rewind stands on fails while work flows, three ways in a row: `kill -9` and a restart on
the same storage, SIGSTOP for longer than the clients' session and transaction timeouts, a clean
restart. The tap (a `rewind tap` process) must journal every source transaction exactly once, and the
rollback worker (a `rewind worker` process) emit every step's command exactly once and finish the
request, both without a human: no restart of rewind, no intervention. Each fault's recovery is timed:
from its end until the work flows again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from processor.rollback.request import FieldPredicate, Selector, SelectorKind
from tests.faults.faultkit import (
    BAD_RULE,
    FAULTS,
    Bouncer,
    Outcome,
    Report,
    SteadyProducer,
    bad_orders_journaled,
    exactly_once,
    restarts,
    rewind,
    stop,
    tap_settings,
)
from tests.integration.rollkit import Services, StatusReader, send_request, sent_commands
from tests.integration.tapkit import TapTopics, interleave, read_journal, transaction

ORDERS = 40  # 160 steps, paced so the three faults land mid-emission
FINAL = {"COMPLETED", "PARTIALLY_ROLLED_BACK", "REJECTED", "FAILED", "ABORTED"}


def _until(condition: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``condition`` held (polled), or the timeout."""
    started = time.monotonic()
    while not condition() and time.monotonic() - started < timeout_s:
        time.sleep(0.2)
    return time.monotonic() - started


def test_the_tap_journals_every_transaction_exactly_once_through_three_broker_faults(
    bouncer: Bouncer, unique: str, tmp_path: Path, report: Report
) -> None:
    topics = TapTopics(unique)
    _base, settings = tap_settings(topics, bouncer.bootstrap)
    log, source, done = tmp_path / "tap.log", SteadyProducer(bouncer.bootstrap), threading.Event()
    fed: list[str] = []

    def feed() -> None:  # source transactions as Debezium writes them, until the faults are over
        tx = 10_000
        while not done.is_set():
            source.send(
                topics, interleave([transaction(tx + i, with_note=i % 4 == 0) for i in range(5)], seed=tx)
            )
            fed.extend(f"evt-{tx + i}" for i in range(5))
            tx += 5
            time.sleep(0.25)

    def journaled(count: int) -> Callable[[], bool]:
        return lambda: len(read_journal(bouncer.bootstrap, topics.journal, expect=0, timeout_s=5)) >= count

    tap = rewind("tap", settings, tmp_path, log)
    feeder = threading.Thread(target=feed, daemon=True)
    recovered: dict[str, float] = {}
    try:
        time.sleep(3)  # the tap is up
        feeder.start()
        for fault in FAULTS:
            time.sleep(3)  # journaling
            bouncer.fault(fault)()
            recovered[bouncer.log[-1]] = _until(journaled(len(fed)), 120)  # all fed until the fault's end
        done.set()
        feeder.join(30)
        source.drain()
        entries = read_journal(bouncer.bootstrap, topics.journal, expect=len(fed), timeout_s=120)
    finally:
        done.set()
        stop(tap, log, stacks=len(locals().get("entries", [])) < len(fed))
    missing, doubled = exactly_once((e.action_id for e in entries), set(fed))
    for fault, seconds in recovered.items():
        report.add(Outcome(
            f"tap journals {len(fed)} source transactions (three faults in a row)", f"broker: {fault}", len(fed),
            len(entries), len(missing), len(doubled), "no", seconds, restarts(log),
        ))  # fmt: skip
    assert not missing and not doubled, (
        f"missing {len(missing)}, doubled {doubled}\n{log.read_text()[-3000:]}"
    )
    assert all(e.complete for e in entries)


def test_a_rollback_emits_every_step_once_and_finishes_through_three_broker_faults(
    bouncer: Bouncer, unique: str, tmp_path: Path, report: Report
) -> None:
    topics, base, settings = bad_orders_journaled(
        bouncer.bootstrap, unique, ORDERS, tmp_path, max_emits_per_s=16
    )
    log, steps = tmp_path / "worker.log", ORDERS * 4
    services = Services(bouncer.bootstrap, topics, base.topics.journal).start()
    worker = rewind("worker", settings, tmp_path, log)
    status = StatusReader(base)
    recovered: dict[str, float] = {}
    try:
        request_id = send_request(
            base,
            Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse(BAD_RULE)),
        )
        for share, fault in zip((0.1, 0.3, 0.5), FAULTS, strict=True):  # each lands mid-emission
            _until(lambda s=share: len(services.seen) >= steps * s, 120)  # type: ignore[misc]
            bouncer.fault(fault)()
            seen = len(services.seen)
            recovered[bouncer.log[-1]] = _until(lambda n=seen: len(services.seen) > n, 120)  # type: ignore[misc]
        final = status.wait(request_id, FINAL, 240)
    finally:
        stop(worker, log)
        services.stop()
        status.close()
    keys = [key for key, _attempt in sent_commands(bouncer.bootstrap, topics)]
    expected = {s.idempotency_key for s in final.plan.steps} if final.plan else set()
    missing, doubled = exactly_once(keys, expected)
    stuck = "no" if final.state.value == "COMPLETED" else f"{final.state.value}: {final.reason}"
    for fault, seconds in recovered.items():
        report.add(Outcome(
            f"rollback of {ORDERS} orders ({steps} steps, three faults in a row)", f"broker: {fault}", steps,
            len(keys), len(missing), len(doubled), stuck, seconds, restarts(log),
        ))  # fmt: skip
    assert final.state.value == "COMPLETED", f"{final.reason}\n{log.read_text()[-3000:]}"
    assert len(expected) == steps and not missing and not doubled, (missing, doubled)
    assert all(s.attempts == 1 for s in final.plan.steps)  # type: ignore[union-attr]
