"""The one error tree of kafka-rewind: every error says what, where, how to fix it, and whether to retry.

Whether an operation may be retried is data on the exception (``retryable``), decided where the
failure is understood, never guessed at the call site.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Where:
    """Where a problem was found: a Kafka record position, a file and line, or a component."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None
    component: str | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.component:
            parts.append(self.component)
        if self.topic is not None:
            parts.append(f"{self.topic}[{self.partition}]@{self.offset}")
        if self.file is not None:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        return " ".join(parts)


class RewindError(Exception):
    """Base of every error kafka-rewind raises on purpose."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        where: Where | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        text = self.message
        if self.where is not None and str(self.where):
            text = f"{text} (at {self.where})"
        if self.hint:
            text = f"{text}\n  fix: {self.hint}"
        return text


class ConfigError(RewindError):
    """Settings or a configuration file are invalid."""


class SchemaError(RewindError):
    """An Avro schema cannot be loaded, or a record does not fit its schema."""


class RecordInvalid(SchemaError):
    """A record does not fit its schema; ``field`` names the offending field path."""

    def __init__(self, message: str, *, schema: str, field: str, where: Where | None = None) -> None:
        super().__init__(message, where=where)
        self.schema = schema
        self.field = field


class DeadLetterReason(StrEnum):
    """Why a source record went to the dead-letter topic instead of the journal."""

    BAD_JSON = "bad_json"
    BAD_AVRO = "bad_avro"
    BAD_ENVELOPE = "bad_envelope"
    UNKNOWN_OP = "unknown_op"
    OVERSIZED = "oversized"
    MISSING_KEY = "missing_key"
    BAD_TX_METADATA = "bad_tx_metadata"
    BAD_OUTBOX = "bad_outbox"
    UNRECOGNIZED = "unrecognized"
    UNSUPPORTED_SOURCE = "unsupported_source"  # a connector whose positions rewind cannot read
    BAD_REQUEST = "bad_request"  # a rollback request record that is not Avro of the request schema
    BAD_CONTROL = "bad_control"
    REFUSED_CONTROL = "refused_control"  # a control message whose signature the worker's gate refused


class InvalidRecord(RewindError):
    """A source record cannot be journaled; it goes to the dead-letter topic with this reason."""

    def __init__(self, reason: DeadLetterReason, message: str, *, where: Where | None = None) -> None:
        super().__init__(f"{reason.value}: {message}", where=where)
        self.reason = reason
        self.detail = message


class KafkaError(RewindError):
    """A Kafka operation failed; ``retryable`` follows what the client reported."""


class Restart(StrEnum):
    """Why a component's session started over (``rewind_session_restarts_total{cause}``)."""

    ABORTED = "aborted"  # an abortable transaction error: aborted, the session starts over
    RETRYABLE = "retryable"  # a failure a new session may not meet (a broker away, a topic missing)
    CLIENT_FATAL = "client_fatal"  # a client made unusable (fenced, ...): new clients, state re-read


class ClientFatal(KafkaError):
    """A Kafka client instance is unusable: librdkafka's fatal errors (a producer fenced by a newer one
    with its transactional id, an idempotence sequence broken, a static group member fenced). Retryable
    with new clients: the session restarts, creates them again and re-reads its state from what was
    committed."""

    retryable = True


class LocalServiceError(RewindError):
    """A local service (broker, PostgreSQL, Kafka Connect) could not be fetched, started or stopped."""


class ToolMissing(LocalServiceError):
    """A program a local service needs (Java, Maven, PostgreSQL) is not installed or too old."""


class PortInUse(LocalServiceError):
    """A port a local service wants is already bound by another process."""


class ServiceNotReady(LocalServiceError):
    """A local service's process exited or did not report readiness in time."""

    retryable = True

    def __init__(self, message: str, *, log_tail: str, hint: str | None = None) -> None:
        super().__init__(f"{message}\n--- last lines of its log ---\n{log_tail}", hint=hint)
        self.log_tail = log_tail


class JarResolutionFailed(LocalServiceError):
    """Maven could not resolve the broker's jars."""

    retryable = True
