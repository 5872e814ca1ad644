"""The plan's preview (each row now -> after the undo) and the verification that checks it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from processor.cli import main
from processor.graph.builder import CausalGraph
from processor.journal.model import Op
from processor.journal.serde import to_json_view
from processor.rollback.actions import ActionStore
from processor.rollback.plan import Plan
from processor.rollback.planner import plan
from processor.rollback.progress import RequestProgress, RequestState
from processor.rollback.request import RollbackRequest, Selector, SelectorKind, Thresholds
from processor.rollback.serde import decode_status, encode_status
from tests.unit.rollback.test_engine import apply, execute, restored_order_row, setup
from tests.unit.rollback.world import CATALOG, World, catalog

EFFECT_CATALOG = CATALOG.replace(
    '    payload: {payment_id: "{payload.payment_id}", amount: "{payload.amount}"}\n',
    '    payload: {payment_id: "{payload.payment_id}", amount: "{payload.amount}"}\n'
    "    effect: {payments: {status: REFUNDED}}\n",
)


def _plan(tmp_path: Path, world: World, *seeds: str, text: str = CATALOG) -> Plan:
    graph, actions = CausalGraph(), ActionStore()
    for e in world.entries:
        graph.add(e)
    actions.add_many((e, None) for e in world.entries)
    request = RollbackRequest("r1", "alice", "bad", 0, Selector(SelectorKind.ACTION_IDS, action_ids=seeds))
    return plan(request, graph, actions, catalog(tmp_path, text), Thresholds(irreversible=10))


def _two_orders() -> World:
    w = World()
    w.order(1, rule="v6", price=100)
    w.order(2, rule="v7", price=90)
    return w


def test_a_restored_row_goes_back_and_a_compensated_number_moves_back_from_now(tmp_path: Path) -> None:
    w = _two_orders()
    w.act("adjust", "StockCounted", wf="count", payload={},  # an unrelated writer moves the stock since
          rows=(("stock", {"sku": "sku-1"}, Op.UPDATE, w.row("stock", {"sku": "sku-1"}),
                 {"sku": "sku-1", "available": 1000}),))  # fmt: skip
    p = _plan(tmp_path, w, "price-2")
    rows = {r.entity: r for r in p.preview}
    assert set(rows) == {"public.orders:2", "public.stock:sku-1"}
    order = rows["public.orders:2"]
    assert order.now == {"id": 2, "price": 90, "rule_version": "v7", "status": "new"}
    assert order.after == {"id": 2, "price": 100, "rule_version": "v6", "status": "new"}
    assert (order.mechanism.value, order.action_ids) == ("RESTORE", ["price-2"])
    stock = rows["public.stock:sku-1"]
    assert stock.now == {"sku": "sku-1", "available": 1000}  # as the journal last saw it
    assert stock.after == {"sku": "sku-1", "available": 1002}  # only order 2's reservation moves back
    assert stock.moves == {"available": 2} and stock.action_ids == ["reserve-2"]


def test_a_row_restored_by_several_scoped_writers_goes_back_to_before_the_first(tmp_path: Path) -> None:
    w = World()
    w.act("a", "StockAdjusted", wf="x", payload={},
          rows=(("stock", {"sku": "s"}, Op.CREATE, None, {"sku": "s", "available": 5}),))  # fmt: skip
    w.act("b", "StockAdjusted", wf="x", causes=("a",), payload={},
          rows=(("stock", {"sku": "s"}, Op.UPDATE, {"sku": "s", "available": 5}, {"sku": "s", "available": 7}),))  # fmt: skip
    [row] = _plan(tmp_path, w, "a").preview
    assert row.now == {"sku": "s", "available": 7} and row.after is None and row.gone  # a created it
    assert row.action_ids == ["b", "a"]  # undo order: the later write first


def test_a_declared_effect_says_what_the_owners_answer_sets(tmp_path: Path) -> None:
    w = World()
    w.act("pay", "PaymentCaptured", wf="o", payload={"payment_id": "p", "amount": Decimal("9.95")},
          rows=(("payments", {"id": "p"}, Op.CREATE, None, {"id": "p", "status": "CAPTURED"}),))  # fmt: skip
    [declared] = _plan(tmp_path, w, "pay", text=EFFECT_CATALOG).preview
    assert declared.after == {"id": "p", "status": "REFUNDED"} and not declared.gone
    [default] = _plan(tmp_path, w, "pay").preview
    assert default.gone and default.after is None  # the reversal of a creation: the row goes away


def test_fractions_move_back_exactly(tmp_path: Path) -> None:
    w = World()
    w.act("t", "StockReserved", wf="o", payload={"sku": "s", "quantity": 1, "order_id": 1},
          rows=(("stock", {"sku": "s"}, Op.UPDATE, {"sku": "s", "kg": Decimal("10.1")},
                 {"sku": "s", "kg": Decimal("9.8")}),))  # fmt: skip
    [row] = _plan(tmp_path, w, "t").preview
    assert row.after == {"sku": "s", "kg": Decimal("10.1")}


def _undo_order_2(tmp_path: Path, released: int | None) -> RequestProgress:
    """Order 2 undone; inventory's answer puts back ``released`` units (None: changes no row)."""
    w = _two_orders()
    engine = setup(tmp_path, w)
    execute(engine, "price-2")
    [_notify, refund] = engine.tick(10).commands
    apply(engine, w, refund, 40)
    [release] = engine.tick(50).commands
    apply(engine, w, release, 60, rows=() if released is None else w.released("sku-1", released))
    [restore] = engine.tick(70).commands
    apply(engine, w, restore, 80, rows=restored_order_row())
    engine.tick(90)
    return engine.requests["r1"]


def test_verification_checks_the_owners_answer_against_the_preview(tmp_path: Path) -> None:
    assert _undo_order_2(tmp_path, 2).state is RequestState.COMPLETED
    short = _undo_order_2(tmp_path, 1)
    assert short.state is RequestState.PARTIALLY_ROLLED_BACK and "1 verification differences" in (
        short.reason or ""
    )
    [diff] = short.verification
    assert (diff.entity, diff.field, diff.expected_json, diff.actual_json) == (
        "public.stock:sku-1", "available (moved by)", "2", "1",
    )  # fmt: skip
    [silent] = _undo_order_2(tmp_path, None).verification
    assert silent.field == "*" and "no answer of the owner changed the row" in (silent.actual_json or "")


def test_the_preview_survives_the_status_topic(tmp_path: Path) -> None:
    w = _two_orders()
    p = _plan(tmp_path, w, "price-2")
    progress = RequestProgress("r1", RequestState.AWAITING_APPROVAL, 5, plan=p)
    again = decode_status(encode_status(progress)).plan
    assert again is not None and again.preview == p.preview


def test_rewind_plan_shows_the_preview_and_lists_it_in_json(tmp_path: Path) -> None:
    w = _two_orders()
    dump = tmp_path / "journal.jsonl"
    dump.write_text("".join(json.dumps(to_json_view(e)) + "\n" for e in w.entries))
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    args = [
        "plan",
        "--journal",
        str(dump),
        "--catalog",
        str(tmp_path / "catalog.yaml"),
        "--action",
        "price-2",
    ]
    shown = CliRunner().invoke(main, args)
    assert shown.exit_code == 0, shown.output
    assert "preview: 2 rows now -> after the undo" in shown.stdout
    assert "public.orders" in shown.stdout and "rule_version" in shown.stdout
    listed = CliRunner().invoke(main, [*args, "--format", "json"])
    preview = {(r["table"], json.dumps(r["key"])): r for r in json.loads(listed.stdout)["preview"]}
    order = preview[("public.orders", '{"id": 2}')]
    assert (order["now"]["price"], order["after"]["price"]) == (90, 100)
    stock = preview[("public.stock", '{"sku": "sku-1"}')]
    assert (stock["now"]["available"], stock["after"]["available"]) == (46, 48)
