"""Kafka messages as the core sees them: ``SourceRecord``, the one shape a record has inside the core
whether it came from Kafka or from a capture; ``KafkaMessage``, the part of ``confluent_kafka.Message``
the loops read, as a Protocol (a real Message cannot be built in a test); headers; and whether a
consumer's error event ends the session. No client library is imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from processor.errors import ClientFatal, KafkaError, Where

logger = logging.getLogger(__name__)


class MessageError(Protocol):
    def fatal(self) -> bool: ...
    def retriable(self) -> bool: ...
    def name(self) -> str: ...
    def str(self) -> str: ...


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
            headers=header_pairs(msg.headers()),
            timestamp_ms=ts if ts_type else None,
        )


def is_error(msg: KafkaMessage) -> bool:
    """A consumer event rather than a record: skipped when the client will recover by itself,
    raised (ending the session) otherwise."""
    error = msg.error()
    if error is None:
        return False
    if error.name() == "UNKNOWN_TOPIC_OR_PART":  # not created yet (Debezium makes them lazily)
        _warn_once(f"consumer: {error.str()}: it is read once it exists")
        return True
    if error.fatal():
        raise ClientFatal(f"consumer: {error}")
    if not error.retriable():
        raise KafkaError(f"consumer: {error}", retryable=True)
    logger.warning("consumer: %s", error)
    return True


_warned: set[str] = set()


def _warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        logger.warning("%s", text)


Headers = Mapping[str, bytes | str | None] | Sequence[tuple[str, bytes | str | None]] | None


def header_pairs(raw: Headers) -> tuple[tuple[str, bytes | None], ...]:
    """A client's headers (a list of pairs, a dict, or None) as (name, bytes) pairs, in order."""
    items = raw.items() if isinstance(raw, Mapping) else raw or ()
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in items)
