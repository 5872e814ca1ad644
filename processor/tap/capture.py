"""Captured records (`kcat -C -J` lines) into source records, for the tap's offline runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from processor.errors import ConfigError, Where
from processor.jsonvalue import JsonInvalid, dumps, loads, text_of
from processor.kafka.messages import SourceRecord


def _text_to_bytes(value: Any) -> bytes | None:
    """A kcat field as the bytes Kafka held: text as is (raw bytes kcat wrote unescaped survive as
    surrogate escapes), a JSON value (kcat's Avro mode) as its JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return dumps(_unwrap_avro_unions(value)).encode("utf-8", "surrogateescape")


# kcat -s avro writes Avro's JSON encoding: a union's branch wrapped as {"type name": value}.
_AVRO_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _unwrap_avro_unions(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((name, inner),) = value.items()
            if name in _AVRO_PRIMITIVES or "." in name:
                return _unwrap_avro_unions(inner)
        return {k: _unwrap_avro_unions(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_avro_unions(v) for v in value]
    return value


def _int_field(obj: dict[str, Any], name: str, low: int, high: int, *, required: bool) -> int | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"'{name}' must be an integer from {low} to {high}, not {str(value)[:40]}")
    return value


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def from_kcat(line: str, where: Where) -> SourceRecord:
    """One line of `kcat -C -J` output: topic, partition, offset, ts, headers [k, v, ...], key, payload."""
    try:
        obj = loads(line)
        if not isinstance(obj, dict):
            raise ValueError("a kcat -J line is a JSON object")
        flat = obj.get("headers") or []
        if not isinstance(flat, list) or len(flat) % 2:
            raise ValueError("headers must be a flat [name, value, ...] list of even length")
        headers = tuple((text_of(flat[i]), _text_to_bytes(flat[i + 1])) for i in range(0, len(flat), 2))
        if not isinstance(obj.get("topic"), str):
            raise ValueError("'topic' must be a text")
        # Key and payload are bytes as kcat wrote them (an undecodable byte stays one, for the core to
        # judge); names are text: a line read with surrogateescape may hold a byte that is not UTF-8.
        for name in (obj["topic"], *(name for name, _ in headers)):
            if not _is_text(name):
                raise ValueError(
                    f"a topic or header name is not UTF-8 text: {name.encode('utf-8', 'replace')!r}"
                )
        return SourceRecord(
            topic=obj["topic"],
            partition=_int_field(obj, "partition", 0, 2**31 - 1, required=False) or 0,
            offset=_int_field(obj, "offset", 0, 2**63 - 1, required=True) or 0,
            key=_text_to_bytes(obj.get("key")),
            value=_text_to_bytes(obj.get("payload")),
            headers=headers,
            timestamp_ms=_int_field(obj, "ts", -(2**63), 2**63 - 1, required=False),
        )
    except (JsonInvalid, ValueError, TypeError) as exc:
        raise ConfigError(f"not a kcat -J record: {exc}", where=where) from None


def read_capture(path: Path, on_error: Callable[[ConfigError], None] | None = None) -> Iterator[SourceRecord]:
    """The records of a capture file, in file order. A line that is not a record names its file and
    line: raised, or given to ``on_error`` and skipped."""
    try:
        data = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read capture: {exc.strerror}", where=Where(file=str(path))) from exc
    with data:
        for number, raw in enumerate(data, start=1):
            line = raw.decode("utf-8", "surrogateescape")
            if not line.strip():
                continue
            try:
                yield from_kcat(line, Where(file=str(path), line=number))
            except ConfigError as exc:
                if on_error is None:
                    raise
                on_error(exc)
