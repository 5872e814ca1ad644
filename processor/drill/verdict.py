"""A drill's verdict and the coverage of all verdicts (pure).

A drill passes only when its request completed (every step confirmed, notices sent), the verification
found no difference, the plan held only the canary's actions, the owners' answers changed only the
canary's rows, the mechanism asked for was exercised, and a store rebuilt by replay was copied without
exactly the canary's records. Otherwise it failed, naming the step or the check; or it timed out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from processor.catalog.catalog import Catalog
from processor.journal.model import JournalEntry
from processor.rollback.plan import StepState
from processor.rollback.progress import RequestProgress, RequestState
from processor.undo import Mechanism, StepMechanism

TAG = "drill-"  # a canary's correlation id, and its request's id, start with it
ASKED = ("restore", "compensate", "replay", "all")
_DONE = {RequestState.COMPLETED, RequestState.REPAIRED}
_NOTICES = {StepMechanism.IRREVERSIBLE, StepMechanism.REPLAY}  # emitted is their end


class Outcome(StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"


@dataclass(frozen=True, slots=True)
class Verdict:
    drill_id: str
    asked: str  # restore | compensate | replay | all
    outcome: Outcome
    reason: str
    started_ts_ms: int
    ended_ts_ms: int
    request_id: str | None = None
    failed_step: str | None = None  # the step's action id, when a step failed
    journaled_ms: int | None = None  # from the canary's start until the journal held its workflow
    undone_ms: int | None = None  # from the request until it ended
    exercised: tuple[str, ...] = ()  # the step mechanisms that ran to their end (RESTORE, ...)
    action_types: tuple[str, ...] = ()  # the catalog action types whose steps ran to their end

    @property
    def duration_ms(self) -> int:
        return self.ended_ts_ms - self.started_ts_ms


@dataclass(frozen=True, slots=True)
class Judgement:
    outcome: Outcome
    reason: str
    failed_step: str | None = None
    exercised: tuple[str, ...] = ()
    action_types: tuple[str, ...] = ()


def judge(
    asked: str,
    progress: RequestProgress,
    canary: set[str],
    answers: Iterable[JournalEntry],
    foreign_rows: set[str],
    replay_problem: str | None = None,
) -> Judgement:
    """``canary``: the canary's action ids; ``answers``: the actions confirming the steps;
    ``foreign_rows``: rows written since the drill began by anything but the drill."""
    plan = progress.plan
    if plan is None:
        return Judgement(
            Outcome.FAILED, f"the request ended {progress.state.value} unplanned: {progress.reason}"
        )
    done = [
        s
        for s in plan.steps
        if s.state is StepState.CONFIRMED or (s.mechanism in _NOTICES and s.state is StepState.EMITTED)
    ]
    exercised = tuple(sorted({s.mechanism.value for s in done}))
    types = tuple(sorted({s.action_type for s in done}))

    def failed(reason: str, step: str | None = None) -> Judgement:
        return Judgement(Outcome.FAILED, reason, step, exercised, types)

    if outside := sorted(set(plan.scope) - canary):
        return failed(f"the plan reached {len(outside)} actions outside the drill: {', '.join(outside[:5])}")
    if progress.state not in _DONE:
        stuck = next(
            (s for s in plan.steps if s.state in (StepState.FAILED, StepState.SKIPPED, StepState.CONFLICT)),
            None,
        )
        if stuck is not None:
            why = f": {stuck.last_error}" if stuck.last_error else ""
            return failed(f"step {stuck.action_id} ({stuck.action_type}, {stuck.mechanism.value.lower()}) "
                          f"{stuck.state.value.lower()}{why}", stuck.action_id)  # fmt: skip
        return failed(f"the request ended {progress.state.value}: {progress.reason}")
    if progress.verification:
        d = progress.verification[0]
        return failed(f"verification: {d.entity} {d.field}: expected {d.expected_json}, found "
                      f"{d.actual_json} ({len(progress.verification)} differences)")  # fmt: skip
    for answer in answers:
        if touched := sorted(set(answer.entities) & foreign_rows):
            return failed(f"{answer.action_id} ({answer.action_type}) changed {', '.join(touched[:3])}, "
                          "which other work wrote during the drill")  # fmt: skip
    if asked != "all" and asked.upper() not in exercised:
        return failed(
            f"the canary's workflow has no {asked} step to exercise (ran: {', '.join(exercised) or 'none'})"
        )
    if replay_problem:
        return failed(f"replay: {replay_problem}")
    return Judgement(Outcome.PASSED, f"{len(done)} steps undone and verified ({', '.join(exercised)})",
                     None, exercised, types)  # fmt: skip


@dataclass(slots=True)
class MechanismCoverage:
    mechanism: str
    last_passed_ts_ms: int | None = None
    last_outcome: Outcome | None = None
    last_reason: str | None = None
    drills: int = 0
    failures: int = 0


@dataclass(slots=True)
class Coverage:
    mechanisms: dict[str, MechanismCoverage] = field(default_factory=dict)
    action_types: dict[str, int | None] = field(default_factory=dict)  # catalog type -> last passed
    stale_mechanisms: list[str] = field(default_factory=list)  # no passing drill within the window
    unexercised_types: list[str] = field(default_factory=list)  # no passing drill within the window


def coverage(verdicts: Iterable[Verdict], catalog: Catalog, now_ms: int, window_ms: int) -> Coverage:
    """Per mechanism and per catalog action type: when a drill last passed, and what went unexercised
    within the window (only the mechanisms the catalog uses count)."""
    used = sorted({StepMechanism.of(s.mechanism).value for s in catalog.actions.values()})
    out = Coverage({m: MechanismCoverage(m) for m in used}, {t: None for t in sorted(catalog.actions)})
    for v in sorted(verdicts, key=lambda v: v.ended_ts_ms):
        for m in v.exercised if v.outcome is Outcome.PASSED else _asked_mechanisms(v.asked, used):
            row = out.mechanisms.setdefault(m, MechanismCoverage(m))
            row.drills += 1
            row.last_outcome, row.last_reason = v.outcome, v.reason
            if v.outcome is Outcome.PASSED:
                row.last_passed_ts_ms = v.ended_ts_ms
            else:
                row.failures += 1
        if v.outcome is Outcome.PASSED:
            for t in v.action_types:
                if t in out.action_types:
                    out.action_types[t] = v.ended_ts_ms
    since = now_ms - window_ms
    out.stale_mechanisms = [m for m, r in out.mechanisms.items() if (r.last_passed_ts_ms or 0) < since]
    out.unexercised_types = [t for t, ts in out.action_types.items() if (ts or 0) < since]
    return out


def _asked_mechanisms(asked: str, used: list[str]) -> list[str]:
    return used if asked == "all" else [asked.upper()]


def seeds_for(asked: str, canary: Iterable[JournalEntry], catalog: Catalog) -> list[str]:
    """The canary's actions a drill of one mechanism selects (its downstream comes with them). A replay
    drill also selects the canary's records on the topics its stores rebuild from: a filtered replay
    that skipped none of them would prove nothing."""
    entries = list(canary)
    if asked == "all":
        return [e.action_id for e in entries]
    want = Mechanism(asked)
    specs = [s for e in entries if (s := catalog.actions.get(e.action_type)) and s.mechanism is want]
    typed = {s.action_type for s in specs}
    sources = {t for s in specs for t in s.replay_topics}
    on_sources = {e.action_id for e in entries if e.event is not None and e.event.position.topic in sources}
    return [e.action_id for e in entries if e.action_type in typed or e.action_id in on_sources]
