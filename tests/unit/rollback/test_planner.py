from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from processor.catalog.catalog import Catalog
from processor.graph.builder import CausalGraph
from processor.journal.model import Op
from processor.rollback.actions import ActionStore
from processor.rollback.plan import Plan, StepState
from processor.rollback.planner import plan
from processor.rollback.request import (
    FieldPredicate,
    Mode,
    RequestInvalid,
    RollbackRequest,
    Selector,
    SelectorKind,
    Thresholds,
)
from processor.undo import StepMechanism
from tests.unit.rollback.world import World, catalog

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def load(world: World) -> tuple[CausalGraph, ActionStore]:
    graph, store = CausalGraph(), ActionStore()
    for e in world.entries:
        graph.add(e)
    store.add_many((e, None) for e in world.entries)
    return graph, store


def request(selector: Selector, **kw: object) -> RollbackRequest:
    return RollbackRequest("req-1", "alice", "bad rule v7", 0, selector, **kw)  # type: ignore[arg-type]


def plan_for(world: World, cat: Catalog, selector: Selector, **kw: object) -> Plan:
    graph, store = load(world)
    limits = kw.pop("thresholds", Thresholds())
    return plan(request(selector, **kw), graph, store, cat, limits)  # type: ignore[arg-type]


def ids(*names: str) -> Selector:
    return Selector(SelectorKind.ACTION_IDS, action_ids=names)


def test_scope_is_the_bad_action_and_its_downstream_only(tmp_path: Path) -> None:
    w = World()
    w.order(1, rule="v6", price=100)
    w.order(2, rule="v7", price=90)
    p = plan_for(w, catalog(tmp_path), ids("reserve-2"))
    assert set(p.scope) == {"reserve-2", "pay-2", "mail-2"}  # not its cause, not the other order


def test_steps_run_in_reverse_causal_order_in_waves(tmp_path: Path) -> None:
    w = World()
    w.order(2, rule="v7", price=90)
    p = plan_for(w, catalog(tmp_path), ids("price-2"))
    assert [(s.action_id, s.wave) for s in p.steps] == [
        ("mail-2", 1),
        ("pay-2", 2),
        ("reserve-2", 3),
        ("price-2", 4),
    ]
    assert [s.mechanism for s in p.steps] == [
        StepMechanism.IRREVERSIBLE,
        StepMechanism.COMPENSATE,
        StepMechanism.COMPENSATE,
        StepMechanism.RESTORE,
    ]
    assert p.irreversible == ["mail-2"] and p.conflicts == [] and p.unclassified == []
    assert {(r.service, r.mechanism, r.count) for r in p.blast_radius()} == {
        ("notifications", StepMechanism.IRREVERSIBLE, 1), ("payments", StepMechanism.COMPENSATE, 1),
        ("inventory", StepMechanism.COMPENSATE, 1), ("orders", StepMechanism.RESTORE, 1),
    }  # fmt: skip


def test_independent_branches_share_a_wave(tmp_path: Path) -> None:
    w = World()
    w.act("root", "OrderPriced", wf="o", payload={"x": 1},
          rows=(("orders", {"id": 1}, Op.CREATE, None, {"id": 1}),))  # fmt: skip
    w.act("left", "PaymentCaptured", wf="o", causes=("root",), payload={"payment_id": "a", "amount": 1})
    w.act("right", "PaymentCaptured", wf="o", causes=("root",), payload={"payment_id": "b", "amount": 2})
    p = plan_for(w, catalog(tmp_path), ids("root"))
    assert [(s.action_id, s.wave) for s in p.steps] == [("left", 1), ("right", 1), ("root", 2)]


def test_selectors_pick_seeds_by_correlation_trace_type_window_and_predicate(tmp_path: Path) -> None:
    w = World()
    w.order(1, rule="v6", price=100)
    w.order(2, rule="v7", price=90, trace_id=TRACE)
    w.order(3, rule="v7", price=80)
    cat = catalog(tmp_path)
    by_corr = plan_for(w, cat, Selector(SelectorKind.CORRELATION_ID, correlation_id="order-3"))
    assert set(by_corr.scope) == {"price-3", "reserve-3", "pay-3", "mail-3"}
    by_trace = plan_for(w, cat, Selector(SelectorKind.TRACE_ID, trace_id=TRACE))
    assert set(by_trace.scope) == {"price-2", "reserve-2", "pay-2", "mail-2"}
    first = w.entries[0].commit_ts_ms
    by_window = plan_for(w, cat, Selector(SelectorKind.ACTION_TYPE_WINDOW, action_type="PaymentCaptured",
                                          from_ts_ms=first, to_ts_ms=w.entries[7].commit_ts_ms))  # fmt: skip
    assert set(by_window.scope) == {"pay-1", "mail-1", "pay-2", "mail-2"}
    pred = plan_for(
        w, cat, Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"'))
    )
    assert {s for s in pred.scope if s.startswith("price")} == {"price-2", "price-3"}
    assert len(pred.scope) == 8
    amount = plan_for(w, cat, Selector(SelectorKind.FIELD_PREDICATE,
                                       predicate=FieldPredicate.parse("after.price < 85")))  # fmt: skip
    assert set(amount.scope) == {"price-3", "reserve-3", "pay-3", "mail-3"}


def test_a_restore_whose_entity_changed_later_outside_the_scope_is_a_conflict(tmp_path: Path) -> None:
    w = World()
    w.order(2, rule="v7", price=90)
    w.act("manual-fix", "StockAdjusted", wf="ops",
          rows=(("orders", {"id": 2}, Op.UPDATE, {"id": 2, "price": 90}, {"id": 2, "price": 95}),))  # fmt: skip
    p = plan_for(w, catalog(tmp_path), ids("price-2"))
    [conflict] = p.conflicts
    assert (conflict.action_id, conflict.entity, conflict.overwritten_by) == (
        "price-2",
        "public.orders:2",
        ("manual-fix",),
    )
    assert p.step("price-2").state is StepState.CONFLICT  # type: ignore[union-attr]
    assert "1 conflicts (threshold 0)" in p.approval_reasons
    widened = plan_for(w, catalog(tmp_path), ids("price-2"), widen_on_overwrites=True)
    assert "manual-fix" in widened.scope and widened.conflicts == []
    order = [s.action_id for s in widened.steps]
    assert order.index("manual-fix") < order.index("price-2")  # the later write is undone first


def test_unclassified_irreversible_and_key_only_before_images_are_listed_and_need_approval(
    tmp_path: Path,
) -> None:
    w = World()
    w.act("a", "OrderPriced", wf="o", payload={}, before_complete=False,
          rows=(("orders", {"id": 1}, Op.UPDATE, {"id": 1}, {"id": 1, "price": 5}),))  # fmt: skip
    w.act("b", "Mystery", wf="o", causes=("a",), payload={})
    w.act("c", "EmailSent", wf="o", causes=("a",), payload={"to": "x"})
    p = plan_for(w, catalog(tmp_path), ids("a"), thresholds=Thresholds(steps=2))
    assert p.unclassified == ["b"] and p.irreversible == ["c"] and p.blocked == ["a"]
    assert "REPLICA IDENTITY FULL" in (p.step("a").last_error or "")  # type: ignore[union-attr]
    assert p.approval_reasons == [
        "3 steps (threshold 2)",
        "1 irreversible steps (threshold 0)",
        "1 unclassified steps (threshold 0)",
    ]


def test_a_compensation_mapping_that_does_not_resolve_blocks_the_step(tmp_path: Path) -> None:
    w = World()
    w.act("pay", "PaymentCaptured", wf="o", payload={"payment_id": "p"})  # no amount
    p = plan_for(w, catalog(tmp_path), ids("pay"))
    assert p.blocked == ["pay"] and "payload.amount" in (p.steps[0].last_error or "")


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        (ids("nope"), "selector.action_ids"),
        (Selector(SelectorKind.CORRELATION_ID, correlation_id="nobody"), "selector"),
        (Selector(SelectorKind.TRACE_ID), "selector.trace_id"),
        (
            Selector(SelectorKind.ACTION_TYPE_WINDOW, action_type="T", from_ts_ms=5, to_ts_ms=1),
            "selector.to_ts_ms",
        ),
    ],
)
def test_invalid_requests_are_rejected_naming_the_field(
    tmp_path: Path, selector: Selector, field: str
) -> None:
    w = World()
    w.order(1, rule="v6", price=100)
    with pytest.raises(RequestInvalid) as info:
        plan_for(w, catalog(tmp_path), selector, mode=Mode.EXECUTE)
    assert info.value.field == field


def test_predicates_parse_and_compare() -> None:
    p = FieldPredicate.parse('status in ["a", "b"]')
    assert p.value == ["a", "b"] and str(p) == 'status in ["a","b"]'
    assert FieldPredicate.parse("amount >= 10").value == 10
    assert FieldPredicate.parse("model == v7").value == "v7"
    with pytest.raises(RequestInvalid, match="a comparison is needed here"):
        FieldPredicate.parse("amount")


def test_numeric_predicates_compare_exactly_and_count_what_they_cannot_read(tmp_path: Path) -> None:
    """decimal.format=NUMERIC, decimal.handling.mode=string and precise mode without schemas give a
    price as an exact number, as a text, and as base64 bytes: the first two are compared by value, the
    third cannot be read, and the plan says so (needing approval) instead of passing it over."""
    w = World()
    prices = {"num": Decimal("84.50"), "text": "84.50", "big": Decimal("123456789012345678.91"),
              "bytes": "IQ==", "high": Decimal("85.01")}  # fmt: skip
    for name, price in prices.items():
        w.act(name, "OrderPriced", wf=name, rows=(("orders", {"id": name}, Op.UPDATE, {"id": name, "price": 90},
                                                  {"id": name, "price": price}),))  # fmt: skip
    cat = catalog(tmp_path)
    p = plan_for(
        w, cat, Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse("after.price < 85"))
    )
    assert set(p.scope) == {"num", "text"} and p.unreadable == ["bytes"]
    assert any("could not read its field as a number on 1 actions" in r for r in p.approval_reasons)
    exact = FieldPredicate.parse("after.price == 123456789012345678.91")
    assert set(plan_for(w, cat, Selector(SelectorKind.FIELD_PREDICATE, predicate=exact)).scope) == {"big"}
    near = FieldPredicate.parse("after.price == 123456789012345678.9")  # a float parser would say equal
    with pytest.raises(RequestInvalid, match="matched no action; 1 actions hold the field as text"):
        plan_for(w, cat, Selector(SelectorKind.FIELD_PREDICATE, predicate=near))
    text = FieldPredicate.parse('after.price == "IQ=="')  # a text comparison reads text: nothing unreadable
    assert plan_for(w, cat, Selector(SelectorKind.FIELD_PREDICATE, predicate=text)).unreadable == []


def test_a_scope_over_the_limit_is_refused_before_it_is_planned(tmp_path: Path) -> None:
    """A selector matching far more than meant (the whole journal) is refused naming the limit."""
    w = World()
    for n in range(3):
        w.order(n, rule="v7", price=90)  # 4 actions each in the scope
    every = Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"'))
    assert len(plan_for(w, catalog(tmp_path), every, thresholds=Thresholds(max_scope=12)).scope) == 12
    with pytest.raises(RequestInvalid, match="the scope holds 12 actions, over the limit of 11") as refused:
        plan_for(w, catalog(tmp_path), every, thresholds=Thresholds(max_scope=11))
    assert "REWIND_ROLLBACK__MAX_SCOPE_ACTIONS" in str(refused.value) and refused.value.field == "selector"
