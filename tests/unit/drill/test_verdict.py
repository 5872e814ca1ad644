"""A drill's judgement and the coverage report (pure): what passes, what fails naming the step or the
check, which mechanisms and catalog action types no passing drill exercised within the window."""

from __future__ import annotations

from pathlib import Path

from processor.drill.serde import decode_verdict, encode_verdict
from processor.drill.verdict import Outcome, Verdict, coverage, judge, seeds_for
from processor.rollback.plan import Plan, Step, StepState
from processor.rollback.progress import Diff, RequestProgress, RequestState
from processor.undo import StepMechanism
from tests.unit.rollback.world import World, catalog

CANARY = {"price-1", "reserve-1", "mail-1"}


def _progress(state: RequestState = RequestState.COMPLETED, *, fail: str | None = None) -> RequestProgress:
    steps = [
        Step(action_id="mail-1", action_type="EmailSent", service="mail", mechanism=StepMechanism.IRREVERSIBLE,
             wave=1, idempotency_key="k-mail", state=StepState.EMITTED, emitted_ts_ms=5),
        Step(action_id="reserve-1", action_type="StockReserved", service="inventory",
             mechanism=StepMechanism.COMPENSATE, wave=2, idempotency_key="k-reserve", state=StepState.CONFIRMED,
             confirmed_by="released-1"),
        Step(action_id="price-1", action_type="OrderPriced", service="orders", mechanism=StepMechanism.RESTORE,
             wave=3, idempotency_key="k-price", state=StepState.CONFIRMED, confirmed_by="restored-1"),
    ]  # fmt: skip
    if fail:
        step = next(s for s in steps if s.action_id == fail)
        step.state, step.last_error, step.confirmed_by = (
            StepState.FAILED,
            "unconfirmed after 2 attempts",
            None,
        )
    return RequestProgress("drill-x-all", state, 9, plan=Plan(scope=tuple(sorted(CANARY)), steps=steps))


def test_a_completed_undo_of_only_the_canary_passes_and_says_what_ran() -> None:
    found = judge("all", _progress(), CANARY, [], set())
    assert found.outcome is Outcome.PASSED
    assert found.exercised == ("COMPENSATE", "IRREVERSIBLE", "RESTORE")
    assert found.action_types == ("EmailSent", "OrderPriced", "StockReserved")


def test_a_refused_compensation_fails_the_drill_naming_its_step() -> None:
    found = judge(
        "compensate", _progress(RequestState.PARTIALLY_ROLLED_BACK, fail="reserve-1"), CANARY, [], set()
    )
    assert found.outcome is Outcome.FAILED and found.failed_step == "reserve-1"
    assert found.reason == "step reserve-1 (StockReserved, compensate) failed: unconfirmed after 2 attempts"


def test_a_plan_reaching_beyond_the_canary_fails() -> None:
    found = judge("all", _progress(), CANARY - {"mail-1"}, [], set())
    assert found.outcome is Outcome.FAILED and "1 actions outside the drill: mail-1" in found.reason


def test_a_verification_difference_or_a_foreign_row_touched_fails() -> None:
    progress = _progress()
    progress.verification = [Diff("public.stock:sku-drill", "available (moved by)", "1", "0")]
    assert (
        "verification: public.stock:sku-drill available (moved by)"
        in judge("all", progress, CANARY, [], set()).reason
    )
    w = World()
    w.order(1, rule="v6", price=100)
    answer = w.confirm("k-reserve", "released-1", wf="drill-x", rows=(
        ("stock", {"sku": "sku-1"}, *w.released("sku-1", 2)[0][2:]),))  # fmt: skip
    touched = judge("all", _progress(), CANARY, [answer], {"public.stock:sku-1"})
    assert touched.outcome is Outcome.FAILED and "changed public.stock:sku-1" in touched.reason


def test_a_mechanism_the_canary_does_not_exercise_fails_and_a_replay_problem_is_named() -> None:
    assert "no replay step to exercise" in judge("replay", _progress(), CANARY, [], set()).reason
    assert judge("all", _progress(), CANARY, [], set(), "x skipped 0").reason == "replay: x skipped 0"


def test_seeds_of_a_mechanism_are_the_canarys_actions_of_its_types(tmp_path: Path) -> None:
    w = World()
    canary = w.order(1, rule="v6", price=100)
    c = catalog(tmp_path)
    assert seeds_for("compensate", canary, c) == ["reserve-1", "pay-1"]
    assert seeds_for("restore", canary, c) == ["price-1"]
    assert seeds_for("all", canary, c) == [e.action_id for e in canary]


def _verdict(asked: str, outcome: Outcome, ended: int, exercised: tuple[str, ...] = (),
             types: tuple[str, ...] = ()) -> Verdict:  # fmt: skip
    return Verdict("d", asked, outcome, "why", ended - 10, ended, exercised=exercised, action_types=types)


def test_coverage_says_when_each_mechanism_and_type_last_passed_and_what_went_unexercised(
    tmp_path: Path,
) -> None:
    verdicts = [
        _verdict("all", Outcome.PASSED, 1_000, ("COMPENSATE", "RESTORE"), ("OrderPriced", "StockReserved")),
        _verdict("compensate", Outcome.FAILED, 9_000),
        _verdict("restore", Outcome.PASSED, 9_500, ("RESTORE",), ("OrderPriced",)),
    ]
    found = coverage(verdicts, catalog(tmp_path), now_ms=10_000, window_ms=5_000)
    assert found.mechanisms["RESTORE"].last_passed_ts_ms == 9_500
    compensate = found.mechanisms["COMPENSATE"]
    assert (compensate.last_passed_ts_ms, compensate.last_outcome, compensate.failures) == (
        1_000,
        Outcome.FAILED,
        1,
    )
    assert found.stale_mechanisms == [
        "COMPENSATE",
        "IRREVERSIBLE",
    ]  # the catalog's mechanisms, not passed lately
    assert found.action_types["StockReserved"] == 1_000
    assert found.unexercised_types == ["EmailSent", "PaymentCaptured", "StockAdjusted", "StockReserved"]


def test_a_verdict_survives_the_drills_topic() -> None:
    v = _verdict("all", Outcome.TIMED_OUT, 5_000, ("RESTORE",), ("OrderPriced",))
    assert decode_verdict(encode_verdict(v)) == v
