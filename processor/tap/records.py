"""The one shape a source record has inside the core, whether it came from Kafka or from a capture.

``KafkaMessage`` is the part of ``confluent_kafka.Message`` the tap uses, as a Protocol, because a real
Message cannot be built in a test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from processor.errors import ConfigError, KafkaError, Where
from processor.jsonvalue import JsonInvalid, dumps, loads, text_of

logger = logging.getLogger(__name__)


class MessageError(Protocol):
    def fatal(self) -> bool: ...
    def retriable(self) -> bool: ...


class KafkaMessage(Protocol):
    def error(self) -> MessageError | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(
        self,
    ) -> Mapping[str, bytes | str | None] | Sequence[tuple[str, bytes | str | None]] | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class SourceRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_ms: int | None = None

    @property
    def where(self) -> Where:
        return Where(topic=self.topic, partition=self.partition, offset=self.offset)

    @property
    def size(self) -> int:
        return (
            len(self.key or b"")
            + len(self.value or b"")
            + sum(len(k) + len(v or b"") for k, v in self.headers)
        )

    def header_map(self) -> dict[str, str | None]:
        """All headers as text, the last of a repeated name winning."""
        return {k: None if v is None else v.decode("utf-8", errors="replace") for k, v in self.headers}

    def header(self, name: str) -> str | None:
        """The last header of that name, as text (Kafka allows repeats; the last one wins)."""
        for key, value in reversed(self.headers):
            if key == name:
                return None if value is None else value.decode("utf-8", errors="replace")
        return None

    @classmethod
    def from_message(cls, msg: KafkaMessage) -> SourceRecord:
        ts_type, ts = msg.timestamp()
        return cls(
            topic=msg.topic() or "",
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            key=msg.key(),
            value=msg.value(),
            headers=_headers(msg.headers()),
            timestamp_ms=ts if ts_type else None,
        )


def is_error(msg: KafkaMessage) -> bool:
    """A consumer event rather than a record: skipped when the client will recover by itself,
    raised (ending the session) otherwise."""
    error = msg.error()
    if error is None:
        return False
    if error.fatal() or not error.retriable():
        raise KafkaError(f"consumer: {error}", retryable=not error.fatal())
    logger.warning("consumer: %s", error)
    return True


def _headers(
    raw: Mapping[str, bytes | str | None] | Sequence[tuple[str, bytes | str | None]] | None,
) -> tuple[tuple[str, bytes | None], ...]:
    items = raw.items() if isinstance(raw, Mapping) else raw or ()
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in items)


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
