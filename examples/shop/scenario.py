"""The shop scenario, shared by the end-to-end test and ``rewind demo``: a pricing rule (v7) that is wrong
ships; orders flow through real PostgreSQL -> Debezium -> the tap -> the journal; a rollback request
selects the bad rule's actions by a field predicate; the operator approves; the services apply the
compensations and restores; rewind confirms and verifies. Beside it, an oracle database runs the same
workload with the bad rule's orders never happening, for the comparison.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from examples.shop.runner import ShopRunner, ShopTopics
from examples.shop.schema import schema_sql, tables
from examples.shop.services import Event, FakeGateway, FakeMailer, Shop
from processor.app import Rewind
from processor.catalog.catalog import Catalog
from processor.config import RollbackSettings, Settings, TapSettings, TopicSettings
from processor.devenv.connect import STRING_CONVERTER, CaptureSpec
from processor.devenv.postgres import Dsn
from processor.errors import KafkaError, RewindError, Where
from processor.journal.model import JournalEntry
from processor.journal.serde import deserialize
from processor.kafka import clients
from processor.rollback.progress import RequestProgress
from processor.rollback.request import (
    Control,
    ControlCommand,
    FieldPredicate,
    Mode,
    RollbackRequest,
    Selector,
    SelectorKind,
)
from processor.rollback.serde import encode_control, encode_request

CATALOG = Path(__file__).parent / "catalog.yaml"
SKUS = ("sku-a", "sku-b", "sku-c")
TABLES = ("orders", "stock", "payments", "emails")
FINAL = {"COMPLETED", "PARTIALLY_ROLLED_BACK", "FAILED", "ABORTED", "REJECTED"}
Rows = dict[str, set[tuple[Any, ...]]]


def is_bad(order: int) -> bool:
    return order % 4 == 0  # the bad rule priced a quarter of the orders


@dataclass
class Outcome:
    orders: int
    bad: set[int]
    status: RequestProgress
    before: Rows  # the shop's tables just before the rollback
    after: Rows
    oracle: Rows
    gateway_net: dict[str, int]
    oracle_gateway_net: dict[str, int]
    journal: list[JournalEntry]  # every action, the services' answers to rewind's commands included
    timings: dict[str, float] = field(default_factory=dict)

    def checks(self) -> list[tuple[str, str, bool]]:
        """The shop against the oracle world, table by table: (table, the equivalence, whether it holds)."""
        captured = {r for r in self.after["payments"] if r[3] == "CAPTURED"}
        refunded = self.after["payments"] - captured
        extra_emails = self.after["emails"] - self.oracle["emails"]
        return [
            ("orders", "every row equals the oracle's", self.after["orders"] == self.oracle["orders"]),
            ("stock", "equals the oracle's (released = never reserved)",
             self.after["stock"] == self.oracle["stock"]),
            ("payments", "captured rows equal the oracle's; the rest refunded, all of bad orders",
             captured == self.oracle["payments"] and {r[1] for r in refunded} == self.bad),
            ("gateway", "net money equals the oracle's", self.gateway_net == self.oracle_gateway_net),
            ("emails", "the oracle's plus the bad orders' (irreversible, listed)",
             self.oracle["emails"] <= self.after["emails"] and {r[1] for r in extra_emails} == self.bad),
        ]  # fmt: skip

    @property
    def proved(self) -> bool:
        """Completed, and every table equals the oracle world's."""
        return self.status.state.value == "COMPLETED" and all(holds for _, _, holds in self.checks())


@dataclass(frozen=True)
class Deployment:
    """How the shop's connector is configured, and so where rewind finds each fact.

    The default places every outbox column rewind reads as a header. ``default_router()`` is what many
    deployments run: keys through StringConverter, and the router placing only the event type, so the
    services write correlation, causation, trace and transaction id into each payload."""

    outbox_headers: Mapping[str, str] | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)
    payload_metadata: bool = False

    @classmethod
    def default_router(cls) -> Deployment:
        return cls(
            outbox_headers={"type": "eventType"},
            overrides={"key.converter": STRING_CONVERTER},
            payload_metadata=True,
        )


class Scenario:
    def __init__(
        self,
        bootstrap: str,
        dsn: Dsn,
        start_capture: Callable[[CaptureSpec], object],
        work_dir: Path,
        orders: int = 1_000,
        progress: Callable[[str], None] = lambda _line: None,
        deployment: Deployment | None = None,
    ) -> None:
        self.bootstrap, self.dsn, self.start_capture = bootstrap, dsn, start_capture
        self.orders, self.say = orders, progress
        self.deployment = deployment or Deployment()
        self.unique = uuid.uuid4().hex[:8]
        self.schema, self.oracle_db = f"shop{self.unique}", f"oracle{self.unique}"
        u = self.unique
        self.spec = CaptureSpec(
            name=f"shop-{u}", dsn=dsn, topic_prefix=f"pg{u}", tables=tables(self.schema),
            outbox_table=f"{self.schema}.outbox", outbox_topic_prefix=f"{u}.outbox.",
            outbox_headers=self.deployment.outbox_headers, overrides=self.deployment.overrides,
        )  # fmt: skip
        catalog_file = work_dir / "catalog.yaml"
        catalog_file.write_text(CATALOG.read_text().replace("shop.", f"{u}.shop."))
        self.outbox_topics = [f"{u}.outbox.{a}" for a in ("order", "stock", "payment", "email", "restore")]
        self.settings = Settings(
            bootstrap_servers=bootstrap, group_id=f"rewind-{u}", transactional_id_prefix=f"rewind-{u}",
            metrics_port=0,
            topics=TopicSettings(
                journal=f"{u}.journal", deadletter=f"{u}.dlq", requests=f"{u}.requests",
                control=f"{u}.control", status=f"{u}.status",
                cdc=[self.spec.table_topic(t) for t in tables(self.schema)[:-1]],
                tx_metadata=[self.spec.tx_topic], outbox=self.outbox_topics, partitions=3,
            ),
            catalog_file=catalog_file,
            tap=TapSettings(outbox_tables=[f"{self.schema}.outbox"],
                            outbox=TapSettings().outbox.model_copy(update={"topic_prefix": f"{u}.outbox."})),
            rollback=RollbackSettings(
                notify_topic=f"{u}.notify", command_format="json", confirm_timeout_s=60
            ),
        )  # fmt: skip
        self.app = Rewind(self.settings)  # the processor, built as `rewind run` builds it
        self.catalog: Catalog = self.app.catalog
        self.worker = self.app.worker(bootstrap)
        self._journal_reader: Any = None
        self.journal: list[JournalEntry] = []  # every committed journal entry, as read

    @property
    def command_topics(self) -> list[str]:
        return sorted({s.topic for s in self.catalog.actions.values() if s.topic})

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> Outcome:
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        self._databases()
        oracle_net = self._oracle_world()
        self._topics()
        self.say(
            f"capture: starting Debezium on {self.schema} ({len(self.spec.tables)} tables, outbox router)"
        )
        self.start_capture(self.spec)
        stop = threading.Event()
        gateway, mailer = FakeGateway(), FakeMailer()
        command_topics = tuple(t for t in self.command_topics if ".commands." in t)
        services = ShopRunner(self.bootstrap, f"shop-{self.unique}", self._shop(gateway, mailer),
                              ShopTopics(f"{self.unique}.outbox.", command_topics))  # fmt: skip
        tap = self.app.tap(self.bootstrap)
        threads = [
            threading.Thread(target=c.run, args=(stop,), daemon=True) for c in (services, tap, self.worker)
        ]
        for t in threads:
            t.start()
        try:
            self._workload(gateway, mailer)
            _wait(
                lambda: len(mailer.sent) == self.orders,
                600,
                "every order reached its email",
                "shop services",
                "check that Debezium publishes the outbox topics and that the services consume them",
            )
            timings["orders_s"] = time.monotonic() - t0
            expected = self.orders * 5 + len(SKUS)
            _wait(
                lambda: self._journaled() >= expected,
                300,
                f"the journal holds all {expected} actions",
                "tap",
                "look for tap errors above and in the dead-letter topic",
            )
            self.say(f"journal: {expected} actions; services handled {services.handled} events")
            if not self.worker.ready.wait(120):
                raise ScenarioStuck(
                    "the rollback worker did not start in 120s", where=Where(component="worker")
                )
            before = self._snapshot()
            final = self._roll_back()
            timings["rollback_s"] = time.monotonic() - t0 - timings["orders_s"]
            after = self._snapshot()
            seen = -1
            while seen != self._journaled():  # what the rollback itself caused, to its last entry
                seen = len(self.journal)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
            if self._journal_reader is not None:
                self._journal_reader.close()
        bad = {n for n in range(1, self.orders + 1) if is_bad(n)}
        oracle = self._oracle_rows()
        return Outcome(self.orders, bad, final, before, after, oracle, gateway.net(), oracle_net,
                       list(self.journal), timings)  # fmt: skip

    def _roll_back(self) -> RequestProgress:
        selector = Selector(
            SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"')
        )
        request = RollbackRequest(f"rollback-{self.unique}", "demo", "pricing rule v7 undercharged orders",
                                  int(time.time() * 1000), selector, Mode.EXECUTE)  # fmt: skip
        self.app.publish(self.settings.topics.requests, request.request_id, encode_request(request))
        self.say(f"request {request.request_id}: roll back where {selector.predicate}")
        planned = self._status(request.request_id, {"AWAITING_APPROVAL", "EXECUTING", *FINAL}, 300)
        self.say(f"{planned.state.value}: {planned.reason}")
        if planned.state.value == "AWAITING_APPROVAL":
            control = Control(
                request.request_id, ControlCommand.APPROVE, "demo-operator", int(time.time() * 1000)
            )
            self.app.publish(self.settings.topics.control, request.request_id, encode_control(control))
            self.say("approved by demo-operator")
        return self._status(request.request_id, FINAL, 900, on_change=lambda p: self.say(_progress_line(p)))

    # -- the pieces -----------------------------------------------------------------------------

    def _databases(self) -> None:
        with psycopg.connect(self.dsn.conninfo(), autocommit=True) as admin:
            admin.execute(schema_sql(self.schema).encode())
            admin.execute(f"CREATE DATABASE {self.oracle_db}".encode())
        with psycopg.connect(self.dsn.conninfo(self.oracle_db), autocommit=True) as admin:
            admin.execute(schema_sql("shop").encode())

    def _shop(self, gateway: FakeGateway, mailer: FakeMailer) -> Shop:
        return Shop(
            self.dsn.conninfo(), self.schema, gateway, mailer,
            payload_metadata=self.deployment.payload_metadata,
        )  # fmt: skip

    def _topics(self) -> None:
        s = self.settings
        self.app.ensure_topics(self.bootstrap)
        clients.ensure_topics(
            clients.admin(s, self.bootstrap),
            [*self.command_topics, *self.outbox_topics, *s.topics.cdc, self.spec.tx_topic],
            partitions=3, replication_factor=1,
        )  # fmt: skip

    def _workload(self, gateway: FakeGateway, mailer: FakeMailer) -> None:
        shop = self._shop(gateway, mailer)
        try:
            for sku in SKUS:
                shop.stock(sku, 100_000)
            for n in range(1, self.orders + 1):
                shop.place_order(n, f"c{n}", SKUS[n % 3], 1 + n % 3, "v7" if is_bad(n) else "v6")
        finally:
            shop.close()
        bad = sum(is_bad(n) for n in range(1, self.orders + 1))
        self.say(f"workload: {self.orders} orders placed, {bad} of them priced by the bad rule v7")

    def _oracle_world(self) -> dict[str, int]:
        """The same workload in a second database, where the bad rule's orders never happen at all."""
        gateway = FakeGateway()
        shop = Shop(self.dsn.conninfo(self.oracle_db), "shop", gateway, FakeMailer())
        try:
            for sku in SKUS:
                shop.stock(sku, 100_000)
            for n in range(1, self.orders + 1):
                if not is_bad(n):
                    _follow(shop, shop.place_order(n, f"c{n}", SKUS[n % 3], 1 + n % 3, "v6"))
        finally:
            shop.close()
        self.say(f"oracle: database {self.oracle_db} holds the world without the bad rule")
        return gateway.net()

    def _snapshot(self) -> Rows:
        return _rows(self.dsn.conninfo(), self.schema)

    def _oracle_rows(self) -> Rows:
        return _rows(self.dsn.conninfo(self.oracle_db), "shop")

    def _journaled(self) -> int:
        """Committed journal entries so far (read_committed: a watermark would count commit markers)."""
        if self._journal_reader is None:
            self._journal_reader = clients.consumer(self.settings, self.bootstrap, f"count-{self.unique}")
            self._journal_reader.assign([_tp(self.settings.topics.journal, p) for p in range(3)])
        for msg in self._journal_reader.consume(1000, timeout=0.5):
            if msg.error() is None:
                self.journal.append(deserialize(msg.value() or b""))
        return len(self.journal)

    def _status(
        self,
        request_id: str,
        states: set[str],
        timeout_s: float,
        on_change: Callable[[RequestProgress], None] | None = None,
    ) -> RequestProgress:
        """The request's status once it is in one of ``states``."""
        try:
            for progress, _caught_up in self.app.follow_status(request_id, follow=True, timeout_s=timeout_s):
                if on_change:
                    on_change(progress)
                if progress.state.value in states:
                    return progress
        except KafkaError:
            pass  # did not get there in time
        raise ScenarioStuck(
            f"{request_id} did not reach {' or '.join(sorted(states))} in {timeout_s:.0f}s",
            where=Where(component="rollback worker"),
            hint=f"rewind status {request_id} shows where it stands",
        )  # fmt: skip


def _follow(shop: Shop, event_id: str) -> None:
    """Hand each event the services emit to the services, until none is left (no Kafka in the oracle)."""
    todo = [event_id]
    while todo:
        row = shop.conn.execute(
            "SELECT id::text, type, payload, correlation_id, traceparent FROM outbox WHERE id = %s",
            (todo.pop(),),
        ).fetchone()
        assert row is not None
        shop.handle(Event(*row))
        shop.conn.commit()
        todo += [r[0] for r in shop.conn.execute(
            "SELECT id::text FROM outbox WHERE causation_id = %s AND type <> 'PaymentRequested'", (row[0],)
        ).fetchall()]  # fmt: skip


def _rows(conninfo: str, schema: str) -> Rows:
    with psycopg.connect(conninfo, options=f"-c search_path={schema}") as conn:
        return {t: set(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in TABLES}  # noqa: S608 (fixed names)


def _tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition, OFFSET_BEGINNING)


def _progress_line(p: RequestProgress) -> str:
    counts: dict[str, int] = {}
    for s in p.plan.steps if p.plan else []:
        counts[s.state.value.lower()] = counts.get(s.state.value.lower(), 0) + 1
    return f"{p.state.value}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


class ScenarioStuck(RewindError):
    """A stage of the scenario did not finish in time; ``where`` names the component."""


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, component: str, hint: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise ScenarioStuck(
                f"waited {timeout_s:.0f}s until {what}", where=Where(component=component), hint=hint
            )
        time.sleep(0.2)
