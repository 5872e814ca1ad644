"""Replay and repair metrics: records copied and skipped, what is left, re-drives by outcome."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from processor.metrics import Metrics
from tests.unit.metrics.test_rollback_metrics import value
from tests.unit.rollback.test_repair import repaired


def test_a_replay_reports_copies_skips_and_what_remains() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.replay_remaining("r1", 500)
    metrics.replayed("r1", copied=90, skipped=10)
    metrics.replay_remaining("r1", 0)
    assert value(metrics, "rewind_replay_records_total", replay="r1", outcome="copied") == 90
    assert value(metrics, "rewind_replay_records_total", replay="r1", outcome="skipped") == 10
    assert value(metrics, "rewind_replay_remaining_records", replay="r1") == 0


def test_a_repair_counts_its_re_drives_and_ends_repaired(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    repaired(tmp_path, metrics)
    assert value(metrics, "rewind_repair_redrives_total", outcome="emitted") == 3
    assert value(metrics, "rewind_repair_redrives_total", outcome="confirmed") == 3
    assert value(metrics, "rewind_rollback_requests_total", outcome="repaired") == 1
