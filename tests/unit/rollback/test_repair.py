"""Repair (pure): the re-drives a plan lists, what it refuses, and the worker's core re-driving each
good input once the undo is verified, confirming it through the journal, ending REPAIRED only when all
came back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from processor.catalog.catalog import Catalog
from processor.graph.builder import CausalGraph
from processor.journal.model import Op
from processor.rollback.actions import ActionStore
from processor.rollback.commands import Command
from processor.rollback.engine import EngineConfig, RollbackEngine, RollbackObserver
from processor.rollback.plan import StepState
from processor.rollback.planner import plan
from processor.rollback.progress import Policy, RequestState
from processor.rollback.request import (
    FieldPredicate,
    Mode,
    RequestInvalid,
    RollbackRequest,
    Selector,
    SelectorKind,
    Thresholds,
)
from processor.rollback.serde import decode_status, encode_status, plan_record
from tests.unit.rollback.world import CATALOG, World, catalog

REPAIR_CATALOG = CATALOG.replace(
    "    fields: [price, rule_version]\n",
    "    fields: [price, rule_version]\n    redrive: {topic: pricing.redrive}\n",
)
BAD_RULE = Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"'))


def _world() -> World:
    w = World()
    for n in range(1, 7):
        w.order(n, rule="v7" if n % 2 == 0 else "v6", price=90 if n % 2 == 0 else 100, requested=True)
    return w


def _request(**repair: object) -> RollbackRequest:
    return RollbackRequest("r1", "alice", "v7 mispriced", 0, BAD_RULE, Mode.EXECUTE, repair=True, **repair)  # type: ignore[arg-type]


def _plan(tmp_path: Path, world: World, request: RollbackRequest, text: str = REPAIR_CATALOG):  # type: ignore[no-untyped-def]
    graph, actions = CausalGraph(), ActionStore()
    for e in world.entries:
        graph.add(e)
    actions.add_many((e, None) for e in world.entries)
    return plan(request, graph, actions, catalog(tmp_path, text), Thresholds(irreversible=10))


def _engine(tmp_path: Path, world: World, policy: Policy | None = None) -> RollbackEngine:
    engine = RollbackEngine(catalog(tmp_path, REPAIR_CATALOG),
                            EngineConfig(thresholds=Thresholds(irreversible=10), policy=policy or Policy()))  # fmt: skip
    engine.add_entries([(e, None) for e in world.entries], 0)
    return engine


def _answer(engine: RollbackEngine, world: World, command: Command, now: int, action_id: str) -> None:
    """A service handled the command (or the re-driven event): its action names it as the cause, and a
    restore's rows are as the command set them."""
    rows = tuple(
        (r["table"].rpartition(".")[2], r["key"], Op.UPDATE, r["image"], {**r["image"], **r["set"]})
        for r in (json.loads(command.envelope["payload_json"]).get("rows", [])
                  if command.envelope["mechanism"] == "RESTORE" else [])
    )  # fmt: skip
    if command.envelope["event_type"] == "ReleaseStock":  # inventory puts the quantity back
        payload = json.loads(command.envelope["payload_json"])
        rows = world.released(payload["sku"], payload["quantity"])
    entry = world.act(action_id, "Handled", wf=command.envelope["correlation_id"], causes=(command.event_id,),
                      payload={"done": True}, rows=rows)  # fmt: skip
    engine.add_entries([(entry, None)], now)


def _undo_all(engine: RollbackEngine, world: World, now: int) -> tuple[int, list[Command]]:
    """Answer every undo command until the re-drives come (in the tick that verified the undo);
    returns the clock and the re-drives."""
    while True:
        commands = engine.tick(now).commands
        redrives = [c for c in commands if c.envelope["mechanism"] == "REDRIVE"]
        if redrives or not commands:
            return now, redrives
        for c in commands:
            if c.envelope["mechanism"] != "NOTIFY":
                _answer(engine, world, c, now + 1, f"undo-{c.envelope['compensated_action_id']}")
        now += 10


def repaired(tmp_path: Path, observer: RollbackObserver | None = None) -> tuple[RollbackEngine, World]:
    """A repair of the bad rule run to its end: every undo command and every re-drive answered."""
    w = _world()
    engine = RollbackEngine(catalog(tmp_path, REPAIR_CATALOG), EngineConfig(thresholds=Thresholds(irreversible=10)),
                            observer=observer)  # fmt: skip
    engine.add_entries([(e, None) for e in w.entries], 0)
    engine.on_request(_request(), 1)
    now, redrives = _undo_all(engine, w, 10)
    for c in redrives:
        _answer(engine, w, c, now + 1, f"repriced-{c.envelope['compensated_action_id']}")
    engine.tick(now + 2)
    return engine, w


def test_the_plan_lists_each_seeds_input_once_in_order_for_the_fixed_consumer(tmp_path: Path) -> None:
    p = _plan(tmp_path, _world(), _request())
    assert [(r.action_id, r.seed_action_ids, r.topic, r.event_type) for r in p.redrive] == [
        ("req-2", ("price-2",), "pricing.redrive", "OrderRequested"),
        ("req-4", ("price-4",), "pricing.redrive", "OrderRequested"),
        ("req-6", ("price-6",), "pricing.redrive", "OrderRequested"),
    ]
    assert not {r.action_id for r in p.redrive} & set(p.scope)  # the inputs stay: they were good
    record = plan_record(p)
    assert [r["action_id"] for r in record["redrive"]] == ["req-2", "req-4", "req-6"]
    assert {r["topic"] for r in record["redrive"]} == {"pricing.redrive"}
    assert not _plan(tmp_path, _world(), RollbackRequest("r2", "a", "b", 0, BAD_RULE)).redrive  # undo only


def test_a_repair_whose_seeds_have_no_journaled_cause_is_refused_naming_them(tmp_path: Path) -> None:
    w = World()
    w.order(2, rule="v7", price=90)  # priced with no OrderRequested before it
    with pytest.raises(RequestInvalid) as refused:
        _plan(tmp_path, w, _request())
    assert "no journaled cause" in str(refused.value) and "price-2 (OrderPriced)" in str(refused.value)


def test_a_repair_without_a_redrive_target_is_refused_naming_the_type_and_the_catalog(tmp_path: Path) -> None:
    with pytest.raises(RequestInvalid) as refused:
        _plan(tmp_path, _world(), _request(), text=CATALOG)
    text = str(refused.value)
    assert "no re-drive target for OrderPriced" in text and "catalog.yaml" in text


def test_excluded_inputs_are_listed_and_never_sent(tmp_path: Path) -> None:
    p = _plan(tmp_path, _world(), _request(exclude_inputs=("req-4",)))
    states = {r.action_id: r.state for r in p.redrive}
    assert states == {"req-2": StepState.PENDING, "req-4": StepState.SKIPPED, "req-6": StepState.PENDING}
    with pytest.raises(RequestInvalid):
        RollbackRequest("r", "a", "b", 0, BAD_RULE, exclude_inputs=("x",)).validate()  # needs repair


def test_after_the_undo_each_input_is_re_driven_as_a_new_event_and_the_request_ends_repaired(
    tmp_path: Path,
) -> None:
    w = _world()
    engine = _engine(tmp_path, w)
    engine.on_request(_request(), 1)
    now, redrives = _undo_all(engine, w, 10)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.REPAIRING, progress.reason
    assert [c.envelope["mechanism"] for c in redrives] == ["REDRIVE"] * 3
    first = redrives[0]
    original = next(e for e in w.entries if e.action_id == "req-2")
    headers = dict(first.headers)
    assert first.topic == "pricing.redrive" and first.key == "order-2"
    assert json.loads(first.value or b"") == original.event.payload  # type: ignore[union-attr]
    assert headers["id"] == first.event_id != original.event.event_id  # type: ignore[union-attr]
    assert headers["rewind.replay_of"] == "req-2" and headers["eventType"] == "OrderRequested"
    assert headers["correlationId"] == "order-2"
    assert not engine.tick(now + 1).commands  # nothing twice while waiting for the answers
    for c in redrives[:2]:
        _answer(engine, w, c, now + 2, f"repriced-{c.envelope['compensated_action_id']}")
    engine.tick(now + 3)
    assert progress.state is RequestState.REPAIRING
    _answer(engine, w, redrives[2], now + 4, "repriced-req-6")
    engine.tick(now + 5)
    ended = engine.requests["r1"]
    assert ended.state is RequestState.REPAIRED, ended.reason
    assert "3 inputs re-driven and confirmed" in (ended.reason or "")
    assert ended.plan is not None
    assert [r.confirmed_by for r in ended.plan.redrive] == [
        "repriced-req-2",
        "repriced-req-4",
        "repriced-req-6",
    ]


def test_a_service_that_never_answers_ends_the_request_listing_exactly_the_unrepaired_inputs(
    tmp_path: Path,
) -> None:
    w = _world()
    engine = _engine(tmp_path, w, Policy(confirm_timeout_ms=1000, max_attempts=2))
    engine.on_request(_request(), 1)
    now, first = _undo_all(engine, w, 10)
    _answer(engine, w, first[1], now + 1, "repriced-req-4")  # only one of three comes back
    again = engine.tick(now + 1000).commands
    assert sorted(dict(c.headers)["rewind.replay_of"] for c in again) == ["req-2", "req-6"]  # type: ignore[type-var]
    assert {c.event_id for c in again} <= {c.event_id for c in first}  # the same new ids: idempotent
    engine.tick(now + 4000)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.PARTIALLY_REPAIRED, progress.reason
    assert (progress.reason or "").endswith("2 not repaired: req-2, req-6")


def test_a_partial_undo_is_never_repaired_on(tmp_path: Path) -> None:
    w = _world()
    engine = _engine(tmp_path, w, Policy(confirm_timeout_ms=1000, max_attempts=1))
    engine.on_request(_request(), 1)
    for now in range(10, 20_000, 500):
        commands = engine.tick(now).commands
        assert all(c.envelope["mechanism"] != "REDRIVE" for c in commands)
    progress = engine.requests["r1"]
    assert progress.state is RequestState.PARTIALLY_ROLLED_BACK
    assert "repair not attempted" in (progress.reason or "")


def test_a_repair_resumes_from_its_status_record_without_sending_twice(tmp_path: Path) -> None:
    w = _world()
    engine = _engine(tmp_path, w)
    engine.on_request(_request(), 1)
    now, sent = _undo_all(engine, w, 10)
    saved = decode_status(encode_status(engine.requests["r1"]))
    assert saved.state is RequestState.REPAIRING and saved.repair
    assert [r.state for r in saved.plan.redrive] == [StepState.EMITTED] * 3  # type: ignore[union-attr]
    restarted = _engine(tmp_path, w)
    restarted.resume(saved)
    assert not restarted.tick(now + 1).commands
    for c in sent:
        _answer(restarted, w, c, now + 2, f"repriced-{c.envelope['compensated_action_id']}")
    restarted.tick(now + 3)
    assert restarted.requests["r1"].state is RequestState.REPAIRED


def test_unused_catalog_type_is_an_honest_catalog() -> None:
    assert Catalog.empty().actions == {}
