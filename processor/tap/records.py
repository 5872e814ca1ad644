"""The one shape a source record has inside the core, whether it came from Kafka or from a capture.

``KafkaMessage`` is the part of ``confluent_kafka.Message`` the tap uses, as a Protocol, because a real
Message cannot be built in a test.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from processor.errors import ConfigError, KafkaError, Where

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
    return None if value is None else str(value).encode("utf-8")


def from_kcat(line: str, where: Where) -> SourceRecord:
    """One line of `kcat -C -J` output: topic, partition, offset, ts, headers [k, v, ...], key, payload."""
    try:
        obj = json.loads(line)
        flat = obj.get("headers") or []
        if len(flat) % 2:
            raise ValueError("headers must be a flat [name, value, ...] list of even length")
        headers = tuple((str(flat[i]), _text_to_bytes(flat[i + 1])) for i in range(0, len(flat), 2))
        return SourceRecord(
            topic=str(obj["topic"]),
            partition=int(obj.get("partition", 0)),
            offset=int(obj["offset"]),
            key=_text_to_bytes(obj.get("key")),
            value=_text_to_bytes(obj.get("payload")),
            headers=headers,
            timestamp_ms=int(obj["ts"]) if obj.get("ts") is not None else None,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"not a kcat -J record: {exc}", where=where) from exc


def read_capture(path: Path) -> Iterator[SourceRecord]:
    """The records of a capture file, in file order; a malformed line names its file and line."""
    try:
        lines = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read capture: {exc.strerror}", where=Where(file=str(path))) from exc
    with lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield from_kcat(line, Where(file=str(path), line=number))
