"""Dead letters: a record that cannot be taken, why, and the message that carries it to the dead-letter
topic (pure; the tap and the rollback worker both write them).

The message is the record unchanged, with ``rewind.dlq.*`` headers saying why and where it came from.
A record too large to produce whole (past the producer's message size, where writing it would fail the
transaction on every retry) is written as a reference instead: its first bytes, its size and the
SHA-256 of its value, with the source position to fetch it from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from processor.errors import DeadLetterReason
from processor.kafka.messages import SourceRecord

DLQ_PREFIX = "rewind.dlq."
PREFIX_BYTES = 4096  # kept of a value too large to write whole
_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    reason: DeadLetterReason
    message: str


@dataclass(frozen=True, slots=True)
class DeadLetterMessage:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    truncated: bool


def dead_letter_message(dead: DeadLetter, max_bytes: int) -> DeadLetterMessage:
    """What to produce for a dead letter: the record whole when it fits ``max_bytes``, else a reference."""
    r = dead.record
    ours = {
        "reason": dead.reason.value,
        "error": dead.message[:2000],
        "source.topic": r.topic,
        "source.partition": str(r.partition),
        "source.offset": str(r.offset),
    }
    own = [(DLQ_PREFIX + k, v.encode()) for k, v in ours.items()]
    whole = r.size + sum(len(k) + len(v) for k, v in own)
    if whole <= max_bytes:
        headers: list[tuple[str, str | bytes | None]] = [*((k, v or b"") for k, v in r.headers), *own]
        return DeadLetterMessage(r.key, r.value, headers, truncated=False)
    value = r.value or b""
    reference = {
        "truncated": str(r.size),  # bytes of the whole record (key, value, headers)
        "value.sha256": hashlib.sha256(value).hexdigest(),
        "value.bytes": str(len(value)),
        "headers.dropped": str(len(r.headers)),
    }
    key = r.key if r.key is None or len(r.key) <= _KEY_BYTES else r.key[:_KEY_BYTES]
    headers = [*own, *((DLQ_PREFIX + k, v.encode()) for k, v in reference.items())]
    return DeadLetterMessage(key, value[:PREFIX_BYTES], headers, truncated=True)
