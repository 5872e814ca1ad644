"""One request's life (pure): planned, maybe awaiting approval, executing wave by wave, confirmed,
verified, and ended with an honest outcome. The worker persists it as status records in the same Kafka
transactions as the commands it emits, and rebuilds it from them after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from processor.rollback.approvals import Approval, ApprovalRules, AuditEntry, drill_only
from processor.rollback.plan import Attempted, Plan, Redrive, Step, StepState
from processor.rollback.request import Control, ControlCommand, Mode
from processor.security.gate import UNSIGNED_KEY, Signer
from processor.undo import StepMechanism


class RequestState(StrEnum):
    RECEIVED = "RECEIVED"
    REJECTED = "REJECTED"
    PLANNED = "PLANNED"  # final for a dry run
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    EXECUTING = "EXECUTING"
    PAUSED = "PAUSED"
    CONFIRMING = "CONFIRMING"  # everything emitted; waiting for the journal to show the effects
    VERIFYING = "VERIFYING"
    COMPLETED = "COMPLETED"
    PARTIALLY_ROLLED_BACK = "PARTIALLY_ROLLED_BACK"
    ABORTED = "ABORTED"
    FAILED = "FAILED"
    REPAIRING = "REPAIRING"  # undone and verified; re-driving the good inputs
    REPAIRED = "REPAIRED"  # every re-driven input confirmed: the world as if the fix was always there
    PARTIALLY_REPAIRED = "PARTIALLY_REPAIRED"  # some inputs unconfirmed: the reason lists them


FINAL = frozenset(
    {RequestState.REJECTED, RequestState.COMPLETED, RequestState.PARTIALLY_ROLLED_BACK,
     RequestState.ABORTED, RequestState.FAILED, RequestState.REPAIRED, RequestState.PARTIALLY_REPAIRED}
)  # fmt: skip


class WaveBarrier(StrEnum):
    CONFIRMED = "confirmed"  # a wave starts when the one before it is confirmed (or failed)
    EMITTED = "emitted"  # a wave starts once the one before it is emitted


@dataclass(frozen=True, slots=True)
class Policy:
    confirm_timeout_ms: int = 30_000
    max_attempts: int = 3
    backoff: float = 2.0  # each retry waits this much longer for its confirmation
    wave_barrier: WaveBarrier = WaveBarrier.CONFIRMED
    max_emits_per_transaction: int = 500


@dataclass(frozen=True, slots=True)
class Diff:
    entity: str
    field: str
    expected_json: str | None
    actual_json: str | None


class StateLog:
    """Each request's state change said once: the status topic carries every progress record, the log
    only what changed (a request executing over many transactions is one line, not one per commit)."""

    def __init__(self) -> None:
        self._said: dict[str, tuple[RequestState, str | None]] = {}

    def news(self, progress: RequestProgress) -> bool:
        said = (progress.state, progress.reason)
        if self._said.get(progress.request_id) == said:
            return False
        self._said[progress.request_id] = said
        return True


@dataclass(slots=True)
class RequestProgress:
    request_id: str
    state: RequestState
    ts_ms: int
    requested_by: str | None = None
    request_reason: str | None = None
    mode: Mode = Mode.DRY_RUN
    selector: str | None = None
    requested_ts_ms: int | None = None
    reason: str | None = None
    plan: Plan | None = None
    verification: list[Diff] = field(default_factory=list)
    last_emitted_ts_ms: int | None = None
    repair: bool = False  # re-drive the good inputs once the undo is verified
    plan_hash: str | None = None  # the current plan's digest: what an approval must name
    approvals: list[Approval] = field(default_factory=list)  # of the current plan
    audit: list[AuditEntry] = field(default_factory=list)  # every signed message admitted for it
    request: bytes | None = None  # the request record as received: planned again when the journal moved
    _by_key: dict[str, Step] = field(default_factory=dict)
    _redrive_by_key: dict[str, Redrive] = field(default_factory=dict)
    # What changed since the status writer last took it (it writes those in a delta), by action id.
    _touched: tuple[set[str], set[str]] = field(default_factory=lambda: (set(), set()))
    _redrive_cursor: int = 0  # re-drives before it are sent (they are sent in plan order)
    _next_deadline: int | None = None  # the earliest wait of a sent, unconfirmed re-drive

    def take_touched(self) -> tuple[set[str], set[str]]:
        """The steps and re-drives changed since the last call (their action ids)."""
        touched, self._touched = self._touched, (set(), set())
        return touched

    @property
    def final(self) -> bool:
        return self.state in FINAL or (self.state is RequestState.PLANNED and self.mode is Mode.DRY_RUN)

    def step_by_event(self, event_id: str) -> Step | None:
        if self.plan is None:
            return None
        if len(self._by_key) != len(self.plan.steps):
            self._by_key = {s.idempotency_key: s for s in self.plan.steps}
        return self._by_key.get(event_id)

    def undone(self) -> list[tuple[str, str, str | None]]:
        """What this request undid or repaired, as (action id, how, the action that showed it): each
        confirmed step's action (restored, compensated), and a confirmed re-drive's seeds (repaired)."""
        if self.plan is None:
            return []
        found = [(s.action_id, s.mechanism.value.lower(), s.confirmed_by)
                 for s in self.plan.steps if s.state is StepState.CONFIRMED]  # fmt: skip
        repaired = [r for r in self.plan.redrive if r.state is StepState.CONFIRMED]
        found += [(seed, "repaired", r.confirmed_by) for r in repaired for seed in r.seed_action_ids]
        return found

    def redrive_by_event(self, event_id: str) -> Redrive | None:
        if self.plan is None:
            return None
        if len(self._redrive_by_key) != len(self.plan.redrive):
            self._redrive_by_key = {r.idempotency_key: r for r in self.plan.redrive}
        return self._redrive_by_key.get(event_id)

    # -- operator commands -------------------------------------------------------------------

    @property
    def requester(self) -> AuditEntry | None:
        return next((a for a in self.audit if a.command == "REQUEST"), None)

    @property
    def requested_key(self) -> str | None:
        return self.requester.key_id if self.requester else None

    @property
    def drill(self) -> bool:
        """Requested by a key that may only drill."""
        return self.requester is not None and drill_only(self.requester.roles)

    def apply_control(
        self, control: Control, now_ms: int, signer: Signer | None = None, rules: ApprovalRules | None = None
    ) -> str | None:
        """Apply an operator's command; return why it was ignored, or None."""
        allowed = {
            ControlCommand.APPROVE: {RequestState.AWAITING_APPROVAL},
            ControlCommand.PAUSE: {RequestState.EXECUTING, RequestState.CONFIRMING},
            ControlCommand.RESUME: {RequestState.PAUSED},
            ControlCommand.ABORT: {s for s in RequestState if s not in FINAL},  # a repair too
        }[control.command]
        if self.final or self.state not in allowed:
            return f"{control.command.value} does nothing in state {self.state.value}"
        signer = signer or Signer(UNSIGNED_KEY, frozenset(), control.issued_ts_ms, "")
        by = f"by {_who(control.issued_by, signer)}" + (f": {control.reason}" if control.reason else "")
        if control.command is ControlCommand.APPROVE:
            return self._approve(control, signer, rules or ApprovalRules(), now_ms)
        if control.command is ControlCommand.ABORT:
            self._end(RequestState.ABORTED, f"aborted {by}; {self._remaining_text()}", now_ms)
        elif control.command is ControlCommand.PAUSE:
            self.state, self.reason = RequestState.PAUSED, f"paused {by}"
        else:
            self.state, self.reason = RequestState.EXECUTING, f"{control.command.value.lower()}d {by}"
        self.ts_ms = now_ms
        return None

    def _approve(self, control: Control, signer: Signer, rules: ApprovalRules, now_ms: int) -> str | None:
        why = rules.refusal(signer, control.plan_hash, self.plan_hash, self.requester, self.approvals)
        if why is not None:
            return why
        assert control.plan_hash is not None
        self.approvals.append(
            Approval(signer.key_id, control.plan_hash, signer.issued_ms, tuple(sorted(signer.roles)))
        )
        roles = self.plan.approval_roles if self.plan else []
        missing = rules.missing(self.approvals, roles, drill=self.drill)
        who = ", ".join(a.key_id for a in self.approvals)
        note = f": {control.reason}" if control.reason else ""
        if missing:
            self.reason = f"approved by {who}{note}; waits for {' and '.join(missing)}"
        else:
            self.state, self.reason = RequestState.EXECUTING, f"approved by {who}{note}"
        self.ts_ms = now_ms
        return None

    def replanned(self, plan: Plan, why: str, now_ms: int) -> None:
        """The journal moved on and the plan with it: earlier approvals were of another plan."""
        self.plan, self.plan_hash, self.approvals = plan, plan.digest(), []
        self.state, self.ts_ms = RequestState.AWAITING_APPROVAL, now_ms
        self.reason = f"the plan changed since it was shown ({why}); approve plan {self.plan_hash[:12]}"

    # -- execution ---------------------------------------------------------------------------

    def due(self, now_ms: int, policy: Policy) -> list[Step]:
        """Steps to emit now: the current wave's pending ones, and unconfirmed ones whose wait is over."""
        if self.plan is None or self.state not in (RequestState.EXECUTING, RequestState.CONFIRMING):
            return []
        wave = self.current_wave(policy)
        due = [s for s in self.plan.steps if s.wave == wave and s.state is StepState.PENDING]
        due += [s for s in self.plan.steps if self._retry_due(s, now_ms, policy)]
        return due[: policy.max_emits_per_transaction]

    def current_wave(self, policy: Policy) -> int | None:
        assert self.plan is not None
        settled = (
            (lambda s: s.terminal)
            if policy.wave_barrier is WaveBarrier.CONFIRMED
            else (lambda s: s.state is not StepState.PENDING)
        )
        return min((s.wave for s in self.plan.steps if not settled(s)), default=None)

    @staticmethod
    def _retry_due(step: Step, now_ms: int, policy: Policy) -> bool:
        return (
            step.state is StepState.EMITTED
            and not step.terminal
            and step.attempts < policy.max_attempts
            and now_ms >= _deadline(step, policy)
        )

    def mark_emitted(self, step: Step, now_ms: int) -> None:
        self._touched[0].add(step.action_id)
        step.state = StepState.EMITTED
        step.attempts += 1
        step.emitted_ts_ms = now_ms
        self.last_emitted_ts_ms = now_ms
        self.ts_ms = now_ms

    def confirm(self, event_id: str, by_action: str, now_ms: int) -> Step | None:
        """The journal shows ``by_action`` caused by our event: that step's effect happened."""
        step = self.step_by_event(event_id)
        if step is None or step.state in (StepState.CONFIRMED, StepState.CONFLICT, StepState.SKIPPED):
            return None
        step.state, step.confirmed_by, step.confirmed_ts_ms = StepState.CONFIRMED, by_action, now_ms
        step.last_error = None
        self._touched[0].add(step.action_id)
        self.ts_ms = now_ms
        return step

    def expire(self, now_ms: int, policy: Policy) -> list[Step]:
        """Mark failed the steps whose last attempt went unconfirmed; skip what depended on them."""
        if self.plan is None or self.state not in (RequestState.EXECUTING, RequestState.CONFIRMING):
            return []
        failed = [
            s for s in self.plan.steps
            if s.state is StepState.EMITTED and not s.terminal and s.attempts >= policy.max_attempts
            and now_ms >= _deadline(s, policy)
        ]  # fmt: skip
        for s in failed:
            self._touched[0].add(s.action_id)
            s.state = StepState.FAILED
            s.last_error = (
                f"not confirmed after {s.attempts} attempts: "
                f"no journaled action names event {s.idempotency_key}"
            )
        if failed:
            # Undoing a cause whose effect could not be undone would leave the world inconsistent.
            first = min(s.wave for s in failed)
            for s in self.plan.steps:
                if s.wave > first and s.state is StepState.PENDING:
                    s.state, s.last_error = StepState.SKIPPED, f"not attempted: a step of wave {first} failed"
                    self._touched[0].add(s.action_id)
            self.ts_ms = now_ms
        return failed

    def advance(self, now_ms: int) -> bool:
        """Move EXECUTING -> CONFIRMING -> VERIFYING as steps settle; True when it changed state."""
        if self.plan is None:
            return False
        before = self.state
        if self.state is RequestState.EXECUTING and all(
            s.state is not StepState.PENDING for s in self.plan.steps
        ):
            self.state = RequestState.CONFIRMING
        if self.state is RequestState.CONFIRMING and all(s.terminal for s in self.plan.steps):
            self.state = RequestState.VERIFYING
        if self.state is not before:
            self.ts_ms = now_ms
        return self.state is not before

    def finish(self, diffs: list[Diff], now_ms: int) -> None:
        """End after verification: completed only when everything that can be undone was, and checks out;
        a repair then re-drives its inputs (never into a world only partly undone)."""
        assert self.plan is not None
        self.verification = diffs
        remaining = self._remaining_text()
        if remaining == "nothing remains" and not diffs:
            notes = (
                f"; {len(self.plan.irreversible)} irreversible actions notified"
                if self.plan.irreversible
                else ""
            )
            for r in self.plan.replays:
                notes += f"; {r.store} rebuilds from a filtered replay of {', '.join(r.topics)}"
            undone = f"all {len(self.plan.steps)} steps undone and verified{notes}"
            if self.repair:
                todo = sum(not r.terminal for r in self.plan.redrive)
                self._end(RequestState.REPAIRING, f"{undone}; re-driving {todo} inputs", now_ms)
                self.advance_repair(now_ms)
            else:
                self._end(RequestState.COMPLETED, undone, now_ms)
        else:
            diff_text = f"; {len(diffs)} verification differences" if diffs else ""
            not_repaired = "; repair not attempted: the undo did not complete" if self.repair else ""
            self._end(RequestState.PARTIALLY_ROLLED_BACK, f"{remaining}{diff_text}{not_repaired}", now_ms)

    # -- repair ------------------------------------------------------------------------------

    def due_redrives(self, now_ms: int, policy: Policy) -> list[Redrive]:
        """Inputs to send now: those not sent yet, and unconfirmed ones whose wait is over."""
        if self.plan is None or self.state is not RequestState.REPAIRING:
            return []
        limit, items, at = policy.max_emits_per_transaction, self.plan.redrive, self._redrive_cursor
        while at < len(items) and items[at].state is not StepState.PENDING:
            at += 1
        self._redrive_cursor = at
        due = [r for r in items[at : at + limit] if r.state is StepState.PENDING]
        if len(due) < limit:
            due += [r for r in self._waited(now_ms, policy) if r.attempts < policy.max_attempts]
        return due[:limit]

    def mark_redriven(self, item: Redrive, now_ms: int, policy: Policy) -> None:
        item.state, item.emitted_ts_ms = StepState.EMITTED, now_ms
        item.attempts += 1
        self.last_emitted_ts_ms = self.ts_ms = now_ms
        self._touched[1].add(item.action_id)
        deadline = _deadline(item, policy)
        self._next_deadline = deadline if self._next_deadline is None else min(self._next_deadline, deadline)

    def confirm_redrive(self, event_id: str, by_action: str, now_ms: int) -> Redrive | None:
        """The journal shows ``by_action`` caused by the re-driven event: that input is handled again."""
        item = self.redrive_by_event(event_id)
        if item is None or item.state in (StepState.CONFIRMED, StepState.SKIPPED):
            return None
        item.state, item.confirmed_by, item.confirmed_ts_ms = StepState.CONFIRMED, by_action, now_ms
        item.last_error = None
        self.ts_ms = now_ms
        self._touched[1].add(item.action_id)
        return item

    def expire_redrives(self, now_ms: int, policy: Policy) -> list[Redrive]:
        if self.plan is None or self.state is not RequestState.REPAIRING:
            return []
        failed = [r for r in self._waited(now_ms, policy) if r.attempts >= policy.max_attempts]
        for r in failed:
            self._touched[1].add(r.action_id)
            r.state = StepState.FAILED
            r.last_error = f"not confirmed after {r.attempts} attempts: no journaled action names event "
            r.last_error += r.idempotency_key
        return failed

    def _waited(self, now_ms: int, policy: Policy) -> list[Redrive]:
        """Re-driven inputs still unconfirmed when their wait is over (none before the earliest wait:
        most passes of a large repair look at nothing)."""
        assert self.plan is not None
        if self._next_deadline is not None and now_ms < self._next_deadline:
            return []
        sent = [r for r in self.plan.redrive if r.state is StepState.EMITTED]
        deadlines = [_deadline(r, policy) for r in sent]
        later = [d for d in deadlines if d > now_ms]
        self._next_deadline = min(later) if later else None
        return [r for r, d in zip(sent, deadlines, strict=True) if d <= now_ms]

    def advance_repair(self, now_ms: int) -> bool:
        """REPAIRING ends when every input is settled: REPAIRED only if each re-driven one is confirmed."""
        if self.plan is None or self.state is not RequestState.REPAIRING:
            return False
        if not all(r.terminal for r in self.plan.redrive):
            return False
        confirmed = sum(r.state is StepState.CONFIRMED for r in self.plan.redrive)
        excluded = sum(r.state is StepState.SKIPPED for r in self.plan.redrive)
        failed = [r.action_id for r in self.plan.redrive if r.state is StepState.FAILED]
        base = f"all {len(self.plan.steps)} steps undone and verified; "
        base += f"{confirmed} inputs re-driven and confirmed"
        base += f", {excluded} excluded by the request" if excluded else ""
        if failed:
            shown = ", ".join(failed[:20]) + (f" (+{len(failed) - 20})" if len(failed) > 20 else "")
            self._end(RequestState.PARTIALLY_REPAIRED, f"{base}; {len(failed)} not repaired: {shown}", now_ms)
        else:
            self._end(RequestState.REPAIRED, base, now_ms)
        return True

    def _remaining_text(self) -> str:
        """What was not undone, counted by reason."""
        if self.plan is None:
            return "nothing planned"
        counts: dict[str, int] = {}
        for s in self.plan.steps:
            if s.state is StepState.CONFIRMED or (s.terminal and s.state is StepState.EMITTED):
                continue
            label = {
                StepState.PENDING: "not emitted", StepState.EMITTED: "unconfirmed",
                StepState.FAILED: "failed", StepState.CONFLICT: "conflicts",
                StepState.SKIPPED: "unclassified" if s.mechanism is StepMechanism.UNCLASSIFIED else "skipped",
            }.get(s.state, s.state.value.lower())  # fmt: skip
            counts[label] = counts.get(label, 0) + 1
        if not counts:
            return "nothing remains"
        return "remaining: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))

    def _end(self, state: RequestState, reason: str, now_ms: int) -> None:
        self.state, self.reason, self.ts_ms = state, reason, now_ms


def _deadline(step: Attempted, policy: Policy) -> int:
    wait = policy.confirm_timeout_ms * policy.backoff ** max(step.attempts - 1, 0)
    return int((step.emitted_ts_ms or 0) + wait)


def _who(claimed: str, signer: Signer) -> str:
    """The verified key, and the name the message gave when it differs."""
    if signer.key_id == UNSIGNED_KEY or signer.key_id == claimed:
        return claimed
    return f"{claimed} (key {signer.key_id})"
