"""``rewind demo``: the example shop end to end, on a broker, PostgreSQL and Debezium it starts itself."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from rich.table import Table

from examples.shop.scenario import Outcome, Scenario
from processor.cli.base import Context, pass_context
from processor.devenv.connect import CaptureSpec, LocalConnect
from processor.devenv.postgres import LocalPostgres
from processor.errors import RewindError
from processor.graph import render
from processor.graph.model import EdgeKind
from processor.kafka import cluster
from processor.rollback.engine import RollbackEngine
from processor.rollback.worker import RollbackWorker

T = TypeVar("T")
PICTURE_WORKFLOWS = 3  # bad orders drawn in the picture (the whole scope is too big to read)


@click.command("demo")
@click.option("--orders", type=int, default=1_000, show_default=True, help="Orders in the workload.")
@click.option(
    "--picture", type=click.Path(dir_okay=False, path_type=Path), default=Path("rewind-demo.svg"),
    show_default=True, help="Where to draw the affected subgraph (SVG).",
)  # fmt: skip
@pass_context
def demo(ctx: Context, orders: int, picture: Path) -> None:
    """A bad pricing rule ships; rewind finds what it caused, undoes it after approval, and proves the
    shop now equals a world where the rule never ran (everything starts here and stops at the end)."""
    settings = ctx.settings
    work = Path(tempfile.mkdtemp(prefix="rewind-demo-"))
    work.chmod(0o755)  # as root, PostgreSQL runs as the postgres user, who must reach its data dir
    say = ctx.out.print
    try:
        with cluster.connect(settings) as bootstrap:
            say(f"[bold]kafka[/]: {bootstrap}")
            pg = LocalPostgres(settings.postgres.model_copy(update={"data_dir": work / "postgres"}))
            dsn = _step("postgres", pg.start)
            say(f"[bold]postgres[/]: {dsn.host}:{dsn.port} (wal_level=logical)")
            connect = LocalConnect(
                settings.connect.model_copy(update={"data_dir": work / "connect"}), bootstrap
            )
            try:
                _step("kafka connect", connect.fetch)

                def start_capture(spec: CaptureSpec) -> None:
                    _step("kafka connect", lambda: connect.start(spec))

                scenario = Scenario(
                    bootstrap, dsn, start_capture, work, orders, progress=lambda line: say(f"  {line}")
                )
                outcome = scenario.run()
                _report(ctx, outcome)
                _draw(ctx, scenario.worker, outcome, picture)
            finally:
                connect.stop()
                pg.stop()
        say("[bold]stopped[/]: Connect, PostgreSQL and the broker this demo started")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not _proved(outcome):
        raise click.ClickException("the rolled-back shop differs from the oracle world: see above")


def _step(component: str, action: Callable[[], T]) -> T:
    """Run one component's step; a failure says which component and what to do."""
    try:
        return action()
    except RewindError as exc:
        raise click.ClickException(f"{component} failed: {exc}") from exc


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
    say(f"verification: {len(final.verification)} differences")
    for d in final.verification[:20]:
        say(f"  {d.entity} {d.field}: expected {d.expected_json}, found {d.actual_json}")
    checks = Table(title=f"the shop against the oracle world ({o.orders} orders, {len(o.bad)} touched by v7)")
    for column in ("table", "equivalence", "holds"):
        checks.add_column(column)
    for name, text, holds in _checks(o):
        checks.add_row(name, text, "yes" if holds else "[red]NO[/]")
    say(checks)
    flowed, rolled = o.timings.get("orders_s", 0.0), o.timings.get("rollback_s", 0.0)
    say(f"timings: orders flowed in {flowed:.0f}s, the rollback took {rolled:.0f}s")


def _checks(o: Outcome) -> list[tuple[str, str, bool]]:
    captured = {r for r in o.after["payments"] if r[3] == "CAPTURED"}
    refunded = o.after["payments"] - captured
    extra_emails = o.after["emails"] - o.oracle["emails"]
    return [
        ("orders", "every row equals the oracle's", o.after["orders"] == o.oracle["orders"]),
        ("stock", "equals the oracle's (released = never reserved)", o.after["stock"] == o.oracle["stock"]),
        ("payments", "captured rows equal the oracle's; the rest refunded, all of bad orders",
         captured == o.oracle["payments"] and {r[1] for r in refunded} == o.bad),
        ("gateway", "net money equals the oracle's", o.gateway_net == o.oracle_gateway_net),
        ("emails", "the oracle's plus the bad orders' (irreversible, listed)",
         o.oracle["emails"] <= o.after["emails"] and {r[1] for r in extra_emails} == o.bad),
    ]  # fmt: skip


def _proved(o: Outcome) -> bool:
    return o.status.state.value == "COMPLETED" and all(holds for _, _, holds in _checks(o))


def _draw(ctx: Context, worker: RollbackWorker, o: Outcome, picture: Path) -> None:
    engine, plan = worker.engine, o.status.plan
    if engine is None or plan is None:
        return
    shown = {f"order-{n}" for n in sorted(o.bad)[:PICTURE_WORKFLOWS]}
    entries = engine.actions.get_many(plan.scope)
    scope = {a for a, e in entries.items() if e.correlation_id in shown}
    scope |= {a.action_id for a in engine.actions.get_many(_compensations(engine, scope)).values()}
    dot = render.to_dot(engine.graph, scope, entries | engine.actions.get_many(scope))
    try:
        render.render_image(dot, picture, "svg")
    except RewindError as exc:
        picture = picture.with_suffix(".dot")
        picture.write_text(dot)
        ctx.err.print(f"picture: {exc}; wrote the DOT source instead")
    ctx.out.print(
        f"[bold]picture[/]: {picture} ({len(scope)} actions of {len(shown)} bad orders, with their undo)"
    )


def _compensations(engine: RollbackEngine, scope: set[str]) -> list[str]:
    """The actions that undid the ones in scope (the services' answers to rewind's commands)."""
    found = []
    for action in scope:
        for node, kind in engine.graph.downstream(engine.graph.node(action)):
            if kind is EdgeKind.COMPENSATES:
                found.append(engine.graph.action_id(node))
    return found


def register(main: click.Group) -> None:
    main.add_command(demo)
