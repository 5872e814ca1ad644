"""``rewind decode --capture FILE``: the tap's core, offline, over a kcat -J capture."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from processor.catalog.catalog import Catalog, load_catalog
from processor.cli.base import Context, ensure_own_topics, pass_context, stop_on_signals
from processor.config import Settings
from processor.errors import ConfigError
from processor.journal.serde import to_json_view
from processor.jsonvalue import dumps
from processor.kafka import cluster
from processor.kafka.registry import registry_lookup
from processor.metrics import Metrics
from processor.metrics.server import serve
from processor.tap.engine import tap_core
from processor.tap.offline import open_capture
from processor.tap.runner import TapRunner, source_topics

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def catalog_from(ctx: Context, catalog_file: Path | None) -> Catalog:
    path = catalog_file or ctx.settings.catalog_file
    return load_catalog(path) if path else Catalog.empty()


@click.command("decode")
@click.option(
    "--capture", "capture", type=FILE, required=True, help="kcat -C -J output, one record per line."
)
@click.option("--catalog", "catalog_file", type=FILE, help="Action catalog (default: REWIND_CATALOG_FILE).")
@pass_context
def decode(ctx: Context, capture: Path, catalog_file: Path | None) -> None:
    """Print the journal entries a capture yields, one JSON object per line; dead letters go to stderr."""
    catalog = catalog_from(ctx, catalog_file)
    unreadable: list[ConfigError] = []

    def skip(error: ConfigError) -> None:
        click.echo(f"unreadable line: {error}", err=True)
        unreadable.append(error)

    core, outputs = open_capture(ctx.settings, catalog, capture, registry_lookup(ctx.settings), skip)
    entries = dead = 0
    for out in outputs:
        for entry in out.entries:
            click.echo(dumps(to_json_view(entry)))
            entries += 1
        for letter in out.dead_letters:
            click.echo(f"dead letter [{letter.reason.value}] {letter.message}", err=True)
            dead += 1
    stats = core.stats
    click.echo(
        f"{entries} journal entries, {dead} dead letters, {stats.duplicates} duplicates dropped, "
        f"{stats.incomplete} incomplete, {stats.in_doubt} in doubt, {len(unreadable)} unreadable lines",
        err=True,
    )


def has_sources(settings: Settings) -> bool:
    t = settings.topics
    return bool(t.cdc or t.tx_metadata or t.outbox)


def run_tap(
    ctx: Context,
    settings: Settings,
    bootstrap: str,
    catalog: Catalog,
    metrics: Metrics,
    stop: threading.Event,
) -> None:
    topics = source_topics(settings)
    ctx.out.print(
        f"tap: {', '.join(topics)} -> {settings.topics.journal} (catalog: {catalog.source or 'none'})"
    )
    lookup = registry_lookup(settings)
    runner = TapRunner(
        settings, bootstrap, lambda: tap_core(settings, catalog, observer=metrics, lookup=lookup), metrics
    )
    metrics.component_started("tap")
    try:
        runner.run(stop)
    finally:
        metrics.component_stopped("tap")


@click.command("tap")
@click.option("--catalog", "catalog_file", type=FILE, help="Action catalog (default: REWIND_CATALOG_FILE).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def tap(ctx: Context, catalog_file: Path | None, duration: float | None) -> None:
    """Journal the configured CDC, transaction metadata and outbox topics, exactly once."""
    settings = ctx.settings
    source_topics(settings)  # fail before starting anything
    catalog = catalog_from(ctx, catalog_file)
    stop = stop_on_signals(ctx, duration)
    metrics = Metrics()
    with cluster.connect(settings) as bootstrap:
        ensure_own_topics(ctx, settings, bootstrap)
        server = serve(metrics, settings.metrics_port) if settings.metrics_port else None
        try:
            run_tap(ctx, settings, bootstrap, catalog, metrics, stop)
        finally:
            if server:
                server.shutdown()
    ctx.out.print("tap stopped")


def register(main: click.Group) -> None:
    main.add_command(decode)
    main.add_command(tap)
