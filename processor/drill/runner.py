"""A drill on the live system: start a canary workflow at the services' entry point, wait until the
journal holds it, roll it back through the normal request path (the drill approves its own request as
``rewind-drill``), rebuild a replayed store's copy without it, and judge the outcome
(``processor.drill.verdict``). The verdict goes to the drills topic and the metrics.

Nothing but the canary is selected, and the judgement fails a drill whose plan or answers reached
anything else; the canary's own rows (the reserved ones its payload names) stay behind as the undo left
them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from processor.catalog.catalog import Catalog
from processor.catalog.templates import MappingFailed, render
from processor.config import Settings
from processor.drill.serde import encode_verdict
from processor.drill.verdict import TAG, Judgement, Outcome, Verdict, judge, seeds_for
from processor.errors import ConfigError, KafkaError, SchemaError
from processor.graph.history import committed_at
from processor.journal.model import JournalEntry
from processor.journal.serde import deserialize
from processor.jsonvalue import dumps
from processor.kafka import clients, loop
from processor.metrics import Metrics
from processor.replay.runner import FilteredReplay
from processor.replay.scope import ReplayJob, Scope, StartKind, StartPoint
from processor.rollback.plan import Plan
from processor.rollback.progress import RequestProgress, RequestState
from processor.rollback.request import Control, ControlCommand, Mode, RollbackRequest, Selector, SelectorKind
from processor.rollback.serde import signed_control, signed_request
from processor.rollback.status import StatusReader
from processor.security.keys import local_key

logger = logging.getLogger(__name__)
DRILLER = "rewind-drill"


@dataclass(frozen=True)
class _Tail:
    """A reader assigned at each partition's end when the drill began."""

    consumer: Consumer
    starts: dict[int, int]

    def close(self) -> None:
        self.consumer.close()


@dataclass
class _Seen:
    """The journal since the drill began."""

    entries: dict[str, JournalEntry] = field(default_factory=dict)

    def canary(self, correlation: str) -> list[JournalEntry]:
        return [e for e in self.entries.values() if e.correlation_id == correlation]


class DrillRunner:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        catalog: Catalog,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.bootstrap, self.catalog = settings, bootstrap, catalog
        self.metrics, self.clock = metrics, clock
        self.config = settings.drill
        self.key = local_key(settings.signing.key_file)  # the drill's key: a drill role in the keyring

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def run(self, asked: str, stop: threading.Event) -> Verdict:
        """One drill, judged; its verdict published."""
        if not self.config.entry_topic:
            raise ConfigError(
                "a drill needs the services' entry point",
                hint="set REWIND_DRILL__ENTRY_TOPIC and REWIND_DRILL__ENTRY_PAYLOAD (the canary's event)",
            )
        drill_id = uuid.uuid4().hex[:12]
        started = self._now_ms()
        verdict = self._drill(drill_id, asked, started, stop)
        if stop.is_set() and verdict.outcome is not Outcome.PASSED:  # cut short by a shutdown: no verdict
            logger.info("drill %s (%s): stopped before its verdict", drill_id, asked)
            return verdict
        self._publish(self.settings.topics.drills, drill_id, encode_verdict(verdict))
        if self.metrics:
            self.metrics.drilled(verdict)
        log = logger.info if verdict.outcome is Outcome.PASSED else logger.error
        log("drill %s (%s): %s: %s", drill_id, asked, verdict.outcome.value, verdict.reason)
        return verdict

    def _drill(self, drill_id: str, asked: str, started: int, stop: threading.Event) -> Verdict:
        correlation = TAG + drill_id
        deadline = time.monotonic() + self.config.timeout_s

        def ended(outcome: Outcome, reason: str, **more: object) -> Verdict:
            return Verdict(drill_id, asked, outcome, reason, started, self._now_ms(), **more)  # type: ignore[arg-type]

        journal, status = self._tail(self.settings.topics.journal), self._tail(self.settings.topics.status)
        seen = _Seen()
        try:
            self._start_canary(drill_id, correlation)
            canary = self._await_canary(journal, seen, correlation, deadline, stop)
            if not canary:
                why = f"within {self.config.timeout_s:.0f}s (is the entry point consumed?)"
                return ended(
                    Outcome.TIMED_OUT, f"no action of the canary {correlation} reached the journal {why}"
                )
            journaled = self._now_ms() - started
            seeds = seeds_for(asked, canary, self.catalog)
            if not seeds:
                types = ", ".join(sorted({e.action_type for e in canary}))
                return ended(Outcome.FAILED, f"the canary's workflow has no {asked} action ({types})",
                             journaled_ms=journaled)  # fmt: skip
            request = RollbackRequest(
                f"{correlation}-{asked}", DRILLER, f"drill {drill_id}: {asked}", self._now_ms(),
                Selector(SelectorKind.ACTION_IDS, action_ids=tuple(seeds)), Mode.EXECUTE,
            )  # fmt: skip
            requested = self._now_ms()
            body, headers = signed_request(request, self.key, self._now_ms())
            self._publish(self.settings.topics.requests, request.request_id, body, list(headers))
            progress = self._follow(status, request.request_id, deadline, stop)
            undone = self._now_ms() - requested
            more = {"request_id": request.request_id, "journaled_ms": journaled, "undone_ms": undone}
            if progress is None or not progress.final:
                state = progress.state.value if progress else "not planned"
                return ended(Outcome.TIMED_OUT, f"request {request.request_id} {state} after "
                             f"{self.config.timeout_s:.0f}s", **more)  # fmt: skip
            self._read(journal, seen, deadline, until_end=True)
            verdict = self._judge(asked, progress, canary, seen, stop, drill_id, started)
            return ended(verdict.outcome, verdict.reason, failed_step=verdict.failed_step,
                         exercised=verdict.exercised, action_types=verdict.action_types, **more)  # fmt: skip
        finally:
            journal.close()
            status.close()

    # -- the canary ---------------------------------------------------------------------------------

    def _start_canary(self, drill_id: str, correlation: str) -> None:
        ctx = {"drill": {"id": drill_id, "number": self._now_ms()}}
        try:
            payload, key = render(self.config.entry_payload, ctx), render(self.config.entry_key, ctx)
        except MappingFailed as exc:
            raise ConfigError(
                f"REWIND_DRILL__ENTRY_PAYLOAD: {exc}", hint="use {drill.id} and {drill.number}"
            ) from exc
        headers = {"id": str(uuid.uuid4()), "eventType": self.config.entry_event_type,
                   "correlationId": correlation, "rewind.drill": drill_id}  # fmt: skip
        assert self.config.entry_topic is not None
        self._publish(self.config.entry_topic, str(key), dumps(payload).encode(), list(headers.items()))

    def _await_canary(
        self, journal: _Tail, seen: _Seen, correlation: str, deadline: float, stop: threading.Event
    ) -> list[JournalEntry]:
        """The canary's actions once its workflow ended: every configured final type journaled, or
        (without them) nothing new of it for ``settle_s``."""
        last_new, count = time.monotonic(), 0
        want = set(self.config.complete_types)
        while time.monotonic() < deadline and not stop.is_set():
            self._read(journal, seen, deadline)
            canary = seen.canary(correlation)
            if len(canary) != count:
                last_new, count = time.monotonic(), len(canary)
            types = {e.action_type for e in canary}
            if canary and (want <= types if want else time.monotonic() - last_new >= self.config.settle_s):
                return canary
        return []

    # -- the request ------------------------------------------------------------------------------

    def _follow(
        self, status: _Tail, request_id: str, deadline: float, stop: threading.Event
    ) -> RequestProgress | None:
        """The request's progress until it is final, approving it (as the drill) when it waits for that."""
        fold, last, approved = StatusReader(), None, False
        while time.monotonic() < deadline and not stop.is_set():
            for msg in status.consumer.consume(200, timeout=0.3):
                if msg.error() is None and (msg.key() or b"").decode() == request_id:
                    try:
                        last = fold.read(msg.value() or b"")
                    except SchemaError as exc:
                        logger.warning("drill: unreadable status of %s: %s", request_id, exc)
            if last is not None and last.state is RequestState.AWAITING_APPROVAL and not approved:
                control = Control(
                    request_id, ControlCommand.APPROVE, DRILLER, self._now_ms(), "a drill", last.plan_hash
                )
                body, headers = signed_control(control, self.key, self._now_ms())
                self._publish(self.settings.topics.control, request_id, body, list(headers))
                approved = True
            if last is not None and last.final:
                return last
        return last

    def _judge(
        self, asked: str, progress: RequestProgress, canary: list[JournalEntry], seen: _Seen,
        stop: threading.Event, drill_id: str, started_ms: int,
    ) -> Judgement:  # fmt: skip
        """Foreign rows: what other work committed since the drill began (an action journaled late but
        committed before it, such as the setup of the drill's own rows, is not)."""
        plan = progress.plan
        canary_ids = {e.action_id for e in canary}
        keys = {s.idempotency_key for s in plan.steps} if plan else set()
        answers = [e for e in seen.entries.values() if set(e.causation_ids) & keys]
        answer_ids = {e.action_id for e in answers}
        drill_ids = canary_ids | answer_ids
        others = [
            e for e in seen.entries.values() if e.action_id not in drill_ids and committed_at(e) >= started_ms
        ]
        foreign = {entity for e in others for entity in e.entities}
        problem = None
        if (
            plan is not None
            and plan.replays
            and asked in ("all", "replay")
            and progress.state is RequestState.COMPLETED
        ):
            problem = self._replay_without(
                plan, [e for e in canary if e.action_id in set(plan.scope)], drill_id, stop
            )
        return judge(asked, progress, canary_ids, answers, foreign, problem)

    def _replay_without(
        self, plan: Plan, scoped: list[JournalEntry], drill_id: str, stop: threading.Event
    ) -> str | None:
        """Each replayed store's source copied without the canary: exactly its records skipped. The copy
        (a topic of the drill's own) is deleted afterwards."""
        scope = Scope.of(scoped)
        targets: list[str] = []
        try:
            for store in plan.replays:
                for source in store.topics:
                    expected = sum(len(offsets) for offsets in scope.records.get(source, {}).values())
                    target = f"{source}.drill-{drill_id}"
                    targets.append(target)
                    job, start = ReplayJob(source, target), StartPoint(StartKind.SCOPE)
                    name = f"drill-{drill_id}-{store.store}"
                    replay = FilteredReplay(self.settings, self.bootstrap, name, [job], scope, start)
                    report = replay.run(stop)
                    if not expected:
                        return f"{store.store}: the canary has no record on {source} to leave out"
                    if report.skipped != expected:
                        return (f"{store.store}: the copy of {source} skipped {report.skipped} records, the "
                                f"canary has {expected} there")  # fmt: skip
        except KafkaError as exc:
            return f"the filtered replay failed: {exc}"
        finally:
            if targets:
                clients.admin(self.settings, self.bootstrap).delete_topics(targets)
        return None

    # -- Kafka ------------------------------------------------------------------------------------

    def _tail(self, topic: str) -> _Tail:
        """A reader of the topic from its current end (what the drill causes, nothing older)."""
        consumer = clients.consumer(
            self.settings, self.bootstrap, f"{self.settings.group_id}-drill-{uuid.uuid4()}"
        )
        starts = loop.ends(consumer, topic, loop.partitions(consumer, topic))
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        return _Tail(consumer, starts)

    def _read(self, journal: _Tail, seen: _Seen, deadline: float, *, until_end: bool = False) -> None:
        """What the journal holds now; ``until_end``: up to its end (partitions nothing new reached
        included), bounded by the drill's deadline."""
        while True:
            for msg in journal.consumer.consume(500, timeout=0.3):
                if msg.error() is None and msg.value():
                    try:
                        entry = deserialize(msg.value() or b"")
                    except SchemaError:
                        continue
                    seen.entries[entry.action_id] = entry
            if not until_end or loop.at_end(journal.consumer, journal.starts) or time.monotonic() > deadline:
                return

    def _publish(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, str | bytes | None]] | None = None
    ) -> None:
        if error := clients.publish(self.settings, self.bootstrap, topic, key, value, headers):
            raise KafkaError(f"publishing to {topic} failed: {error}", retryable=True)
