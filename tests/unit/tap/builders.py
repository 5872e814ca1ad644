"""Source records shaped exactly like the real Debezium 3.4 PostgreSQL connector's (see fixtures/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from processor.config import TapSettings
from processor.kafka.messages import SourceRecord
from processor.tap import native

TAP_ENGINES = ["python", "native"] if native.available() else ["python"]
_engine = ["python"]


@pytest.fixture(params=TAP_ENGINES)
def each_tap_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test on both tap cores, the Python reference and the native engine; the tests' core
    builders read the current one through ``tap_settings``. Use with pytest.mark.usefixtures."""
    _engine[0] = request.param
    yield request.param
    _engine[0] = "python"


def tap_settings(**tap: Any) -> TapSettings:
    """Tap settings for the engine the current test runs on."""
    return TapSettings(engine=_engine[0], **tap)


PREFIX = "shop"
TX_TOPIC = f"{PREFIX}.transaction"
OUTBOX_TOPIC = "outbox.event.order"
TS = 1_795_466_798_129


def change(
    table: str,
    op: str,
    key: dict[str, Any] | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    tx: int | None = None,
    lsn: int = 100,
    offset: int = 0,
    partition: int = 0,
    schemas: bool = False,
    headers: list[tuple[str, str]] | None = None,
    ts: int = TS,
) -> SourceRecord:
    source = {
        "version": "3.4.3.Final", "connector": "postgresql", "name": PREFIX, "ts_ms": ts, "snapshot": "false",
        "db": "shop", "schema": "public", "table": table, "txId": tx, "lsn": lsn, "xmin": None,
    }  # fmt: skip
    value: dict[str, Any] = {"before": before, "after": after, "source": source, "op": op, "ts_ms": ts + 400}
    if tx is not None:
        value["transaction"] = {"id": f"{tx}:{lsn}", "total_order": 1, "data_collection_order": 1}
    body: Any = {"schema": {"type": "struct", "optional": False}, "payload": value} if schemas else value
    return SourceRecord(
        topic=f"{PREFIX}.public.{table}", partition=partition, offset=offset,
        key=None if key is None else json.dumps(key).encode(), value=json.dumps(body).encode(),
        headers=tuple((k, v.encode()) for k, v in headers or []), timestamp_ms=ts,
    )  # fmt: skip


def tombstone(table: str, key: dict[str, Any], offset: int = 0) -> SourceRecord:
    return SourceRecord(f"{PREFIX}.public.{table}", 0, offset, json.dumps(key).encode(), None, (), TS)


def begin(tx: int, offset: int = 0, lsn: int = 100) -> SourceRecord:
    value = {
        "status": "BEGIN",
        "id": f"{tx}:{lsn}",
        "event_count": None,
        "data_collections": None,
        "ts_ms": TS,
    }
    return SourceRecord(
        TX_TOPIC, 0, offset, json.dumps({"id": f"{tx}:{lsn}"}).encode(), json.dumps(value).encode()
    )


def end(tx: int, counts: dict[str, int], offset: int = 1, lsn: int = 900) -> SourceRecord:
    value = {
        "status": "END", "id": f"{tx}:{lsn}", "event_count": sum(counts.values()),
        "data_collections": [{"data_collection": k, "event_count": v} for k, v in counts.items()], "ts_ms": TS,
    }  # fmt: skip
    return SourceRecord(
        TX_TOPIC, 0, offset, json.dumps({"id": f"{tx}:{lsn}"}).encode(), json.dumps(value).encode()
    )


def outbox(
    event_id: str,
    event_type: str,
    payload: Any,
    *,
    tx: int | None = None,
    aggregate_id: str = "1",
    offset: int = 0,
    topic: str = OUTBOX_TOPIC,
    correlation: str | None = "wf-1",
    causation: str | None = None,
    traceparent: str | None = None,
    extra: list[tuple[str, str | None]] | None = None,
    escaped: bool = True,
    ts: int = TS,
) -> SourceRecord:
    headers: list[tuple[str, str | None]] = [
        ("id", event_id), ("eventType", event_type), ("aggregateType", topic.rsplit(".", 1)[-1]),
        ("txId", None if tx is None else str(tx)), ("correlationId", correlation), ("causationId", causation),
        ("traceparent", traceparent), ("phase", None), ("intentId", None), *(extra or []),
    ]  # fmt: skip
    body = json.dumps(json.dumps(payload)) if escaped else json.dumps(payload)
    return SourceRecord(
        topic, 0, offset, json.dumps(aggregate_id).encode(), body.encode(),
        tuple((k, None if v is None else v.encode()) for k, v in headers), ts,
    )  # fmt: skip


@dataclass
class FakeMessage:
    """The parts of confluent_kafka.Message the tap reads; a real one cannot be built in a test."""

    record: SourceRecord
    err: Any = None

    def error(self) -> Any:
        return self.err

    def topic(self) -> str:
        return self.record.topic

    def partition(self) -> int:
        return self.record.partition

    def offset(self) -> int:
        return self.record.offset

    def key(self) -> bytes | None:
        return self.record.key

    def value(self) -> bytes | None:
        return self.record.value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return list(self.record.headers) or None

    def timestamp(self) -> tuple[int, int]:
        return (1, self.record.timestamp_ms) if self.record.timestamp_ms is not None else (0, -1)


MYSQL_PREFIX = "inv"
MYSQL_TX_TOPIC = f"{MYSQL_PREFIX}.transaction"
SERVER_UUID = "3E11FA47-71CA-11E1-9E33-C80AA9429562"


def mysql_change(
    table: str,
    op: str,
    key: dict[str, Any],
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    gtid: int | None = None,
    pos: int = 154,
    row: int = 0,
    db: str = "inventory",
    offset: int = 0,
    connector: str = "mysql",
    ts: int = TS,
) -> SourceRecord:
    """A change event shaped like Debezium's MySQL (or MariaDB) connector's: no LSN and no txId, a
    binlog position (file, pos, row), a GTID, and the database standing where PostgreSQL has a schema."""
    gtid_text = None if gtid is None else f"{SERVER_UUID}:{gtid}"
    source = {
        "version": "3.4.3.Final", "connector": connector, "name": MYSQL_PREFIX, "ts_ms": ts, "snapshot": "false",
        "db": db, "sequence": None, "table": table, "server_id": 223344, "gtid": gtid_text,
        "file": "mysql-bin.000003", "pos": pos, "row": row, "thread": 7, "query": None,
    }  # fmt: skip
    value: dict[str, Any] = {"before": before, "after": after, "source": source, "op": op, "ts_ms": ts + 400}
    if gtid_text is not None:
        value["transaction"] = {"id": gtid_text, "total_order": row + 1, "data_collection_order": row + 1}
    return SourceRecord(
        f"{MYSQL_PREFIX}.{db}.{table}",
        0,
        offset,
        json.dumps(key).encode(),
        json.dumps(value).encode(),
        (),
        ts,
    )


def mysql_boundary(status: str, gtid: int, counts: dict[str, int] | None = None) -> SourceRecord:
    tx = f"{SERVER_UUID}:{gtid}"
    value: dict[str, Any] = {
        "status": status,
        "id": tx,
        "event_count": None,
        "data_collections": None,
        "ts_ms": TS,
    }
    if counts is not None:
        value["event_count"] = sum(counts.values())
        value["data_collections"] = [{"data_collection": k, "event_count": v} for k, v in counts.items()]
    return SourceRecord(MYSQL_TX_TOPIC, 0, 0, json.dumps({"id": tx}).encode(), json.dumps(value).encode())


def with_schema(record: SourceRecord, fields: dict[str, dict[str, Any]]) -> SourceRecord:
    """The record as the JSON converter writes it with schemas.enable: its value wrapped with a Connect
    schema whose before/after structs declare ``fields`` (name -> field schema)."""
    image = {"type": "struct", "optional": True, "fields": [{"field": n, **f} for n, f in fields.items()]}
    schema = {"type": "struct", "optional": False, "name": "shop.Envelope", "fields": [
        {"field": "before", **image}, {"field": "after", **image},
        {"field": "source", "type": "struct", "fields": []}, {"field": "op", "type": "string"},
    ]}  # fmt: skip
    value = {"schema": schema, "payload": json.loads(record.value or b"null")}
    return SourceRecord(record.topic, record.partition, record.offset, record.key,
                        json.dumps(value).encode(), record.headers, record.timestamp_ms)  # fmt: skip


def decimal_field(scale: int, default: Any = None) -> dict[str, Any]:
    field: dict[str, Any] = {"type": "bytes", "optional": False, "name": "org.apache.kafka.connect.data.Decimal",
                             "version": 1, "parameters": {"scale": str(scale), "connect.decimal.precision": "38"}}  # fmt: skip
    if default is not None:
        field["default"] = default
    return field


def decimal_base64(unscaled: int) -> str:
    """Connect's Decimal: the unscaled value's big-endian two's complement bytes, base64."""
    import base64

    size = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()
