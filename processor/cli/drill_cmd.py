"""``rewind drill``: run a drill now (a canary workflow undone through the normal request path, judged),
and ``rewind drill report``: per mechanism and action type, when a drill last passed, and what no
drill has exercised within the window."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from processor.cli.base import Context, pass_context, stop_on_signals
from processor.drill.serde import verdict_record
from processor.drill.verdict import ASKED, Coverage, Outcome, coverage


@click.group("drill", invoke_without_command=True)
@click.option("--mechanism", type=click.Choice(ASKED), default="all", show_default=True,
              help="What it exercises: the canary's actions of that mechanism, and downstream.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def drill_group(click_ctx: click.Context, mechanism: str, fmt: str) -> None:
    """Run a drill now through the services' entry point (REWIND_DRILL__ENTRY_TOPIC); exit 1 unless it
    passed. ``rewind drill report`` shows what drills covered."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.find_object(Context)
    assert ctx is not None
    verdict = ctx.app(fmt=fmt).drill(mechanism, stop_on_signals(ctx))
    if fmt == "json":
        click.echo(json.dumps(verdict_record(verdict), indent=2))
    else:
        ctx.out.print(
            f"drill {verdict.drill_id} ({verdict.asked}): {verdict.outcome.value}: {verdict.reason}"
        )
        if verdict.request_id:
            ran = ", ".join(verdict.exercised) or "nothing"
            ctx.out.print(f"  request {verdict.request_id}; journaled in {verdict.journaled_ms} ms, "
                          f"undone in {verdict.undone_ms} ms; ran: {ran}")  # fmt: skip
    if verdict.outcome is not Outcome.PASSED:
        raise SystemExit(1)


@drill_group.command("report")
@click.option(
    "--window", "window_s", type=float, default=None, help="Seconds; default REWIND_DRILL__WINDOW_S."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_context
def report_cmd(ctx: Context, window_s: float | None, fmt: str) -> None:
    """Per mechanism and per catalog action type: when a drill last passed; what none exercised lately."""
    app = ctx.app(fmt=fmt)
    window = window_s if window_s is not None else ctx.settings.drill.window_s
    found = coverage(app.drill_verdicts(), app.catalog, int(time.time() * 1000), int(window * 1000))
    if fmt == "json":
        click.echo(json.dumps(_report_json(found, window), indent=2))
        return
    mechanisms = Table(title=f"drills by mechanism (window {window:.0f}s)")
    for column in ("mechanism", "last passed", "last outcome", "drills", "failures", "last reason"):
        mechanisms.add_column(column)
    for m in found.mechanisms.values():
        outcome = m.last_outcome.value if m.last_outcome else ""
        mechanisms.add_row(m.mechanism, _when(m.last_passed_ts_ms), outcome, str(m.drills), str(m.failures),
                           m.last_reason or "")  # fmt: skip
    ctx.out.print(mechanisms)
    types = Table(title="catalog action types")
    for column in ("action type", "last exercised by a passing drill"):
        types.add_column(column)
    for t, ts in found.action_types.items():
        types.add_row(t, _when(ts))
    ctx.out.print(types)
    if found.stale_mechanisms:
        ctx.out.print(f"no passing drill within the window: {', '.join(found.stale_mechanisms)}")
    if found.unexercised_types:
        missing = ", ".join(found.unexercised_types)
        ctx.out.print(f"action types no passing drill exercised within the window: {missing}")


def _report_json(found: Coverage, window_s: float) -> dict[str, Any]:
    return {
        "window_s": window_s,
        "mechanisms": [
            {"mechanism": m.mechanism, "last_passed_ts_ms": m.last_passed_ts_ms,
             "last_outcome": m.last_outcome.value if m.last_outcome else None, "last_reason": m.last_reason,
             "drills": m.drills, "failures": m.failures}
            for m in found.mechanisms.values()
        ],
        "action_types": [{"action_type": t, "last_passed_ts_ms": ts} for t, ts in found.action_types.items()],
        "stale_mechanisms": found.stale_mechanisms,
        "unexercised_action_types": found.unexercised_types,
    }  # fmt: skip


def _when(ts_ms: int | None) -> str:
    return (
        "never" if ts_ms is None else datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="seconds")
    )


def register(main: click.Group) -> None:
    main.add_command(drill_group)
