"""Debezium transaction metadata: BEGIN and END records, with END's per-collection event counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processor.errors import DeadLetterReason, InvalidRecord
from processor.journal.model import SourcePosition
from processor.kafka.messages import SourceRecord
from processor.tap.fields import int_value, is_tx_id, normalize_tx_id


@dataclass(frozen=True, slots=True)
class TxBoundary:
    status: str  # "BEGIN" or "END"
    tx_id: str
    event_count: int | None
    collections: dict[str, int] = field(default_factory=dict)
    ts_ms: int | None = None
    position: SourcePosition | None = None


def looks_like_tx_metadata(value: Any) -> bool:
    return isinstance(value, dict) and value.get("status") in ("BEGIN", "END") and "id" in value


def parse_tx_metadata(record: SourceRecord, value: Any) -> TxBoundary:
    if not looks_like_tx_metadata(value):
        raise _bad(record, "not a BEGIN/END record (needs 'status' BEGIN|END and 'id')")
    if not is_tx_id(value["id"]):
        raise _bad(record, f"transaction id is a {type(value['id']).__name__}, not a text or an integer")
    status = value["status"]
    collections: dict[str, int] = {}
    count = int_value(value.get("event_count"))
    if status == "END":
        if count is None or count < 0:
            raise _bad(record, f"END without a valid event_count ({value.get('event_count')!r})")
        items = value.get("data_collections") or []
        if not isinstance(items, list):
            raise _bad(record, f"data_collections is a {type(items).__name__}, not a list")
        for item in items:
            name, n = (
                (item.get("data_collection"), int_value(item.get("event_count")))
                if isinstance(item, dict)
                else (None, None)
            )
            if not isinstance(name, str) or n is None:
                raise _bad(record, f"malformed data_collections entry {str(item)[:200]}")
            collections[name] = n
        if collections and sum(collections.values()) != count:
            raise _bad(
                record, f"data_collections add up to {sum(collections.values())}, event_count is {count}"
            )
    tx_id = normalize_tx_id(value["id"])
    position = SourcePosition(record.topic, record.partition, record.offset, tx_id=tx_id)
    return TxBoundary(
        status=status,
        tx_id=tx_id,
        event_count=count if status == "END" else None,
        collections=collections,
        ts_ms=int_value(value.get("ts_ms")),
        position=position,
    )


def _bad(record: SourceRecord, message: str) -> InvalidRecord:
    return InvalidRecord(DeadLetterReason.BAD_TX_METADATA, message, where=record.where)
