"""Debezium change events to row changes: ops, key, before/after images, source and transaction blocks.

Positions are the PostgreSQL connector's LSN, or the MySQL/MariaDB connectors' binlog file, pos and
row; an event with neither cannot be told from its redelivery and is refused (dead letter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from processor.errors import DeadLetterReason, InvalidRecord
from processor.journal.model import JsonObject, Op, RowChange, SourcePosition
from processor.jsonvalue import JsonInvalid, loads
from processor.kafka.messages import SourceRecord
from processor.tap.connect import NotDecimal, image_fields, key_fields, placeholder_image, read_decimals
from processor.tap.decoding import unwrap
from processor.tap.fields import int_or_none, is_tx_id, normalize_tx_id, str_or_none

STRUCT_TEXT = b"Struct{"  # Kafka Connect's Struct.toString(), what StringConverter makes of a key
_STRUCT_FIELD = re.compile(r"(?:^|,)([A-Za-z_][A-Za-z0-9_$]*)=", re.ASCII)
NEW_KEY_HEADER = "__debezium.newkey"
OLD_KEY_HEADER = "__debezium.oldkey"
POSTGRES = "postgresql"
_NEEDS_AFTER = {Op.CREATE, Op.READ, Op.UPDATE}
_KEYED = {Op.CREATE, Op.READ, Op.UPDATE, Op.DELETE}


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    row: RowChange
    tx_id: str | None  # set only when the event carries a transaction block
    connector: str | None
    # The connector's name for itself ('postgresql', 'mysql', 'mariadb'): how to read its images.
    kind: str | None = None
    # The before-image holds more than the key (placeholders aside): a FULL table's delete is whole.
    image_complete: bool = True


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The null-valued record Debezium sends after a delete, for log compaction. Not an action."""

    record: SourceRecord


def parse_change(
    record: SourceRecord, key: Any, value: Any, key_schema: Any = None, value_schema: Any = None
) -> ChangeEvent | Tombstone:
    """``key_schema``/``value_schema``: the JSON converter's schemas, when ``schemas.enable`` sent them."""
    if value is None:
        return Tombstone(record)
    if not isinstance(value, dict):
        raise _bad(record, f"value is a {type(value).__name__}, not a change event object")
    code = value.get("op")
    if not isinstance(code, str):
        raise _bad(record, "no 'op' field")
    op = Op.from_debezium(code)
    if op is None:
        raise InvalidRecord(DeadLetterReason.UNKNOWN_OP, f"unknown op {code!r}", where=record.where)
    source = value.get("source")
    if not isinstance(source, dict):
        raise _bad(record, "no 'source' block")
    raw_before, raw_after = _image(record, value, "before"), _image(record, value, "after")
    before = _decimals(record, raw_before, image_fields(value_schema, "before"))
    after = _decimals(record, raw_after, image_fields(value_schema, "after"))
    if op in _NEEDS_AFTER and after is None:
        raise _bad(record, f"op {code!r} without an 'after' image")
    # A delete without a before-image (REPLICA IDENTITY NOTHING, some decoders) still names its row by
    # the key: journaled, not restorable.
    row_key = _row_key(record, key, op, before, after, key_schema)
    tx_id = _tx_id(record, value.get("transaction"), source)
    kind = str_or_none(source.get("connector"))
    position = _position(record, source, tx_id)
    table, schema = _table(record, op, source, value)
    shaped = before_is_complete(op, before, row_key)
    complete = shaped and not (
        kind == POSTGRES
        and op is Op.DELETE
        and raw_before is not None
        and before is not None
        and placeholder_image(raw_before, before, row_key, image_fields(value_schema, "before"))
    )
    row = RowChange(
        database=str_or_none(source.get("db")),
        schema=schema,
        table=table,
        key=row_key,
        op=op,
        before=before,
        after=after if op is not Op.MESSAGE else value.get("message"),
        changed_fields=changed_fields(op, before, after, row_key),
        before_complete=complete,
        position=position,
        other_key=_other_key(record, op),
    )
    block = value.get("transaction")
    own_tx = tx_id if isinstance(block, dict) and block.get("id") is not None else None
    return ChangeEvent(row, own_tx, position.connector, kind, shaped)


def changed_fields(
    op: Op, before: JsonObject | None, after: JsonObject | None, key: JsonObject
) -> tuple[str, ...]:
    if op is Op.DELETE:
        return tuple(before or ())
    if op is not Op.UPDATE or before is None or not before_is_complete(op, before, key):
        return tuple(after or ())  # without a full before-image, every after field may have changed
    assert after is not None
    return tuple(f for f in after if before.get(f) != after[f] or f not in before)


def before_is_complete(op: Op, before: JsonObject | None, key: JsonObject) -> bool:
    """False when the before-image is missing or holds only the key (REPLICA IDENTITY DEFAULT)."""
    if op in (Op.CREATE, Op.READ, Op.MESSAGE):
        return True
    if before is None:
        return False
    others = [v for f, v in before.items() if f not in key]
    return bool(others) and any(v is not None for v in others)


def _image(record: SourceRecord, value: JsonObject, name: str) -> JsonObject | None:
    image = value.get(name)
    if image is not None and not isinstance(image, dict):
        raise _bad(record, f"'{name}' is a {type(image).__name__}, not an object")
    return image


def _decimals(record: SourceRecord, image: JsonObject | None, fields: dict[str, Any]) -> JsonObject | None:
    if image is None:
        return None
    try:
        return read_decimals(image, fields)
    except NotDecimal as exc:
        raise _bad(record, str(exc)) from exc


def _tx_id(record: SourceRecord, block: Any, source: JsonObject) -> str | None:
    """The transaction: the event's transaction block, else the source's txId (PostgreSQL) or GTID
    (MySQL, MariaDB)."""
    candidates = [
        ("transaction.id", block.get("id") if isinstance(block, dict) else None),
        ("source.txId", source.get("txId")),
        ("source.gtid", source.get("gtid")),
    ]
    for name, raw in candidates:
        if raw is None:
            continue
        if not is_tx_id(raw):
            raise _bad(record, f"{name} is a {type(raw).__name__}, not a text or an integer")
        return normalize_tx_id(raw)
    return None


def _position(record: SourceRecord, source: JsonObject, tx_id: str | None) -> SourcePosition:
    lsn = int_or_none(source.get("lsn"))
    log_position = None
    if lsn is None:
        file, pos = source.get("file"), int_or_none(source.get("pos"))
        if not isinstance(file, str) or not file or pos is None:
            connector = str_or_none(source.get("connector"))
            raise InvalidRecord(
                DeadLetterReason.UNSUPPORTED_SOURCE,
                f"the source block has no position to tell this change from its redelivery (no 'lsn', "
                f"no binlog 'file' and 'pos'; connector {connector!r}): kafka-rewind reads Debezium's "
                "postgresql, mysql and mariadb connectors",
                where=record.where,
            )
        log_position = f"{file}:{pos}:{int_or_none(source.get('row')) or 0}"
    return SourcePosition(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        lsn=lsn,
        tx_id=tx_id,
        connector=str_or_none(source.get("name")),
        ts_ms=int_or_none(source.get("ts_ms")),
        log_position=log_position,
    )


def _row_key(
    record: SourceRecord,
    key: Any,
    op: Op,
    before: JsonObject | None,
    after: JsonObject | None,
    key_schema: Any,
) -> JsonObject:
    key = unwrap(key)
    if op not in _KEYED:
        return key if isinstance(key, dict) else {}
    if isinstance(key, str) and key.startswith("Struct{"):
        key = _struct_key(record, key, after if after is not None else before)
    if key is None:
        raise InvalidRecord(
            DeadLetterReason.MISSING_KEY,
            "change event without a key: the table has no primary key (or key.converter drops it); "
            "rewind cannot tell which row changed",
            where=record.where,
        )
    if not isinstance(key, dict) or not key:
        raise InvalidRecord(
            DeadLetterReason.MISSING_KEY, f"key {key!r} is not a non-empty object", where=record.where
        )
    null_fields = [f for f, v in key.items() if v is None]
    if null_fields:
        raise InvalidRecord(
            DeadLetterReason.MISSING_KEY,
            f"key field(s) {', '.join(null_fields)} are null",
            where=record.where,
        )
    image = after if after is not None else before
    missing = [f for f in key if image is not None and f not in image]
    if missing:
        raise InvalidRecord(
            DeadLetterReason.MISSING_KEY,
            f"key field(s) {', '.join(missing)} missing from the row image",
            where=record.where,
        )
    decoded = _decimals(record, key, key_fields(key_schema))
    return key if decoded is None else decoded


def _struct_key(record: SourceRecord, text: str, image: JsonObject | None) -> JsonObject:
    """A key written by StringConverter, 'Struct{id=42}': its fields' names, their values from the row
    image, held only when the image's values write the same text back (as Java's toString)."""
    inner = text[len("Struct{") : -1] if text.endswith("}") else None
    if inner and image is not None:
        names = list(dict.fromkeys(m.group(1) for m in _STRUCT_FIELD.finditer(inner) if m.group(1) in image))
        written = [_java_text(image[n]) for n in names]
        if (
            names
            and None not in written
            and ",".join(f"{n}={w}" for n, w in zip(names, written, strict=True)) == inner
        ):
            return {n: image[n] for n in names}
    raise InvalidRecord(
        DeadLetterReason.MISSING_KEY,
        f"key {text[:60]!r} is Kafka Connect's text of a struct (key.converter=StringConverter) that the row "
        "image does not spell back (only text, integer and boolean key columns can be read so); use the "
        "JsonConverter for the CDC topics' keys",
        where=record.where,
    )


def _java_text(value: Any) -> str | None:
    """How Java's toString writes a key column's value, for the types that read back exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _table(record: SourceRecord, op: Op, source: JsonObject, value: JsonObject) -> tuple[str, str | None]:
    if op is Op.MESSAGE:
        message = value.get("message")
        prefix = message.get("prefix") if isinstance(message, dict) else None
        return f"message.{str_or_none(prefix) if prefix else 'unknown'}", None
    table = source.get("table")
    if not isinstance(table, str) or not table:
        raise _bad(record, "'source' block names no table")
    return table, str_or_none(source.get("schema"))


def _other_key(record: SourceRecord, op: Op) -> JsonObject | None:
    header = NEW_KEY_HEADER if op is Op.DELETE else OLD_KEY_HEADER if op is Op.CREATE else None
    text = record.header(header) if header else None
    if text is None:
        return None
    try:
        other = unwrap(loads(text))
    except JsonInvalid:
        return {"raw": text}
    return other if isinstance(other, dict) else {"value": other}


def _bad(record: SourceRecord, message: str) -> InvalidRecord:
    return InvalidRecord(DeadLetterReason.BAD_ENVELOPE, message, where=record.where)
