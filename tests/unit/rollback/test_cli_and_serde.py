"""`rewind plan` and `rewind catalog check` offline, and the rollback topics' records round-tripping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.journal.model import Op
from processor.journal.serde import to_json_view
from processor.rollback.progress import RequestProgress, RequestState
from processor.rollback.request import (
    FieldPredicate,
    Mode,
    RequestInvalid,
    RollbackRequest,
    Selector,
    SelectorKind,
)
from processor.rollback.serde import (
    decode_request,
    decode_status,
    encode_request,
    encode_status,
    request_to_record,
)
from processor.schemas import SchemaName, encode
from tests.unit.rollback.test_planner import plan_for
from tests.unit.rollback.world import CATALOG, World, catalog


def dump(tmp_path: Path, world: World) -> Path:
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(json.dumps(to_json_view(e)) + "\n" for e in world.entries))
    return path


def shop(tmp_path: Path) -> tuple[Path, Path]:
    w = World()
    w.order(1, rule="v6", price=100)
    w.order(2, rule="v7", price=90)
    cat = tmp_path / "catalog.yaml"
    cat.write_text(CATALOG)
    return dump(tmp_path, w), cat


def test_plan_prints_json_with_scope_steps_conflicts_and_irreversible(tmp_path: Path) -> None:
    journal, cat = shop(tmp_path)
    args = ["plan", "--journal", str(journal), "--catalog", str(cat), "--where", 'rule_version == "v7"']
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert sorted(plan["scope"]) == ["mail-2", "pay-2", "price-2", "reserve-2"]
    assert [(s["action_id"], s["mechanism"], s["wave"]) for s in plan["steps"]] == [
        ("mail-2", "IRREVERSIBLE", 1), ("pay-2", "COMPENSATE", 2),
        ("reserve-2", "COMPENSATE", 3), ("price-2", "RESTORE", 4),
    ]  # fmt: skip
    assert plan["conflicts"] == [] and plan["irreversible"] == ["mail-2"]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "blast radius" in table.stdout and "needs approval" in table.stdout
    out = table.stdout
    assert "blast radius: 4 actions, 4 steps in 4 waves" in out
    assert out.index("blast radius") < out.index("plan: 4 steps"), "the approver reads the radius first"


def test_plan_names_a_bad_selector(tmp_path: Path) -> None:
    journal, cat = shop(tmp_path)
    result = CliRunner().invoke(
        main, ["plan", "--journal", str(journal), "--catalog", str(cat), "--action", "zzz"]
    )
    assert result.exit_code == 1 and "selector.action_ids" in result.output and "zzz" in result.output
    both = CliRunner().invoke(main, ["plan", "--journal", str(journal), "--action", "a", "--trace-id", "t"])
    assert both.exit_code == 2 and "choose one selector" in both.output


def test_catalog_check_counts_unclassified_types_and_warns_about_key_only_images(tmp_path: Path) -> None:
    w = World()
    w.order(1, rule="v6", price=100)
    w.act("x", "Mystery", wf="o", payload={})
    w.act("y", "Mystery", wf="o", payload={})
    w.act("z", "OrderPriced", wf="o", payload={}, before_complete=False,
          rows=(("orders", {"id": 9}, Op.UPDATE, {"id": 9}, {"id": 9, "price": 1}),))  # fmt: skip
    cat = tmp_path / "catalog.yaml"
    cat.write_text(CATALOG)
    args = ["catalog", "check", "--journal", str(dump(tmp_path, w)), "--catalog", str(cat)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "unclassified: 1 types, 2 actions" in result.stdout
    assert "placeholders" in result.stdout and "REPLICA" in result.stdout
    assert CliRunner().invoke(main, [*args, "--strict"]).exit_code == 1
    as_json = CliRunner().invoke(main, [*args, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    found = json.loads(as_json.stdout)
    assert found["unclassified"] == {"Mystery": 2}
    assert {t["action_type"]: t["mechanism"] for t in found["types"]}["Mystery"] == "UNCLASSIFIED"
    assert "REPLICA" in (
        next(t for t in found["types"] if t["action_type"] == "OrderPriced")["warning"] or ""
    )
    assert CliRunner().invoke(main, [*args, "--strict", "--format", "json"]).exit_code == 1


@pytest.mark.parametrize(
    "selector",
    [
        Selector(SelectorKind.ACTION_IDS, action_ids=("a", "b")),
        Selector(SelectorKind.CORRELATION_ID, correlation_id="wf"),
        Selector(SelectorKind.TRACE_ID, trace_id="4bf92f3577b34da6a3ce929d0e0e4736"),
        Selector(SelectorKind.ACTION_TYPE_WINDOW, action_type="T", from_ts_ms=1, to_ts_ms=2),
        Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('status in ["a", 1]')),
    ],
)
def test_requests_round_trip_through_avro(selector: Selector) -> None:
    request = RollbackRequest("r", "alice", "why", 5, selector, Mode.EXECUTE, widen_on_overwrites=True)
    assert decode_request(encode_request(request)) == request


def test_a_request_with_an_unknown_selector_kind_or_bad_value_is_invalid() -> None:
    record = request_to_record(
        RollbackRequest("r", "a", "w", 1, Selector(SelectorKind.CORRELATION_ID, correlation_id="x"))
    )
    record["selector"]["kind"] = "UNKNOWN"
    with pytest.raises(RequestInvalid) as info:
        decode_request(encode(record, SchemaName.ROLLBACK_REQUEST))
    assert info.value.field == "selector.kind"
    record["selector"] |= {
        "kind": "FIELD_PREDICATE",
        "predicate": {"field": "x", "op": "EQ", "value_json": "{"},
    }
    with pytest.raises(RequestInvalid) as info:
        decode_request(encode(record, SchemaName.ROLLBACK_REQUEST))
    assert info.value.field == "selector.predicate.value_json"


def test_status_round_trips_with_its_plan(tmp_path: Path) -> None:
    w = World()
    w.order(2, rule="v7", price=90)
    p = plan_for(w, catalog(tmp_path), Selector(SelectorKind.ACTION_IDS, action_ids=("price-2",)))
    progress = RequestProgress(
        "r", RequestState.EXECUTING, 7, "alice", "why", Mode.EXECUTE, "sel", 3, "ok", p
    )
    back = decode_status(encode_status(progress))
    assert back.plan is not None and back.plan.steps == p.steps and back.plan.irreversible == p.irreversible
    assert (back.state, back.requested_by, back.mode) == (RequestState.EXECUTING, "alice", Mode.EXECUTE)


def test_plan_with_repair_lists_the_redrives_offline_and_a_request_carries_repair(tmp_path: Path) -> None:
    w = World()
    w.order(1, rule="v6", price=100, requested=True)
    w.order(2, rule="v7", price=90, requested=True)
    journal = dump(tmp_path, w)
    cat = tmp_path / "catalog.yaml"
    cat.write_text(CATALOG.replace("    fields: [price, rule_version]\n",
                                   "    fields: [price, rule_version]\n    redrive: {topic: pricing.redrive}\n"))  # fmt: skip
    args = ["plan", "--journal", str(journal), "--catalog", str(cat), "--where", 'rule_version == "v7"']
    result = CliRunner().invoke(main, [*args, "--repair", "--format", "json"])
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)["redrive"]
    assert (item["action_id"], item["topic"], item["seed_action_ids"]) == (
        "req-2",
        "pricing.redrive",
        ["price-2"],
    )
    table = CliRunner().invoke(main, [*args, "--repair"])
    assert table.exit_code == 0 and "repair: 1 inputs re-driven" in table.stdout
    refused = CliRunner().invoke(main, [*args, "--repair", "--catalog", str(tmp_path / "x.yaml")])
    assert refused.exit_code != 0
    selector = Selector(SelectorKind.CORRELATION_ID, correlation_id="x")
    request = RollbackRequest("r", "a", "w", 1, selector, Mode.EXECUTE, repair=True, exclude_inputs=("e1",),
                              exclude_input_types=("T",))  # fmt: skip
    assert decode_request(encode_request(request)) == request
