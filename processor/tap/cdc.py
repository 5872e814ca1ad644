"""Debezium change events to row changes: ops, key, before/after images, source and transaction blocks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from processor.errors import DeadLetterReason, InvalidRecord
from processor.model import JsonObject, Op, RowChange, SourcePosition
from processor.tap.decoding import unwrap
from processor.tap.records import SourceRecord

NEW_KEY_HEADER = "__debezium.newkey"
OLD_KEY_HEADER = "__debezium.oldkey"
_NEEDS_AFTER = {Op.CREATE, Op.READ, Op.UPDATE}
_KEYED = {Op.CREATE, Op.READ, Op.UPDATE, Op.DELETE}


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    row: RowChange
    tx_id: str | None  # set only when the event carries a transaction block
    connector: str | None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The null-valued record Debezium sends after a delete, for log compaction. Not an action."""

    record: SourceRecord


@lru_cache(maxsize=65_536)  # each id comes back with every record of its transaction
def normalize_tx_id(raw: Any) -> str:
    """One text for a transaction across Debezium's forms: '571:53195832' and 571 are both '571'.

    PostgreSQL's 64-bit ids (txid_current(), written by services into outbox rows) carry an epoch in
    the high bits; Debezium reports the 32-bit xid, so both are reduced to it.
    """
    text = str(raw).split(":", 1)[0].strip()
    return str(int(text) % 2**32) if text.isdigit() else text


def parse_change(record: SourceRecord, key: Any, value: Any) -> ChangeEvent | Tombstone:
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
    before, after = _image(record, value, "before"), _image(record, value, "after")
    if op in _NEEDS_AFTER and after is None:
        raise _bad(record, f"op {code!r} without an 'after' image")
    if op is Op.DELETE and before is None:
        raise _bad(record, "op 'd' without a 'before' image")
    row_key = _row_key(record, key, op, before, after)
    transaction = value.get("transaction")
    tx_id = (
        normalize_tx_id(transaction["id"]) if isinstance(transaction, dict) and "id" in transaction else None
    )
    source_tx = source.get("txId")
    position = SourcePosition(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        lsn=_int_or_none(source.get("lsn")),
        tx_id=tx_id or (normalize_tx_id(source_tx) if source_tx is not None else None),
        connector=_str_or_none(source.get("name")),
        ts_ms=_int_or_none(source.get("ts_ms")),
    )
    table, schema = _table(record, op, source, value)
    row = RowChange(
        database=_str_or_none(source.get("db")),
        schema=schema,
        table=table,
        key=row_key,
        op=op,
        before=before,
        after=after if op is not Op.MESSAGE else value.get("message"),
        changed_fields=changed_fields(op, before, after, row_key),
        before_complete=before_is_complete(op, before, row_key),
        position=position,
        other_key=_other_key(record, op),
    )
    return ChangeEvent(row, tx_id, position.connector)


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


def _row_key(
    record: SourceRecord, key: Any, op: Op, before: JsonObject | None, after: JsonObject | None
) -> JsonObject:
    key = unwrap(key)
    if op not in _KEYED:
        return key if isinstance(key, dict) else {}
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
    return key


def _table(record: SourceRecord, op: Op, source: JsonObject, value: JsonObject) -> tuple[str, str | None]:
    if op is Op.MESSAGE:
        message = value.get("message")
        prefix = message.get("prefix") if isinstance(message, dict) else None
        return f"message.{prefix or 'unknown'}", None
    table = source.get("table")
    if not isinstance(table, str) or not table:
        raise _bad(record, "'source' block names no table")
    return table, _str_or_none(source.get("schema"))


def _other_key(record: SourceRecord, op: Op) -> JsonObject | None:
    header = NEW_KEY_HEADER if op is Op.DELETE else OLD_KEY_HEADER if op is Op.CREATE else None
    text = record.header(header) if header else None
    if text is None:
        return None
    try:
        other = unwrap(json.loads(text))
    except ValueError:
        return {"raw": text}
    return other if isinstance(other, dict) else {"value": other}


def _bad(record: SourceRecord, message: str) -> InvalidRecord:
    return InvalidRecord(DeadLetterReason.BAD_ENVELOPE, message, where=record.where)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
