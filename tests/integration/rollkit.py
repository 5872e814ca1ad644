"""Shared parts of the rollback worker's broker tests: topics and settings, a journal to roll back,
services that apply rewind's commands (journaling an action caused by each), and status reading."""

from __future__ import annotations

import functools
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from processor.catalog.catalog import load_catalog
from processor.config import RollbackSettings, Settings, SigningSettings, TopicSettings
from processor.journal.model import JournalEntry, Op, RowChange, SourcePosition, entity_ref
from processor.journal.serde import deserialize, journal_key, serialize
from processor.kafka import clients, loop
from processor.rollback.commands import HEADER_KEY
from processor.rollback.progress import RequestProgress
from processor.rollback.request import Control, ControlCommand, Mode, RollbackRequest, Selector
from processor.rollback.serde import decode_command, signed_control, signed_request
from processor.rollback.status import StatusReader as StatusFold
from processor.rollback.worker import RollbackWorker
from processor.security.keys import SigningKey, new_keyring
from tests.integration.tapkit import headers_of, read_topic
from tests.unit.rollback.world import CATALOG

COMMAND_TOPICS = ("orders.commands", "inventory.commands", "payments.commands", "ops.notifications")
# The people of these tests, each with a key in one keyring: who requests, who approves.
OPERATOR, APPROVER, SECOND_APPROVER, BOTH = "olivia", "adam", "bea", "omar"
PEOPLE = {OPERATOR: ["operator"], APPROVER: ["approver"], SECOND_APPROVER: ["approver", "finance"],
          BOTH: ["operator", "approver"], "drill": ["drill"]}  # fmt: skip


@functools.cache
def people() -> tuple[Path, dict[str, Path]]:
    """The keyring trusting PEOPLE, and each person's key file (made once per test run)."""
    return new_keyring(Path(tempfile.mkdtemp(prefix="rewind-keys-")), PEOPLE)


def key_of(person: str) -> SigningKey:
    return SigningKey.load(people()[1][person])


@dataclass(frozen=True)
class RollbackTopics:
    unique: str

    def command(self, name: str) -> str:
        return f"{self.unique}.{name}"

    @property
    def commands(self) -> list[str]:
        return [self.command(n) for n in COMMAND_TOPICS]

    def catalog(self, directory: Path) -> Path:
        text = CATALOG
        for name in COMMAND_TOPICS:
            text = text.replace(f"topic: {name}", f"topic: {self.command(name)}")
        path = directory / "catalog.yaml"
        path.write_text(text)
        return path

    def settings(self, bootstrap: str, **rollback: Any) -> Settings:
        u = self.unique
        return Settings(
            bootstrap_servers=bootstrap, group_id=f"rb-{u}", transactional_id_prefix=f"tx-{u}", metrics_port=0,
            topics=TopicSettings(journal=f"{u}.journal", deadletter=f"{u}.deadletter", requests=f"{u}.requests",
                                 control=f"{u}.control", status=f"{u}.status", partitions=3),
            rollback=RollbackSettings(notify_topic=f"{u}.notifications", **rollback),
            signing=SigningSettings(keyring_file=people()[0], key_file=people()[1][OPERATOR]),
        )  # fmt: skip

    def create(self, settings: Settings) -> None:
        clients.ensure_topics(
            clients.admin(settings, settings.bootstrap_servers or ""),
            [*settings.topics.own(), settings.rollback.notify_topic, *self.commands],
            partitions=3, replication_factor=1,
            configs={settings.topics.status: {"max.message.bytes": str(settings.rollback.status_max_bytes)}},
        )  # fmt: skip


def publish_journal(
    bootstrap: str, topic: str, entries: list[JournalEntry], conf: dict[str, Any] | None = None
) -> None:
    """The entries on the journal (``conf``: how to connect, on a secured broker)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, **(conf or {}), "enable.idempotence": True, "linger.ms": 5}
    )
    for e in entries:
        producer.produce(topic, key=journal_key(e), value=serialize(e))
    producer.flush(30)


def send_request(
    settings: Settings, selector: Selector, mode: Mode = Mode.EXECUTE, *, by: str = OPERATOR, **kw: Any
) -> str:
    """A request signed by ``by``'s key."""
    request = RollbackRequest(
        str(uuid.uuid4()), by, "bad rule v7", int(time.time() * 1000), selector, mode, **kw
    )
    body, headers = signed_request(request, key_of(by), int(time.time() * 1000))
    send_raw(settings, settings.topics.requests, request.request_id, body, headers)
    return request.request_id


def send_control(
    settings: Settings, request_id: str, command: ControlCommand, *, by: str | None = None,
    plan_hash: str | None = None,
) -> None:  # fmt: skip
    """A control message signed by ``by`` (default: the approver for APPROVE, else the operator)."""
    by = by or (APPROVER if command is ControlCommand.APPROVE else OPERATOR)
    control = Control(request_id, command, by, int(time.time() * 1000), plan_hash=plan_hash)
    body, headers = signed_control(control, key_of(by), int(time.time() * 1000))
    send_raw(settings, settings.topics.control, request_id, body, headers)


def send_raw(
    settings: Settings, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]] | None = None
) -> None:
    refused = deliver(settings.client_config(settings.bootstrap_servers or ""), topic, key, value, headers)
    assert refused is None, f"publishing to {topic} failed: {refused}"


def deliver(
    conf: dict[str, Any], topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]] | None = None
) -> str | None:
    """One record produced and flushed; the broker's error for it by name (None: delivered)."""
    errors: list[str] = []
    producer = Producer({**conf, "message.timeout.ms": 20_000})
    producer.produce(topic, key=key, value=value, headers=list(headers or []),
                     on_delivery=lambda err, _msg: errors.append(err.name()) if err else None)  # fmt: skip
    if producer.flush(30):
        return "NOT_DELIVERED_IN_TIME"
    return errors[0] if errors else None


class StatusReader:
    """Follows the status topic (read_committed): the latest committed record per request."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer({
            **settings.client_config(settings.bootstrap_servers or ""),
            "group.id": f"{settings.group_id}-status-{uuid.uuid4()}",  # a group rewind's status readers may use
            "isolation.level": "read_committed", "enable.auto.commit": False,
        })  # fmt: skip
        self.consumer.assign([TopicPartition(settings.topics.status, p, 0) for p in range(3)])
        self.latest: dict[str, RequestProgress] = {}
        self.reader = StatusFold()  # full records and the deltas between them, folded in order
        self.history: dict[str, list[str]] = {}

    def wait(self, request_id: str, states: set[str], timeout_s: float = 60) -> RequestProgress:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(100, timeout=0.3):
                if msg.error() is None:
                    progress = self.reader.read(msg.value() or b"")
                    self.latest[progress.request_id] = progress
                    self.history.setdefault(progress.request_id, []).append(progress.state.value)
            current = self.latest.get(request_id)
            if current is not None and current.state.value in states:
                return current
        seen = self.latest.get(request_id)
        raise AssertionError(
            f"{request_id} never reached {states}: {seen.state if seen else None} {seen and seen.reason}"
        )

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Services:
    """The shop's services as far as rewind sees them: they apply each command once (by idempotency key)
    and the resulting action reaches the journal naming the command's event as its cause. Written straight
    to the journal here (the tap's own tests cover the CDC path)."""

    bootstrap: str
    topics: RollbackTopics
    journal: str
    fmt: str = "avro"
    conf: dict[str, Any] = field(default_factory=dict)  # how the services connect (a secured broker)
    journal_conf: dict[str, Any] = field(default_factory=dict)  # how their answers reach the journal
    group: str = "shop"
    journal_group: str = "rows"  # the group their reader of the journal's rows uses
    ignore: frozenset[str] = frozenset()  # event types these services never apply (a broken consumer)
    seen: list[dict[str, Any]] = field(default_factory=list)  # every command record, in arrival order
    applied: set[str] = field(default_factory=set)
    rows: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # entity -> its row, as they know it
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _deaf_until: float = 0.0  # monotonic time until which they read no command (a service not answering)

    def start(self) -> Services:
        """Knowing their rows as the journal holds them so far, then applying commands."""
        reader = Consumer({"bootstrap.servers": self.bootstrap, **self.journal_conf, "group.id": self.journal_group,
                           "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
        try:
            for msg in loop.read_to_end(reader, self.journal, what="the journal"):
                for c in deserialize(msg.value() or b"").changes:
                    self.rows[c.entity] = None if c.op is Op.DELETE else c.after
        finally:
            reader.close()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def go_deaf(self, seconds: float) -> None:
        """Stop answering rewind's commands for ``seconds`` (they wait in the topic meanwhile)."""
        self._deaf_until = time.monotonic() + seconds

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, **self.conf, "group.id": f"{self.group}-services-{uuid.uuid4()}",
            "auto.offset.reset": "earliest", "isolation.level": "read_committed", "enable.auto.commit": False,
        })  # fmt: skip
        consumer.subscribe(self.topics.commands)
        producer = Producer({"bootstrap.servers": self.bootstrap, **self.journal_conf, "linger.ms": 2})
        while not self._stop.is_set():
            if time.monotonic() < self._deaf_until:  # heartbeats go on in the client's own thread
                time.sleep(0.2)
                continue
            for msg in consumer.consume(100, timeout=0.2):
                if msg.error() is not None:
                    continue
                command = decode_command(msg.value() or b"", self.fmt)
                command["_topic"] = msg.topic()
                command["_key_header"] = headers_of(msg)[HEADER_KEY].decode()
                self.seen.append(command)
                ignored = command["event_type"] in self.ignore
                if command["mechanism"] == "NOTIFY" or command["idempotency_key"] in self.applied or ignored:
                    continue
                self.applied.add(command["idempotency_key"])
                entry = applied_entry(command, self.rows)
                for c in entry.changes:
                    self.rows[c.entity] = c.after
                producer.produce(self.journal, key=journal_key(entry), value=serialize(entry))
            producer.flush(10)
        consumer.close()


def applied_entry(command: dict[str, Any], rows: dict[str, dict[str, Any] | None]) -> JournalEntry:
    """The action a service journals when it applies a command: restores set the rows back; inventory's
    ReleaseStock puts the quantity back into the stock row."""
    payload = orjson.loads(command["payload_json"])
    now = int(time.time() * 1000)
    changes = []
    stock = entity_ref("public.stock", {"sku": payload.get("sku")})
    if command["event_type"] == "ReleaseStock" and (before := rows.get(stock)) is not None:
        released = {**before, "available": before["available"] + payload["quantity"]}
        pos = SourcePosition("cdc", 0, 0, lsn=now, tx_id=f"apply-{command['event_id']}", ts_ms=now)
        changes.append(RowChange("shop", "public", "stock", {"sku": payload["sku"]}, Op.UPDATE, before, released,
                                 ("available",), True, pos))  # fmt: skip
    for row in payload.get("rows", []) if command["mechanism"] == "RESTORE" else []:
        schema, _, table = row["table"].rpartition(".")
        after = None if row["op"] == "DELETE" else {**row["image"], **row["set"]}
        op = Op.DELETE if row["op"] == "DELETE" else Op.UPDATE
        pos = SourcePosition("cdc", 0, 0, lsn=now, tx_id=f"apply-{command['event_id']}", ts_ms=now)
        changes.append(RowChange("shop", schema or None, table, row["key"], op, None, after, (), True, pos))
    return JournalEntry(
        action_id=f"applied-{command['event_id']}", action_type=f"Applied{command['event_type']}",
        changes=tuple(changes), journal_ts_ms=now, commit_ts_ms=now, service="services",
        causation_ids=(command["event_id"],), correlation_id=command["correlation_id"],
        entities=tuple(c.entity for c in changes),
    )  # fmt: skip


class Running:
    """The worker in a thread, the services beside it, and a status reader (on a secured broker each
    with its own principal: ``services`` and ``reader`` settings)."""

    def __init__(
        self, settings: Settings, topics: RollbackTopics, tmp_path: Path, *, services: Services | None = None,
        reader: Settings | None = None,
    ) -> None:  # fmt: skip
        self.settings, self.topics = settings, topics
        self.stop = threading.Event()
        self.worker = RollbackWorker(
            settings, settings.bootstrap_servers or "", load_catalog(topics.catalog(tmp_path))
        )
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)
        self.services = services or Services(
            settings.bootstrap_servers or "", topics, settings.topics.journal
        )
        self.status = StatusReader(reader or settings)

    def __enter__(self) -> Running:
        self.thread.start()
        assert self.worker.ready.wait(60), "the worker did not start"
        self.services.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.services.stop()
        self.status.close()


def sent_commands(
    bootstrap: str, topics: RollbackTopics, conf: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    """Every committed command (read_committed) as (idempotency key, attempt), in topic order."""
    found = [m for t in topics.commands for m in read_topic(bootstrap, t, expect=0, timeout_s=10, conf=conf)]
    return [(headers_of(m)["rewind.idempotency_key"].decode(), headers_of(m)["rewind.attempt"].decode())
            for m in found]  # fmt: skip
