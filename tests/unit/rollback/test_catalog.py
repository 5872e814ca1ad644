from __future__ import annotations

import re
from pathlib import Path

import pytest

from processor.catalog.catalog import Catalog, load_catalog
from processor.catalog.coverage import ROUTER_TYPE_SETTING, check_catalog
from processor.errors import ConfigError
from processor.journal.model import JournalEntry, OutboxEvent, SourcePosition
from processor.undo import Mechanism, Reversibility


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def test_mechanisms_map_to_reversibility(tmp_path: Path) -> None:
    catalog = load_catalog(
        write(
            tmp_path,
            """
actions:
  OrderPlaced:
    mechanism: compensate
    topic: orders.commands
    event_type: CancelOrder
    key: "{payload.order_id}"
    payload: {order_id: "{payload.order_id}", note: "undo {action.action_id}"}
  PriceApplied:
    mechanism: restore
    requires_approval: true
    topic: orders.commands
    fields: [price]
  EmailSent: {mechanism: irreversible, topic: ops.notify, text: "mail to {payload.to}"}
""",
        )
    )
    assert catalog.reversibility("OrderPlaced") is Reversibility.COMPENSABLE
    assert catalog.reversibility("PriceApplied") is Reversibility.RESTORABLE
    assert catalog.reversibility("EmailSent") is Reversibility.IRREVERSIBLE
    assert catalog.reversibility("Unknown") is Reversibility.UNCLASSIFIED
    spec = catalog.actions["PriceApplied"]
    assert spec.mechanism is Mechanism.RESTORE and spec.requires_approval and spec.line == 9
    order = catalog.actions["OrderPlaced"]
    assert (order.topic, order.event_type, order.key) == (
        "orders.commands",
        "CancelOrder",
        "{payload.order_id}",
    )
    assert spec.fields == ("price",) and spec.tables == ()


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("actions:\n  A: {mechanism: irreversible}\n  B:\n    mechanism: undo\n", 4, "B.mechanism"),
        ("actions:\n  A:\n    mechanism: restore\n    requires_approval: maybe\n", 4, "A.requires_approval"),
        ("actions:\n  A:\n    mechanism: restore\n", 2, "A.topic"),
        ("actions:\n  A:\n    mechanism: compensate\n    topic: t\n    event_type: E\n", 2, "A.payload"),
        ("actions:\n  A:\n    mechanism: restore\n    topic: t\n    refund: yes\n", 5, "A.refund"),
        ("actions:\n  A:\n    mechanism: restore\n    topic: t\n    fields: price\n", 5, "A.fields"),
        (
            "actions:\n  A:\n    mechanism: compensate\n    topic: t\n    event_type: E\n"
            "    payload: {x: '{paylod.amount}'}\n",
            6,
            "A.payload",
        ),
        ("actions:\n  A: restore\n", 2, "A"),
        ("actions: [1, 2]\n", 1, "actions"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, line: int, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert f"{path}:{line}" in str(info.value)
    assert f"'{field}'" in str(info.value)


def test_empty_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        load_catalog(write(tmp_path, ""))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalog(write(tmp_path, "actions: {a: [\n"))


def test_catalog_check_names_the_router_setting_for_events_typed_by_their_aggregate() -> None:
    def event(action_id: str, fallback: bool) -> JournalEntry:
        e = OutboxEvent(action_id, "order", "order", "1", {}, {}, SourcePosition("outbox.event.order", 0, 0),
                        type_fallback=fallback)  # fmt: skip
        return JournalEntry(action_id, "order", (), 0, event=e)

    report = check_catalog(Catalog.empty(), [event("a", True), event("b", True), event("c", False)])
    assert report.untyped == {"order": 2} and "typed by its aggregate" in report.warnings["order"]
    [note] = report.notes
    assert "2 outbox events carried no event type" in note and ROUTER_TYPE_SETTING in note
    assert check_catalog(Catalog.empty(), [event("c", False)]).notes == []


def test_a_redrive_target_is_read_with_its_defaults(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, """
actions:
  OrderPriced:
    mechanism: restore
    topic: orders.commands
    redrive: {topic: pricing.redrive, headers: {type: type}}
  StockReserved:
    mechanism: irreversible
    redrive: {topic: inventory.redrive, event_type: OrderPriced, envelope: command}
"""))  # fmt: skip
    priced = catalog.actions["OrderPriced"].redrive
    assert priced is not None and priced.topic == "pricing.redrive" and priced.event_type is None
    assert (priced.envelope.value, priced.headers["type"], priced.headers["id"]) == ("outbox", "type", "id")
    stock = catalog.actions["StockReserved"].redrive
    assert stock is not None and (stock.envelope.value, stock.event_type) == ("command", "OrderPriced")


@pytest.mark.parametrize(
    ("redrive", "problem"),
    [
        ("redrive: pricing", "must be a mapping"),
        ("redrive: {event_type: X}", "needs 'topic'"),
        ("redrive: {topic: t, envelope: xml}", "expected outbox or command"),
        ("redrive: {topic: t, headers: {trace: x}}", "'headers' maps"),
        ("redrive: {topic: t, colour: red}", "has colour"),
    ],
)
def test_a_bad_redrive_entry_names_the_file_line_and_problem(
    tmp_path: Path, redrive: str, problem: str
) -> None:
    path = write(tmp_path, f"actions:\n  OrderPriced:\n    mechanism: restore\n    topic: t\n    {redrive}\n")
    with pytest.raises(ConfigError) as error:
        load_catalog(path)
    text = str(error.value)
    assert problem in text and "OrderPriced.redrive" in text and f"{path}:5" in text


def test_a_catalog_that_is_not_utf8_or_holds_an_unknown_tag_is_refused_by_name(tmp_path: Path) -> None:
    """Found by fuzzing (bench/fuzz, the catalog target): both raised past the loader's errors."""
    path = tmp_path / "catalog.yaml"
    path.write_bytes(b"actions:\n  OrderPriced: {mechanism: restore}  # caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text: byte 51 is 0xe9") as refused:
        load_catalog(path)
    assert str(path) in str(refused.value)
    path.write_text("actions:\n  OrderPriced:\n    mechanism: !irreversible ''\n")
    tag = (
        "field 'OrderPriced' holds what plain YAML cannot read: could not determine a constructor for the tag"
    )
    with pytest.raises(ConfigError, match=re.escape(f"{tag} '!irreversible' (at ") + ".*catalog.yaml:3"):
        load_catalog(path)
