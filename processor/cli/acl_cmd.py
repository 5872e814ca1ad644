"""``rewind acl plan | apply``: each role's least-privilege Kafka ACLs, printed or created."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.table import Table

from processor.cli.base import FILE, Context, pass_context


@click.group("acl")
def acl_group() -> None:
    """Kafka ACLs of rewind's roles (tap, graph, worker, operator, approver, service)."""


@acl_group.command("plan")
@click.option("--catalog", "catalog_file", type=FILE, help="Action catalog (default: REWIND_CATALOG_FILE).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_context
def plan(ctx: Context, catalog_file: Path | None, fmt: str) -> None:
    """What each role may do: read what it consumes, write what it produces, nothing else."""
    grants = ctx.app(catalog_file, fmt=fmt).acl_plan()
    if fmt == "json":
        click.echo(json.dumps([asdict(g) for g in grants], indent=2))
        return
    table = Table(title=f"{len(grants)} ACLs (ALLOW, any host; principal User:<name>)")
    for column in ("role", "principal", "operation", "resource", "pattern", "name", "why"):
        table.add_column(column)
    for g in grants:
        table.add_row(
            g.role, g.principal, g.operation.value, g.resource.value, g.pattern.value, g.name, g.why
        )
    ctx.out.print(table)


@acl_group.command("apply")
@click.option("--catalog", "catalog_file", type=FILE, help="Action catalog (default: REWIND_CATALOG_FILE).")
@pass_context
def apply(ctx: Context, catalog_file: Path | None) -> None:
    """The admin step, run as the cluster's admin principal: rewind's own topics where missing, then
    the ACLs of `rewind acl plan`."""
    created, count = ctx.app(catalog_file).apply_acls()
    ctx.out.print(f"topics: {len(created)} created{': ' + ', '.join(created) if created else ''}")
    ctx.out.print(f"ACLs: {count} in place")


def register(main: click.Group) -> None:
    main.add_command(acl_group)
