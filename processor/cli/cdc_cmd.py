"""``rewind cdc``: a real CDC source for development and tests — PostgreSQL plus Kafka Connect with
Debezium's PostgreSQL connector and its outbox event router."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from processor.app import CDC_CONNECTOR as CONNECTOR
from processor.cli.base import Context, pass_context
from processor.cli.progress import Bar
from processor.devenv.connect import LocalConnect
from processor.devenv.postgres import LocalPostgres


@click.group("cdc")
def cdc_group() -> None:
    """Run PostgreSQL and Debezium locally, as a source for the tap."""


@cdc_group.command("fetch")
@pass_context
def fetch(ctx: Context) -> None:
    """Resolve the Kafka Connect and Debezium jars into the cache (once)."""
    connect = LocalConnect(ctx.settings.connect, "unused:0")
    with Bar(ctx.err, "Connect and Debezium jars", "jars") as progress:
        connect.fetch(progress)
    ctx.out.print(f"Kafka Connect and Debezium jars ready under {ctx.settings.connect.cache_dir}")


@cdc_group.command("up")
@click.option("--table", "tables", multiple=True, required=True, help="schema.table to capture (repeat).")
@click.option(
    "--schema-sql", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="SQL run first."
)
@pass_context
def up(ctx: Context, tables: tuple[str, ...], schema_sql: Path | None) -> None:
    """Start PostgreSQL, apply SQL, and start Connect with Debezium capturing the tables."""
    _dsn, spec = ctx.app().start_cdc(tables, schema_sql)
    ctx.out.print(f"Debezium streaming {', '.join(tables)} to {spec.topic_prefix}.<schema>.<table>")
    ctx.out.print(f"transactions to {spec.tx_topic}, outbox events to {spec.outbox_topic_prefix}<aggregate>")


@cdc_group.command("status")
@pass_context
def status(ctx: Context) -> None:
    """Report PostgreSQL and Connect; exit 1 when either is down."""
    pg = LocalPostgres(ctx.settings.postgres).running_pid()
    connect = LocalConnect(ctx.settings.connect, "unused:0")
    state = connect.status(CONNECTOR) if connect.running_pid() else None
    ctx.out.print(f"PostgreSQL: {f'up (pid {pg})' if pg else 'down'}")
    if state:
        tasks = ",".join(t.get("state", "?") for t in state.get("tasks", []))
        ctx.out.print(f"Kafka Connect: connector {state['connector']['state']}, tasks {tasks}")
    else:
        ctx.out.print("Kafka Connect: down")
    if not (pg and state):
        sys.exit(1)


@cdc_group.command("down")
@pass_context
def down(ctx: Context) -> None:
    """Stop Connect, then PostgreSQL (the broker has its own `rewind kafka stop`)."""
    stopped_connect = LocalConnect(ctx.settings.connect, "unused:0").stop()
    stopped_pg = LocalPostgres(ctx.settings.postgres).stop()
    ctx.out.print(f"Kafka Connect: {'stopped' if stopped_connect else 'was not running'}")
    ctx.out.print(f"PostgreSQL: {'stopped' if stopped_pg else 'was not running'}")


def register(main: click.Group) -> None:
    main.add_command(cdc_group)
