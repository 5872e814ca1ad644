"""How a component's sessions end and start over (processor.kafka.loop.run_sessions), with librdkafka's
own error objects: an abortable transaction error aborts and starts over, a fatal client error starts
over with new clients, rewind's own non-retryable errors end the component."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException

from processor.errors import ClientFatal, ConfigError, KafkaError, Restart
from processor.kafka import loop


def _failing(*failures: BaseException) -> tuple[list[int], object]:
    """A session that fails with each of ``failures`` in turn, then returns; and how often it ran."""
    runs: list[int] = []

    def session(_stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) <= len(failures):
            raise failures[len(runs) - 1]

    return runs, session


def _no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading.Event, "wait", lambda _self, _timeout=None: False)


def test_a_fenced_producer_starts_a_new_session_with_new_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_wait(monkeypatch)
    fenced = KafkaException(ConfluentError(ConfluentError._FENCED, "producer fenced", fatal=True))
    abortable = loop.SessionRestart("commit failed: abortable")
    away = KafkaException(ConfluentError(ConfluentError._TRANSPORT, "broker down", retriable=True))
    runs, session = _failing(fenced, abortable, away)
    causes: list[Restart] = []
    loop.run_sessions("tap", session, threading.Event(), on_restart=causes.append)  # type: ignore[arg-type]
    assert len(runs) == 4
    assert causes == [Restart.CLIENT_FATAL, Restart.ABORTED, Restart.RETRYABLE]


def test_rewinds_own_non_retryable_error_ends_the_component(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_wait(monkeypatch)
    runs, session = _failing(ConfigError("no keyring"))
    with pytest.raises(ConfigError, match="no keyring"):
        loop.run_sessions("rollback worker", session, threading.Event())  # type: ignore[arg-type]
    assert len(runs) == 1


def test_a_component_that_cannot_rebuild_its_state_ends_on_any_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_wait(monkeypatch)
    fenced = KafkaException(ConfluentError(ConfluentError._FENCED, "producer fenced", fatal=True))
    runs, session = _failing(fenced)
    with pytest.raises(ClientFatal, match="producer fenced"):
        loop.run_sessions("rollback worker", session, threading.Event(), restartable=False)  # type: ignore[arg-type]
    assert len(runs) == 1


def test_client_errors_say_whether_new_clients_are_needed() -> None:
    fatal = loop.client_error(
        "commit failed", KafkaException(ConfluentError(ConfluentError._FENCED, fatal=True))
    )
    assert isinstance(fatal, ClientFatal) and fatal.retryable
    other = loop.client_error("commit failed", KafkaException(ConfluentError(ConfluentError._TIMED_OUT)))
    assert type(other) is KafkaError and other.retryable and "commit failed" in str(other)


def test_a_transactional_call_that_never_returns_abandons_the_producer() -> None:
    """librdkafka can block in send_offsets_to_transaction past its own timeout (its issue #5456)."""
    never = threading.Event()
    started = time.monotonic()
    with pytest.raises(ClientFatal, match="send_offsets_to_transaction did not return in 0s"):
        loop.within(0.2, "send_offsets_to_transaction", never.wait)
    assert time.monotonic() - started < 2
    never.set()


def test_a_transactional_call_returns_or_raises_as_it_would() -> None:
    loop.within(5, "commit_transaction", lambda: None)
    failed = KafkaException(ConfluentError(ConfluentError._STATE, "abortable", txn_requires_abort=True))

    def fail() -> None:
        raise failed

    with pytest.raises(KafkaException) as raised:
        loop.within(5, "commit_transaction", fail)
    assert raised.value is failed
