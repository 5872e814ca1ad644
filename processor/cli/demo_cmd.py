"""``rewind demo``: the example shop end to end, on a broker, PostgreSQL and Debezium it starts itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from examples.shop.demo import affected_picture, run_demo
from examples.shop.scenario import Outcome
from processor.cli.base import Context, pass_context
from processor.cli.rollback_cmd import plan_json
from processor.errors import RewindError
from processor.graph import render
from processor.rollback.serde import status_record


@click.command("demo")
@click.option("--orders", type=int, default=1_000, show_default=True, help="Orders in the workload.")
@click.option(
    "--mode", type=click.Choice(["repair", "undo"]), default="repair", show_default=True,
    help="repair: undo what the bad rule caused and re-price its orders with the fix; undo: subtract only.",
)  # fmt: skip
@click.option(
    "--picture", type=click.Path(dir_okay=False, path_type=Path), default=Path("rewind-demo.svg"),
    show_default=True, help="Where to draw the affected subgraph (SVG).",
)  # fmt: skip
@click.option(
    "--secure", is_flag=True,
    help="On a secured broker started here (SASL/SCRAM over TLS, ACLs): every part on its own principal.",
)  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_context
def demo(ctx: Context, orders: int, mode: str, picture: Path, secure: bool, fmt: str) -> None:
    """A bad pricing rule ships and its fix follows; rewind finds what the rule caused, undoes it after
    approval, re-drives the orders it mispriced to the fixed pricing, and proves the shop now equals a
    world where the fix was always in place (with --mode undo: where the rule's orders never happened).
    Everything starts here and stops at the end."""
    lines = ctx.err if fmt == "json" else ctx.out  # JSON alone on stdout
    try:
        scenario, outcome = run_demo(ctx.settings, orders, lines.print, mode, secure)
    except RewindError as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "table":
        _report(ctx, outcome)
    dot, actions, workflows = affected_picture(scenario, outcome)
    what = f"{actions} actions of {workflows} bad orders, with their undo"
    drawn = _draw(ctx, lines, dot, picture, what) if dot else None
    if fmt == "json":
        click.echo(json.dumps(outcome_json(outcome, drawn), indent=2, default=str))
    if not outcome.proved:
        raise click.ClickException(f"the shop after the {mode} differs from the oracle world: see above")


def _report(ctx: Context, o: Outcome) -> None:
    say = ctx.out.print
    final = o.status
    say(f"[bold]rollback[/]: {final.state.value}: {final.reason}")
    plan = final.plan
    if plan is not None:
        table = Table(title="blast radius")
        for column in ("service", "action type", "mechanism", "steps"):
            table.add_column(column)
        for row in plan.blast_radius():
            table.add_row(row.service, row.action_type, row.mechanism.value, str(row.count))
        say(table)
        kinds = sorted({s.action_type for s in plan.steps if s.action_id in plan.irreversible})
        say(f"irreversible, listed and not undone: {len(plan.irreversible)} ({', '.join(kinds)})")
        if plan.redrive:
            confirmed = sum(r.state.value == "CONFIRMED" for r in plan.redrive)
            say(f"repair: {confirmed} of {len(plan.redrive)} requests re-driven to pricing and confirmed")
        for r in plan.replays:
            say(f"replay: {r.store} rebuilt from a filtered replay of {', '.join(r.topics)}")
    if o.replay is not None:
        say(f"  {o.replay.copied} events copied, {o.replay.skipped} of the scope skipped")
    say(f"verification: {len(final.verification)} differences")
    for d in final.verification[:20]:
        say(f"  {d.entity} {d.field}: expected {d.expected_json}, found {d.actual_json}")
    world = "v8 from the start" if o.mode == "repair" else "v7's orders never happened"
    checks = Table(
        title=f"the shop against the oracle world ({world}; {o.orders} orders, {len(o.bad)} priced by v7)"
    )
    for column in ("table", "equivalence", "holds"):
        checks.add_column(column)
    for name, text, holds in o.checks():
        checks.add_row(name, text, "yes" if holds else "[red]NO[/]")
    say(checks)
    flowed, rolled = o.timings.get("orders_s", 0.0), o.timings.get("rollback_s", 0.0)
    say(f"timings: orders flowed in {flowed:.0f}s, the {o.mode} took {rolled:.0f}s")


def outcome_json(o: Outcome, picture: Path | None) -> dict[str, Any]:
    """What the tables say, for a script: the request's final status (with its plan), the replay, and
    each check against the oracle world."""
    status = status_record(o.status)
    if o.status.plan is not None:
        status["plan"] = plan_json(o.status.plan)
    return {
        "mode": o.mode, "orders": o.orders, "bad_orders": sorted(o.bad), "proved": o.proved,
        "status": status, "replay": None if o.replay is None else {
            "replay_id": o.replay.replay_id, "copied": o.replay.copied, "skipped": o.replay.skipped,
        },
        "checks": [{"table": name, "equivalence": text, "holds": holds} for name, text, holds in o.checks()],
        "timings_s": o.timings, "picture": None if picture is None else str(picture),
    }  # fmt: skip


def _draw(ctx: Context, lines: Console, dot: str, picture: Path, what: str) -> Path:
    try:
        render.render_image(dot, picture, "svg")
    except RewindError as exc:
        picture = picture.with_suffix(".dot")
        picture.write_text(dot)
        ctx.err.print(f"picture: {exc}; wrote the DOT source instead")
    lines.print(f"[bold]picture[/]: {picture} ({what})")
    return picture


def register(main: click.Group) -> None:
    main.add_command(demo)
