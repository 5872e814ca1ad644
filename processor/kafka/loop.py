"""The one Kafka loop of every long-running component (tap, graph builder, rollback worker): sessions
restarted with backoff, what ends a session and what ends the component decided once, a topic's
partitions, reading a topic to its end, and the transactional commit.

One transactional commit, in this order, written down here only:
1. produce the outputs (journal entries, dead letters, commands, status records);
2. send the consumed offsets to the transaction;
3. commit it.
An abortable failure aborts the transaction, and the session starts over from the committed state
(the next ``init_transactions`` fences whatever was left). A fatal client error (librdkafka's: a fenced
producer, a broken idempotence sequence) makes the client unusable, not the component: the session
starts over with new clients and re-reads its state. Only rewind's own non-retryable errors (settings,
a component handed state it cannot rebuild) end a component.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka import KafkaError as ConfluentError

from processor.errors import ClientFatal, KafkaError, Restart, RewindError
from processor.kafka import failpoints
from processor.kafka.messages import is_error

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
BATCH = 1000


class SessionRestart(Exception):
    """The current transaction was aborted: start a new session from the committed state."""


class Stopping(Exception):
    """The component was asked to stop in the middle of something that must not end half done."""


def run_sessions(
    name: str,
    session: Callable[[threading.Event], None],
    stop: threading.Event,
    *,
    restartable: bool = True,
    on_restart: Callable[[Restart], None] | None = None,
) -> None:
    """Run ``session`` until it returns or ``stop`` is set; a retryable failure starts a new one after
    a backoff (1 s, doubling to 30 s), a non-retryable one is raised. ``restartable=False``: raise every
    failure (a component handed state it cannot rebuild). ``on_restart`` hears why each restart was."""
    backoff = 1.0
    while not stop.is_set():
        try:
            session(stop)
            return
        except Stopping:
            return
        except SessionRestart as exc:
            if not restartable:
                raise KafkaError(f"the {name} transaction was aborted: {exc}", retryable=False) from exc
            logger.warning("%s session restarts from committed state: %s", name, exc)
            cause = Restart.ABORTED
        except (RewindError, KafkaException) as exc:
            error = client_error(name, exc) if isinstance(exc, KafkaException) else exc
            if not restartable or not error.retryable:
                raise error from exc
            # What ran ahead of the last commit is forgotten; the next session's init_transactions aborts
            # the transaction left open (and fences a zombie holding the same transactional id).
            fatal = isinstance(error, ClientFatal)
            cause = Restart.CLIENT_FATAL if fatal else Restart.RETRYABLE
            log = logger.error if fatal else logger.warning
            log("%s session stopped (%s); restarting in %.0fs with new clients", name, error, backoff)
        if on_restart is not None:
            on_restart(cause)
        stop.wait(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


def client_error(what: str, exc: KafkaException) -> KafkaError:
    """A client's exception as rewind's: ``ClientFatal`` when librdkafka calls it fatal (the client is
    unusable; new ones may work), else a retryable ``KafkaError``."""
    error: Any = exc.args[0] if exc.args else exc
    is_fatal = getattr(error, "fatal", None)
    if callable(is_fatal) and is_fatal():
        return ClientFatal(f"{what}: fatal client error: {error}")
    return KafkaError(f"{what}: {error}", retryable=True)


def init_transactions(producer: Producer, name: str) -> None:
    """Fence any predecessor with the same transactional id and abort what it left open."""
    try:
        producer.init_transactions(60)
    except KafkaException as exc:
        raise KafkaError(f"the {name} cannot start transactions: {exc}", retryable=True) from exc


def commit(producer: Producer, offsets: list[TopicPartition], group: object | None) -> None:
    """Steps 2 and 3 of the commit (the outputs are produced already), then begin the next
    transaction. An abortable failure aborts and restarts the session; any other is raised."""
    try:
        failpoints.reach("commit.before_offsets")
        if offsets and group is not None:
            send = lambda: producer.send_offsets_to_transaction(offsets, group, 15)  # noqa: E731
            within(20, "send_offsets_to_transaction", send)
        failpoints.reach("commit.after_offsets")
        within(75, "commit_transaction", lambda: producer.commit_transaction(60))
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        requires_abort = getattr(error, "txn_requires_abort", None)
        if callable(requires_abort) and requires_abort():
            abort(producer, f"commit failed: {error}")
        raise client_error("commit failed", exc) from exc
    failpoints.reach("commit.after_commit")
    producer.begin_transaction()


def within(seconds: float, what: str, call: Callable[[], object]) -> None:
    """``call`` (a transactional call of the producer), given up on past ``seconds``: librdkafka can
    block in send_offsets_to_transaction far past its own timeout when the group coordinator goes away
    mid-transaction (librdkafka issues #5456, #5511; seen here on a clean broker restart). The producer
    is then abandoned (its thread stays blocked) and the session starts over with a new one, whose
    init_transactions fences it."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=run, name=f"kafka-{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise ClientFatal(f"{what} did not return in {seconds:.0f}s: the producer is abandoned")
    if raised:
        raise raised[0]


def abort(producer: Producer, why: str) -> None:
    """Abort the open transaction and start the session over from the committed state."""
    try:
        producer.abort_transaction(30)
    except KafkaException as exc:
        logger.warning("abort failed: %s", exc)
    raise SessionRestart(why)


def partitions(client: Consumer, topic: str, *, missing_ok: bool = False) -> list[int]:
    """The topic's partitions; a topic that is not there (yet) ends the session, to be tried again
    (``missing_ok``: it has none)."""
    meta = client.list_topics(topic, timeout=30).topics.get(topic)
    if meta is None or meta.error is not None:
        if missing_ok:
            return []
        raise KafkaError(f"topic {topic} is not there: {meta.error if meta else 'missing'}", retryable=True)
    return sorted(meta.partitions)


def from_beginning(topic: str, parts: Iterable[int]) -> list[TopicPartition]:
    return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]


def ends(client: Consumer, topic: str, parts: Iterable[int]) -> dict[int, int]:
    """Each partition's high watermark (with read_committed, the last stable offset)."""
    return {p: _watermarks(client, topic, p)[1] for p in parts}


def beginnings(client: Consumer, topic: str, parts: Iterable[int]) -> dict[int, int]:
    """Each partition's first offset still held (after retention)."""
    return {p: _watermarks(client, topic, p)[0] for p in parts}


_NO_LEADER_YET = frozenset({
    ConfluentError.NOT_LEADER_FOR_PARTITION, ConfluentError.LEADER_NOT_AVAILABLE,
    ConfluentError.UNKNOWN_TOPIC_OR_PART, ConfluentError._TRANSPORT,
})  # fmt: skip


def _watermarks(client: Consumer, topic: str, partition: int, timeout_s: float = 30) -> tuple[int, int]:
    """A partition's (low, high) watermarks, asked again while the answer is a retriable error (a topic
    just created has no leader for a moment)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = client.get_watermark_offsets(TopicPartition(topic, partition), timeout_s)
            return int(low), int(high)
        except KafkaException as exc:
            error: Any = exc.args[0] if exc.args else None
            code = error.code() if hasattr(error, "code") else None
            if code not in _NO_LEADER_YET or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def at_end(reader: Consumer, starts: Mapping[int, int] | None = None) -> bool:
    """Whether the reader has read every assigned partition to its current (uncached) end. A partition
    the reader consumed nothing from has no position: it stands at the offset it was assigned
    (``starts``, partition -> offset; without them, nothing read yet counts as not at the end)."""
    for tp in reader.position(reader.assignment()):
        _low, high = reader.get_watermark_offsets(tp, timeout=5, cached=False)
        offset = tp.offset if tp.offset >= 0 else (starts or {}).get(tp.partition, -1)
        if high > 0 and offset < high:
            return False
    return True


def read_so_far(reader: Consumer, starts: Mapping[int, int], stop_at: Mapping[int, int]) -> tuple[int, int]:
    """``(done, total)`` offsets of a catch-up from ``starts`` to ``stop_at`` (partition -> offset):
    positions count transaction markers as read, so done reaches total."""
    done = 0
    for tp in reader.position(reader.assignment()):
        if tp.partition in stop_at:
            at = tp.offset if tp.offset >= 0 else starts[tp.partition]
            done += min(at, stop_at[tp.partition]) - starts[tp.partition]
    return done, sum(stop_at[p] - starts[p] for p in stop_at)


def read_to_end(
    reader: Consumer,
    topic: str,
    starts: dict[int, int] | None = None,
    *,
    what: str,
    timeout_s: float = 300,
) -> list[Message]:
    """Every record of the topic from ``starts`` (partition -> offset; default: the beginning) up to its
    current end. A read that does not finish in time ends the session: a partial read would let the
    component start from a state it never had."""
    parts = partitions(reader, topic)
    stop_at = ends(reader, topic, parts)
    begin = {p: (starts or {}).get(p, OFFSET_BEGINNING) for p in parts}
    todo = [TopicPartition(topic, p, begin[p]) for p in parts if stop_at[p] > 0 and begin[p] < stop_at[p]]
    if not todo:
        return []
    reader.assign(todo)
    found: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while True:
        found += [m for m in reader.consume(BATCH, timeout=0.5) if not is_error(m)]
        positions = reader.position([TopicPartition(t.topic, t.partition) for t in todo])
        if all(tp.offset >= stop_at[tp.partition] for tp in positions):
            return found
        if time.monotonic() > deadline:
            raise KafkaError(f"reading {what} ({topic}) did not finish in {timeout_s:.0f}s", retryable=True)
