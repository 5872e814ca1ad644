from __future__ import annotations

import copy
from typing import Any

import pytest

from processor.errors import RecordInvalid, SchemaError
from processor.journal.serde import deserialize
from processor.schemas import SchemaName, check, decode, encode, raw_schema
from tests.unit import samples

ALL_SELECTORS = [
    "ACTION_IDS",
    "CORRELATION_ID",
    "TRACE_ID",
    "ACTION_TYPE_WINDOW",
    "FIELD_PREDICATE",
]

CASES: list[tuple[SchemaName, dict[str, Any]]] = [
    (SchemaName.JOURNAL_ENTRY, samples.journal_entry()),
    *[(SchemaName.ROLLBACK_REQUEST, samples.rollback_request(k)) for k in ALL_SELECTORS],
    *[
        (SchemaName.ROLLBACK_CONTROL, samples.rollback_control(c))
        for c in ("APPROVE", "PAUSE", "RESUME", "ABORT")
    ],
    (SchemaName.ROLLBACK_STATUS, samples.rollback_status()),
    (SchemaName.COMPENSATION, samples.compensation()),
    (SchemaName.DRILL_VERDICT, samples.drill_verdict()),
]


def _assert_written_comes_back(written: Any, read: Any, path: str = "") -> None:
    """Every value the writer gave is read back unchanged; fields it left out take defaults."""
    if isinstance(written, dict):
        for key, value in written.items():
            _assert_written_comes_back(value, read[key], f"{path}.{key}")
    elif isinstance(written, list):
        assert len(read) == len(written), path
        for i, (w, r) in enumerate(zip(written, read, strict=True)):
            _assert_written_comes_back(w, r, f"{path}[{i}]")
    else:
        assert read == written, path


@pytest.mark.parametrize(("name", "record"), CASES, ids=lambda v: getattr(v, "value", ""))
def test_realistic_record_round_trips(name: SchemaName, record: dict[str, Any]) -> None:
    data = encode(record, name)
    _assert_written_comes_back(record, decode(data, name))
    assert encode(decode(data, name), name) == data


def test_selector_kinds_keep_their_own_fields() -> None:
    decoded = decode(
        encode(samples.rollback_request("ACTION_TYPE_WINDOW"), SchemaName.ROLLBACK_REQUEST),
        SchemaName.ROLLBACK_REQUEST,
    )
    selector = decoded["selector"]
    assert (selector["kind"], selector["action_type"], selector["to_ts_ms"]) == (
        "ACTION_TYPE_WINDOW",
        "PriceApplied",
        1790003600000,
    )
    assert selector["predicate"] is None and selector["action_ids"] == []


def test_defaults_fill_fields_a_minimal_writer_leaves_out() -> None:
    minimal = {"action_id": "a", "action_type": "t", "changes": [], "journal_ts_ms": 1}
    decoded = decode(encode(minimal, SchemaName.JOURNAL_ENTRY), SchemaName.JOURNAL_ENTRY)
    assert decoded["reversibility"] == "UNCLASSIFIED"
    assert decoded["phase"] == "ACTION"
    assert decoded["causation_ids"] == [] and decoded["complete"] is True


@pytest.mark.parametrize(
    ("name", "record", "path", "field"),
    [
        (SchemaName.ROLLBACK_CONTROL, samples.rollback_control(), [], "issued_by"),
        (SchemaName.JOURNAL_ENTRY, samples.journal_entry(), [], "action_id"),
        (SchemaName.JOURNAL_ENTRY, samples.journal_entry(), ["changes", 1], "table"),
        (SchemaName.JOURNAL_ENTRY, samples.journal_entry(), ["changes", 0, "position"], "offset"),
        (SchemaName.JOURNAL_ENTRY, samples.journal_entry(), ["event"], "event_id"),
        (
            SchemaName.ROLLBACK_REQUEST,
            samples.rollback_request(),
            ["selector", "predicate"],
            "value_json",
        ),
        (SchemaName.ROLLBACK_STATUS, samples.rollback_status(), ["plan", "steps", 2], "wave"),
        (SchemaName.COMPENSATION, samples.compensation(), [], "idempotency_key"),
        (SchemaName.DRILL_VERDICT, samples.drill_verdict(), [], "outcome"),
    ],
)
def test_missing_required_field_is_rejected_by_name(
    name: SchemaName, record: dict[str, Any], path: list[Any], field: str
) -> None:
    broken = copy.deepcopy(record)
    holder: Any = broken
    for step in path:
        holder = holder[step]
    del holder[field]
    expected = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in [*path, field]).lstrip(".")
    with pytest.raises(RecordInvalid) as info:
        encode(broken, name)
    assert info.value.field == expected
    assert f"'{expected}'" in str(info.value)


def test_wrong_type_names_the_field() -> None:
    record = samples.rollback_control()
    record["issued_ts_ms"] = "yesterday"
    with pytest.raises(RecordInvalid) as info:
        check(record, SchemaName.ROLLBACK_CONTROL)
    assert "issued_ts_ms" in info.value.field


def test_unknown_enum_symbol_is_rejected() -> None:
    record = samples.rollback_control()
    record["command"] = "EXPLODE"
    with pytest.raises(RecordInvalid, match="command"):
        encode(record, SchemaName.ROLLBACK_CONTROL)


def test_garbage_bytes_raise_a_schema_error() -> None:
    with pytest.raises(SchemaError):
        decode(b"\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", SchemaName.ROLLBACK_CONTROL)


@pytest.mark.parametrize("name", list(SchemaName))
def test_evolution_rule_every_optional_field_and_enum_has_a_default(name: SchemaName) -> None:
    """The rule in schemas/README.md: unions with null default to null; enums carry a default."""

    def walk(node: Any) -> list[str]:
        bad: list[str] = []
        if isinstance(node, dict):
            if node.get("type") == "enum" and "default" not in node:
                bad.append(f"enum {node['name']}")
            for field in node.get("fields", []):
                t = field["type"]
                if isinstance(t, list) and "null" in t and field.get("default", "x") is not None:
                    bad.append(f"field {field['name']}")
                bad += walk(t)
            for key in ("items", "values"):
                bad += walk(node.get(key))
        elif isinstance(node, list):
            for branch in node:
                bad += walk(branch)
        return bad

    assert walk(raw_schema(name)) == []


def test_a_journal_record_whose_json_field_is_not_json_is_a_schema_error_naming_it() -> None:
    """Found by bench/fuzz's journal target: valid Avro whose row image text is not JSON raised
    JsonInvalid, which the graph builder's skip-the-bad-entry handler does not catch."""
    record = samples.journal_entry()
    record["changes"][0]["after_json"] = '{"id": 1 "price": 2}'
    with pytest.raises(SchemaError, match=r"journal_entry.*delimiter"):
        deserialize(encode(record, SchemaName.JOURNAL_ENTRY))
