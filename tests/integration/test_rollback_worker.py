"""The rollback worker on a real broker: scope and isolation, reverse order, dry run, approval,
rejection and dead letters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.config import Settings
from processor.rollback.request import ControlCommand, FieldPredicate, Mode, Selector, SelectorKind
from processor.security.signature import Kind, signed_headers
from tests.integration.rollkit import (
    APPROVER,
    OPERATOR,
    RollbackTopics,
    Running,
    key_of,
    people,
    publish_journal,
    send_control,
    send_raw,
    send_request,
)
from tests.integration.tapkit import headers_of, read_topic
from tests.unit.rollback.world import World

V7 = Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"'))


@pytest.fixture
def shop(kafka_bootstrap: str, unique: str) -> Iterator[tuple[World, RollbackTopics, Settings]]:
    topics = RollbackTopics(unique)
    settings = topics.settings(kafka_bootstrap, approve_over_irreversible=10, confirm_timeout_s=30)
    topics.create(settings)
    world = World()
    for n in range(1, 7):
        world.order(n, rule="v7" if n in (2, 5) else "v6", price=90 if n in (2, 5) else 100)
    publish_journal(kafka_bootstrap, settings.topics.journal, world.entries)
    yield world, topics, settings


def test_only_the_bad_workflows_are_undone_in_reverse_order_and_verified(
    shop: tuple[World, RollbackTopics, Settings], tmp_path: Path
) -> None:
    _, topics, settings = shop
    with Running(settings, topics, tmp_path) as run:
        request_id = send_request(settings, V7)
        final = run.status.wait(request_id, {"COMPLETED", "PARTIALLY_ROLLED_BACK", "REJECTED", "FAILED"}, 90)
        commands = list(run.services.seen)
    assert final.state.value == "COMPLETED", final.reason
    assert final.verification == []
    undone = [c["compensated_action_id"] for c in commands]
    assert sorted(undone) == sorted(
        f"{kind}-{n}" for kind in ("price", "reserve", "pay", "mail") for n in (2, 5)
    )
    steps = {s.action_id: s for s in final.plan.steps}  # type: ignore[union-attr]
    for n in (2, 5):  # each effect undone before its cause: in waves, and in what the services saw
        assert [steps[f"{k}-{n}"].wave for k in ("mail", "pay", "reserve", "price")] == [1, 2, 3, 4]
        # The email's notification needs no confirmation, so it shares a transaction with the refund
        # (on another topic); each later command waited for the previous one's effect in the journal.
        order = [c["compensated_action_id"] for c in commands if c["mechanism"] != "NOTIFY"]
        assert [a for a in order if a.endswith(f"-{n}")] == [f"pay-{n}", f"reserve-{n}", f"price-{n}"]
        assert steps[f"pay-{n}"].confirmed_ts_ms <= steps[f"reserve-{n}"].emitted_ts_ms  # type: ignore[operator]
    assert all(c["correlation_id"] in ("order-2", "order-5") for c in commands)  # the others untouched
    assert len({c["idempotency_key"] for c in commands}) == len(commands) == 8
    assert all(c["_key_header"] == c["idempotency_key"] for c in commands)
    refund = next(c for c in commands if c["compensated_action_id"] == "pay-2")
    assert (refund["event_type"], refund["_topic"]) == ("RefundPayment", topics.command("payments.commands"))
    history = run.status.history[request_id]
    assert history[0] == "EXECUTING" and history[-1] == "COMPLETED" and "CONFIRMING" in history
    assert all(steps[a].state.value == "CONFIRMED" for a in steps if not a.startswith("mail"))
    assert steps["price-2"].confirmed_by == f"applied-{steps['price-2'].idempotency_key}"


def test_a_dry_run_publishes_the_plan_and_emits_nothing(
    shop: tuple[World, RollbackTopics, Settings], tmp_path: Path
) -> None:
    _, topics, settings = shop
    with Running(settings, topics, tmp_path) as run:
        request_id = send_request(settings, V7, Mode.DRY_RUN)
        planned = run.status.wait(request_id, {"PLANNED", "REJECTED"})
        time.sleep(3)
    assert planned.state.value == "PLANNED" and len(planned.plan.steps) == 8  # type: ignore[union-attr]
    assert "dry run" in (planned.reason or "")
    for topic in topics.commands:
        assert read_topic(settings.bootstrap_servers or "", topic, timeout_s=3) == []


def test_approval_blocks_until_approved(kafka_bootstrap: str, unique: str, tmp_path: Path) -> None:
    topics = RollbackTopics(unique)
    settings = topics.settings(kafka_bootstrap)  # irreversible steps over the default threshold of 0
    topics.create(settings)
    world = World()
    world.order(1, rule="v7", price=90)
    publish_journal(kafka_bootstrap, settings.topics.journal, world.entries)
    with Running(settings, topics, tmp_path) as run:
        request_id = send_request(settings, Selector(SelectorKind.CORRELATION_ID, correlation_id="order-1"))
        waiting = run.status.wait(request_id, {"AWAITING_APPROVAL", "EXECUTING"})
        assert waiting.state.value == "AWAITING_APPROVAL", waiting.reason
        assert "1 irreversible steps (threshold 0)" in (waiting.reason or "")
        time.sleep(3)
        assert run.services.seen == []
        send_control(settings, request_id, ControlCommand.APPROVE, plan_hash=waiting.plan_hash)
        final = run.status.wait(request_id, {"COMPLETED", "PARTIALLY_ROLLED_BACK"}, 60)
    assert final.state.value == "COMPLETED", final.reason
    assert len(run.services.seen) == 4


def test_invalid_requests_are_rejected_and_unreadable_ones_dead_lettered(
    shop: tuple[World, RollbackTopics, Settings], tmp_path: Path
) -> None:
    _, topics, settings = shop
    with Running(settings, topics, tmp_path) as run:
        unknown = send_request(settings, Selector(SelectorKind.ACTION_IDS, action_ids=("no-such-action",)))
        rejected = run.status.wait(unknown, {"REJECTED", "EXECUTING", "COMPLETED"})
        garbage = b"\x00not avro"  # signed by the operator, so it passes the gate and fails the schema
        signed = signed_headers(key_of(OPERATOR), Kind.REQUEST, garbage, int(time.time() * 1000))
        send_raw(settings, settings.topics.requests, "garbage", garbage, signed)
        after = send_request(settings, V7, Mode.DRY_RUN)  # the worker goes on
        assert run.status.wait(after, {"PLANNED"}).state.value == "PLANNED"
    assert rejected.state.value == "REJECTED"
    assert "selector.action_ids" in (rejected.reason or "") and "no-such-action" in (rejected.reason or "")
    [dead] = read_topic(settings.bootstrap_servers or "", settings.topics.deadletter, expect=1, timeout_s=20)
    headers = {k: v.decode() for k, v in headers_of(dead).items()}
    assert headers["rewind.dlq.reason"] == "bad_request"
    assert headers["rewind.dlq.source.topic"] == settings.topics.requests
    for topic in topics.commands:
        assert read_topic(settings.bootstrap_servers or "", topic, timeout_s=2) == []


def test_the_cli_requests_approves_and_follows_a_rollback(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topics = RollbackTopics(unique)
    settings = topics.settings(kafka_bootstrap)  # the email is over the irreversible threshold
    topics.create(settings)
    world = World()
    world.order(1, rule="v6", price=100)
    world.order(2, rule="v7", price=90)
    publish_journal(kafka_bootstrap, settings.topics.journal, world.entries)
    t = settings.topics
    env = {
        "REWIND_BOOTSTRAP_SERVERS": kafka_bootstrap, "REWIND_TOPICS__REQUESTS": t.requests,
        "REWIND_TOPICS__CONTROL": t.control, "REWIND_TOPICS__STATUS": t.status, "REWIND_METRICS_PORT": "0",
        "REWIND_SIGNING__KEY_FILE": str(people()[1][OPERATOR]),
    }  # fmt: skip
    approver = env | {"REWIND_SIGNING__KEY_FILE": str(people()[1][APPROVER])}
    cli = CliRunner()
    with Running(settings, topics, tmp_path) as run:
        sent = cli.invoke(main, ["request", "--where", 'rule_version == "v7"', "--execute", "--reason", "bad v7",
                                 "--by", "alice", "--id", "req-cli"], env=env)  # fmt: skip
        assert sent.exit_code == 0, sent.output
        run.status.wait("req-cli", {"AWAITING_APPROVAL"})
        shown = cli.invoke(main, ["status", "req-cli"], env=env)
        assert shown.exit_code == 0, shown.output
        assert "AWAITING_APPROVAL" in shown.stdout and "1 irreversible steps (threshold 0)" in shown.stdout
        approved = cli.invoke(
            main, ["approve", "req-cli", "--by", "adam", "--reason", "checked"], env=approver
        )
        assert approved.exit_code == 0, approved.output
        assert "signed by adam" in approved.stdout and "approving plan" in approved.stdout
        followed = cli.invoke(main, ["status", "req-cli", "--follow", "--timeout", "90"], env=env)
    assert followed.exit_code == 0, followed.output
    assert "req-cli COMPLETED: all 4 steps undone and verified" in followed.stdout
    assert "blast radius" in followed.stdout
    assert f"requested by key {OPERATOR}; approved by {APPROVER}" in followed.stdout  # the audit
    assert "two-person" not in followed.stdout and "APPROVE" in followed.stdout
    assert sorted(c["compensated_action_id"] for c in run.services.seen) == [
        "mail-2",
        "pay-2",
        "price-2",
        "reserve-2",
    ]


def test_an_effect_never_confirmed_is_retried_then_failed_and_the_request_ends_partial(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topics = RollbackTopics(unique)
    settings = topics.settings(
        kafka_bootstrap, approve_over_irreversible=10, confirm_timeout_s=1.0, max_attempts=2, backoff=1.5
    )
    topics.create(settings)
    world = World()
    world.order(1, rule="v7", price=90)
    publish_journal(kafka_bootstrap, settings.topics.journal, world.entries)
    with Running(settings, topics, tmp_path) as run:
        run.services.ignore = frozenset({"RefundPayment"})  # the payments service is down
        request_id = send_request(settings, Selector(SelectorKind.CORRELATION_ID, correlation_id="order-1"))
        final = run.status.wait(request_id, {"COMPLETED", "PARTIALLY_ROLLED_BACK"}, 60)
        commands = list(run.services.seen)
    assert final.state.value == "PARTIALLY_ROLLED_BACK"
    assert final.reason == "remaining: 1 failed, 2 skipped"
    steps = {s.action_id: s for s in final.plan.steps}  # type: ignore[union-attr]
    assert steps["pay-1"].state.value == "FAILED" and steps["pay-1"].attempts == 2
    assert "not confirmed after 2 attempts" in (steps["pay-1"].last_error or "")
    assert {steps[a].state.value for a in ("reserve-1", "price-1")} == {"SKIPPED"}  # causes left alone
    refunds = [c for c in commands if c["event_type"] == "RefundPayment"]
    assert [c["_key_header"] for c in refunds] == [refunds[0]["idempotency_key"]] * 2  # same key, retried
    assert all(c["compensated_action_id"] in ("mail-1", "pay-1") for c in commands)
