"""``rewind decode --capture FILE`` (the tap's core, offline, over a kcat -J capture) and ``rewind tap``."""

from __future__ import annotations

from pathlib import Path

import click

from processor.cli.base import FILE, Context, pass_context, stop_on_signals
from processor.errors import ConfigError
from processor.journal.serde import to_json_view
from processor.jsonvalue import dumps


@click.command("decode")
@click.option(
    "--capture", "capture", type=FILE, required=True, help="kcat -C -J output, one record per line."
)
@click.option("--catalog", "catalog_file", type=FILE, help="Action catalog (default: REWIND_CATALOG_FILE).")
@pass_context
def decode(ctx: Context, capture: Path, catalog_file: Path | None) -> None:
    """Print the journal entries a capture yields, one JSON object per line; dead letters go to stderr."""
    unreadable: list[ConfigError] = []

    def skip(error: ConfigError) -> None:
        click.echo(f"unreadable line: {error}", err=True)
        unreadable.append(error)

    core, outputs = ctx.app(catalog_file).decode(capture, skip)
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


@click.command("tap")
@click.option("--catalog", "catalog_file", type=FILE, help="Action catalog (default: REWIND_CATALOG_FILE).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def tap(ctx: Context, catalog_file: Path | None, duration: float | None) -> None:
    """Journal the configured CDC, transaction metadata and outbox topics, exactly once."""
    ctx.app(catalog_file).run_tap(stop_on_signals(ctx, duration))
    ctx.out.print("tap stopped")


def register(main: click.Group) -> None:
    main.add_command(decode)
    main.add_command(tap)
