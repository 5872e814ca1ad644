"""The Grafana dashboard of the metrics declared beside it, as code (grafana-foundation-sdk).

``rewind dashboard`` writes it; ``deploy/grafana/kafka-rewind.json`` is its output, kept in step by a
test. Every query names metrics ``Metrics`` exports (a test checks the names, and the real-Prometheus
test evaluates every query and requires series).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

UID = "kafka-rewind"
DATASOURCE = "${datasource}"  # the dashboard's datasource variable: any Prometheus the user picks
RATE = "$__rate_interval"  # Grafana's rate window for the scrape interval in use


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat"] = "timeseries"
    width: int = 8


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def _p99(histogram: str, by: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.99, sum by ({labels}) (rate({histogram}_bucket[{RATE}])))"


ROWS: tuple[tuple[str, tuple[PanelSpec, ...]], ...] = (
    ("Processor", (
        PanelSpec("Components up", "1 while each pipeline component runs (the /healthz answer)",
                  (_q("rewind_component_up", "{{component}}"),), kind="stat"),
        PanelSpec("Version", "The running build",
                  (_q("count by (version) (rewind_build_info)", "{{version}}"),), kind="stat"),
        PanelSpec("Journal commit latency (p99)", "Kafka transaction commit of the tap (offsets + commit)",
                  (_q(_p99("rewind_tap_transaction_commit_seconds"), "p99"),), unit="s"),
        PanelSpec("Session restarts", "Sessions started over from committed state, by component and why "
                  "(client_fatal: the client was fenced or broken and was made anew)",
                  (_q(f"sum by (component, cause) (increase(rewind_session_restarts_total[{RATE}]))",
                      "{{component}} {{cause}}"),)),
    )),
    ("Tap", (
        PanelSpec("Tap throughput", "Source records read, by kind, and journal entries written",
                  (_q(f"sum by (kind) (rate(rewind_tap_records_consumed_total[{RATE}]))", "read {{kind}}"),
                   _q(f"sum(rate(rewind_tap_actions_journaled_total[{RATE}]))", "journaled")), unit="ops"),
        PanelSpec("Tap lag", "Records behind each source topic",
                  (_q("sum by (topic) (rewind_tap_consumer_lag)", "{{topic}}"),)),
        PanelSpec("Dead letters by reason", "Records the tap could not journal, sent to the dead letters",
                  (_q(f"sum by (reason) (increase(rewind_tap_dead_letters_total[{RATE}]))", "{{reason}}"),)),
        PanelSpec("Duplicates dropped", "Debezium redeliveries the tap recognised and dropped",
                  (_q(f"sum(rate(rewind_tap_duplicates_dropped_total[{RATE}]))", "dropped"),), unit="ops"),
        PanelSpec("Open transactions", "Source transactions held until their END, and intents waiting",
                  (_q("rewind_tap_open_transactions", "transactions"),
                   _q("rewind_tap_pending_intents", "intents"))),
    )),
    ("Graph", (
        PanelSpec("Graph size", "Actions and edges in the dependency graph",
                  (_q("rewind_graph_nodes", "actions"),
                   _q("sum by (kind) (rewind_graph_edges)", "edges {{kind}}"))),
        PanelSpec("Dangling causes", "Causes named by actions but not journaled (yet)",
                  (_q("rewind_graph_dangling_references", "dangling"),
                   _q("rewind_graph_cross_workflow_edges", "cross-workflow"))),
        PanelSpec("Graph checkpoint age", "Since the graph builder last checkpointed",
                  (_q("rewind_graph_checkpoint_age_seconds", "age"),), unit="s"),
    )),
    ("Rollback", (
        PanelSpec("Rollback requests by state", "Requests by how they ended",
                  (_q("sum by (outcome) (rewind_rollback_requests_total)", "{{outcome}}"),)),
        PanelSpec("Steps by mechanism and state", "Steps entering each state",
                  (_q("sum by (mechanism, state) (rewind_rollback_steps_total)",
                      "{{mechanism}} {{state}}"),)),
        PanelSpec("Step failures", "Steps failed after their last attempt, by mechanism",
                  (_q("sum by (mechanism) (rewind_rollback_step_failures_total)", "{{mechanism}}"),
                   _q("rewind_rollback_conflicts_total", "conflicts (restores not run)"))),
        PanelSpec("Confirmation latency (p99)", "From a step's emission to its effect in the journal",
                  (_q(_p99("rewind_rollback_confirmation_seconds"), "p99"),), unit="s"),
        PanelSpec("Request to last emission (p99)", "From a request to its last command",
                  (_q(_p99("rewind_rollback_request_to_last_emission_seconds"), "p99"),), unit="s"),
        PanelSpec("Planning", "Time to plan a request (p99), and steps per plan (p99)",
                  (_q(_p99("rewind_rollback_plan_seconds"), "plan seconds"),
                   _q(_p99("rewind_rollback_plan_steps"), "steps")), unit="short"),
        PanelSpec("Refused by the signature gate", "Requests and control messages not admitted, by reason",
                  (_q("sum by (kind, reason) (rewind_rollback_refused_messages_total)",
                      "{{kind}} {{reason}}"),)),
    )),
    ("Drills", (
        PanelSpec("Since the last passing drill", "Per mechanism: how long since a drill last proved it",
                  (_q("time() - rewind_drill_last_success_timestamp_seconds", "{{mechanism}}"),), unit="s",
                  kind="stat"),
        PanelSpec("Drills by outcome", "Drills run, by what they asked for and how they ended",
                  (_q("sum by (asked, outcome) (rewind_drill_runs_total)", "{{asked}} {{outcome}}"),)),
        PanelSpec("Drill duration (p99)", "From a drill's canary to its verdict",
                  (_q(_p99("rewind_drill_duration_seconds", "asked"), "{{asked}}"),), unit="s"),
    )),
)  # fmt: skip


def _panel(spec: PanelSpec) -> Any:
    panel: Any = stat.Panel() if spec.kind == "stat" else timeseries.Panel()
    panel = panel.title(spec.title).description(spec.description).unit(spec.unit).span(spec.width).height(8)
    panel = panel.datasource(DataSourceRef(type_val="prometheus", uid=DATASOURCE))
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        panel = panel.with_target(
            prometheus.Dataquery().expr(query.expr).legend_format(query.legend or "__auto").ref_id(ref)
        )
    return panel


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    board = (
        gd.Dashboard("kafka-rewind")
        .uid(UID)
        .description("Tap, journal, graph, rollback and drills of kafka-rewind")
        .tags(["kafka-rewind", "kafka"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for title, panels in ROWS:
        board = board.with_row(gd.Row(title))
        for spec in panels:
            board = board.with_panel(_panel(spec))
    model: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return model


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in a dashboard model."""
    return [
        (panel.get("title", ""), target["expr"])
        for panel in model.get("panels", [])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
