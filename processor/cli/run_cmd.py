"""``rewind run`` (the long-running processor) and ``rewind demo`` (the guided tour)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
from rich.table import Table

from processor.cli.base import Context, pass_context
from processor.config import Settings
from processor.kafka import clients, cluster
from processor.kafka.selfcheck import transactional_round_trip
from processor.metrics import Metrics
from processor.metrics.server import serve


def _ensure_own_topics(ctx: Context, settings: Settings, bootstrap: str) -> None:
    created = clients.ensure_topics(
        clients.admin(settings, bootstrap),
        settings.topics.own(),
        partitions=settings.topics.partitions,
        replication_factor=settings.topics.replication_factor,
    )
    ctx.out.print(f"topics: {len(settings.topics.own())} ready ({len(created)} created)")


@click.command("run")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--keep-broker", is_flag=True, help="Leave a local broker started here running.")
@pass_context
def run(ctx: Context, duration: float | None, keep_broker: bool) -> None:
    """Run the processor; with no bootstrap servers configured, on a local broker it starts."""
    settings = ctx.settings
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        ctx.err.print(f"received {signal.Signals(signum).name}, stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics = Metrics()
    with cluster.connect(settings, keep_local_broker=keep_broker) as bootstrap:
        ctx.out.print(f"cluster: {bootstrap}")
        _ensure_own_topics(ctx, settings, bootstrap)
        server = serve(metrics, settings.metrics_port) if settings.metrics_port else None
        if server:
            ctx.out.print(f"metrics: http://127.0.0.1:{settings.metrics_port}/metrics")
        metrics.component_started("processor")
        stop.wait(duration)
        metrics.component_stopped("processor")
        if server:
            server.shutdown()
    ctx.out.print("stopped")


@click.command("demo")
@click.option("--keep-broker", is_flag=True, help="Leave a local broker started here running.")
@pass_context
def demo(ctx: Context, keep_broker: bool) -> None:
    """Start a local broker, create rewind's topics and prove the transactional guarantees."""
    settings = ctx.settings
    with cluster.connect(settings, keep_local_broker=keep_broker) as bootstrap:
        ctx.out.print(f"cluster: {bootstrap}")
        _ensure_own_topics(ctx, settings, bootstrap)
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
    main.add_command(demo)
