"""The ``rewind`` command line: each command parses its arguments, calls the composition root
(processor.app) and prints what it returns."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from processor import __version__
from processor.cli import (
    acl_cmd,
    cdc_cmd,
    config_cmd,
    dashboard_cmd,
    demo_cmd,
    drill_cmd,
    graph_cmd,
    history_cmd,
    kafka_cmd,
    keys_cmd,
    replay_cmd,
    rollback_cmd,
    run_cmd,
    tap_cmd,
)
from processor.cli.base import Context
from processor.errors import RewindError
from processor.kafka.clients import LIBRDKAFKA_LOGGER


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(LIBRDKAFKA_LOGGER.name).setLevel(level if level == "DEBUG" else "ERROR")


class _RewindGroup(click.Group):
    """Turns any RewindError into one clear message and exit code 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RewindError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_RewindGroup)
@click.version_option(__version__, prog_name="rewind")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Settings file (YAML or TOML); also REWIND_CONFIG_FILE. Environment variables win over it.",
)
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """kafka-rewind: undo precisely what a distributed system did."""
    ctx.obj = Context(config_file)
    _configure_logging(ctx.obj.settings.log_level)


for module in (
    config_cmd,
    kafka_cmd,
    keys_cmd,
    acl_cmd,
    run_cmd,
    tap_cmd,
    cdc_cmd,
    graph_cmd,
    history_cmd,
    rollback_cmd,
    replay_cmd,
    drill_cmd,
    dashboard_cmd,
    demo_cmd,
):
    module.register(main)
