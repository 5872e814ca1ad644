"""Debezium transaction metadata: BEGIN and END records, with END's per-collection event counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processor.errors import DeadLetterReason, InvalidRecord
from processor.model import SourcePosition
from processor.tap.cdc import normalize_tx_id
from processor.tap.records import SourceRecord


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
    status = value["status"]
    collections: dict[str, int] = {}
    count = value.get("event_count")
    if status == "END":
        if not isinstance(count, int) or count < 0:
            raise _bad(record, f"END without a valid event_count ({count!r})")
        for item in value.get("data_collections") or []:
            name, n = (
                (item.get("data_collection"), item.get("event_count"))
                if isinstance(item, dict)
                else (None, None)
            )
            if not isinstance(name, str) or not isinstance(n, int):
                raise _bad(record, f"malformed data_collections entry {item!r}")
            collections[name] = n
        if collections and sum(collections.values()) != count:
            raise _bad(
                record, f"data_collections add up to {sum(collections.values())}, event_count is {count}"
            )
    ts = value.get("ts_ms")
    position = SourcePosition(
        record.topic, record.partition, record.offset, tx_id=normalize_tx_id(value["id"])
    )
    return TxBoundary(
        status=status,
        tx_id=normalize_tx_id(value["id"]),
        event_count=count if status == "END" else None,
        collections=collections,
        ts_ms=ts if isinstance(ts, int) else None,
        position=position,
    )


def _bad(record: SourceRecord, message: str) -> InvalidRecord:
    return InvalidRecord(DeadLetterReason.BAD_TX_METADATA, message, where=record.where)
