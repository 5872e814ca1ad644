"""``rewind run`` (the long-running processor) and ``rewind kafka check`` (the transactional self-check)."""

from __future__ import annotations

import threading
from pathlib import Path

import click
from rich.table import Table

from processor.cli.base import Context, ensure_own_topics, pass_context, stop_on_signals
from processor.cli.rollback_cmd import rollback_catalog
from processor.cli.tap_cmd import FILE, catalog_from, has_sources, run_tap
from processor.config import Settings
from processor.graph.runner import GraphBuilder
from processor.kafka import cluster
from processor.kafka.selfcheck import transactional_round_trip
from processor.metrics import Metrics
from processor.metrics.server import serve
from processor.rollback.worker import RollbackWorker


@click.command("run")
@click.option("--catalog", "catalog_file", type=FILE, help="Action catalog (default: REWIND_CATALOG_FILE).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--keep-broker", is_flag=True, help="Leave a local broker started here running.")
@pass_context
def run(ctx: Context, catalog_file: Path | None, duration: float | None, keep_broker: bool) -> None:
    """Run the processor; with no bootstrap servers configured, on a local broker it starts.

    The tap runs when source topics are configured (REWIND_TOPICS__CDC/__TX_METADATA/__OUTBOX); the
    graph builder and the rollback worker always run.
    """
    settings = ctx.settings
    stop = stop_on_signals(ctx, duration)
    metrics = Metrics()
    with cluster.connect(settings, keep_local_broker=keep_broker) as bootstrap:
        ctx.out.print(f"cluster: {bootstrap}")
        ensure_own_topics(ctx, settings, bootstrap)
        metrics.component_started("processor")
        server = serve(metrics, settings.metrics_port) if settings.metrics_port else None
        if server:
            ctx.out.print(f"metrics: http://127.0.0.1:{settings.metrics_port}/metrics")
        graph = threading.Thread(
            target=run_graph, args=(ctx, settings, bootstrap, metrics, stop), name="graph"
        )
        graph.start()
        worker = threading.Thread(
            target=run_worker, args=(ctx, settings, bootstrap, catalog_file, metrics, stop), name="rollback"
        )
        worker.start()
        try:
            if has_sources(settings):
                run_tap(ctx, settings, bootstrap, catalog_from(ctx, catalog_file), metrics, stop)
            else:
                ctx.out.print("tap: idle (no source topics configured)")
                stop.wait()
        finally:
            stop.set()
            graph.join()
            worker.join()
            metrics.component_stopped("processor")
            if server:
                server.shutdown()
    ctx.out.print("stopped")


def run_graph(
    ctx: Context, settings: Settings, bootstrap: str, metrics: Metrics, stop: threading.Event
) -> None:
    ctx.out.print(f"graph: {settings.topics.journal} -> {settings.graph.checkpoint_path}")
    metrics.component_started("graph")
    try:
        GraphBuilder(settings, bootstrap, metrics).run(stop)
    finally:
        metrics.component_stopped("graph")


def run_worker(
    ctx: Context,
    settings: Settings,
    bootstrap: str,
    catalog_file: Path | None,
    metrics: Metrics,
    stop: threading.Event,
) -> None:
    catalog = rollback_catalog(ctx, catalog_file)
    ctx.out.print(
        f"rollback: {settings.topics.requests} -> worker ({len(catalog.actions)} action types in catalog)"
    )
    metrics.component_started("rollback")
    try:
        RollbackWorker(settings, bootstrap, catalog, metrics).run(stop)
    except Exception:
        stop.set()  # a dead worker must not leave the processor looking healthy
        raise
    finally:
        metrics.component_stopped("rollback")


@click.command("check")
@click.option("--keep-broker", is_flag=True, help="Leave a local broker started here running.")
@pass_context
def check(ctx: Context, keep_broker: bool) -> None:
    """Start a local broker, create rewind's topics and prove the transactional guarantees."""
    settings = ctx.settings
    with cluster.connect(settings, keep_local_broker=keep_broker) as bootstrap:
        ctx.out.print(f"cluster: {bootstrap}")
        ensure_own_topics(ctx, settings, bootstrap)
        check = transactional_round_trip(settings, bootstrap, f"{settings.topics.journal}.selfcheck")
        table = Table(title="transactional round trip (read_committed)")
        for column in ("records", "written", "seen by consumer"):
            table.add_column(column)
        table.add_row(
            "committed", str(len(check.committed)), str(len(set(check.seen) & set(check.committed)))
        )
        table.add_row("aborted", str(len(check.aborted)), str(len(set(check.seen) & set(check.aborted))))
        ctx.out.print(table)
        if not check.ok:
            raise click.ClickException(f"read_committed saw {check.seen}, expected {check.committed}")
        ctx.out.print(f"ok in {check.elapsed_s:.1f}s: committed records seen once, aborted never")


def register(main: click.Group) -> None:
    main.add_command(run)
    kafka = main.commands["kafka"]
    assert isinstance(kafka, click.Group)
    kafka.add_command(check)
