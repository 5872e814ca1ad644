"""``rewind decode --capture FILE``: the tap's core, offline, over a kcat -J capture."""

from __future__ import annotations

import json
from pathlib import Path

import click

from processor.cli.base import Context, pass_context
from processor.journal.serde import to_json_view
from processor.rollback.catalog import Catalog, load_catalog
from processor.tap.core import TapCore, capture_has_tx_metadata
from processor.tap.offline import run_capture
from processor.tap.records import read_capture

CAPTURE = click.Path(exists=True, dir_okay=False, path_type=Path)


def catalog_from(ctx: Context, catalog_file: Path | None) -> Catalog:
    path = catalog_file or ctx.settings.tap.catalog_file
    return load_catalog(path) if path else Catalog.empty()


@click.command("decode")
@click.option(
    "--capture", "capture", type=CAPTURE, required=True, help="kcat -C -J output, one record per line."
)
@click.option(
    "--catalog", "catalog_file", type=CAPTURE, help="Action catalog (default: REWIND_TAP__CATALOG_FILE)."
)
@pass_context
def decode(ctx: Context, capture: Path, catalog_file: Path | None) -> None:
    """Print the journal entries a capture yields, one JSON object per line; dead letters go to stderr."""
    core = TapCore(
        ctx.settings,
        catalog_from(ctx, catalog_file),
        group_transactions=capture_has_tx_metadata(read_capture(capture)),
    )
    entries = dead = 0
    for out in run_capture(core, read_capture(capture)):
        for entry in out.entries:
            click.echo(json.dumps(to_json_view(entry), sort_keys=False))
            entries += 1
        for letter in out.dead_letters:
            click.echo(f"dead letter [{letter.reason.value}] {letter.message}", err=True)
            dead += 1
    stats = core.assembler.stats
    click.echo(
        f"{entries} journal entries, {dead} dead letters, {stats.duplicates} duplicates dropped, "
        f"{stats.incomplete} incomplete, {stats.in_doubt} in doubt",
        err=True,
    )


def register(main: click.Group) -> None:
    main.add_command(decode)
