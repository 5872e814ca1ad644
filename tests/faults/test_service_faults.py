"""A service that stops answering rewind's commands for a while, mid-rollback: shorter than the
confirmation timeout, the request waits and completes, every command emitted once; longer than every
attempt's timeout, the request ends within a bound listing what remains, and never hangs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from processor.rollback.request import FieldPredicate, Selector, SelectorKind
from tests.faults.faultkit import (
    BAD_RULE,
    Outcome,
    Report,
    bad_orders_journaled,
    exactly_once,
    restarts,
    rewind,
    stop,
)
from tests.integration.rollkit import Services, StatusReader, send_request, sent_commands

ORDERS = 20  # 80 steps
FINAL = {"COMPLETED", "PARTIALLY_ROLLED_BACK", "REJECTED", "FAILED", "ABORTED"}
CONFIRM_S, ATTEMPTS = 8.0, 2


@pytest.mark.parametrize(("deaf_s", "ends"), [(5.0, "COMPLETED"), (40.0, "PARTIALLY_ROLLED_BACK")])
def test_a_service_not_answering_for_a_while_delays_or_ends_the_request_never_hangs_it(
    deaf_s: float, ends: str, kafka_bootstrap: str, unique: str, tmp_path: Path, report: Report
) -> None:
    topics, base, settings = bad_orders_journaled(
        kafka_bootstrap, unique, ORDERS, tmp_path, confirm_timeout_s=CONFIRM_S, max_attempts=ATTEMPTS, backoff=1.0,
        max_emits_per_transaction=4, max_emits_per_s=40,
    )  # fmt: skip
    log, steps = tmp_path / "worker.log", ORDERS * 4
    services = Services(kafka_bootstrap, topics, base.topics.journal).start()
    worker = rewind("worker", settings, tmp_path, log)
    status = StatusReader(base)
    try:
        request_id = send_request(
            base,
            Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse(BAD_RULE)),
        )
        deadline = time.monotonic() + 120
        while len(services.seen) < steps // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        services.go_deaf(deaf_s)
        deaf_from = time.monotonic()
        bound = deaf_s + CONFIRM_S * ATTEMPTS * 3 + 60  # the longest a request may take from here
        final = status.wait(request_id, FINAL, bound)
        took = time.monotonic() - deaf_from
    finally:
        stop(worker, log)
        services.stop()
        status.close()
    sent = sent_commands(kafka_bootstrap, topics)
    keys, attempts = [key for key, _attempt in sent], set(sent)
    assert final.plan is not None
    expected = {s.idempotency_key for s in final.plan.steps if s.attempts > 0}
    missing, doubled = exactly_once({k for k in keys}, expected)
    remaining = [s for s in final.plan.steps if s.state.value in ("PENDING", "FAILED")]  # not done
    stuck = "no" if final.final else f"{final.state.value} after {took:.0f} s"
    report.add(Outcome(
        f"rollback of {ORDERS} orders ({steps} steps)",
        f"a service deaf for {deaf_s:.0f} s (confirmation timeout {CONFIRM_S:.0f} s x {ATTEMPTS} attempts): "
        f"{final.state.value}, {len(remaining)} steps left listed",
        steps, len(set(keys)), len(missing), 0, stuck, took, restarts(log),
    ))  # fmt: skip
    assert final.state.value == ends, final.reason
    assert not missing and len(attempts) == len(keys), "a command was emitted twice for one attempt"
    if ends == "COMPLETED":
        assert not doubled and set(keys) == expected and not remaining
    else:
        # what remains is listed: the steps whose every attempt went unanswered, and those never started
        assert remaining and (final.reason or "").startswith("remaining: "), final.reason
        assert any(s.state.value == "FAILED" and s.attempts == ATTEMPTS for s in remaining)
