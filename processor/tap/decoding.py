"""Bytes to values: JSON (with or without the converter's schema envelope) or Confluent Avro wire format."""

from __future__ import annotations

import io
import struct
from typing import Any, Protocol

import fastavro

from processor.errors import DeadLetterReason, InvalidRecord, RewindError
from processor.jsonvalue import JsonInvalid, exact, loads
from processor.kafka.messages import SourceRecord

AVRO_MAGIC = 0


class SchemaLookup(Protocol):
    """Finds the writer schema of a Confluent-framed Avro record by its registry id."""

    def parsed_schema(self, schema_id: int) -> Any: ...


def decode(data: bytes | None, record: SourceRecord, lookup: SchemaLookup | None, part: str) -> Any:
    """Decode a key or value; raise InvalidRecord naming the reason and the record's position."""
    return decode_enveloped(data, record, lookup, part)[0]


def decode_enveloped(
    data: bytes | None, record: SourceRecord, lookup: SchemaLookup | None, part: str
) -> tuple[Any, Any]:
    """(value, its Connect schema when the JSON converter sent one (``schemas.enable``), else None)."""
    if data is None:
        return None, None
    if framed(data):
        return _decode_avro(data, record, lookup, part), None
    try:
        value = loads(data)
    except JsonInvalid as exc:
        raise InvalidRecord(
            DeadLetterReason.BAD_JSON, f"{part} is not JSON: {exc}", where=record.where
        ) from exc
    if is_enveloped(value):
        return value["payload"], value["schema"]
    return value, None


def framed(data: bytes | None) -> bool:
    """Confluent's wire format: magic byte 0, a 4-byte schema id, then Avro."""
    return data is not None and len(data) >= 5 and data[0] == AVRO_MAGIC


def decode_text(data: bytes | None, record: SourceRecord, lookup: SchemaLookup | None, part: str) -> Any:
    """A key or value that may also be bare text (``StringConverter``): JSON when it reads as JSON,
    else the text itself; a JSON scalar other than a string stays the text it was written as."""
    if data is None or framed(data):
        return decode(data, record, lookup, part)
    try:
        value = unwrap(loads(data))
    except JsonInvalid:
        value = None
    if isinstance(value, str | dict | list):
        return value
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(
            DeadLetterReason.BAD_JSON,
            f"{part} is neither JSON nor UTF-8 text (byte {exc.start})",
            where=record.where,
        ) from exc


def unwrap(value: Any) -> Any:
    """The JSON converter with schemas.enable wraps each value as {schema, payload}."""
    if is_enveloped(value):
        return value["payload"]
    return value


def is_enveloped(value: Any) -> bool:
    """{schema, payload} where the schema is a Connect schema (an object with a type), not a payload
    that happens to have those two fields."""
    return (
        isinstance(value, dict)
        and value.keys() == {"schema", "payload"}
        and (value["schema"] is None or (isinstance(value["schema"], dict) and "type" in value["schema"]))
    )


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
        return exact(fastavro.schemaless_reader(io.BytesIO(data[5:]), schema, None))
    except RewindError:  # a bad record (InvalidRecord) or an unavailable registry (retryable)
        raise
    except Exception as exc:  # fastavro raises many kinds on bytes that do not fit the schema
        raise InvalidRecord(
            DeadLetterReason.BAD_AVRO,
            f"{part} with schema id {schema_id} cannot be decoded: {exc}",
            where=record.where,
        ) from exc
