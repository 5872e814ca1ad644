from __future__ import annotations

import json

import pytest

from processor.errors import DeadLetterReason, InvalidRecord
from processor.journal.model import Op
from processor.kafka.messages import SourceRecord
from processor.tap.cdc import ChangeEvent, Tombstone, parse_change
from processor.tap.decoding import decode
from processor.tap.fields import normalize_tx_id
from tests.unit.tap.builders import change, tombstone


def parse(record: SourceRecord) -> ChangeEvent | Tombstone:
    return parse_change(
        record, decode(record.key, record, None, "key"), decode(record.value, record, None, "value")
    )


def parse_row(record: SourceRecord) -> ChangeEvent:
    event = parse(record)
    assert isinstance(event, ChangeEvent)
    return event


@pytest.mark.parametrize("schemas", [False, True], ids=["bare", "schema-envelope"])
def test_create_with_and_without_schema_envelope(schemas: bool) -> None:
    after = {"id": 1, "customer": "ann", "total_cents": 4599}
    event = parse_row(change("orders", "c", {"id": 1}, after=after, tx=729, lsn=26411776, schemas=schemas))
    row = event.row
    assert (row.op, row.schema, row.table, row.key, row.after, row.before) == (
        Op.CREATE,
        "public",
        "orders",
        {"id": 1},
        after,
        None,
    )
    assert row.changed_fields == ("id", "customer", "total_cents")
    assert row.before_complete and row.entity == "public.orders:1"
    assert event.tx_id == "729" and row.position.lsn == 26411776 and row.position.connector == "shop"


def test_update_with_full_before_image_lists_only_changed_fields() -> None:
    before = {"id": 1, "status": "PLACED", "total_cents": 4599}
    after = {"id": 1, "status": "PAID", "total_cents": 4599}
    row = parse_row(change("orders", "u", {"id": 1}, before=before, after=after, tx=730)).row
    assert row.op is Op.UPDATE and row.changed_fields == ("status",) and row.before_complete


def test_update_without_before_image_is_not_restorable() -> None:
    # REPLICA IDENTITY DEFAULT: PostgreSQL sends no before-image for an update.
    row = parse_row(change("notes", "u", {"id": 1}, before=None, after={"id": 1, "body": "y"}, tx=731)).row
    assert row.before is None and not row.before_complete
    assert row.changed_fields == ("id", "body")


def test_delete_with_key_only_before_image_is_not_restorable() -> None:
    row = parse_row(change("notes", "d", {"id": 1}, before={"id": 1, "body": None}, tx=731)).row
    assert row.op is Op.DELETE and row.after is None and not row.before_complete


def test_delete_with_full_before_image_is_restorable() -> None:
    row = parse_row(change("orders", "d", {"id": 1}, before={"id": 1, "status": "PAID"}, tx=9)).row
    assert row.before_complete and row.changed_fields == ("id", "status")


def test_snapshot_read_truncate_and_message_ops() -> None:
    assert parse_row(change("orders", "r", {"id": 5}, after={"id": 5})).row.op is Op.READ
    truncate = parse_row(change("orders", "t", None)).row
    assert truncate.op is Op.TRUNCATE and truncate.key == {} and truncate.entity == "public.orders:*"
    record = change("orders", "m", None)
    value = json.loads(record.value or b"")
    value["message"] = {"prefix": "audit", "content": "aGk="}
    message = parse_row(SourceRecord(record.topic, 0, 0, None, json.dumps(value).encode())).row
    assert message.op is Op.MESSAGE and message.table == "message.audit" and message.after == value["message"]


def test_tombstone_is_recognized_not_an_action() -> None:
    assert isinstance(parse(tombstone("notes", {"id": 1})), Tombstone)


def test_primary_key_change_links_old_and_new_keys() -> None:
    deleted = parse_row(change("notes", "d", {"id": 2}, before={"id": 2, "body": None}, tx=733,
                               headers=[("__debezium.newkey", '{"id":3}')])).row  # fmt: skip
    created = parse_row(change("notes", "c", {"id": 3}, after={"id": 3, "body": "pk"}, tx=733,
                               headers=[("__debezium.oldkey", '{"id":2}')])).row  # fmt: skip
    assert deleted.other_key == {"id": 3} and created.other_key == {"id": 2}


def test_composite_key_entity_is_canonical() -> None:
    row = parse_row(
        change("lines", "c", {"order_id": 7, "line": 2}, after={"order_id": 7, "line": 2, "q": 1})
    ).row
    assert row.entity == 'public.lines:{"line":2,"order_id":7}'


def test_same_change_delivered_twice_has_one_identity() -> None:
    a = parse_row(change("orders", "c", {"id": 1}, after={"id": 1}, tx=729, lsn=55, offset=3)).row
    b = parse_row(change("orders", "c", {"id": 1}, after={"id": 1}, tx=729, lsn=55, offset=90)).row
    c = parse_row(change("orders", "c", {"id": 1}, after={"id": 1}, tx=729, lsn=56, offset=91)).row
    assert a.identity == b.identity != c.identity


@pytest.mark.parametrize(
    ("raw", "expected"), [("729:26411776", "729"), (729, "729"), (2**32 + 729, "729"), ("abc", "abc")]
)
def test_transaction_ids_normalize_to_the_32_bit_xid(raw: object, expected: str) -> None:
    assert normalize_tx_id(raw) == expected


def _mutate(record: SourceRecord, **changes: object) -> SourceRecord:
    value = json.loads(record.value or b"")
    for k, v in changes.items():
        if v is ...:
            del value[k]
        else:
            value[k] = v
    return SourceRecord(record.topic, 0, 7, record.key, json.dumps(value).encode())


GOOD = change("orders", "u", {"id": 1}, before={"id": 1, "s": "a"}, after={"id": 1, "s": "b"}, tx=1)


@pytest.mark.parametrize(
    ("record", "reason", "text"),
    [
        (
            SourceRecord("shop.public.orders", 0, 7, b'{"id":1}', b"{not json"),
            DeadLetterReason.BAD_JSON,
            "not JSON",
        ),
        (_mutate(GOOD, op=...), DeadLetterReason.BAD_ENVELOPE, "no 'op'"),
        (_mutate(GOOD, source=...), DeadLetterReason.BAD_ENVELOPE, "no 'source'"),
        (_mutate(GOOD, after="text"), DeadLetterReason.BAD_ENVELOPE, "'after' is a str"),
        (_mutate(GOOD, after=None), DeadLetterReason.BAD_ENVELOPE, "without an 'after'"),
        (_mutate(GOOD, op="x"), DeadLetterReason.UNKNOWN_OP, "unknown op 'x'"),
        (SourceRecord("t", 0, 7, b'{"id":1}', b"[1,2]"), DeadLetterReason.BAD_ENVELOPE, "list"),
        (SourceRecord("t", 0, 7, None, GOOD.value), DeadLetterReason.MISSING_KEY, "no primary key"),
        (SourceRecord("t", 0, 7, b'{"id":null}', GOOD.value), DeadLetterReason.MISSING_KEY, "id are null"),
        (SourceRecord("t", 0, 7, b'{"sku":"a"}', GOOD.value), DeadLetterReason.MISSING_KEY, "sku missing"),
        (
            SourceRecord("t", 0, 7, b'"flat"', GOOD.value),
            DeadLetterReason.MISSING_KEY,
            "not a non-empty object",
        ),
    ],
)
def test_bad_records_name_reason_and_position(
    record: SourceRecord, reason: DeadLetterReason, text: str
) -> None:
    with pytest.raises(InvalidRecord) as info:
        parse(record)
    assert info.value.reason is reason
    assert text in str(info.value)
    assert f"{record.topic}[0]@7" in str(info.value)
