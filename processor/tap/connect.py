"""Kafka Connect's and Debezium's encodings inside row images, read back to exact values.

- ``org.apache.kafka.connect.data.Decimal`` (``decimal.handling.mode=precise``, the default): the
  unscaled value as big-endian two's-complement bytes in base64, the scale only in the schema. With
  ``schemas.enable`` the tap reads it; without, the text stays as it came (it cannot be read).
- ``io.debezium.data.VariableScaleDecimal`` (NUMERIC without precision): ``{"scale": s, "value": b64}``,
  readable with or without the schema.
- Placeholders: under PostgreSQL's ``REPLICA IDENTITY DEFAULT`` a delete's before-image holds the key,
  null for nullable columns and a stand-in for NOT NULL ones (the column default when the schema has
  one, else a zero of the type: ``JdbcValueConverters``). Such an image is not the old row.
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from typing import Any

from processor.jsonvalue import canonical_json, is_number

DECIMAL = "org.apache.kafka.connect.data.Decimal"
VARIABLE_SCALE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", re.ASCII)
MAX_SCALE = 1_000_000  # beyond any database's; a larger scale is not a decimal
MAX_DECIMAL_BYTES = 1024  # ~2,466 digits; longer is not a column value (and past Python's int text)
# JdbcValueConverters' stand-ins for NOT NULL columns besides zeros and "": timestamptz, timetz, and
# BigDecimal.ZERO's bytes in precise mode without a schema.
_TEXT_PLACEHOLDERS = frozenset({"1970-01-01T00:00:00Z", "00:00:00Z", "AA=="})

Fields = dict[str, dict[str, Any]]


class NotDecimal(ValueError):
    """A value the schema names a decimal does not read as one; the message says why."""


def image_fields(envelope_schema: Any, image: str) -> Fields:
    """The field schemas of the envelope's 'before' or 'after' struct, by name ({} without a schema)."""
    struct = _field(envelope_schema, image)
    return _by_name(struct)


def key_fields(key_schema: Any) -> Fields:
    return _by_name(key_schema)


def _field(struct: Any, name: str) -> Any:
    for f in _fields_of(struct):
        if f.get("field") == name:
            return f
    return None


def _fields_of(struct: Any) -> list[dict[str, Any]]:
    fields = struct.get("fields") if isinstance(struct, dict) else None
    return [f for f in fields if isinstance(f, dict)] if isinstance(fields, list) else []


def _by_name(struct: Any) -> Fields:
    return {f["field"]: f for f in _fields_of(struct) if isinstance(f.get("field"), str)}


def read_decimals(image: dict[str, Any], fields: Fields) -> dict[str, Any]:
    """The image with every decimal it holds read as a number; raises NotDecimal naming the field."""
    out = image
    for name, value in image.items():
        decoded = _read(value, fields.get(name), name)
        if decoded is not value:
            if out is image:
                out = dict(image)
            out[name] = decoded
    return out


def _read(value: Any, schema: Any, name: str) -> Any:
    logical = schema.get("name") if isinstance(schema, dict) else None
    if logical == DECIMAL and isinstance(value, str):
        return _decimal(value, _scale(schema, name), name)
    if isinstance(value, dict) and (logical == VARIABLE_SCALE_DECIMAL or logical is None):
        return _variable_scale(value, name, strict=logical == VARIABLE_SCALE_DECIMAL)
    if isinstance(value, list) and isinstance(schema, dict) and schema.get("type") == "array":
        items = schema.get("items")
        decoded = [_read(v, items, f"{name}[{i}]") for i, v in enumerate(value)]
        return decoded if any(d is not v for d, v in zip(decoded, value, strict=True)) else value
    return value


def _scale(schema: dict[str, Any], name: str) -> int:
    parameters = schema.get("parameters")
    raw = parameters.get("scale") if isinstance(parameters, dict) else None
    if isinstance(raw, str) and re.fullmatch(r"-?[0-9]{1,7}", raw, re.ASCII):
        scale = int(raw)
        if abs(scale) <= MAX_SCALE:
            return scale
    raise NotDecimal(f"field '{name}' is a Decimal without a readable scale in its schema ({raw!r})")


def _variable_scale(value: dict[str, Any], name: str, *, strict: bool) -> Any:
    scale, digits = value.get("scale"), value.get("value")
    if (
        value.keys() == {"scale", "value"}
        and isinstance(scale, int)
        and not isinstance(scale, bool)
        and abs(scale) <= MAX_SCALE
        and isinstance(digits, str)
        and _BASE64.fullmatch(digits) is not None
    ):
        return _decimal(digits, scale, name)
    if strict:
        raise NotDecimal(f"field '{name}' is a VariableScaleDecimal but holds {canonical_json(value)[:80]}")
    return value


def _decimal(text: str, scale: int, name: str) -> Decimal:
    if _BASE64.fullmatch(text) is None:
        raise NotDecimal(f"field '{name}' is a Decimal but {text[:40]!r} is not base64")
    raw = base64.b64decode(text)
    if len(raw) > MAX_DECIMAL_BYTES:
        raise NotDecimal(f"field '{name}' holds a decimal of {len(raw)} bytes (at most {MAX_DECIMAL_BYTES})")
    unscaled = int.from_bytes(raw, "big", signed=True)
    return Decimal(f"{unscaled}E{-scale}")


def looks_base64(value: Any) -> bool:
    """Text that may be an unreadable Decimal (base64 bytes without the schema)."""
    return isinstance(value, str) and bool(value) and _BASE64.fullmatch(value) is not None


def placeholder_image(raw: dict[str, Any], read: dict[str, Any], key: dict[str, Any], fields: Fields) -> bool:
    """Whether every non-key value of a before-image (as it came, and with its decimals read) is what
    PostgreSQL's connector puts in place of an old value it was not sent: null, the column default
    from the schema, or a zero of its type."""
    others = [f for f in raw if f not in key]
    return bool(others) and all(
        _placeholder(raw[f], fields.get(f)) or _placeholder(read.get(f), fields.get(f)) for f in others
    )


def _placeholder(value: Any, schema: Any) -> bool:
    if value is None or value is False or value == "" or (is_number(value) and value == 0):
        return True
    if isinstance(value, str) and value in _TEXT_PLACEHOLDERS:
        return True
    default = schema.get("default") if isinstance(schema, dict) else None
    return default is not None and canonical_json(default) == canonical_json(value)
