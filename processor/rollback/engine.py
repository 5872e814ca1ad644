"""The rollback worker's core (pure): requests, operator commands and journal entries in; commands to
emit and status changes out. The Kafka loop around it only moves records and commits transactions,
so the same engine runs offline and in unit tests with a fake clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from processor.catalog.catalog import Catalog, Envelope, RedriveTarget
from processor.errors import RewindError
from processor.graph.builder import CausalGraph
from processor.journal.model import JournalEntry
from processor.rollback import commands as cmd
from processor.rollback.actions import ActionStore
from processor.rollback.approvals import DRILL_TAG, ApprovalRules, AuditEntry, short
from processor.rollback.plan import Plan, Redrive, Step, StepState
from processor.rollback.planner import plan
from processor.rollback.progress import Policy, RequestProgress, RequestState
from processor.rollback.request import (
    Control,
    ControlCommand,
    Mode,
    RequestInvalid,
    RollbackRequest,
    Thresholds,
)
from processor.rollback.serde import decode_request
from processor.rollback.verify import verify
from processor.security.gate import UNSIGNED_KEY, Gate, Signer

logger = logging.getLogger(__name__)


class RollbackObserver(Protocol):
    """What the metrics adapter hears."""

    def planned(self, progress: RequestProgress, seconds: float) -> None: ...
    def step_changed(self, step: Step) -> None: ...
    def confirmed(self, step: Step, latency_s: float) -> None: ...
    def finished(self, progress: RequestProgress) -> None: ...
    def redrive_changed(self, outcome: str) -> None: ...


class _Silent:
    def planned(self, progress: RequestProgress, seconds: float) -> None: ...
    def step_changed(self, step: Step) -> None: ...
    def confirmed(self, step: Step, latency_s: float) -> None: ...
    def finished(self, progress: RequestProgress) -> None: ...
    def redrive_changed(self, outcome: str) -> None: ...


@dataclass
class Outputs:
    commands: list[cmd.Command] = field(default_factory=list)
    changed: dict[str, RequestProgress] = field(default_factory=dict)  # status records to write

    def __bool__(self) -> bool:
        return bool(self.commands or self.changed)


@dataclass
class EngineConfig:
    thresholds: Thresholds = field(default_factory=Thresholds)
    policy: Policy = field(default_factory=Policy)
    notify_topic: str = "rewind.rollback.notifications"
    approvals: ApprovalRules = field(default_factory=ApprovalRules)


class RollbackEngine:
    def __init__(
        self,
        catalog: Catalog,
        config: EngineConfig | None = None,
        graph: CausalGraph | None = None,
        actions: ActionStore | None = None,
        observer: RollbackObserver | None = None,
        monotonic: Callable[[], float] | None = None,
        gate: Gate | None = None,
    ) -> None:
        import time

        self.catalog = catalog
        self.config = config or EngineConfig()
        self.graph = graph if graph is not None else CausalGraph()
        self.actions = actions if actions is not None else ActionStore()
        self.observer: RollbackObserver = observer or _Silent()
        self.monotonic = monotonic or time.perf_counter
        self.requests: dict[str, RequestProgress] = {}
        # Who may send what: the worker passes each request and control message through it first.
        self.gate = gate or Gate(None, 300_000, required=False)
        self._entries = 0  # journal entries added: a plan made at another count may be out of date
        self._planned_at: dict[str, int] = {}
        self._events: dict[str, str] = {}  # event id (= idempotency key) -> request id
        # A repair's inputs and their targets, read once when it is planned (a resumed request reads
        # them from the store as it goes): the re-drive itself then does no lookups.
        self._inputs: dict[str, dict[str, tuple[JournalEntry, RedriveTarget]]] = {}

    # -- inputs --------------------------------------------------------------------------------

    def resume(self, progress: RequestProgress) -> None:
        """A request's last committed status, read back at start-up."""
        self.requests[progress.request_id] = progress
        for entry in progress.audit:  # a message admitted before the restart stays spent
            self.gate.remember(entry.nonce, entry.issued_ts_ms, entry.issued_ts_ms)
        for step in progress.plan.steps if progress.plan else []:
            if step.state is not StepState.PENDING:
                self._note_emitted(progress.request_id, step)
        for item in progress.plan.redrive if progress.plan else []:
            if item.state is not StepState.PENDING:
                self._events[item.idempotency_key] = progress.request_id

    def note_resumed(self) -> None:
        """Link again what rewind emitted for resumed requests: the actions they undo may have come
        into the graph only after the status was read (a graph rebuilt from the journal)."""
        for progress in self.requests.values():
            for step in progress.plan.steps if progress.plan else []:
                if step.state is not StepState.PENDING:
                    self._note_emitted(progress.request_id, step)

    def add_entries(self, batch: list[tuple[JournalEntry, bytes | None]], now_ms: int) -> Outputs:
        """New journal entries: into the graph and the store; confirm the steps they show done. Entries
        seen before (a restart reads from the older of the graph's and the store's positions) change
        neither."""
        out = Outputs()
        for entry, _ in batch:
            self.graph.add(entry)
        self.actions.add_many(batch)
        self._entries += len(batch)
        for entry, _ in batch:
            self._confirm(entry, now_ms, out)
        return out

    def on_request(
        self, request: RollbackRequest, now_ms: int, signer: Signer | None = None, record: bytes | None = None
    ) -> Outputs:
        """A request the gate admitted (``signer``), with its record as received (planned again from it
        when the journal moves on before an approval)."""
        out = Outputs()
        if request.request_id in self.requests:
            logger.warning("rollback: request %s was already received; ignored", request.request_id)
            return out
        signer = signer or Signer(UNSIGNED_KEY, frozenset(), request.requested_ts_ms, "")
        progress = RequestProgress(
            request_id=request.request_id, state=RequestState.RECEIVED, ts_ms=now_ms,
            requested_by=request.requested_by, request_reason=request.reason, mode=request.mode,
            selector=request.selector.describe(), requested_ts_ms=request.requested_ts_ms,
            repair=request.repair, request=record,
        )  # fmt: skip
        progress.audit.append(AuditEntry.of("REQUEST", signer, None, "received"))
        self.requests[request.request_id] = progress
        started = self.monotonic()
        try:
            progress.plan = plan(request, self.graph, self.actions, self.catalog, self.config.thresholds)
        except RequestInvalid as exc:
            progress.state, progress.reason = RequestState.REJECTED, str(exc)
        except RewindError as exc:
            progress.state, progress.reason = RequestState.FAILED, f"planning failed: {exc}"
        else:
            progress.plan_hash = progress.plan.digest()
            self._planned_at[request.request_id] = self._entries
            if (why := self._not_a_drill(progress, progress.plan)) is not None:
                progress.state, progress.reason = RequestState.REJECTED, why
            else:
                self._after_plan(progress, progress.plan, request.mode)
                self._prepare_repair(progress)
        self.observer.planned(progress, self.monotonic() - started)
        if progress.final:
            self.observer.finished(progress)
        out.changed[progress.request_id] = progress
        return out

    def reject(self, request_id: str, reason: str, now_ms: int) -> Outputs:
        """A request record refused before planning (unreadable, or its signature): its id is all we
        trust. An id already known keeps its status: a forgery cannot end a real request."""
        if request_id in self.requests:
            logger.warning("rollback: refused a record for known request %s: %s", request_id, reason)
            return Outputs()
        progress = RequestProgress(request_id, RequestState.REJECTED, now_ms, reason=reason)
        self.requests[request_id] = progress
        self.observer.finished(progress)
        return Outputs(changed={request_id: progress})

    def _not_a_drill(self, progress: RequestProgress, p: Plan) -> str | None:
        """Why a request from a key that may only drill is refused: it must undo its canary alone."""
        if not progress.drill:
            return None
        if not progress.request_id.startswith(DRILL_TAG):
            return f"key {progress.requested_key} may only request drills (ids starting {DRILL_TAG!r})"
        entries = self.actions.get_many(list(p.scope))
        real = sorted(a for a, e in entries.items() if not (e.correlation_id or "").startswith(DRILL_TAG))
        if real:
            holds = ", ".join(real[:5])
            return f"key {progress.requested_key} may only undo canary workflows; the scope holds {holds}"
        return None

    def _prepare_repair(self, progress: RequestProgress) -> None:
        if progress.plan is None or not progress.plan.redrive or progress.final:
            return
        items = progress.plan.redrive
        entries = self.actions.get_many([r.action_id for r in items])
        seeds = self.actions.get_many([r.seed_action_ids[0] for r in items])
        self._inputs[progress.request_id] = {
            r.action_id: (entries[r.action_id], self._target(r, seeds[r.seed_action_ids[0]])) for r in items
        }

    def _target(self, item: Redrive, seed: JournalEntry) -> RedriveTarget:
        spec = self.catalog.actions.get(seed.action_type)
        if spec is None or spec.redrive is None:  # the catalog changed since the plan: send as planned
            return RedriveTarget(item.topic, item.event_type, Envelope.COMMAND)
        return spec.redrive

    def _after_plan(self, progress: RequestProgress, p: Plan, mode: Mode) -> None:
        summary = f"{len(p.steps)} steps in {p.waves} waves, {len(p.conflicts)} conflicts"
        if mode is Mode.DRY_RUN:
            progress.state, progress.reason = RequestState.PLANNED, f"dry run: {summary}; nothing emitted"
        elif p.needs_approval:
            progress.state = RequestState.AWAITING_APPROVAL
            progress.reason = f"{summary}; needs approval: {'; '.join(p.approval_reasons)}"
        else:
            progress.state, progress.reason = RequestState.EXECUTING, summary

    def on_control(self, control: Control, now_ms: int, signer: Signer | None = None) -> Outputs:
        """An operator's command the gate admitted. Whatever became of it goes into the request's audit."""
        progress = self.requests.get(control.request_id)
        if progress is None:
            logger.warning(
                "rollback: %s for unknown request %s ignored", control.command.value, control.request_id
            )
            return Outputs()
        signer = signer or Signer(UNSIGNED_KEY, frozenset(), control.issued_ts_ms, "")
        changed = self._replan_if_moved(progress, control, now_ms)
        if changed is not None:
            ignored: str | None = changed
        else:
            ignored = progress.apply_control(control, now_ms, signer, self.config.approvals)
        outcome = ignored or f"{progress.state.value}: {progress.reason}"
        progress.audit.append(AuditEntry.of(control.command.value, signer, control.plan_hash, outcome))
        if ignored and changed is None:
            logger.warning("rollback: %s: %s", control.request_id, ignored)
        if progress.final:
            self.observer.finished(progress)
        return Outputs(changed={progress.request_id: progress})

    def _replan_if_moved(self, progress: RequestProgress, control: Control, now_ms: int) -> str | None:
        """Before an approval of the current plan counts: when journal entries arrived since it was
        made, plan again; a different plan replaces it and the approval is of the old one (returned:
        what changed). None: the plan stands."""
        if (
            control.command is not ControlCommand.APPROVE or progress.plan is None or progress.request is None
            or control.plan_hash != progress.plan_hash or progress.state is not RequestState.AWAITING_APPROVAL
            or self._planned_at.get(progress.request_id) == self._entries
        ):  # fmt: skip
            return None
        request = decode_request(progress.request)
        fresh = plan(request, self.graph, self.actions, self.catalog, self.config.thresholds)
        self._planned_at[progress.request_id] = self._entries
        if fresh.digest() == progress.plan_hash:
            return None
        old, new = set(progress.plan.scope), set(fresh.scope)
        added, gone = sorted(new - old), sorted(old - new)
        what = f"scope +{len(added)} -{len(gone)} actions" + (f" ({', '.join(added[:5])})" if added else "")
        progress.replanned(fresh, what if added or gone else "steps or preview differ", now_ms)
        self._prepare_repair(progress)
        logger.warning("rollback: %s: %s", progress.request_id, progress.reason)
        return f"it approved plan {short(control.plan_hash)}; {progress.reason}"

    # -- the clock -----------------------------------------------------------------------------

    def tick(self, now_ms: int) -> Outputs:
        """Emit what is due, fail what timed out, and finish what has settled."""
        out = Outputs()
        budget = self.config.policy.max_emits_per_transaction
        for progress in list(self.requests.values()):
            if progress.final or progress.plan is None:
                continue
            for step in progress.expire(now_ms, self.config.policy):
                self.observer.step_changed(step)
                out.changed[progress.request_id] = progress
            while budget > 0:  # with an emission barrier, later waves follow in the same transaction
                due = progress.due(now_ms, self.config.policy)[:budget]
                if not due:
                    break
                out.commands += [self._emit(progress, step, now_ms) for step in due]
                out.changed[progress.request_id] = progress
                budget -= len(due)
            if progress.advance(now_ms):
                out.changed[progress.request_id] = progress
            if progress.state is RequestState.VERIFYING:
                progress.finish(verify(progress.plan, self.graph, self.actions), now_ms)
                if progress.final:
                    self.observer.finished(progress)
                out.changed[progress.request_id] = progress
            if progress.state is RequestState.REPAIRING:
                budget -= self._repair(progress, now_ms, budget, out)
        return out

    def _repair(self, progress: RequestProgress, now_ms: int, budget: int, out: Outputs) -> int:
        """Re-drive what is due, fail what went unconfirmed, end when all settled; returns emissions."""
        failed = progress.expire_redrives(now_ms, self.config.policy)
        for _ in failed:
            self.observer.redrive_changed("failed")
        due = progress.due_redrives(now_ms, self.config.policy)[: max(budget, 0)]
        for item in due:
            out.commands.append(self._emit_redrive(progress, item, now_ms))
        ended = progress.advance_repair(now_ms)
        if failed or due or ended:
            out.changed[progress.request_id] = progress
        if progress.final:
            self._inputs.pop(progress.request_id, None)
            self.observer.finished(progress)
        return len(due)

    def _emit_redrive(self, progress: RequestProgress, item: Redrive, now_ms: int) -> cmd.Command:
        if progress.request_id not in self._inputs:  # resumed after a restart
            self._prepare_repair(progress)
        entry, target = self._inputs[progress.request_id][item.action_id]
        command = cmd.build_redrive(progress.request_id, item, entry, target, now_ms)
        progress.mark_redriven(item, now_ms, self.config.policy)
        self._events[item.idempotency_key] = progress.request_id
        self.observer.redrive_changed("emitted")
        return command

    def _emit(self, progress: RequestProgress, step: Step, now_ms: int) -> cmd.Command:
        entry = self.actions.get(step.action_id)
        assert entry is not None  # the plan was built from the store
        spec = self.catalog.actions[step.action_type]
        command = cmd.build(progress.request_id, step, entry, spec, now_ms, self.config.notify_topic)
        progress.mark_emitted(step, now_ms)
        self._note_emitted(progress.request_id, step)
        self.observer.step_changed(step)
        return command

    def _note_emitted(self, request_id: str, step: Step) -> None:
        self._events[step.idempotency_key] = request_id
        self.graph.note_compensation(step.idempotency_key, step.action_id)

    def _confirm(self, entry: JournalEntry, now_ms: int, out: Outputs) -> None:
        for cause in entry.causation_ids:
            request_id = self._events.get(cause)
            if request_id is None:
                continue
            progress = self.requests[request_id]
            if progress.confirm_redrive(cause, entry.action_id, now_ms) is not None:
                self.observer.redrive_changed("confirmed")
                out.changed[request_id] = progress
                continue
            step = progress.confirm(cause, entry.action_id, now_ms)
            if step is not None:
                latency = (now_ms - (step.emitted_ts_ms or now_ms)) / 1000
                self.observer.confirmed(step, latency)
                self.observer.step_changed(step)
                out.changed[request_id] = progress
