"""The rollback worker's Kafka loop around the engine.

Start-up, in this order, so nothing is emitted twice and nothing is planned on a partial graph:
1. ``init_transactions`` fences a previous incarnation (same transactional id) and aborts its open
   transaction: commands it produced but did not commit never become visible.
2. The graph comes from the graph builder's checkpoint and the action store from the worker's own file,
   each with the journal position it reflects (missing or unreadable: rebuilt from the journal, and the
   log says so).
3. The status topic is read to its end (read_committed): each request's last committed progress.
4. The journal is read to its end from the older of those two positions (and from before the oldest
   emission still unconfirmed, so an answer journaled before a checkpoint still confirms its step);
   entries already known change nothing, entries caused by an emitted command confirm their step.
Then it loops: journal entries in; requests and control commands (a consumer group whose offsets are
committed in the worker's transactions) in; commands and status records out, in one transaction
together with those offsets. Before planning a request, the journal is caught up to its end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from processor.catalog.catalog import Catalog
from processor.config import Settings, SigningSettings
from processor.errors import ConfigError, DeadLetterReason, KafkaError, Restart, SchemaError, Where
from processor.graph import store as graph_store
from processor.journal.model import JournalEntry
from processor.journal.serde import deserialize
from processor.kafka import clients, loop
from processor.kafka.deadletters import DeadLetter, dead_letter_message
from processor.kafka.messages import SourceRecord, header_pairs, is_error
from processor.metrics import Metrics
from processor.rollback.actions import ActionStore
from processor.rollback.approvals import CONTROL_ROLES, REQUEST_ROLES, ApprovalRules
from processor.rollback.engine import EngineConfig, Outputs, RollbackEngine
from processor.rollback.progress import Policy, StateLog, WaveBarrier
from processor.rollback.request import RequestInvalid, Thresholds
from processor.rollback.serde import decode_control, decode_request, encode_command
from processor.rollback.status import StatusReader, StatusWriter
from processor.security.gate import Gate, SignatureRefused
from processor.security.keys import Keyring
from processor.security.signature import Kind

logger = logging.getLogger(__name__)
BATCH = 1000


def action_store_path(settings: Settings) -> Path:
    """Where the worker keeps its action store: the setting, else beside the graph checkpoint, one file
    per journal and worker instance (':memory:' keeps it in memory)."""
    r = settings.rollback
    if r.store_path is not None:
        return r.store_path
    name = f"actions-{settings.topics.journal}-{r.instance_id}.sqlite"
    return settings.graph.checkpoint_path.with_name(name)


def signing_gate(s: SigningSettings) -> Gate:
    """The gate of a worker session: the keyring's keys; without one, only when signatures are off."""
    keyring = Keyring.load(s.keyring_file) if s.keyring_file else None
    if keyring is None and s.required:
        raise ConfigError(
            "signed requests are required, and no keyring says whose signatures to trust",
            hint="REWIND_SIGNING__KEYRING_FILE=<keyring.yaml> (`rewind keys new` prints its entries), or "
            "REWIND_SIGNING__REQUIRED=false beside a development broker",
        )
    if not s.required:
        logger.warning(
            "rollback: unsigned requests and control messages are admitted (signing.required=false)"
        )
    return Gate(keyring, int(s.window_s * 1000), required=s.required)


def engine_config(settings: Settings) -> EngineConfig:
    r = settings.rollback
    return EngineConfig(
        thresholds=Thresholds(
            steps=r.approve_over_steps, irreversible=r.approve_over_irreversible,
            conflicts=r.approve_over_conflicts, unclassified=r.approve_over_unclassified,
            in_doubt=r.approve_over_in_doubt, max_scope=r.max_scope_actions,
        ),
        policy=Policy(
            confirm_timeout_ms=int(r.confirm_timeout_s * 1000), max_attempts=r.max_attempts,
            backoff=r.backoff, wave_barrier=WaveBarrier(r.wave_barrier),
            max_emits_per_transaction=r.max_emits_per_transaction,
        ),
        notify_topic=r.notify_topic, approvals=ApprovalRules(approvers_required=r.approvers_required),
    )  # fmt: skip


@dataclass
class _Session:
    producer: Producer
    journal: Consumer
    inputs: Consumer
    engine: RollbackEngine
    # Watermark queries go through a client that never fetches: on the journal consumer's own connection
    # they would queue behind its long-poll fetch (fetch.wait.max.ms, 500 ms each).
    probe: Consumer
    journal_partitions: list[int]
    stop: threading.Event
    starts: dict[int, int]  # the offset each journal partition was assigned at
    pending: Outputs = field(default_factory=Outputs)  # found while catching up, written next commit
    read: int = 0  # journal records consumed this session
    read_to: dict[int, int] = field(default_factory=dict)  # journal partition -> next offset, as read
    marked: dict[int, int] = field(default_factory=dict)  # the store's restart position
    status: StatusWriter = field(default_factory=StatusWriter)  # full records, then deltas between them
    busy: bool = False  # the last pass emitted: more may be due
    paced_until: float = 0.0  # with max_emits_per_s: no new emissions before this (monotonic)


class RollbackWorker:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        catalog: Catalog,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        engine: RollbackEngine | None = None,
    ) -> None:
        self.settings = settings
        signing_gate(settings.signing)  # a worker that cannot check signatures does not start
        if engine is not None:
            engine.gate = signing_gate(settings.signing)
        self._engine = engine  # one already holding a graph and store (benchmarks), else built at start
        self.engine: RollbackEngine | None = engine  # the current session's (for a demo's picture)
        self._said = StateLog()
        self.bootstrap = bootstrap
        self.catalog = catalog
        self.metrics = metrics
        self.clock = clock
        self.topics = settings.topics
        self.ready = threading.Event()  # caught up and assigned the request topics (tests and the demo wait)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def run(self, stop: threading.Event) -> None:
        """Run sessions until stopped; a retryable failure restarts from the committed state (the
        status topic and the journal are read again). A given engine cannot be rebuilt: no restart."""
        loop.run_sessions(
            "rollback worker",
            self._session,
            stop,
            restartable=self._engine is None,
            on_restart=self._restarted,
        )

    def _restarted(self, cause: Restart) -> None:
        if self.metrics is not None:
            self.metrics.session_restarted("rollback", cause)

    def _session(self, stop: threading.Event) -> None:
        s = self._start(stop)
        try:
            while not stop.is_set():
                self._pass(s)
                if not self.ready.is_set() and s.inputs.assignment():
                    self.ready.set()  # caught up, and the request partitions are ours
        finally:
            s.journal.close()
            s.inputs.close()
            s.probe.close()
            s.producer.flush(10)  # the engine stays readable (a demo draws from it); its store closes with it

    # -- start-up ------------------------------------------------------------------------------

    def _start(self, stop: threading.Event) -> _Session:
        tx_id = f"{self.settings.transactional_id_prefix}-rollback-{self.settings.rollback.instance_id}"
        producer = clients.producer(
            self.settings, self.bootstrap, transactional_id=tx_id,
            extra={"message.max.bytes": self.settings.rollback.status_max_bytes + 65536,
                   "compression.type": "zstd"},
        )  # fmt: skip
        loop.init_transactions(producer, "rollback worker")
        graph_at: dict[int, int] = {}
        store_at: dict[int, int] = {}
        if self._engine is None:
            engine, graph_at, store_at = self._engine_from_checkpoints()
        else:
            engine = self._engine  # given (benchmarks): its store and graph hold what they hold
        self.engine = engine
        self._load_status(engine)
        journal = clients.consumer(
            self.settings, self.bootstrap, f"{self.settings.group_id}-rollback-journal"
        )
        probe = clients.consumer(self.settings, self.bootstrap, f"{self.settings.group_id}-rollback-probe")
        partitions = loop.partitions(probe, self.topics.journal)
        topic = self.topics.journal
        starts = _journal_starts(loop.beginnings(probe, topic, partitions), graph_at, store_at)
        journal.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        s = _Session(producer, journal, self._inputs(), engine, probe, partitions, stop, starts)
        started = time.monotonic()
        self._catch_up_journal(s)
        engine.note_resumed()  # link the answers to rewind's commands that the catch-up brought
        engine.graph.warm()
        logger.info(
            "rollback: ready with %d actions (%d journal records read in %.1fs), %d requests resumed",
            len(engine.graph), s.read, time.monotonic() - started,
            sum(not p.final for p in engine.requests.values()),
        )  # fmt: skip
        producer.begin_transaction()
        return s

    def _engine_from_checkpoints(self) -> tuple[RollbackEngine, dict[int, int], dict[int, int]]:
        """The engine on the graph builder's checkpoint and the worker's own action store, with the
        journal positions each reflects; what is missing or unreadable is rebuilt from the journal."""
        topic, path = self.topics.journal, self.settings.graph.checkpoint_path
        try:
            checkpoint = graph_store.load(path, topic)
            missing = None if checkpoint else f"no graph checkpoint at {path}"
        except graph_store.CheckpointError as exc:
            checkpoint, missing = None, str(exc)
        if missing:
            logger.warning("rollback: %s; the graph is rebuilt from the journal", missing)
        else:
            assert checkpoint is not None
            logger.info("rollback: graph checkpoint at %s: %d actions", path, len(checkpoint.graph))
        actions, empty = ActionStore.open(action_store_path(self.settings), topic)
        if empty:
            logger.warning("rollback: %s; the action store is filled from the journal", empty)
        engine = RollbackEngine(
            self.catalog, engine_config(self.settings), graph=checkpoint.graph if checkpoint else None,
            actions=actions, observer=self.metrics, gate=signing_gate(self.settings.signing),
        )  # fmt: skip
        return engine, checkpoint.offsets if checkpoint else {}, actions.positions()

    def _inputs(self) -> Consumer:
        consumer = clients.consumer(
            self.settings, self.bootstrap, f"{self.settings.group_id}-rollback",
            extra={"group.instance.id": f"rollback-{self.settings.rollback.instance_id}",
                   "session.timeout.ms": 10000},
        )  # fmt: skip
        consumer.subscribe([self.topics.requests, self.topics.control])
        return consumer

    def _load_status(self, engine: RollbackEngine) -> None:
        """Each request's last committed status record."""
        reader = clients.consumer(self.settings, self.bootstrap, f"{self.settings.group_id}-rollback-status")
        try:
            found = loop.read_to_end(reader, self.topics.status, what="the status topic back")
            latest = StatusReader().latest(
                ((m.value() or b"", _position(m)) for m in found),
                lambda exc: logger.error("rollback: unreadable status record: %s", exc),
            )
            for progress in latest.values():
                engine.resume(progress)
        finally:
            reader.close()

    def _catch_up_journal(self, s: _Session) -> None:
        """Read the journal up to its current end (planning needs every action committed so far)."""
        topic = self.topics.journal
        ends = loop.ends(s.probe, topic, s.journal_partitions)
        deadline = time.monotonic() + 600
        while True:
            # A partition not read from yet has no position: it stands where it was assigned.
            positions = {
                tp.partition: tp.offset if tp.offset >= 0 else s.starts[tp.partition]
                for tp in s.journal.position([TopicPartition(topic, p) for p in ends])
            }
            if all(positions.get(p, 0) >= end for p, end in ends.items()):
                return
            if s.stop.is_set():
                raise loop.Stopping("stopped while catching up with the journal")
            if time.monotonic() > deadline:
                raise KafkaError("catching up with the journal took over 600s", retryable=True)
            s.pending = _merge(s.pending, self._read_journal(s, timeout=0.2))

    # -- the loop --------------------------------------------------------------------------------

    def _pass(self, s: _Session) -> None:
        wait = 0.0 if s.busy else 0.05  # more may be due at once: do not idle in polls
        if self.metrics:
            self.metrics.beat("rollback", bool(s.journal.assignment()) and bool(s.inputs.assignment()))
        out, s.pending = _merge(s.pending, self._read_journal(s, timeout=wait)), Outputs()
        messages = [m for m in s.inputs.consume(100, timeout=2 * wait) if not is_error(m)]
        if messages:
            self._catch_up_journal(s)
            out, s.pending = _merge(out, s.pending), Outputs()
        for msg in messages:
            out = _merge(out, self._handle_input(s, msg))
        if time.monotonic() >= s.paced_until:
            out = _merge(out, s.engine.tick(self._now_ms()))
        s.busy = bool(out.commands)
        if out or messages:
            self._commit(s, out, bool(messages))
            rate = self.settings.rollback.max_emits_per_s
            if rate and out.commands:
                s.paced_until = time.monotonic() + len(out.commands) / rate
        if s.read_to != s.marked:  # what everything read so far caused is committed now
            s.engine.actions.mark(s.read_to)
            s.marked = dict(s.read_to)

    def _read_journal(self, s: _Session, timeout: float) -> Outputs:
        batch: list[tuple[JournalEntry, bytes | None]] = []
        messages = s.journal.consume(BATCH, timeout=timeout)
        for msg in messages:
            if is_error(msg):
                continue
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            s.read_to[partition] = offset + 1
            value = msg.value() or b""
            try:
                batch.append((deserialize(value), value))
            except SchemaError as exc:  # rewind wrote the journal: a bad entry is a bug, not a stop
                logger.error("rollback: skipped journal entry %s: %s", _where(msg), exc)
        s.read += len(messages)
        return s.engine.add_entries(batch, self._now_ms()) if batch else Outputs()

    def _handle_input(self, s: _Session, msg: Message) -> Outputs:
        """A request or a control message: admitted by the gate (a signature by a key with the role),
        then planned or applied. A refused request is REJECTED with the reason; a refused or unreadable
        control message is dead-lettered. Nothing refused emits anything."""
        now, value = self._now_ms(), msg.value() or b""
        headers = header_pairs(msg.headers())
        if msg.topic() == self.topics.control:
            return self._handle_control(s, msg, value, headers, now)
        request_id = (msg.key() or b"").decode(errors="replace") or f"unreadable-{msg.offset()}"
        try:
            signer = s.engine.gate.admit(Kind.REQUEST, value, headers, now, REQUEST_ROLES)
        except SignatureRefused as exc:
            logger.warning("rollback: request %s refused: %s", request_id, exc)
            if self.metrics:
                self.metrics.refused(Kind.REQUEST, exc.reason)
            return s.engine.reject(request_id, f"refused: {exc}", now)
        try:
            request = decode_request(value, _position(msg))
        except RequestInvalid as exc:
            logger.warning("rollback: request %s rejected: %s", request_id, exc)
            return s.engine.reject(request_id, f"invalid request: {exc}", now)
        except SchemaError as exc:
            self._dead_letter(s, msg, DeadLetterReason.BAD_REQUEST, str(exc))
            return Outputs()
        logger.info(
            "rollback: request %s from %s (key %s): %s",
            request.request_id, request.requested_by, signer.key_id, request.reason,
        )  # fmt: skip
        return s.engine.on_request(request, now, signer, value)

    def _handle_control(
        self, s: _Session, msg: Message, value: bytes, headers: tuple[tuple[str, bytes | None], ...], now: int
    ) -> Outputs:
        try:
            control = decode_control(value, _position(msg))
        except SchemaError as exc:
            self._dead_letter(s, msg, DeadLetterReason.BAD_CONTROL, str(exc))
            return Outputs()
        try:
            signer = s.engine.gate.admit(Kind.CONTROL, value, headers, now, CONTROL_ROLES[control.command])
        except SignatureRefused as exc:
            if self.metrics:
                self.metrics.refused(Kind.CONTROL, exc.reason)
            what = f"{control.command.value} of {control.request_id}: {exc}"
            self._dead_letter(s, msg, DeadLetterReason.REFUSED_CONTROL, what)
            return Outputs()
        return s.engine.on_control(control, now, signer)

    def _dead_letter(self, s: _Session, msg: Message, reason: DeadLetterReason, text: str) -> None:
        logger.error("rollback: %s at %s: %s", reason.value, _where(msg), text)
        headers = header_pairs(msg.headers())
        record = SourceRecord(
            msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value(), headers
        )
        message = dead_letter_message(
            DeadLetter(record, reason, text), self.settings.topics.deadletter_max_bytes
        )
        s.producer.produce(
            self.topics.deadletter, key=message.key, value=message.value, headers=message.headers
        )

    def _commit(self, s: _Session, out: Outputs, consumed: bool) -> None:
        fmt = self.settings.rollback.command_format
        for c in out.commands:
            value = c.value if c.value is not None else encode_command(c.envelope, fmt)
            s.producer.produce(c.topic, key=c.key, value=value, headers=c.headers)
        for progress in out.changed.values():
            s.producer.produce(self.topics.status, key=progress.request_id, value=s.status.encode(progress))
        offsets = s.inputs.position(s.inputs.assignment()) if consumed else []
        # A failure leaves the in-memory state ahead of what committed: the next session starts over.
        loop.commit(s.producer, offsets, s.inputs.consumer_group_metadata())
        for progress in out.changed.values():
            if self._said.news(progress):
                logger.info("rollback: %s %s: %s", progress.request_id, progress.state.value, progress.reason)


def _merge(a: Outputs, b: Outputs) -> Outputs:
    a.commands += b.commands
    a.changed.update(b.changed)
    return a


def _position(msg: Message) -> Where:
    return Where(topic=msg.topic(), partition=msg.partition(), offset=msg.offset())


def _where(msg: Message) -> str:
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"


def _journal_starts(
    beginnings: dict[int, int], graph_at: dict[int, int], store_at: dict[int, int]
) -> dict[int, int]:
    """Where each journal partition is read from: the older of the graph's and the store's positions
    (the store's is where everything before it had its effect committed, so an answer journaled before
    a graph checkpoint but in no status record yet is read again and confirms its step), and no earlier
    than what the partition still holds."""
    return {p: max(low, min(graph_at.get(p, 0), store_at.get(p, 0))) for p, low in beginnings.items()}
