"""The composition root: every component built from the settings in one place, and the hosts that run
them. The command line parses arguments and calls this; ``rewind run`` hosts the same objects the
one-component commands (``rewind tap``, ``rewind graph build``, ``rewind worker``) do, and the example
shop builds its processor here too.

What is built where:
- components (``tap``, ``graph_builder``, ``worker``): Kafka loops on a bootstrap address;
- hosts (``run``, ``run_tap``, ``run_graph``, ``run_worker``): a cluster, rewind's topics, the metrics
  endpoint, and the components as threads that stop together when one fails;
- offline (``decode``, ``entries``, ``graph``, ``plan``): the same cores over a capture or a journal dump;
- clients (``publish``, ``journal``, ``follow_status``): one-shot reads and writes of a running cluster.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from processor.catalog.catalog import Catalog, load_catalog
from processor.config import Settings
from processor.devenv.connect import CaptureSpec, LocalConnect
from processor.devenv.postgres import Dsn, LocalPostgres
from processor.drill.runner import DrillRunner
from processor.drill.serde import decode_verdict
from processor.drill.verdict import ASKED, Verdict
from processor.errors import ConfigError, KafkaError, LocalServiceError, RewindError, SchemaError
from processor.graph import store
from processor.graph.builder import CausalGraph
from processor.graph.entities import EntityIndex, index_path
from processor.graph.history import EntityHistory, RowVersions, Undo, committed_at
from processor.graph.runner import GraphBuilder
from processor.journal.model import JournalEntry
from processor.journal.serde import deserialize, from_json_view
from processor.jsonvalue import loads
from processor.kafka import clients, cluster, loop
from processor.kafka.registry import registry_lookup
from processor.kafka.selfcheck import SelfCheck, transactional_round_trip
from processor.metrics import Metrics, dashboard
from processor.metrics.server import serve
from processor.replay.runner import FilteredReplay
from processor.replay.scope import ReplayJob, ReplayRefused, ReplayReport, Scope, StartPoint
from processor.rollback.actions import ActionStore
from processor.rollback.engine import RollbackEngine
from processor.rollback.plan import Plan
from processor.rollback.planner import plan as make_plan
from processor.rollback.progress import FINAL, RequestProgress
from processor.rollback.request import Control, Mode, RollbackRequest, Selector
from processor.rollback.serde import signed_control, signed_request
from processor.rollback.status import StatusReader
from processor.rollback.worker import RollbackWorker, engine_config
from processor.runtime import Progress
from processor.security.acls import Grant, acl_plan
from processor.security.keys import SigningKey, local_key, new_keyring
from processor.tap.core import TapCore, TapOutput
from processor.tap.engine import tap_core
from processor.tap.offline import open_capture
from processor.tap.runner import TapRunner, source_topics
from processor.undo import StepMechanism

T = TypeVar("T")
logger = logging.getLogger(__name__)
CDC_CONNECTOR = "rewind-cdc"  # the development source's connector (``rewind cdc up``)
Say = Callable[[str], None]


def _silent(_line: str) -> None:
    """No progress lines (a library caller)."""


@dataclass
class Rewind:
    """kafka-rewind assembled from one settings object. ``catalog_file`` overrides REWIND_CATALOG_FILE;
    ``say`` hears one line per thing started, for a terminal."""

    settings: Settings
    catalog_file: Path | None = None
    say: Say = _silent
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self.metrics.declare(
            outcomes=[s.value for s in FINAL], mechanisms=[m.value for m in StepMechanism], drills=ASKED
        )

    @cached_property
    def catalog(self) -> Catalog:
        path = self.catalog_file or self.settings.catalog_file
        return load_catalog(path) if path else Catalog.empty()

    # -- components ---------------------------------------------------------------------------------

    def tap_core(self, *, offline: bool = False) -> TapCore:
        lookup = registry_lookup(self.settings)
        return tap_core(self.settings, self.catalog, lookup=lookup, observer=self.metrics, offline=offline)

    def tap(self, bootstrap: str) -> TapRunner:
        return TapRunner(self.settings, bootstrap, self.tap_core, self.metrics)

    def graph_builder(self, bootstrap: str, on_catch_up: Progress | None = None) -> GraphBuilder:
        return GraphBuilder(self.settings, bootstrap, self.metrics, on_catch_up=on_catch_up)

    def worker(self, bootstrap: str, engine: RollbackEngine | None = None) -> RollbackWorker:
        return RollbackWorker(self.settings, bootstrap, self.catalog, self.metrics, engine=engine)

    # -- hosts --------------------------------------------------------------------------------------

    @contextmanager
    def cluster(self, *, keep_broker: bool = False) -> Iterator[str]:
        """The configured cluster, or a local broker started here; rewind's own topics created."""
        with cluster.connect(self.settings, keep_local_broker=keep_broker) as bootstrap:
            self.say(f"cluster: {bootstrap}")
            self.ensure_topics(bootstrap)
            yield bootstrap

    def ensure_topics(self, bootstrap: str) -> None:
        s = self.settings
        names = [*s.topics.own(), s.rollback.notify_topic]
        if not s.topics.create_missing:
            self.say(f"topics: {len(names)} expected (made by the admin step: topics.create_missing=false)")
            return
        created = clients.ensure_topics(
            clients.admin(s, bootstrap), names,
            partitions=s.topics.partitions, replication_factor=s.topics.replication_factor,
            configs=own_topic_configs(s),
        )  # fmt: skip
        self.say(f"topics: {len(names)} ready ({len(created)} created)")

    def serving_metrics(self, bootstrap: str) -> AbstractContextManager[None]:
        """/metrics and /healthz while the block runs, when a metrics port is configured."""
        port = self.settings.metrics_port
        if not port:
            return nullcontext()
        admin = clients.admin(self.settings, bootstrap)

        def broker() -> str | None:
            try:
                clients.describe_cluster(admin, timeout_s=5)
            except KafkaError as exc:
                return str(exc)
            return None

        @contextmanager
        def serving() -> Iterator[None]:
            server = serve(self.metrics, port, broker=broker)
            self.say(f"metrics: http://127.0.0.1:{port}/metrics")
            try:
                yield
            finally:
                server.shutdown()

        return serving()

    def run(self, stop: threading.Event, *, keep_broker: bool = False) -> None:
        """The processor: the graph builder and the worker always, the tap when sources are configured.
        One component's failure stops the others (a dead worker must not look healthy)."""
        with self.cluster(keep_broker=keep_broker) as bootstrap, self.serving_metrics(bootstrap):
            self.metrics.component_started("processor")
            threads = [
                threading.Thread(target=self._graph, args=(bootstrap, stop), name="graph"),
                threading.Thread(target=self._worker, args=(bootstrap, stop), name="rollback"),
            ]
            if self.settings.drill.every:
                threads.append(threading.Thread(target=self._drills, args=(bootstrap, stop), name="drill"))
            for t in threads:
                t.start()
            try:
                if has_sources(self.settings):
                    self._tap(bootstrap, stop)
                else:
                    self.say("tap: idle (no source topics configured)")
                    stop.wait()
            finally:
                stop.set()
                for t in threads:
                    t.join()
                self.metrics.component_stopped("processor")

    def run_tap(self, stop: threading.Event) -> None:
        source_topics(self.settings)  # fail before starting anything
        self.catalog  # noqa: B018 (a bad catalog fails before the cluster starts)
        with self.cluster() as bootstrap, self.serving_metrics(bootstrap):
            self._tap(bootstrap, stop)

    def run_graph(self, stop: threading.Event, on_catch_up: Progress | None = None) -> store.Checkpoint:
        with self.cluster() as bootstrap, self.serving_metrics(bootstrap):
            return self._graph(bootstrap, stop, on_catch_up)

    def run_worker(self, stop: threading.Event) -> None:
        self.catalog  # noqa: B018
        with self.cluster() as bootstrap, self.serving_metrics(bootstrap):
            self._worker(bootstrap, stop)

    def self_check(self, *, keep_broker: bool = False) -> SelfCheck:
        """The transactional guarantees proved on the cluster: committed seen once, aborted never."""
        with self.cluster(keep_broker=keep_broker) as bootstrap:
            topic = f"{self.settings.topics.journal}.selfcheck"
            return transactional_round_trip(self.settings, bootstrap, topic)

    def start_cdc(self, tables: Sequence[str], schema_sql: Path | None = None) -> tuple[Dsn, CaptureSpec]:
        """A development CDC source: local PostgreSQL (``schema_sql`` applied first) and Kafka Connect
        with Debezium capturing ``tables``, on the configured cluster or the local broker (left running)."""
        s = self.settings
        dsn = LocalPostgres(s.postgres).start()
        self.say(f"PostgreSQL: {dsn.host}:{dsn.port}/{dsn.database}")
        if schema_sql:
            try:
                with psycopg.connect(dsn.conninfo(), autocommit=True) as conn:
                    conn.execute(schema_sql.read_text().encode())
            except psycopg.Error as exc:
                raise LocalServiceError(f"PostgreSQL: {schema_sql} failed: {exc}") from exc
        with cluster.connect(s, keep_local_broker=True) as bootstrap:
            spec = CaptureSpec(CDC_CONNECTOR, dsn, tuple(tables), s.connect.topic_prefix)
            LocalConnect(s.connect, bootstrap, s.security).start(spec)  # as this process connects
        return dsn, spec

    def _tap(self, bootstrap: str, stop: threading.Event) -> None:
        topics = ", ".join(source_topics(self.settings))
        self.say(
            f"tap: {topics} -> {self.settings.topics.journal} (catalog: {self.catalog.source or 'none'})"
        )
        self._hosted("tap", lambda: self.tap(bootstrap).run(stop), stop)

    def _graph(
        self, bootstrap: str, stop: threading.Event, on_catch_up: Progress | None = None
    ) -> store.Checkpoint:
        self.say(f"graph: {self.settings.topics.journal} -> {self.settings.graph.checkpoint_path}")
        return self._hosted("graph", lambda: self.graph_builder(bootstrap, on_catch_up).run(stop), stop)

    def _worker(self, bootstrap: str, stop: threading.Event) -> None:
        self.say(
            f"rollback: {self.settings.topics.requests} -> worker "
            f"({len(self.catalog.actions)} action types in catalog)"
        )
        self._hosted("rollback", lambda: self.worker(bootstrap).run(stop), stop)

    def _drills(self, bootstrap: str, stop: threading.Event) -> None:
        """A drill every ``drill.every`` seconds, each mechanism of ``drill.mechanisms`` in turn. A failed
        drill is a verdict (and an alert), never a reason to stop the processor."""
        config = self.settings.drill
        self.say(
            f"drill: every {config.every:.0f}s ({', '.join(config.mechanisms)}) "
            f"-> {self.settings.topics.drills}"
        )
        runner = DrillRunner(self.settings, bootstrap, self.catalog, self.metrics)
        turn = 0
        while not stop.wait(config.every):
            asked = config.mechanisms[turn % len(config.mechanisms)]
            turn += 1
            try:
                runner.run(asked, stop)
            except RewindError as exc:
                logger.error("drill (%s) could not run: %s", asked, exc)

    def drill(self, asked: str, stop: threading.Event) -> Verdict:
        """One drill on the configured cluster, now."""
        self.catalog  # noqa: B018 (a bad catalog fails first)
        return DrillRunner(self.settings, self.existing_cluster, self.catalog, self.metrics).run(asked, stop)

    @staticmethod
    def dashboard() -> str:
        """The Grafana dashboard of every metric this processor exports (JSON)."""
        return dashboard.render()

    def drill_verdicts(self) -> list[Verdict]:
        """Every verdict on the drills topic (none when it is not there)."""
        reader = self._reader("drills")
        topic = self.settings.topics.drills
        try:
            if not loop.partitions(reader, topic, missing_ok=True):
                return []
            found = loop.read_to_end(reader, topic, what="the drills topic")
        finally:
            reader.close()
        verdicts = []
        for m in found:
            try:
                verdicts.append(decode_verdict(m.value() or b""))
            except SchemaError as exc:
                logger.warning("drills topic: %s", exc)
        return verdicts

    def _hosted(self, component: str, body: Callable[[], T], stop: threading.Event) -> T:
        self.metrics.component_started(component)
        try:
            return body()
        except BaseException:
            stop.set()  # the components of one process stop together
            raise
        finally:
            self.metrics.component_stopped(component)

    # -- offline ------------------------------------------------------------------------------------

    def decode(
        self, capture: Path, on_unreadable: Callable[[ConfigError], None] | None = None
    ) -> tuple[TapCore, Iterator[TapOutput]]:
        """The tap core over a capture file, and the outputs it yields."""
        lookup = registry_lookup(self.settings)
        return open_capture(self.settings, self.catalog, capture, lookup, on_unreadable)

    def entries(
        self,
        capture: Path | None = None,
        dump: Path | None = None,
        on_unreadable: Callable[[ConfigError], None] | None = None,
    ) -> list[JournalEntry]:
        """The journal entries of a capture (through the tap's decoder) or of a journal dump."""
        if capture:
            _, outputs = self.decode(capture, on_unreadable)
            return [e for out in outputs for e in out.entries]
        if dump:
            lines = dump.read_text(encoding="utf-8").splitlines()
            return [from_json_view(loads(line)) for line in lines if line.strip()]
        return []

    def graph(
        self,
        capture: Path | None = None,
        dump: Path | None = None,
        on_unreadable: Callable[[ConfigError], None] | None = None,
    ) -> tuple[CausalGraph, dict[str, JournalEntry]]:
        """The graph of a capture or a dump (with each action's entry), else the builder's checkpoint."""
        if capture or dump:
            entries = self.entries(capture, dump, on_unreadable)
            graph = CausalGraph()
            for e in entries:
                graph.add(e)
            return graph, {e.action_id: e for e in entries}
        path = self.settings.graph.checkpoint_path
        checkpoint = store.load(path, self.settings.topics.journal)
        if checkpoint is None:
            raise ConfigError(
                f"no graph checkpoint at {path}",
                hint="run `rewind graph build`, or pass --capture FILE or --journal FILE",
            )
        return checkpoint.graph, {}

    def history(self, capture: Path | None = None, dump: Path | None = None) -> RowVersions:
        """Every row's versions: from a capture or a journal dump, else the graph builder's entity index
        (or, without one, a scan of the journal topic), with what rewind's requests later undid or
        repaired (from the status topic, when there is one)."""
        if capture or dump:
            offline = EntityHistory()
            offline.add_many(self.entries(capture, dump))
            return offline
        history: RowVersions
        index = self._entity_index()
        if index is None:  # no index (no graph builder ran here): a scan of the journal
            history = EntityHistory()
            entries, horizon = self._journal_since()
            history.add_many(entries)
            if horizon is not None:
                history.raise_horizon(horizon)
        else:
            history = index
        for progress in self._statuses():
            for action_id, how, by_action in progress.undone():
                history.note_undo(action_id, Undo(progress.request_id, how, by_action))
        return history

    def _entity_index(self) -> EntityIndex | None:
        path = index_path(self.settings.graph.checkpoint_path, self.settings.topics.journal)
        if not path.is_file():
            return None
        return EntityIndex(path)

    def _statuses(self) -> list[RequestProgress]:
        """Every request's latest status (none when the status topic is not there)."""
        reader = self._reader("history")
        try:
            if not loop.partitions(reader, self.settings.topics.status, missing_ok=True):
                return []
            found = loop.read_to_end(reader, self.settings.topics.status, what="the status topic")
            latest = StatusReader().latest(((m.value() or b"", None) for m in found), lambda _exc: None)
            return list(latest.values())
        finally:
            reader.close()

    def plan(self, request: RollbackRequest, graph: CausalGraph, entries: dict[str, JournalEntry]) -> Plan:
        """The worker's planner, offline."""
        actions = ActionStore()
        actions.add_many((e, None) for e in entries.values())
        return make_plan(request, graph, actions, self.catalog, engine_config(self.settings).thresholds)

    # -- replay -------------------------------------------------------------------------------------

    def replay_scope(
        self,
        request_id: str | None = None,
        selector: Selector | None = None,
        *,
        capture: Path | None = None,
        dump: Path | None = None,
        widen: bool = False,
    ) -> Scope:
        """The records a replay skips: a rollback request's planned scope (from its status), or the scope
        the planner gives a selector; the entries from a capture, a dump, or the journal topic."""
        entries = self.entries(capture, dump) if (capture or dump) else self.journal()
        if request_id is not None:
            progress = None
            for latest, _ in self.follow_status(request_id, follow=False):
                progress = latest
            if progress is None or progress.plan is None:
                state = progress.state.value if progress else "unknown"
                raise ReplayRefused(f"request {request_id} has no plan to replay without (it is {state})")
            ids = set(progress.plan.scope)
        else:
            assert selector is not None
            graph = CausalGraph()
            for e in entries:
                graph.add(e)
            request = RollbackRequest(
                f"replay-{uuid.uuid4()}", "replay", "rewind replay", int(time.time() * 1000),
                selector, Mode.DRY_RUN, widen,
            )  # fmt: skip
            ids = set(self.plan(request, graph, {e.action_id: e for e in entries}).scope)
        found = [e for e in entries if e.action_id in ids]
        if len(found) < len(ids):
            raise ReplayRefused(
                f"{len(ids) - len(found)} of the scope's {len(ids)} actions are not in the journal read",
                hint="is the journal topic (or file) the one the request was planned on?",
            )
        return Scope.of(found)

    def replay(
        self,
        replay_id: str,
        jobs: list[ReplayJob],
        scope: Scope,
        start: StartPoint,
        stop: threading.Event,
        *,
        dry_run: bool = False,
        on_progress: Progress | None = None,
        max_rate: float | None = None,
    ) -> ReplayReport:
        """A filtered replay on the configured cluster (or the running local broker)."""
        replay = FilteredReplay(
            self.settings, self.existing_cluster, replay_id, jobs, scope, start,
            observer=self.metrics, on_progress=on_progress, max_rate=max_rate,
        )  # fmt: skip
        return replay.run(stop, dry_run=dry_run)

    # -- clients of a running cluster -----------------------------------------------------------------

    @property
    def existing_cluster(self) -> str:
        """The configured cluster, or the local broker's address (not started here)."""
        s = self.settings
        return s.bootstrap_servers or f"{s.local_broker.host}:{s.local_broker.port}"

    def publish(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        if error := clients.publish(
            self.settings, self.existing_cluster, topic, key, value, list(headers or [])
        ):
            raise ConfigError(f"publishing to {topic} failed: {error}", hint="is the cluster reachable?")

    @cached_property
    def signing_key(self) -> SigningKey | None:
        """This process's key (signing.key_file); without one, requests and commands go unsigned."""
        return local_key(self.settings.signing.key_file)

    def publish_request(self, request: RollbackRequest, key: SigningKey | None = None) -> None:
        """A rollback request, signed by ``key`` (default: this process's)."""
        body, headers = signed_request(request, key or self.signing_key, int(time.time() * 1000))
        self.publish(self.settings.topics.requests, request.request_id, body, headers)

    def publish_control(self, control: Control, key: SigningKey | None = None) -> None:
        body, headers = signed_control(control, key or self.signing_key, int(time.time() * 1000))
        self.publish(self.settings.topics.control, control.request_id, body, headers)

    def new_key(
        self, key_id: str, roles: list[str], directory: Path | None = None
    ) -> tuple[Path, dict[str, Any]]:
        """A new signing key saved under ``directory`` (default: signing.key_dir), and its keyring entry."""
        key = SigningKey.generate(key_id)
        path = (directory or self.settings.signing.key_dir) / f"{key_id}.pem"
        key.save(path)
        return path, key.keyring_entry(roles)

    @staticmethod
    def new_keyring(directory: Path, roles: dict[str, list[str]]) -> tuple[Path, dict[str, Path]]:
        """Keys and the keyring trusting them (none when the directory has a keyring already)."""
        keyring = directory / "keyring.yaml"
        if keyring.exists():
            return keyring, {}
        return new_keyring(directory, roles)

    def key_entry(self, key_file: Path | None, roles: list[str]) -> dict[str, Any]:
        key = local_key(key_file or self.settings.signing.key_file)
        if key is None:
            raise ConfigError("no key to show", hint="pass --key-file, or set REWIND_SIGNING__KEY_FILE")
        return key.keyring_entry(roles)

    def acl_plan(self) -> list[Grant]:
        """Each role's least-privilege ACLs for these settings and this catalog."""
        return acl_plan(self.settings, self.catalog)

    def apply_acls(self) -> tuple[list[str], int]:
        """The admin step of a secured cluster, as this process's principal (the admin): rewind's own
        topics where missing, then every role's ACLs. Returns the topics created and the ACL count."""
        s, admin = self.settings, clients.admin(self.settings, self.existing_cluster)
        created = clients.ensure_topics(
            admin, [*s.topics.own(), s.rollback.notify_topic], partitions=s.topics.partitions,
            replication_factor=s.topics.replication_factor, configs=own_topic_configs(s),
        )  # fmt: skip
        return created, clients.create_acls(admin, self.acl_plan())

    def current_plan(self, request_id: str) -> RequestProgress:
        """The request's latest status, read to the status topic's end (what an approver approves)."""
        for progress, _ in self.follow_status(request_id, follow=False, timeout_s=60):
            return progress
        raise ConfigError(
            f"no status of request {request_id}", hint="is the id right, and the worker running?"
        )

    def journal(self) -> list[JournalEntry]:
        """Every entry of the journal topic, read to its current end."""
        return self._journal_since()[0]

    def _journal_since(self) -> tuple[list[JournalEntry], int | None]:
        """Every entry of the journal topic, and the commit time from which they are complete (None:
        retention has deleted nothing): the latest first entry of a partition retention shortened."""
        topic = self.settings.topics.journal
        reader = self._reader("catalog")
        try:
            found = _read_or(reader, topic, "the journal", hint="pass --capture or --journal")
            lows = loop.beginnings(reader, topic, loop.partitions(reader, topic))
        finally:
            reader.close()
        entries, horizon = [], None
        shortened = {p for p, low in lows.items() if low > 0}
        for m in found:
            if not (value := m.value()):
                continue
            entries.append(entry := deserialize(value))
            if m.partition() in shortened:  # its first entry still held
                shortened.discard(m.partition())
                horizon = max(horizon or 0, committed_at(entry))
        return entries, horizon

    def follow_status(
        self, request_id: str, *, follow: bool, timeout_s: float | None = None
    ) -> Iterator[tuple[RequestProgress, bool]]:
        """A request's status records from the status topic: (latest, caught up), each time the latest
        changes (with ``follow``, until it is final; without, once, at the topic's end)."""
        topic = self.settings.topics.status
        reader = self._reader("status")
        try:
            parts = _partitions_or(reader, topic, hint="is the worker running against this cluster?")
            reader.assign(loop.from_beginning(topic, parts))
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            last: RequestProgress | None = None
            shown: int | None = None
            status = StatusReader()
            while True:
                for msg in reader.consume(500, timeout=0.5):
                    if msg.error() is None and (msg.key() or b"").decode() == request_id:
                        try:
                            last = status.read(msg.value() or b"")
                        except SchemaError:
                            continue
                caught_up = loop.at_end(reader)
                if last is not None and shown != last.ts_ms and (follow or caught_up):
                    yield last, caught_up
                    shown = last.ts_ms
                if caught_up and (not follow or (last is not None and last.final)):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise KafkaError(f"{request_id} did not finish within {timeout_s}s", retryable=True)
        finally:
            reader.close()
        if last is None:
            raise ConfigError(f"no status for request {request_id}", hint="is the request id right?")

    def _reader(self, purpose: str) -> Any:
        group = f"{self.settings.group_id}-{purpose}-{uuid.uuid4()}"
        return clients.consumer(self.settings, self.existing_cluster, group)


def has_sources(settings: Settings) -> bool:
    t = settings.topics
    return bool(t.cdc or t.tx_metadata or t.outbox)


def own_topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Status records carry whole plans: their topic takes large records."""
    return {settings.topics.status: {"max.message.bytes": str(settings.rollback.status_max_bytes)}}


def _partitions_or(reader: Any, topic: str, *, hint: str) -> list[int]:
    try:
        return loop.partitions(reader, topic)
    except KafkaError as exc:
        raise ConfigError(str(exc), hint=hint) from exc


def _read_or(reader: Any, topic: str, what: str, *, hint: str) -> list[Any]:
    _partitions_or(reader, topic, hint=hint)
    return loop.read_to_end(reader, topic, what=what)
