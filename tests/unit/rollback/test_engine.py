"""The worker's core with a fake clock: waves, confirmation, retries, approval, verification, resume."""

from __future__ import annotations

import json
from pathlib import Path

from processor.journal.model import Op
from processor.rollback.commands import Command
from processor.rollback.engine import EngineConfig, RollbackEngine
from processor.rollback.plan import StepState
from processor.rollback.progress import Policy, RequestState
from processor.rollback.request import (
    Control,
    ControlCommand,
    Mode,
    RollbackRequest,
    Selector,
    SelectorKind,
    Thresholds,
)
from processor.rollback.serde import decode_status, encode_status
from tests.unit.rollback.world import World, catalog

LIMITS = Thresholds(irreversible=5)


def setup(
    tmp_path: Path, world: World, policy: Policy | None = None, limits: Thresholds = LIMITS
) -> RollbackEngine:
    engine = RollbackEngine(catalog(tmp_path), EngineConfig(thresholds=limits, policy=policy or Policy()))
    engine.add_entries([(e, None) for e in world.entries], 0)
    return engine


def execute(engine: RollbackEngine, *seeds: str, mode: Mode = Mode.EXECUTE) -> str:
    selector = Selector(SelectorKind.ACTION_IDS, action_ids=seeds)
    out = engine.on_request(RollbackRequest("r1", "alice", "bad rule", 0, selector, mode), 1)
    assert list(out.changed) == ["r1"]
    return "r1"


def apply(engine: RollbackEngine, world: World, command: Command, now: int, rows: tuple = ()) -> None:  # type: ignore[type-arg]
    """What a service does with a command: act, and journal an action naming the command as its cause."""
    entry = world.confirm(command.event_id, f"applied-{command.envelope['compensated_action_id']}",
                          wf=command.envelope["correlation_id"], rows=rows)  # fmt: skip
    engine.add_entries([(entry, None)], now)


def restored_order_row(price: int = 100, rule: str = "v6") -> tuple:  # type: ignore[type-arg]
    before = {"id": 2, "price": 90, "rule_version": "v7", "status": "new"}
    return (("orders", {"id": 2}, Op.UPDATE, before, {**before, "price": price, "rule_version": rule}),)


def test_waves_run_in_order_each_after_the_last_is_confirmed(tmp_path: Path) -> None:
    w = World()
    w.order(1, rule="v6", price=100)
    w.order(2, rule="v7", price=90)
    engine = setup(tmp_path, w)
    execute(engine, "price-2")
    [notify, refund] = engine.tick(10).commands  # the notification needs no answer: wave 2 follows
    assert (notify.topic, notify.envelope["mechanism"]) == ("ops.notifications", "NOTIFY")
    assert json.loads(notify.envelope["payload_json"])["text"] == "email to c2@example.com was sent"
    assert (refund.topic, refund.key, refund.envelope["event_type"]) == (
        "payments.commands",
        "p-2",
        "RefundPayment",
    )
    assert json.loads(refund.envelope["payload_json"]) == {"payment_id": "p-2", "amount": 90}
    headers = dict(refund.headers)
    assert headers["rewind.request_id"] == "r1" and headers["rewind.compensated_action_id"] == "pay-2"
    assert headers["rewind.idempotency_key"] == refund.event_id and str(headers["traceparent"]).startswith(
        "00-"
    )
    assert not engine.tick(30).commands  # wave 3 waits for the refund's effect
    apply(engine, w, refund, 40)
    [release] = engine.tick(50).commands
    assert json.loads(release.envelope["payload_json"]) == {"sku": "sku-1", "quantity": 2, "order_id": 2}
    apply(engine, w, release, 60, rows=w.released("sku-1", 2))
    [restore] = engine.tick(70).commands
    assert json.loads(restore.envelope["payload_json"])["rows"][0]["set"] == {
        "price": 100,
        "rule_version": "v6",
    }
    assert engine.requests["r1"].state is RequestState.CONFIRMING  # all emitted, one effect to come
    apply(engine, w, restore, 80, rows=restored_order_row())
    engine.tick(90)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.COMPLETED, progress.reason
    assert progress.verification == [] and "1 irreversible" in (progress.reason or "")
    assert all(e.correlation_id != "order-1" for e in w.entries[8:])  # the other order was never touched


def test_a_restore_that_did_not_take_is_a_verification_difference(tmp_path: Path) -> None:
    w = World()
    w.act("price", "OrderPriced", wf="o", payload={},
          rows=(("orders", {"id": 2}, Op.UPDATE, {"id": 2, "price": 100, "rule_version": "v6"},
                 {"id": 2, "price": 90, "rule_version": "v7"}),))  # fmt: skip
    engine = setup(tmp_path, w)
    execute(engine, "price")
    [restore] = engine.tick(10).commands
    apply(engine, w, restore, 20, rows=restored_order_row(price=95))
    engine.tick(30)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.PARTIALLY_ROLLED_BACK
    [diff] = progress.verification
    assert (diff.entity, diff.field, diff.expected_json, diff.actual_json) == (
        "public.orders:2",
        "price",
        "100",
        "95",
    )


def test_unconfirmed_steps_retry_with_backoff_then_fail_and_the_request_says_what_remains(
    tmp_path: Path,
) -> None:
    w = World()
    w.order(2, rule="v7", price=90)
    engine = setup(tmp_path, w, Policy(confirm_timeout_ms=1000, max_attempts=2))
    execute(engine, "reserve-2")
    [_notify, first] = engine.tick(10).commands
    assert not engine.tick(1009).commands
    [again] = engine.tick(1010).commands
    assert again.event_id == first.event_id and dict(again.headers)["rewind.attempt"] == "2"
    assert not engine.tick(3009).commands
    engine.tick(3010)
    progress = engine.requests["r1"]
    step = progress.plan.step("pay-2")  # type: ignore[union-attr]
    assert step.state is StepState.FAILED and "not confirmed after 2 attempts" in (step.last_error or "")  # type: ignore[union-attr]
    assert progress.plan.step("reserve-2").state is StepState.SKIPPED  # type: ignore[union-attr]
    assert progress.state is RequestState.PARTIALLY_ROLLED_BACK
    assert progress.reason == "remaining: 1 failed, 1 skipped"


def test_a_dry_run_plans_and_emits_nothing(tmp_path: Path) -> None:
    w = World()
    w.order(2, rule="v7", price=90)
    engine = setup(tmp_path, w)
    execute(engine, "price-2", mode=Mode.DRY_RUN)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.PLANNED and progress.final and len(progress.plan.steps) == 4  # type: ignore[union-attr]
    assert not any(engine.tick(t).commands for t in range(0, 100_000, 10_000))


def test_approval_blocks_until_approved_and_pause_resume_abort(tmp_path: Path) -> None:
    w = World()
    w.order(2, rule="v7", price=90)
    engine = setup(tmp_path, w, limits=Thresholds())  # one irreversible step: over the threshold
    execute(engine, "price-2")
    assert engine.requests["r1"].state is RequestState.AWAITING_APPROVAL
    assert not engine.tick(10).commands
    plan_hash = engine.requests["r1"].plan_hash
    engine.on_control(Control("r1", ControlCommand.APPROVE, "bob", 11, plan_hash=plan_hash), 11)
    engine.on_control(Control("r1", ControlCommand.PAUSE, "bob", 11), 11)
    assert not engine.tick(12).commands and engine.requests["r1"].state is RequestState.PAUSED  # type: ignore[comparison-overlap]
    engine.on_control(Control("r1", ControlCommand.RESUME, "bob", 13), 13)
    [_notify, refund] = engine.tick(14).commands
    engine.on_control(Control("r1", ControlCommand.ABORT, "bob", 17, "enough"), 17)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.ABORTED
    assert progress.reason == "aborted by bob: enough; remaining: 2 not emitted, 1 unconfirmed"
    assert refund.envelope["compensated_action_id"] == "pay-2"
    assert not engine.tick(100_000).commands


def refund_answered_then_died(tmp_path: Path) -> tuple[World, bytes]:
    """Order 2's rollback: the refund emitted (its status record committed with it), the service's
    answer journaled, then the worker died. The journal, and the last status record."""
    w = World()
    w.order(2, rule="v7", price=90)
    engine = setup(tmp_path, w)
    execute(engine, "price-2")
    [_notify, refund] = engine.tick(10).commands
    saved = encode_status(engine.requests["r1"])  # what the worker committed with the refund
    apply(engine, w, refund, 30)  # the service applied it; then the worker died
    return w, saved


def test_after_a_restart_from_the_status_record_nothing_is_emitted_twice(tmp_path: Path) -> None:
    w, saved = refund_answered_then_died(tmp_path)

    restarted = RollbackEngine(catalog(tmp_path), EngineConfig(thresholds=LIMITS))
    restarted.resume(decode_status(saved))
    restarted.add_entries([(e, None) for e in w.entries], 40)  # the journal, read again from the start
    assert restarted.requests["r1"].plan.step("pay-2").state is StepState.CONFIRMED  # type: ignore[union-attr]
    [release] = restarted.tick(50).commands
    assert release.envelope["compensated_action_id"] == "reserve-2"


def test_a_state_change_is_said_once_however_many_records_carry_it() -> None:
    from processor.rollback.progress import RequestProgress, StateLog

    def at(request: str, state: RequestState, ts: int) -> RequestProgress:
        return RequestProgress(request, state, ts, reason="approved by bob")

    log = StateLog()
    assert log.news(at("r1", RequestState.EXECUTING, 1))
    assert not log.news(at("r1", RequestState.EXECUTING, 2)) and not log.news(
        at("r1", RequestState.EXECUTING, 3)
    )
    assert log.news(at("r1", RequestState.CONFIRMING, 4)) and log.news(at("r2", RequestState.EXECUTING, 4))
