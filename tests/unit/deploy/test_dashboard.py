"""The Grafana dashboard under deploy/: the output of ``rewind dashboard``, and every query names
metrics rewind exports (the real-Prometheus test evaluates them on live data)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from processor.cli import main
from processor.metrics.dashboard import queries, render
from tests.unit.deploy.exported import DEPLOY, METRIC, unknown_metrics

DEPLOYED = DEPLOY / "grafana" / "kafka-rewind.json"


def test_the_deployed_dashboard_is_what_rewind_dashboard_writes(tmp_path: Path) -> None:
    out = tmp_path / "board.json"
    result = CliRunner().invoke(main, ["dashboard", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == DEPLOYED.read_text() == render(), "run: rewind dashboard --out " + str(
        DEPLOYED.relative_to(DEPLOYED.parents[2])
    )


def test_every_panel_queries_metrics_rewind_exports() -> None:
    model = json.loads(DEPLOYED.read_text())
    found = queries(model)
    assert len(found) >= 20
    for title, expr in found:
        assert METRIC.search(expr), f"{title}: {expr} names no rewind metric"
        assert not unknown_metrics(expr), f"{title}: {sorted(unknown_metrics(expr))} are not exported"


def test_the_dashboard_covers_what_operators_watch() -> None:
    exprs = " ".join(expr for _title, expr in queries(json.loads(DEPLOYED.read_text())))
    for metric in ("rewind_tap_records_consumed_total", "rewind_tap_consumer_lag", "rewind_tap_dead_letters_total",
                   "rewind_tap_transaction_commit_seconds_bucket", "rewind_graph_nodes",
                   "rewind_graph_dangling_references", "rewind_rollback_requests_total",
                   "rewind_rollback_steps_total", "rewind_rollback_confirmation_seconds_bucket",
                   "rewind_rollback_request_to_last_emission_seconds_bucket",
                   "rewind_drill_last_success_timestamp_seconds", "rewind_drill_runs_total"):  # fmt: skip
        assert metric in exprs, metric


def test_every_panel_reads_the_chosen_prometheus() -> None:
    model = json.loads(DEPLOYED.read_text())
    panels = [p for p in model["panels"] if p["type"] != "row"]
    assert {p["datasource"]["uid"] for p in panels} == {"${datasource}"}
    assert [v["type"] for v in model["templating"]["list"]] == ["datasource"]


def test_a_dashboard_that_cannot_be_written_says_where(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dashboard", "--out", str(tmp_path / "missing" / "board.json")])
    assert result.exit_code == 1
    assert f"cannot write the dashboard to {tmp_path / 'missing' / 'board.json'}" in result.output
