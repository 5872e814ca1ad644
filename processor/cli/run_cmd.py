"""``rewind run`` (the long-running processor) and ``rewind kafka check`` (the transactional self-check)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.table import Table

from processor.cli.base import FILE, Context, pass_context, stop_on_signals


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
    app = ctx.app(catalog_file)
    app.catalog  # noqa: B018 (a bad catalog fails before anything starts)
    app.run(stop_on_signals(ctx, duration), keep_broker=keep_broker)
    ctx.out.print("stopped")


@click.command("check")
@click.option("--keep-broker", is_flag=True, help="Leave a local broker started here running.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_context
def check(ctx: Context, keep_broker: bool, fmt: str) -> None:
    """Start a local broker, create rewind's topics and prove the transactional guarantees."""
    result = ctx.app(fmt=fmt).self_check(keep_broker=keep_broker)
    if fmt == "json":
        click.echo(json.dumps({**asdict(result), "ok": result.ok}, indent=2))
        if not result.ok:
            sys.exit(1)
        return
    table = Table(title="transactional round trip (read_committed)")
    for column in ("records", "written", "seen by consumer"):
        table.add_column(column)
    seen = set(result.seen)
    table.add_row("committed", str(len(result.committed)), str(len(seen & set(result.committed))))
    table.add_row("aborted", str(len(result.aborted)), str(len(seen & set(result.aborted))))
    ctx.out.print(table)
    if not result.ok:
        raise click.ClickException(f"read_committed saw {result.seen}, expected {result.committed}")
    ctx.out.print(f"ok in {result.elapsed_s:.1f}s: committed records seen once, aborted never")


def register(main: click.Group) -> None:
    main.add_command(run)
    kafka = main.commands["kafka"]
    assert isinstance(kafka, click.Group)
    kafka.add_command(check)
