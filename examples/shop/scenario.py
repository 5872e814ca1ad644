"""The shop scenario, shared by the end-to-end tests and ``rewind demo``: pricing rule v6 is in force; v7
ships and misprices every order it prices; the fix, v8, ships. Orders flow through real PostgreSQL ->
Debezium -> the tap -> the journal. The operator asks rewind about ``rule_version == "v7"``:

- ``repair`` (the default): undo what v7 caused, then re-drive the checkout's requests that v7 priced
  to pricing, which prices them with v8. Reporting's read model rebuilds from a filtered replay of the
  priced orders. The oracle is a database where v8 was in place from the start.
- ``undo``: subtract only. The oracle is a database where v7's orders never happened.

Each request is approved by the operator; the services apply rewind's commands; rewind confirms and
verifies; the tables are then compared with the oracle's, one equivalence per table.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from examples.shop.runner import ShopRunner, ShopTopics, event_from_outbox
from examples.shop.schema import schema_sql, tables
from examples.shop.services import Event, FakeGateway, FakeMailer, RuleInForce, Shop
from processor.app import Rewind
from processor.catalog.catalog import Catalog
from processor.config import (
    DrillSettings,
    GraphSettings,
    RollbackSettings,
    Settings,
    SigningSettings,
    TapSettings,
    TopicSettings,
)
from processor.devenv.connect import STRING_CONVERTER, CaptureSpec
from processor.devenv.postgres import Dsn
from processor.errors import KafkaError, RewindError, Where
from processor.journal.model import JournalEntry
from processor.journal.serde import deserialize
from processor.kafka import clients, loop
from processor.kafka.local_broker import LocalBroker
from processor.replay.scope import ReplayJob, ReplayReport, StartKind, StartPoint
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
from processor.security.acls import Grant, Operation, Pattern, Resource
from processor.security.keys import SigningKey, new_keyring

CATALOG = Path(__file__).parent / "catalog.yaml"
SKUS = ("sku-a", "sku-b", "sku-c")
OPERATOR, APPROVER = "shop-operator", "shop-approver"  # who requests a rollback, and who approves it
AGGREGATES = ("checkout", "order", "stock", "payment", "email", "revenue", "restore")  # its outbox's types
DRILL_SKU, DRILL_CUSTOMER = "sku-drill", "rewind-drill"  # the rows drills' canaries own
TABLES = ("orders", "stock", "payments", "emails", "revenue")
FINAL = {
    "COMPLETED",
    "PARTIALLY_ROLLED_BACK",
    "FAILED",
    "ABORTED",
    "REJECTED",
    "REPAIRED",
    "PARTIALLY_REPAIRED",
}
MODES = ("repair", "undo")
ROLES = ("tap", "graph", "worker", "operator", "approver", "service")  # each its own principal, secured
ACTIONS_PER_ORDER = 7  # requested, priced, reserved, payment requested, captured, emailed, counted
Rows = dict[str, set[tuple[Any, ...]]]


def rule_for(order: int, orders: int) -> str:
    """The deploy timeline: v6 prices the first 40% of the orders, v7 the next 25%, v8 the rest."""
    if order <= orders * 40 // 100:
        return "v6"
    return "v7" if order <= orders * 65 // 100 else "v8"


def is_bad(order: int, orders: int) -> bool:
    return rule_for(order, orders) == "v7"


def fixed_rule(order: int, orders: int) -> str:
    """The rule in force in the world where the fix was always in place."""
    return "v8" if is_bad(order, orders) else rule_for(order, orders)


@dataclass
class Outcome:
    mode: str
    orders: int
    bad: set[int]
    status: RequestProgress
    before: Rows  # the shop's tables just before the rollback
    after: Rows  # ... at the end (the read model rebuilt from the filtered replay)
    oracle: Rows
    gateway_net: dict[str, int]  # money kept per order
    oracle_gateway_net: dict[str, int]
    journal: list[JournalEntry]  # every action, the services' answers to rewind's commands included
    replay: ReplayReport | None = None  # the filtered replay the read model rebuilt from
    timings: dict[str, float] = field(default_factory=dict)

    def checks(self) -> list[tuple[str, str, bool]]:
        """The shop against the oracle world, table by table: (table, the equivalence, whether it holds).
        Payment and email ids name an attempt, so those compare by what they say, not by id."""
        after, oracle, bad = self.after, self.oracle, self.bad
        paid = {r[1:] for r in after["payments"]}
        captured, refunded = {r for r in paid if r[2] == "CAPTURED"}, {r for r in paid if r[2] == "REFUNDED"}
        emails, oracle_emails = {r[1:] for r in after["emails"]}, {r[1:] for r in oracle["emails"]}
        first_emails = {r[1:] for r in self.before["emails"] if r[1] in bad}
        unaffected = all(
            {r for r in self.before[t] if r[c] not in bad} == {r for r in after[t] if r[c] not in bad}
            for t, c in (("orders", 0), ("payments", 1), ("emails", 1))
        )
        common = [
            ("orders", "every row equals the oracle's", after["orders"] == oracle["orders"]),
            ("stock", "equals the oracle's (released = never reserved)", after["stock"] == oracle["stock"]),
            ("gateway", "net money per order equals the oracle's",
             self.gateway_net == self.oracle_gateway_net),
            ("revenue", "the read model, rebuilt from a filtered replay, equals the oracle's",
             after["revenue"] == oracle["revenue"]),
            ("unaffected", "no row of an unaffected order changed", unaffected),
        ]  # fmt: skip
        if self.mode == "repair":
            return [
                *common,
                ("payments", "captured money per order equals the oracle's; the mispriced captures refunded",
                 captured == {r[1:] for r in oracle["payments"]} and {r[0] for r in refunded} == bad),
                ("emails", "the oracle's plus the first emails of the repaired orders (irreversible, listed)",
                 emails == oracle_emails | first_emails and not oracle_emails & first_emails),
            ]  # fmt: skip
        return [
            *common,
            ("payments", "captured rows equal the oracle's; the rest refunded, all of bad orders",
             captured == {r[1:] for r in oracle["payments"]} and {r[0] for r in refunded} == bad),
            ("emails", "the oracle's plus the bad orders' (irreversible, listed)",
             emails == oracle_emails | first_emails),
        ]  # fmt: skip

    @property
    def proved(self) -> bool:
        """Repaired (or, undoing only, completed), and every table equals the oracle world's."""
        done = "REPAIRED" if self.mode == "repair" else "COMPLETED"
        return self.status.state.value == done and all(holds for _, _, holds in self.checks())


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


@dataclass(frozen=True)
class Live:
    """A running shop: set ``stop`` to end it early; the fakes of the outside world it calls."""

    stop: threading.Event
    gateway: FakeGateway
    mailer: FakeMailer
    services: ShopRunner


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
        mode: str = "repair",
        rollback: Mapping[str, Any] | None = None,
        secured: LocalBroker | None = None,
    ) -> None:
        """``rollback``: settings of the worker to override (e.g. a short confirm_timeout_s).
        ``secured``: run on that secured broker (``bootstrap`` is its address), every part on its own
        principal with only the ACLs `rewind acl apply` gives it; the scenario itself observes and
        makes the topics as the admin."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is none of {', '.join(MODES)}")
        self.bootstrap, self.dsn, self.start_capture = bootstrap, dsn, start_capture
        self.orders, self.say, self.mode = orders, progress, mode
        self.deployment = deployment or Deployment()
        self.unique = uuid.uuid4().hex[:8]
        self.schema, self.oracle_db = f"shop{self.unique}", f"oracle{self.unique}"
        self.rule = RuleInForce()  # what pricing prices with: the workload deploys v7, then v8
        u = self.unique
        self.spec = CaptureSpec(
            name=f"shop-{u}", dsn=dsn, topic_prefix=f"pg{u}", tables=tables(self.schema),
            outbox_table=f"{self.schema}.outbox", outbox_topic_prefix=f"{u}.outbox.",
            outbox_headers=self.deployment.outbox_headers, overrides=self.deployment.overrides,
        )  # fmt: skip
        catalog_file = work_dir / "catalog.yaml"
        catalog_file.write_text(
            CATALOG.read_text().replace("shop.", f"{u}.shop.").replace("[outbox.", f"[{u}.outbox.")
        )
        self.entry_topic = f"{u}.shop.checkout"  # checkout's entry point: where drills start canaries
        # The shop's people, each with a key: who requests, who approves (never the same), and the
        # processor's own key, which may only drill.
        keyring, self.key_files = new_keyring(work_dir / "keys", {
            OPERATOR: ["operator"], APPROVER: ["approver"], "shop-drill": ["drill"],
        })  # fmt: skip
        self.outbox_topics = [f"{u}.outbox.{a}" for a in AGGREGATES]
        self.secured = secured
        self.base = Settings(
            bootstrap_servers=bootstrap, group_id=f"rewind-{u}", transactional_id_prefix=f"rewind-{u}",
            metrics_port=0,
            topics=TopicSettings(
                journal=f"{u}.journal", deadletter=f"{u}.dlq", requests=f"{u}.requests",
                control=f"{u}.control", status=f"{u}.status",
                cdc=[self.spec.table_topic(t) for t in tables(self.schema)[:-1]],
                tx_metadata=[self.spec.tx_topic], outbox=self.outbox_topics, partitions=3,
            ),
            catalog_file=catalog_file,
            signing=SigningSettings(keyring_file=keyring, key_file=self.key_files["shop-drill"]),
            graph=GraphSettings(checkpoint_path=work_dir / "graph.npz", checkpoint_interval_s=1),
            tap=TapSettings(outbox_tables=[f"{self.schema}.outbox"],
                            outbox=TapSettings().outbox.model_copy(update={"topic_prefix": f"{u}.outbox."})),
            rollback=RollbackSettings(
                **{"notify_topic": f"{u}.notify", "command_format": "json", "confirm_timeout_s": 60,
                   **(rollback or {})}
            ),
            drill=DrillSettings(
                entry_topic=self.entry_topic, entry_event_type="CheckoutRequested",
                entry_payload={"order_id": "{drill.number}", "customer": DRILL_CUSTOMER, "sku": DRILL_SKU,
                               "qty": 1},
                complete_types=["EmailSent", "RevenueCounted"], timeout_s=240,
            ),
        )  # fmt: skip
        # What the scenario reads and creates with (on the secured broker: the admin's connection).
        self.settings = secured.settings_as(self.base, "admin") if secured else self.base
        self.app = Rewind(self.settings)  # the processor, built as `rewind run` builds it
        self._roles: dict[str, Rewind] = {}
        self.catalog: Catalog = self.app.catalog
        self.worker = self.as_role("worker").worker(bootstrap)
        self._journal_reader: Any = None
        self.journal: list[JournalEntry] = []  # every committed journal entry, as read

    def as_role(self, role: str) -> Rewind:
        """The processor as ``role`` runs it: on the secured broker, connected as that role's principal."""
        if self.secured is None:
            return self.app
        if role not in self._roles:
            self._roles[role] = Rewind(self.secured.settings_as(self.base, role))
        return self._roles[role]

    def key(self, person: str) -> SigningKey:
        return SigningKey.load(self.key_files[person])

    @property
    def command_topics(self) -> list[str]:
        return sorted({s.topic for s in self.catalog.actions.values() if s.topic})

    @property
    def redrive_topics(self) -> list[str]:
        return sorted({s.redrive.topic for s in self.catalog.actions.values() if s.redrive})

    @property
    def bad(self) -> set[int]:
        return {n for n in range(1, self.orders + 1) if is_bad(n, self.orders)}

    # -- the run ----------------------------------------------------------------------------------

    @contextmanager
    def running(self, *, graph: bool = False, rewind: bool = True) -> Iterator[Live]:
        """The shop live until the block ends: its topics, Debezium capturing its schema, the services,
        the tap and the worker (with ``graph``, the graph builder too, keeping the entity index; without
        ``rewind``, neither: a ``rewind run`` of ``self.settings`` elsewhere takes their place)."""
        self._topics()
        self.say(
            f"capture: starting Debezium on {self.schema} ({len(self.spec.tables)} tables, outbox router)"
        )
        self.start_capture(self.spec)
        gateway, mailer = FakeGateway(), FakeMailer()
        topics = self._shop_topics()
        services = ShopRunner(self.bootstrap, f"shop-{self.unique}", self.shop(gateway, mailer), topics,
                              self.as_role("service").settings.security.librdkafka())  # fmt: skip
        live = Live(threading.Event(), gateway, mailer, services)
        components: list[Any] = [services]
        if rewind:
            components += [self.as_role("tap").tap(self.bootstrap), self.worker]
        if graph and rewind:
            components.append(self.as_role("graph").graph_builder(self.bootstrap))
        threads = [threading.Thread(target=c.run, args=(live.stop,), daemon=True) for c in components]
        for t in threads:
            t.start()
        try:
            yield live
        finally:
            live.stop.set()
            for t in threads:
                t.join(30)
            if self._journal_reader is not None:
                self._journal_reader.close()
                self._journal_reader = None

    def run(self) -> Outcome:
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        self.create_databases()
        oracle_net = self._oracle_world()
        replay: ReplayReport | None = None
        with self.running() as live:
            gateway, mailer, stop = live.gateway, live.mailer, live.stop
            self._workload(gateway, mailer)
            self._wait_emails(mailer, self.orders)
            timings["orders_s"] = time.monotonic() - t0
            expected = self.orders * ACTIONS_PER_ORDER + len(SKUS)
            _wait(
                lambda: self._journaled() >= expected,
                300,
                f"the journal holds all {expected} actions",
                "tap",
                "look for tap errors above and in the dead-letter topic",
            )
            self.say(f"journal: {expected} actions; services handled {live.services.handled} events")
            if not self.worker.ready.wait(120):
                raise ScenarioStuck(
                    "the rollback worker did not start in 120s", where=Where(component="worker")
                )
            before = self._snapshot()
            final = self._recover()
            if final.state.value == "REPAIRED":  # the re-driven orders flow on to their emails
                self._wait_emails(mailer, self.orders + len(self.bad))
            timings["rollback_s"] = time.monotonic() - t0 - timings["orders_s"]
            replay = self._rebuild_read_model(final, gateway, mailer, stop)
            after = self._snapshot()
            seen = -1
            while seen != self._journaled():  # what the rollback itself caused, to its last entry
                seen = len(self.journal)
        oracle = self._oracle_rows()
        return Outcome(self.mode, self.orders, self.bad, final, before, after, oracle, gateway.net(),
                       oracle_net, list(self.journal), replay, timings)  # fmt: skip

    def _recover(self) -> RequestProgress:
        selector = Selector(
            SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse('rule_version == "v7"')
        )
        repair = self.mode == "repair"
        request = RollbackRequest(
            f"{self.mode}-{self.unique}", OPERATOR, "pricing rule v7 undercharged orders",
            int(time.time() * 1000), selector, Mode.EXECUTE, repair=repair,
        )  # fmt: skip
        self.as_role("operator").publish_request(request, self.key(OPERATOR))
        verb = "repair" if repair else "roll back"
        self.say(f"request {request.request_id}: {verb} where {selector.predicate}")
        planned = self._status(request.request_id, {"AWAITING_APPROVAL", "EXECUTING", *FINAL}, 300)
        self.say(f"{planned.state.value}: {planned.reason}")
        if planned.state.value == "AWAITING_APPROVAL":  # by another person than the requester
            control = Control(request.request_id, ControlCommand.APPROVE, APPROVER, int(time.time() * 1000),
                              plan_hash=planned.plan_hash)  # fmt: skip
            self.as_role("approver").publish_control(control, self.key(APPROVER))
            self.say(f"approved by {APPROVER} (plan {(planned.plan_hash or '')[:12]}, signed)")
        return self._status(request.request_id, FINAL, 900, on_change=lambda p: self.say(_progress_line(p)))

    def _rebuild_read_model(
        self, final: RequestProgress, gateway: FakeGateway, mailer: FakeMailer, stop: threading.Event
    ) -> ReplayReport | None:
        """Reporting's read model, rebuilt as the plan says: from a filtered replay of the priced orders
        (every one but the scope's), copied to a topic of its own and folded from its beginning."""
        replays = final.plan.replays if final.plan else []
        if not replays:
            return None
        [store] = replays
        source = store.topics[0]
        target = f"{source}.replay-{final.request_id}"
        scope = self.app.replay_scope(final.request_id)
        report = self.app.replay(f"{store.store}-{final.request_id}", [ReplayJob(source, target)], scope,
                                 StartPoint(StartKind.EARLIEST), stop)  # fmt: skip
        reader = clients.consumer(self.settings, self.bootstrap, f"rebuild-{self.unique}")
        try:
            events = [event_from_outbox(m) for m in loop.read_to_end(reader, target, what="the replay")]
        finally:
            reader.close()
        shop = self.shop(gateway, mailer)
        try:
            shop.rebuild_revenue([e.payload for e in events if e.event_type == "OrderPriced"])
        finally:
            shop.close()
        self.say(
            f"replay: {store.store} rebuilt from {target}: {report.copied} events copied, "
            f"{report.skipped} of the scope skipped"
        )
        return report

    # -- the pieces -----------------------------------------------------------------------------

    def create_databases(self) -> None:
        """The shop's schema and the oracle's database (empty)."""
        with psycopg.connect(self.dsn.conninfo(), autocommit=True) as admin:
            admin.execute(schema_sql(self.schema).encode())
            admin.execute(f"CREATE DATABASE {self.oracle_db}".encode())
        with psycopg.connect(self.dsn.conninfo(self.oracle_db), autocommit=True) as admin:
            admin.execute(schema_sql("shop").encode())

    def shop(self, gateway: FakeGateway, mailer: FakeMailer) -> Shop:
        """A connection of the shop's services to its schema (the caller closes it)."""
        return Shop(
            self.dsn.conninfo(), self.schema, gateway, mailer,
            payload_metadata=self.deployment.payload_metadata, rule=self.rule,
        )  # fmt: skip

    def _topics(self) -> None:
        """rewind's topics and the shop's (on the secured broker, the admin step: those, every role's
        ACLs, and the shop's own: its services read the events they consume)."""
        s = self.settings
        admin = clients.admin(s, self.bootstrap)
        clients.ensure_topics(
            admin,
            [*self.command_topics, *self.redrive_topics, *self.outbox_topics, *s.topics.cdc,
             self.spec.tx_topic, self.entry_topic],
            partitions=3, replication_factor=1,
        )  # fmt: skip
        if self.secured is None:
            self.app.ensure_topics(self.bootstrap)
            return
        _created, count = self.app.apply_acls()
        service = s.principals.service
        count += clients.create_acls(admin, [
            Grant("service", service, Resource.TOPIC, topic, Pattern.LITERAL, Operation.READ, "shop events")
            for topic in self._shop_topics().events
        ])  # fmt: skip
        who = ", ".join(f"{role} as {self.as_role(role).settings.security.sasl_username}" for role in ROLES)
        self.say(f"acl: {count} ACLs on the secured broker; {who}")

    def _shop_topics(self) -> ShopTopics:
        """What the services consume: their events (outbox, re-drives, the entry point), rewind's commands."""
        commands = tuple(t for t in self.command_topics if ".commands." in t)
        return ShopTopics(f"{self.unique}.outbox.", commands, tuple(self.redrive_topics), (self.entry_topic,))

    def _workload(self, gateway: FakeGateway, mailer: FakeMailer) -> None:
        """The checkout's requests, in three deploys: each rule prices its share of the orders."""
        shop = self.shop(gateway, mailer)
        try:
            for sku in SKUS:
                shop.stock(sku, 100_000)
            for version in ("v6", "v7", "v8"):
                self.rule.version = version  # the deploy
                share = [n for n in range(1, self.orders + 1) if rule_for(n, self.orders) == version]
                for n in share:
                    shop.request_order(n, f"c{n}", SKUS[n % 3], 1 + n % 3)
                last = max(share, default=0)
                _wait(lambda last=last: self._priced() >= last, 600,  # type: ignore[misc]
                      f"pricing priced the {version} orders", "shop services",
                      "check that Debezium publishes the outbox topics")  # fmt: skip
        finally:
            shop.close()
        self.say(
            f"workload: {self.orders} orders requested; v7 priced {len(self.bad)} of them, then v8 shipped"
        )

    def _priced(self) -> int:
        with psycopg.connect(self.dsn.conninfo(), options=f"-c search_path={self.schema}") as conn:
            row = conn.execute("SELECT count(*) FROM orders").fetchone()
        return int(row[0]) if row else 0

    def _wait_emails(self, mailer: FakeMailer, count: int) -> None:
        _wait(
            lambda: len(mailer.sent) >= count,
            600,
            f"{count} emails were sent (every order reached its end)",
            "shop services",
            "check that Debezium publishes the outbox topics and that the services consume them",
        )

    def _oracle_world(self) -> dict[str, int]:
        """The same workload in a second database: with the fix in place from the start (repair), or
        with the bad rule's orders never happening (undo)."""
        gateway = FakeGateway()
        shop = Shop(self.dsn.conninfo(self.oracle_db), "shop", gateway, FakeMailer())
        try:
            for sku in SKUS:
                shop.stock(sku, 100_000)
            for n in range(1, self.orders + 1):
                if self.mode == "undo" and is_bad(n, self.orders):
                    continue
                shop.rule.version = fixed_rule(n, self.orders)
                _follow(shop, shop.request_order(n, f"c{n}", SKUS[n % 3], 1 + n % 3))
        finally:
            shop.close()
        world = (
            "with v8 in place from the start" if self.mode == "repair" else "without the bad rule's orders"
        )
        self.say(f"oracle: database {self.oracle_db} holds the world {world}")
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
            following = self.as_role("operator").follow_status(request_id, follow=True, timeout_s=timeout_s)
            for progress, _caught_up in following:
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
    text = f"{p.state.value}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    redrive: dict[str, int] = {}
    for r in p.plan.redrive if p.plan else []:
        redrive[r.state.value.lower()] = redrive.get(r.state.value.lower(), 0) + 1
    if redrive:
        text += "; re-drives: " + ", ".join(f"{n} {k}" for k, n in sorted(redrive.items()))
    return text


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
