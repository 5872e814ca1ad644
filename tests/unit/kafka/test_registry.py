"""Avro sources in Confluent's wire format (magic byte, schema id) through the registry lookup."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryError

from processor.catalog.catalog import Catalog
from processor.config import Settings, TopicSettings
from processor.errors import DeadLetterReason
from processor.journal.model import Op
from processor.journal.serde import journal_key, serialize
from processor.kafka.messages import SourceRecord
from processor.kafka.registry import RegistryLookup, RegistryUnavailable
from processor.tap.core import TapCore
from processor.tap.engine import tap_core
from tests.unit.tap.builders import FakeMessage, change, each_tap_engine, tap_settings  # noqa: F401

ROW = {"type": "record", "name": "Value", "namespace": "shop.public.orders", "fields": [
    {"name": "id", "type": "long"}, {"name": "status", "type": ["null", "string"], "default": None}]}  # fmt: skip
ENVELOPE = {
    "type": "record", "name": "Envelope", "namespace": "shop.public.orders",
    "fields": [
        {"name": "before", "type": ["null", ROW], "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None},
        {"name": "source", "type": {"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql",
                                    "fields": [{"name": "name", "type": "string"}, {"name": "db", "type": "string"},
                                               {"name": "schema", "type": "string"}, {"name": "table", "type": "string"},
                                               {"name": "txId", "type": ["null", "long"]}, {"name": "lsn", "type": ["null", "long"]},
                                               {"name": "ts_ms", "type": "long"}]}},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": None},
    ],
}  # fmt: skip
KEY = {
    "type": "record",
    "name": "Key",
    "namespace": "shop.public.orders",
    "fields": [{"name": "id", "type": "long"}],
}


@dataclass
class FakeSchema:
    schema_str: str
    schema_type: str | None = "AVRO"


class FakeRegistry:
    def __init__(self, schemas: dict[int, dict[str, Any]], down: bool = False) -> None:
        self.schemas, self.down, self.calls = schemas, down, 0

    def get_schema(self, schema_id: int) -> FakeSchema:
        self.calls += 1
        if self.down:
            raise ConnectionError("connection refused")
        if schema_id not in self.schemas:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        import json

        return FakeSchema(json.dumps(self.schemas[schema_id]))


def framed(schema_id: int, schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
    return b"\x00" + struct.pack(">I", schema_id) + buf.getvalue()


def record(value_id: int = 2) -> SourceRecord:
    value = {"before": None, "after": {"id": 7, "status": "PLACED"}, "op": "c", "ts_ms": 1,
             "source": {"name": "shop", "db": "shop", "schema": "public", "table": "orders", "txId": 5, "lsn": 99, "ts_ms": 1}}  # fmt: skip
    return SourceRecord(
        "shop.public.orders", 0, 3, framed(1, KEY, {"id": 7}), framed(value_id, ENVELOPE, value)
    )


# Both tap cores: the native engine hands registry-framed records to the reference to decode.
pytestmark = pytest.mark.usefixtures("each_tap_engine")


def core(registry: FakeRegistry | None) -> TapCore:
    settings = Settings(
        topics=TopicSettings(cdc=["shop.public.orders"]),
        tap=tap_settings(),
    )
    return tap_core(settings, Catalog.empty(), lookup=RegistryLookup(registry) if registry else None)


def test_avro_change_event_is_decoded_through_the_registry() -> None:
    registry = FakeRegistry({1: KEY, 2: ENVELOPE})
    c = core(registry)
    [entry] = c.process(record(), 0).entries
    change = entry.changes[0]
    assert (change.op, change.key, change.after, change.position.lsn) == (
        Op.CREATE,
        {"id": 7},
        {"id": 7, "status": "PLACED"},
        99,
    )
    c.process(record(), 0)
    assert registry.calls == 2, "schemas are fetched once per id"


def test_the_live_loop_takes_avro_records_between_json_ones() -> None:
    """The native engine stops its batch at a registry-framed record, hands it to the reference to
    decode, and goes on; the journal is the same as record by record."""
    registry = FakeRegistry({1: KEY, 2: ENVELOPE})
    rows = [
        change("orders", "c", {"id": i}, after={"id": i, "status": "NEW"}, lsn=i, offset=i) for i in (2, 4)
    ]
    records = [rows[0], record(), rows[1]]
    produced = core(registry).consume([FakeMessage(r) for r in records], 0)
    reference = core(registry)
    expected = [e for r in records for e in reference.process(r, 0).entries]
    assert produced.journal == [(journal_key(e), serialize(e)) for e in expected]
    assert [e.changes[0].key for e in expected] == [{"id": 2}, {"id": 7}, {"id": 4}]
    assert produced.positions == {("shop.public.orders", 0): 5} and produced.dead_letters == []


def test_unknown_schema_id_is_a_dead_letter() -> None:
    out = core(FakeRegistry({1: KEY})).process(record(value_id=9), 0)
    [dead] = out.dead_letters
    assert dead.reason is DeadLetterReason.BAD_AVRO and "schema id 9" in dead.message


def test_registry_outage_is_retryable_not_a_dead_letter() -> None:
    with pytest.raises(RegistryUnavailable) as info:
        core(FakeRegistry({}, down=True)).process(record(), 0)
    assert info.value.retryable


def test_avro_without_a_registry_names_the_setting() -> None:
    [dead] = core(None).process(record(), 0).dead_letters
    assert dead.reason is DeadLetterReason.BAD_AVRO and "REWIND_TAP__SCHEMA_REGISTRY_URL" in dead.message
