"""``rewind config show``: the effective settings, secrets masked."""

from __future__ import annotations

import json

import click
import yaml

from processor.cli.base import Context, pass_context


@click.group("config")
def config_group() -> None:
    """Inspect settings."""


@config_group.command("show")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@pass_context
def show(ctx: Context, fmt: str) -> None:
    """Print the effective settings (environment over file over defaults); secrets are masked."""
    data = ctx.settings.redacted()
    text = json.dumps(data, indent=2) if fmt == "json" else yaml.safe_dump(data, sort_keys=False)
    click.echo(text.rstrip())


def register(main: click.Group) -> None:
    main.add_command(config_group)
