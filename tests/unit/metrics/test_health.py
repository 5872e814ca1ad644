"""/healthz says something true: components running, their loops turning, their consumers assigned,
the broker answering; each failing check names itself."""

from __future__ import annotations

import urllib.error
import urllib.request

from processor.metrics import Metrics
from processor.metrics.health import Health
from processor.metrics.server import serve


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _health() -> tuple[Health, Clock]:
    clock = Clock()
    return Health(stale_after_s=60, broker_every_s=10, clock=clock), clock


def test_nothing_running_is_unhealthy() -> None:
    health, _clock = _health()
    verdict = health.check()
    assert not verdict.ok and "FAIL no component runs" in verdict.checks


def test_running_components_with_turning_assigned_loops_are_healthy() -> None:
    health, clock = _health()
    for name in ("tap", "graph", "rollback"):
        health.started(name)
        health.beat(name, assigned=True)
    clock.now += 30
    verdict = health.check(lambda: None)
    assert verdict.ok, verdict.checks
    assert "ok broker: answered" in verdict.checks


def test_a_stopped_component_a_stuck_loop_or_no_partitions_each_fail_by_name() -> None:
    health, clock = _health()
    for name in ("tap", "graph", "rollback"):
        health.started(name)
    health.beat("tap", assigned=True)
    health.beat("graph", assigned=False)
    health.beat("rollback", assigned=True)
    clock.now += 61
    health.beat("graph", assigned=False)
    verdict = health.check()
    assert not verdict.ok
    assert "FAIL graph: its consumer holds no partition" in verdict.checks
    assert any(c.startswith("FAIL tap: its loop last turned 61s ago") for c in verdict.checks)
    health.stopped("rollback")
    assert "FAIL rollback: stopped" in health.check().checks


def test_the_broker_is_asked_at_most_every_interval_and_its_error_named() -> None:
    health, clock = _health()
    health.started("tap")
    asked: list[float] = []

    def down() -> str | None:
        asked.append(clock.now)
        return "the cluster did not answer: timed out"

    assert "FAIL broker: the cluster did not answer: timed out" in health.check(down).checks
    clock.now += 5
    health.check(down)
    clock.now += 6
    health.check(down)
    assert asked == [1000.0, 1011.0]


def test_the_endpoint_answers_503_with_the_failing_check_and_200_when_all_hold() -> None:
    metrics = Metrics()
    answers: list[str | None] = ["no broker"]
    server = serve(metrics, 0, host="127.0.0.1", broker=lambda: answers[-1])
    url = f"http://127.0.0.1:{server.server_port}/healthz"
    try:
        metrics.component_started("tap")
        metrics.beat("tap", assigned=True)
        try:
            urllib.request.urlopen(url, timeout=5)
            raise AssertionError("a broker that does not answer is unhealthy")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert "FAIL broker: no broker" in exc.read().decode()
        metrics.health.broker_every_s = 0
        answers.append(None)
        with urllib.request.urlopen(url, timeout=5) as ok:
            assert ok.status == 200 and ok.read().decode().startswith("ok\n")
    finally:
        server.shutdown()
