"""`rewind demo --format json`: the demo's outcome alone on stdout, its lines on stderr (the scenario
itself is faked here; tests/e2e/test_demo.py runs it for real)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from examples.shop.scenario import Outcome
from processor.cli import demo_cmd, main
from processor.rollback.progress import RequestProgress, RequestState
from processor.rollback.request import Mode, Selector, SelectorKind
from tests.unit.rollback.test_planner import plan_for
from tests.unit.rollback.world import World, catalog

TABLES = ("orders", "stock", "revenue", "payments", "emails")


def _outcome(tmp_path: Path, state: RequestState) -> Outcome:
    w = World()
    w.order(2, rule="v7", price=90)
    plan = plan_for(w, catalog(tmp_path), Selector(SelectorKind.ACTION_IDS, action_ids=("price-2",)))
    status = RequestProgress("r", state, 7, "alice", "why", Mode.EXECUTE, "sel", 3, "done", plan)
    before: dict[str, set[tuple[Any, ...]]] = {t: set() for t in TABLES}
    after = before | {"payments": {("pay-1", 2, 90, "REFUNDED")}}  # the mispriced capture, refunded
    return Outcome("repair", 10, {2}, status, before, after, before, {}, {}, [], timings={"orders_s": 1.5})


@pytest.mark.parametrize("state", [RequestState.REPAIRED, RequestState.FAILED])
def test_the_outcome_is_json_on_stdout_and_the_lines_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: RequestState
) -> None:
    outcome = _outcome(tmp_path, state)

    def run_demo(
        _settings: object, _orders: int, say: Any, _mode: str, _secure: bool
    ) -> tuple[object, Outcome]:
        say("kafka: 127.0.0.1:9092")
        return object(), outcome

    monkeypatch.setattr(demo_cmd, "run_demo", run_demo)
    monkeypatch.setattr(demo_cmd, "affected_picture", lambda _s, _o: ("", 0, 0))
    result = CliRunner().invoke(main, ["demo", "--format", "json"])
    found = json.loads(result.stdout)
    assert "kafka: 127.0.0.1:9092" in result.stderr
    assert all(c["holds"] for c in found["checks"])
    assert found["proved"] is (state is RequestState.REPAIRED)
    assert result.exit_code == (0 if found["proved"] else 1)
    assert found["status"]["state"] == state.value and found["bad_orders"] == [2]
    assert outcome.status.plan is not None
    steps = [s["action_id"] for s in found["status"]["plan"]["steps"]]
    assert steps == [s.action_id for s in outcome.status.plan.steps]
    assert {c["table"] for c in found["checks"]} >= {"orders", "stock", "payments", "emails"}
    assert found["picture"] is None and found["timings_s"] == {"orders_s": 1.5}


def test_a_secure_demo_on_a_configured_cluster_is_refused_before_it_starts_anything() -> None:
    result = CliRunner().invoke(
        main, ["demo", "--secure"], env={"REWIND_BOOTSTRAP_SERVERS": "elsewhere:9092"}
    )
    assert result.exit_code == 1
    assert "--secure starts a secured broker of its own" in result.output
    assert "unset REWIND_BOOTSTRAP_SERVERS" in result.output
