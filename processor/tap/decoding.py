"""Bytes to values: JSON (with or without the converter's schema envelope) or Confluent Avro wire format."""

from __future__ import annotations

import io
import struct
from typing import Any, Protocol

import fastavro
import orjson

from processor.errors import DeadLetterReason, InvalidRecord, RewindError
from processor.tap.records import SourceRecord

AVRO_MAGIC = 0


class SchemaLookup(Protocol):
    """Finds the writer schema of a Confluent-framed Avro record by its registry id."""

    def parsed_schema(self, schema_id: int) -> Any: ...


def decode(data: bytes | None, record: SourceRecord, lookup: SchemaLookup | None, part: str) -> Any:
    """Decode a key or value; raise InvalidRecord naming the reason and the record's position."""
    if data is None:
        return None
    if data[:1] == bytes([AVRO_MAGIC]) and len(data) >= 5:
        return _decode_avro(data, record, lookup, part)
    try:
        return unwrap(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(
            DeadLetterReason.BAD_JSON, f"{part} is not JSON: {exc}", where=record.where
        ) from exc


def unwrap(value: Any) -> Any:
    """The JSON converter with schemas.enable wraps each value as {schema, payload}."""
    if isinstance(value, dict) and value.keys() == {"schema", "payload"}:
        return value["payload"]
    return value


def _decode_avro(data: bytes, record: SourceRecord, lookup: SchemaLookup | None, part: str) -> Any:
    (schema_id,) = struct.unpack(">I", data[1:5])
    if lookup is None:
        raise InvalidRecord(
            DeadLetterReason.BAD_AVRO,
            f"{part} is Avro (schema id {schema_id}) but no schema registry is configured "
            "(set REWIND_TAP__SCHEMA_REGISTRY_URL)",
            where=record.where,
        )
    try:
        schema = lookup.parsed_schema(schema_id)
        return fastavro.schemaless_reader(io.BytesIO(data[5:]), schema, None)
    except RewindError:  # a bad record (InvalidRecord) or an unavailable registry (retryable)
        raise
    except Exception as exc:  # fastavro raises many kinds on bytes that do not fit the schema
        raise InvalidRecord(
            DeadLetterReason.BAD_AVRO,
            f"{part} with schema id {schema_id} cannot be decoded: {exc}",
            where=record.where,
        ) from exc
