"""Every Prometheus metric kafka-rewind exports, declared in one object from an injected registry.

The core never touches metric objects; adapters call the methods here. Tests pass a fresh registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from processor import __version__
from processor.errors import DeadLetterReason, Restart
from processor.journal.model import Phase
from processor.metrics.health import Health
from processor.security.gate import Refusal
from processor.security.signature import Kind

if TYPE_CHECKING:
    from processor.drill.verdict import Verdict
    from processor.graph.builder import GraphStats
    from processor.kafka.deadletters import DeadLetter
    from processor.rollback.plan import Step
    from processor.rollback.progress import RequestProgress
    from processor.tap.core import Journaled, RecordKind, TapCore


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.health = Health()
        self._build = Info("rewind_build", "kafka-rewind version", registry=self.registry)
        self._build.info({"version": __version__})
        self._up = Gauge(
            "rewind_component_up",
            "1 while a pipeline component is running",
            ["component"],
            registry=self.registry,
        )

        r = self.registry
        self._consumed = Counter(
            "rewind_tap_records_consumed", "Source records read by the tap", ["topic", "kind"], registry=r
        )
        self._journaled = Counter(
            "rewind_tap_actions_journaled",
            "Journal entries written",
            ["action_type", "reversibility"],
            registry=r,
        )
        self._dead = Counter(
            "rewind_tap_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=r
        )
        self._duplicates = Counter(
            "rewind_tap_duplicates_dropped", "Debezium redeliveries dropped", registry=r
        )
        self._incomplete = Counter(
            "rewind_tap_incomplete_transactions",
            "Transactions journaled before their END counts were met",
            registry=r,
        )
        self._in_doubt = Counter("rewind_tap_in_doubt_intents", "Intents journaled as in doubt", registry=r)
        self._untyped = Counter(
            "rewind_tap_untyped_events",
            "Outbox events without an event type (the router's default configuration): the aggregate "
            "type stands in; place the type column (table.fields.additional.placement)",
            ["action_type"],
            registry=r,
        )
        self._lag = Gauge(
            "rewind_tap_consumer_lag", "Records behind the source", ["topic", "partition"], registry=r
        )
        self._commit = Histogram(
            "rewind_tap_transaction_commit_seconds", "Kafka transaction commit latency (offsets + commit)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r,
        )  # fmt: skip
        self._open_tx = Gauge(
            "rewind_tap_open_transactions", "Source transactions held, waiting for END", registry=r
        )
        self._pending = Gauge("rewind_tap_pending_intents", "Intents waiting for their outcome", registry=r)

        self._nodes = Gauge("rewind_graph_nodes", "Actions in the dependency graph", registry=r)
        self._edges = Gauge("rewind_graph_edges", "Edges in the dependency graph", ["kind"], registry=r)
        self._dangling = Gauge(
            "rewind_graph_dangling_references", "Causes named but not seen yet", registry=r
        )
        self._cross = Gauge(
            "rewind_graph_cross_workflow_edges", "Explicit causes across workflows", registry=r
        )
        self._cycles = Counter("rewind_graph_cycles_detected", "Causal cycles found in a scope", registry=r)
        self._checkpoint_age = Gauge(
            "rewind_graph_checkpoint_age_seconds", "Since the last checkpoint", registry=r
        )
        self._graph_bytes = Gauge("rewind_graph_index_bytes", "Memory held by the graph index", registry=r)

        self._requests = Counter(
            "rewind_rollback_requests", "Rollback requests by how they ended", ["outcome"], registry=r
        )
        self._plan_steps = Histogram(
            "rewind_rollback_plan_steps", "Steps per plan",
            buckets=(1, 10, 100, 1_000, 10_000, 100_000), registry=r,
        )  # fmt: skip
        self._plan_seconds = Histogram(
            "rewind_rollback_plan_seconds", "Time to plan a request",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10), registry=r,
        )  # fmt: skip
        self._steps = Counter(
            "rewind_rollback_steps",
            "Steps entering a state, by mechanism",
            ["mechanism", "state"],
            registry=r,
        )
        self._confirm_latency = Histogram(
            "rewind_rollback_confirmation_seconds", "From a step's emission to its effect in the journal",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=r,
        )  # fmt: skip
        self._step_failures = Counter(
            "rewind_rollback_step_failures",
            "Steps failed after their last attempt",
            ["mechanism"],
            registry=r,
        )
        self._conflicts = Counter(
            "rewind_rollback_conflicts", "Restores not run: changed outside scope", registry=r
        )
        self._refused = Counter(
            "rewind_rollback_refused_messages",
            "Requests and control messages the signature gate refused, by kind and reason",
            ["kind", "reason"], registry=r,
        )  # fmt: skip
        self._to_last_emission = Histogram(
            "rewind_rollback_request_to_last_emission_seconds", "From the request to its last command",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800), registry=r,
        )  # fmt: skip
        self._replayed = Counter(
            "rewind_replay_records",
            "Source records a filtered replay handled",
            ["replay", "outcome"],
            registry=r,
        )
        self._replay_remaining = Gauge(
            "rewind_replay_remaining_records",
            "Offsets a filtered replay has still to go",
            ["replay"],
            registry=r,
        )
        self._redriven = Counter(
            "rewind_repair_redrives", "Inputs a repair re-drove, by outcome", ["outcome"], registry=r
        )
        self._drills = Counter(
            "rewind_drill_runs",
            "Drills run, by what they asked for and outcome",
            ["asked", "outcome"],
            registry=r,
        )
        self._drill_failures = Counter(
            "rewind_drill_failures",
            "Drills that failed or timed out, by what they asked for",
            ["asked"],
            registry=r,
        )
        self._drill_seconds = Histogram(
            "rewind_drill_duration_seconds", "From a drill's canary to its verdict", ["asked"],
            buckets=(5, 10, 20, 30, 60, 120, 300, 600), registry=r,
        )  # fmt: skip
        self._drill_passed = Gauge(
            "rewind_drill_last_success_timestamp_seconds",
            "When a passing drill last exercised the mechanism (RESTORE, COMPENSATE, REPLAY, IRREVERSIBLE)",
            ["mechanism"], registry=r,
        )  # fmt: skip
        self._restarts = Counter(
            "rewind_session_restarts",
            "Sessions of a component started over from committed state, by why (aborted, retryable, "
            "client_fatal: new clients)",
            ["component", "cause"], registry=r,
        )  # fmt: skip
        for component in ("tap", "graph", "rollback"):
            for cause in Restart:
                self._restarts.labels(component, cause.value)
        for reason in DeadLetterReason:
            self._dead.labels(reason.value)
        for kind in Kind:
            for refusal in Refusal:
                self._refused.labels(kind.value, refusal.name.lower())

    def declare(self, outcomes: Iterable[str], mechanisms: Iterable[str], drills: Iterable[str]) -> None:
        """Counters of the known label values start at 0 (not absent), so a rate, an increase or an alert
        sees the first event, and the dashboards show 0 rather than no data. The composition root
        names them (the rollback's final states, the step mechanisms, what drills ask for)."""
        for outcome in outcomes:
            self._requests.labels(outcome.lower())
        for mechanism in mechanisms:
            self._step_failures.labels(mechanism)
        for asked in drills:
            self._drill_failures.labels(asked)

    # -- graph --------------------------------------------------------------------------------------

    def graph_state(self, stats: GraphStats) -> None:
        self._nodes.set(stats.nodes)
        for kind, count in stats.edges.items():
            self._edges.labels(kind.value).set(count)
        self._dangling.set(stats.dangling_references)
        self._cross.set(stats.cross_workflow_edges)
        self._graph_bytes.set(stats.bytes)

    def graph_checkpoint_age(self, seconds: float) -> None:
        self._checkpoint_age.set(seconds)

    def cycle_detected(self) -> None:
        self._cycles.inc()

    # -- tap: the core's observer hooks -----------------------------------------------------------

    def consumed(self, topic: str, kind: RecordKind | None, count: int = 1) -> None:
        self._consumed.labels(topic, kind.value if kind else "unrecognized").inc(count)

    def journaled(self, entry: Journaled) -> None:
        self._journaled.labels(entry.action_type, entry.reversibility.value).inc()
        if not entry.complete:
            self._incomplete.inc()
        if entry.phase is Phase.IN_DOUBT:
            self._in_doubt.inc()
        if entry.type_fallback:
            self._untyped.labels(entry.action_type).inc()

    def refused(self, kind: Kind, reason: Refusal) -> None:
        """A request or control message the signature gate did not admit."""
        self._refused.labels(kind.value, reason.name.lower()).inc()

    def dead_lettered(self, dead: DeadLetter) -> None:
        self._dead.labels(dead.reason.value).inc()

    def duplicate_dropped(self, count: int = 1) -> None:
        self._duplicates.inc(count)

    def tap_committed(self, seconds: float, core: TapCore) -> None:
        self._commit.observe(seconds)
        self._open_tx.set(core.open_transactions)
        self._pending.set(core.pending_intents)

    def tap_lag(self, topic: str, partition: int, lag: int) -> None:
        self._lag.labels(topic, str(partition)).set(lag)

    # -- components -------------------------------------------------------------------------------

    # -- rollback worker (RollbackObserver) -----------------------------------------------------

    def planned(self, progress: RequestProgress, seconds: float) -> None:
        self._plan_seconds.observe(seconds)
        if progress.plan is not None:
            self._plan_steps.observe(len(progress.plan.steps))
            self._conflicts.inc(len(progress.plan.conflicts))
            for step in progress.plan.steps:
                self.step_changed(step)

    def step_changed(self, step: Step) -> None:
        self._steps.labels(step.mechanism.value, step.state.value).inc()
        if step.state.value == "FAILED":
            self._step_failures.labels(step.mechanism.value).inc()

    def confirmed(self, step: Step, latency_s: float) -> None:
        self._confirm_latency.observe(max(latency_s, 0.0))

    def finished(self, progress: RequestProgress) -> None:
        self._requests.labels(progress.state.value.lower()).inc()
        if progress.last_emitted_ts_ms is not None and progress.requested_ts_ms is not None:
            self._to_last_emission.observe(
                max(progress.last_emitted_ts_ms - progress.requested_ts_ms, 0) / 1000
            )

    # -- replay and repair -----------------------------------------------------------------------

    def replayed(self, replay_id: str, copied: int, skipped: int) -> None:
        self._replayed.labels(replay_id, "copied").inc(copied)
        self._replayed.labels(replay_id, "skipped").inc(skipped)

    def replay_remaining(self, replay_id: str, records: int) -> None:
        self._replay_remaining.labels(replay_id).set(records)

    def redrive_changed(self, outcome: str) -> None:
        self._redriven.labels(outcome).inc()

    # -- drills -------------------------------------------------------------------------------------

    def drilled(self, verdict: Verdict) -> None:
        self._drills.labels(verdict.asked, verdict.outcome.value).inc()
        self._drill_seconds.labels(verdict.asked).observe(verdict.duration_ms / 1000)
        if verdict.outcome.value == "PASSED":
            for mechanism in verdict.exercised:
                self._drill_passed.labels(mechanism).set(verdict.ended_ts_ms / 1000)
        else:
            self._drill_failures.labels(verdict.asked).inc()

    def component_started(self, component: str) -> None:
        self._up.labels(component).set(1)
        self.health.started(component)

    def component_stopped(self, component: str) -> None:
        self._up.labels(component).set(0)
        self.health.stopped(component)

    def session_restarted(self, component: str, cause: Restart) -> None:
        self._restarts.labels(component, cause.value).inc()

    def beat(self, component: str, assigned: bool) -> None:
        """One turn of a component's loop (``assigned``: its consumer holds partitions)."""
        self.health.beat(component, assigned)

    def healthy(self) -> bool:
        """Healthy while at least one component runs, none has stopped, and every loop turns."""
        return self.health.check().ok
