"""A service that stops answering rewind's commands for a while, mid-rollback: shorter than the
confirmation timeout, the request waits and completes, every command emitted once; longer than every
attempt's timeout, the request ends within a bound listing what remains, and never hangs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from processor.rollback.request import FieldPredicate, Selector, SelectorKind
from tests.faults.faultkit import Outcome, Report, exactly_once, restarts, rewind, stop
from tests.integration.rollkit import RollbackTopics, Services, StatusReader, publish_journal, send_request
from tests.integration.tapkit import headers_of, read_topic
from tests.unit.rollback.world import World

ORDERS = 20  # 80 steps
FINAL = {"COMPLETED", "PARTIALLY_ROLLED_BACK", "REJECTED", "FAILED", "ABORTED"}
CONFIRM_S, ATTEMPTS = 8.0, 2


@pytest.mark.parametrize(("deaf_s", "ends"), [(5.0, "COMPLETED"), (40.0, "PARTIALLY_ROLLED_BACK")])
def test_a_service_not_answering_for_a_while_delays_or_ends_the_request_never_hangs_it(
    deaf_s: float, ends: str, kafka_bootstrap: str, unique: str, tmp_path: Path, report: Report
) -> None:
    topics = RollbackTopics(unique)
    base = topics.settings(kafka_bootstrap)
    topics.create(base)
    world = World()
    for n in range(ORDERS):
        world.order(n, rule="v7", price=90)
    publish_journal(kafka_bootstrap, base.topics.journal, world.entries)
    settings = {
        "bootstrap_servers": kafka_bootstrap, "group_id": base.group_id,
        "transactional_id_prefix": base.transactional_id_prefix, "topics": base.topics.model_dump(mode="json"),
        "signing": base.signing.model_dump(mode="json"),
        "rollback": {
            "catalog_file": str(topics.catalog(tmp_path)), "notify_topic": base.rollback.notify_topic,
            "approve_over_irreversible": 1000, "approve_over_steps": 1000, "confirm_timeout_s": CONFIRM_S,
            "max_attempts": ATTEMPTS, "backoff": 1.0, "max_emits_per_transaction": 4, "max_emits_per_s": 40,
        },
    }  # fmt: skip
    log, steps = tmp_path / "worker.log", ORDERS * 4
    services = Services(kafka_bootstrap, topics, base.topics.journal).start()
    worker = rewind("worker", settings, tmp_path, log)
    status = StatusReader(base)
    try:
        request_id = send_request(
            base,
            Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"')),
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
    commands = [m for t in topics.commands for m in read_topic(kafka_bootstrap, t, expect=0, timeout_s=10)]
    keys = [headers_of(m)["rewind.idempotency_key"].decode() for m in commands]
    attempts = {(headers_of(m)["rewind.idempotency_key"], headers_of(m)["rewind.attempt"]) for m in commands}
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
