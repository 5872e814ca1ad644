"""Avro schemas of rewind's own topics: loading, validation that names the bad field, and (de)serialization.

The ``.avsc`` files live in the repository's ``schemas/`` directory (packaged as ``processor/_schemas``).
Values that are free-form JSON in the source systems (row images, payloads) travel as JSON text.
"""

from __future__ import annotations

import io
import json
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate

from processor.errors import RecordInvalid, SchemaError, Where

Record = dict[str, Any]


class SchemaName(StrEnum):
    JOURNAL_ENTRY = "journal_entry"
    ROLLBACK_REQUEST = "rollback_request"
    ROLLBACK_CONTROL = "rollback_control"
    ROLLBACK_STATUS = "rollback_status"
    COMPENSATION = "compensation"
    DRILL_VERDICT = "drill_verdict"


def schema_dir() -> Path:
    packaged = Path(__file__).parent / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "schemas"


@cache
def raw_schema(name: SchemaName) -> dict[str, Any]:
    path = schema_dir() / f"{name.value}.avsc"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaError(f"cannot load schema {name.value}: {exc}", where=Where(file=str(path))) from exc
    return data


@cache
def parsed_schema(name: SchemaName) -> Any:
    try:
        return fastavro.parse_schema(raw_schema(name))
    except fastavro.schema.SchemaParseException as exc:
        raise SchemaError(f"schema {name.value} is not valid Avro: {exc}") from exc


def check(record: Record, name: SchemaName, where: Where | None = None) -> None:
    """Raise RecordInvalid naming the first field (as a dotted path) that does not fit."""
    missing = _first_missing(raw_schema(name), record, "", _named_types(name))
    if missing is not None:
        raise RecordInvalid(
            f"{name.value}: required field '{missing}' is missing",
            schema=name.value,
            field=missing,
            where=where,
        )
    try:
        validate(record, parsed_schema(name), raise_errors=True, strict=False)
    except ValidationError as exc:
        field = _short_field(exc.errors[0].field) if exc.errors else "?"
        raise RecordInvalid(
            f"{name.value}: field '{field}' does not fit its type: {exc.errors[0] if exc.errors else exc}",
            schema=name.value,
            field=field,
            where=where,
        ) from exc


def encode(record: Record, name: SchemaName) -> bytes:
    """Schemaless Avro bytes of a record; fields left out take their schema default.

    The writer itself refuses data that does not fit; only then is the record checked, to say which
    field is wrong (checking every record up front costs more than writing it).
    """
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(buf, parsed_schema(name), record, strict_allow_default=True)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        check(record, name)
        raise SchemaError(f"{name.value}: record does not fit the schema: {exc}") from exc
    return buf.getvalue()


def decode(data: bytes, name: SchemaName, where: Where | None = None) -> Record:
    try:
        record = fastavro.schemaless_reader(io.BytesIO(data), parsed_schema(name), None)
    except (EOFError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise SchemaError(f"bytes are not a valid {name.value}: {exc}", where=where) from exc
    if not isinstance(record, dict):
        raise SchemaError(f"bytes decoded to {type(record).__name__}, not a {name.value}", where=where)
    return record


def _short_field(qualified: str | None) -> str:
    """'io.kafkarewind.rollback.Selector.kind' -> 'Selector.kind'."""
    return ".".join((qualified or "?").split(".")[-2:])


@cache
def _named_types(name: SchemaName) -> dict[str, Any]:
    named: dict[str, Any] = {}

    def collect(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                collect(branch)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "enum", "fixed"):
                named[node["name"]] = node
            for field in node.get("fields", []):
                collect(field["type"])
            collect(node.get("items"))
            collect(node.get("values"))
            if isinstance(node.get("type"), (dict, list)):
                collect(node["type"])

    collect(raw_schema(name))
    return named


def _first_missing(schema: Any, value: Any, path: str, named: dict[str, Any]) -> str | None:
    """Walk a schema beside a value; return the dotted path of a required field that is absent."""
    schema = named.get(schema, schema) if isinstance(schema, str) else schema
    if isinstance(schema, list):  # a union: descend only into the one branch the value can be
        kinds: dict[Any, type] = {"record": dict, "array": list}
        fits = [
            b
            for b in (named.get(b, b) if isinstance(b, str) else b for b in schema)
            if isinstance(b, dict) and isinstance(value, kinds.get(b.get("type"), ()))
        ]
        return _first_missing(fits[0], value, path, named) if len(fits) == 1 else None
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "record" and isinstance(value, dict):
        for field in schema["fields"]:
            sub = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] not in value:
                if "default" not in field:
                    return sub
            elif found := _first_missing(field["type"], value[field["name"]], sub, named):
                return found
    elif schema.get("type") == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            if found := _first_missing(schema["items"], item, f"{path}[{i}]", named):
                return found
    elif isinstance(schema.get("type"), (dict, list)):
        return _first_missing(schema["type"], value, path, named)
    return None
