"""Approvals (pure, through the engine): the two-person rule, N approvers, roles the catalog asks
for, an approval bound to the plan it saw, a drill key's limits, and the audit kept in the status."""

from __future__ import annotations

from pathlib import Path

from processor.rollback.approvals import ApprovalRules
from processor.rollback.engine import EngineConfig, RollbackEngine
from processor.rollback.progress import RequestProgress, RequestState
from processor.rollback.request import (
    Control,
    ControlCommand,
    Mode,
    RollbackRequest,
    Selector,
    SelectorKind,
    Thresholds,
)
from processor.rollback.serde import decode_status, encode_request, encode_status
from processor.security.gate import Gate, Signer
from tests.unit.rollback.world import CATALOG, World, catalog

OLIVIA = Signer("olivia", frozenset({"operator"}), 1, "n-olivia")
ADAM = Signer("adam", frozenset({"approver"}), 2, "n-adam")
BEA = Signer("bea", frozenset({"approver", "finance"}), 3, "n-bea")
DRILL = Signer("drill", frozenset({"drill"}), 4, "n-drill")
BOTH = Signer("olivia", frozenset({"operator", "approver"}), 5, "n-both")


def _engine(tmp_path: Path, world: World, *, approvers: int = 1, text: str = CATALOG) -> RollbackEngine:
    config = EngineConfig(thresholds=Thresholds(), approvals=ApprovalRules(approvers_required=approvers))
    engine = RollbackEngine(catalog(tmp_path, text), config)
    engine.add_entries([(e, None) for e in world.entries], 0)
    return engine


def _request(engine: RollbackEngine, signer: Signer = OLIVIA, request_id: str = "r1", *seeds: str) -> str:
    request = RollbackRequest(request_id, signer.key_id, "bad rule", 0,
                              Selector(SelectorKind.ACTION_IDS, action_ids=seeds or ("price-2",)), Mode.EXECUTE)  # fmt: skip
    engine.on_request(request, 1, signer, encode_request(request))
    return request_id


def _approve(
    engine: RollbackEngine, signer: Signer, plan_hash: str | None = None, request_id: str = "r1"
) -> None:
    progress = engine.requests[request_id]
    control = Control(
        request_id, ControlCommand.APPROVE, signer.key_id, 10, plan_hash=plan_hash or progress.plan_hash
    )
    engine.on_control(control, 10, signer)


def _state(progress: RequestProgress) -> RequestState:
    return progress.state  # read again after a call that changed it (no narrowing across calls)


def _world() -> World:
    w = World()
    w.order(2, rule="v7", price=90)  # its email is irreversible: over the default threshold of 0
    return w


def test_the_requester_cannot_approve_their_own_request(tmp_path: Path) -> None:
    engine = _engine(tmp_path, _world())
    _request(engine, BOTH)
    _approve(engine, BOTH)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.AWAITING_APPROVAL and not progress.approvals
    assert "two-person rule" in progress.audit[-1].outcome and progress.audit[-1].key_id == "olivia"
    _approve(engine, ADAM)
    assert _state(progress) is RequestState.EXECUTING and progress.reason == "approved by adam"
    assert engine.tick(11).commands, "approved by another: it runs"


def test_two_approvers_required_means_two_distinct_keys(tmp_path: Path) -> None:
    engine = _engine(tmp_path, _world(), approvers=2)
    _request(engine)
    _approve(engine, ADAM)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.AWAITING_APPROVAL
    assert progress.reason == "approved by adam; waits for 1 more approver (of 2)"
    _approve(engine, ADAM)
    assert "adam approved this plan already" in progress.audit[-1].outcome
    assert not engine.tick(11).commands
    _approve(engine, BEA)
    assert _state(progress) is RequestState.EXECUTING and [a.key_id for a in progress.approvals] == [
        "adam",
        "bea",
    ]


def test_an_approval_of_another_plan_does_not_count(tmp_path: Path) -> None:
    engine = _engine(tmp_path, _world())
    _request(engine)
    _approve(engine, ADAM, plan_hash="0" * 64)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.AWAITING_APPROVAL
    now = (progress.plan_hash or "")[:12]
    assert progress.audit[-1].outcome == f"it approves plan 000000000000, but the plan is now {now}"


def test_a_plan_widened_by_new_entries_asks_again_saying_what_changed(tmp_path: Path) -> None:
    world = _world()
    engine = _engine(tmp_path, world)
    _request(engine)
    shown = engine.requests["r1"].plan_hash
    late = world.act("ship-2", "StockAdjusted", wf="order-2", causes=("mail-2",))  # caused after the plan
    engine.add_entries([(late, None)], 5)
    _approve(engine, ADAM, plan_hash=shown)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.AWAITING_APPROVAL and progress.plan_hash != shown
    assert progress.plan is not None and "ship-2" in progress.plan.scope
    assert "the plan changed since it was shown (scope +1 -0 actions (ship-2))" in (progress.reason or "")
    assert not progress.approvals and not engine.tick(11).commands
    _approve(engine, ADAM)  # of the plan as it is now
    assert _state(progress) is RequestState.EXECUTING


def test_an_action_type_needing_a_role_waits_for_an_approver_holding_it(tmp_path: Path) -> None:
    text = CATALOG.replace(
        '    text: "email to {payload.to} was sent"',
        '    text: "email to {payload.to} was sent"\n    approval_role: finance',
    )
    engine = _engine(tmp_path, _world(), text=text)
    _request(engine)
    progress = engine.requests["r1"]
    assert progress.plan is not None and progress.plan.approval_roles == ["finance"]
    assert "EmailSent needs an approver with role finance (catalog)" in (progress.reason or "")
    _approve(engine, ADAM)
    assert progress.reason == "approved by adam; waits for an approver with role finance"
    _approve(engine, BEA)
    assert _state(progress) is RequestState.EXECUTING


def test_a_drill_key_may_undo_its_canary_alone_and_nothing_else(tmp_path: Path) -> None:
    world = _world()
    world.act("drill-x-a", "StockAdjusted", wf="drill-x")
    world.act(
        "drill-x-b", "EmailSent", wf="drill-x", causes=("drill-x-a",), payload={"to": "canary@example.com"}
    )
    engine = _engine(tmp_path, world)
    _request(engine, DRILL, "r1")
    assert engine.requests["r1"].state is RequestState.REJECTED
    assert "may only request drills" in (engine.requests["r1"].reason or "")
    _request(engine, DRILL, "drill-y", "price-2")
    assert "may only undo canary workflows; the scope holds" in (engine.requests["drill-y"].reason or "")
    _request(engine, DRILL, "drill-x", "drill-x-a")
    assert engine.requests["drill-x"].state is RequestState.AWAITING_APPROVAL
    _approve(engine, DRILL, request_id="drill-x")  # the drill approves its own canary's undo
    assert _state(engine.requests["drill-x"]) is RequestState.EXECUTING


def test_the_audit_and_the_plan_hash_survive_the_status_record_and_a_restart(tmp_path: Path) -> None:
    engine = _engine(tmp_path, _world())
    _request(engine)
    _approve(engine, ADAM)
    progress = engine.requests["r1"]
    back = decode_status(encode_status(progress))
    assert back.plan is not None and back.plan.digest() == back.plan_hash == progress.plan_hash
    assert [(a.command, a.key_id, a.nonce) for a in back.audit] == [
        ("REQUEST", "olivia", "n-olivia"),
        ("APPROVE", "adam", "n-adam"),
    ]
    assert back.requested_key == "olivia" and [a.key_id for a in back.approvals] == ["adam"]
    assert back.request == progress.request
    gate = Gate(None, 300_000, required=False)
    restarted = RollbackEngine(catalog(tmp_path), gate=gate)
    restarted.resume(back)
    assert "n-adam" in gate._seen, "a nonce admitted before the restart stays spent"


def test_a_forged_record_for_a_known_request_does_not_touch_its_status(tmp_path: Path) -> None:
    engine = _engine(tmp_path, _world())
    _request(engine)
    assert not engine.reject("r1", "refused: bad signature", 20)
    assert engine.requests["r1"].state is RequestState.AWAITING_APPROVAL
