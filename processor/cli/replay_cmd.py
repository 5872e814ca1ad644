"""``rewind replay``: copy source topics into target topics without a scope's records, exactly once."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from processor.cli.base import Context, pass_context, stop_on_signals, with_sources
from processor.cli.progress import Bar
from processor.cli.rollback_cmd import selector_from, with_selector
from processor.replay.scope import ReplayJob, ReplayReport, StartPoint


@click.command("replay")
@click.argument("sources", nargs=-1, required=True)
@click.option("--request", "request_id", help="Skip the planned scope of this rollback request.")
@with_selector
@click.option("--target", help="The target topic (one source only).")
@click.option(
    "--target-suffix", default=".replay", show_default=True, help="Target of each source: its name + this."
)
@click.option(
    "--start", "start", default="scope", show_default=True,
    help="Where to copy from: scope (just before the scope's first record), earliest, offset:N, "
    "epoch ms or an ISO-8601 time.",
)  # fmt: skip
@click.option("--id", "replay_id", help="The replay's id (default: derived from the arguments; the same "
              "command run again resumes it).")  # fmt: skip
@click.option("--max-rate", type=float, help="Records per second at most (spares a busy cluster).")
@click.option("--dry-run", is_flag=True, help="Count what would be copied and skipped; write nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@with_sources  # where the scope's actions are read from (default: the journal topic)
@pass_context
def replay(
    ctx: Context,
    /,
    sources: tuple[str, ...],
    request_id: str | None,
    target: str | None,
    target_suffix: str,
    start: str,
    replay_id: str | None,
    max_rate: float | None,
    dry_run: bool,
    fmt: str,
    capture: Path | None,
    journal_dump: Path | None,
    catalog_file: Path | None,
    widen: bool,
    **select: Any,
) -> None:
    """Copy SOURCES from a known-good point to their end into target topics, skipping every record of
    the scope (a rollback request's, or the actions a selector picks and everything downstream), each
    copy keeping its key, headers, partition and order and marked with rewind.replay_of."""
    if target and len(sources) > 1:
        raise click.UsageError("--target names one topic: with several sources use --target-suffix")
    jobs = [ReplayJob(s, target or f"{s}{target_suffix}") for s in sources]
    selector = None if request_id else selector_from(**select)
    point = StartPoint.parse(start)
    app = ctx.app(catalog_file, fmt=fmt)
    scope = app.replay_scope(request_id, selector, capture=capture, dump=journal_dump, widen=widen)
    what = f"request {request_id}" if request_id else (selector.describe() if selector else "")
    key = "|".join([*(f"{j.source}>{j.target}" for j in jobs), what, str(point)])
    replay_id = replay_id or "r" + hashlib.sha256(key.encode()).hexdigest()[:12]
    (ctx.err if fmt == "json" else ctx.out).print(
        f"replay {replay_id}: scope of {what}: {scope.actions} actions; from {point}"
        + (" (dry run)" if dry_run else "")
    )
    stop = stop_on_signals(ctx)
    with Bar(ctx.err, "replay", "offsets") as on_progress:
        report = app.replay(
            replay_id, jobs, scope, point, stop, dry_run=dry_run, on_progress=on_progress, max_rate=max_rate
        )
    if fmt == "json":
        click.echo(json.dumps(report_record(report, jobs), indent=2))
    else:
        _print(ctx, report, jobs)


def report_record(report: ReplayReport, jobs: list[ReplayJob]) -> dict[str, Any]:
    targets = {j.source: j.target for j in jobs}
    return {
        "replay_id": report.replay_id, "dry_run": report.dry_run, "copied": report.copied,
        "skipped": report.skipped, "seconds": round(report.seconds, 3), "resumed": report.resumed,
        "partitions": [asdict(p) | {"target": targets[p.topic]} for p in report.partitions],
    }  # fmt: skip


def _print(ctx: Context, report: ReplayReport, jobs: list[ReplayJob]) -> None:
    targets = {j.source: j.target for j in jobs}
    verb = "would copy" if report.dry_run else "copied"
    table = Table(
        title=f"replay {report.replay_id}" + (" (dry run: nothing written)" if report.dry_run else "")
    )
    for column in ("source", "partition", "from", "to (end)", "resumed at", verb, "skipped", "target"):
        table.add_column(column)
    for p in report.partitions:
        table.add_row(p.topic, str(p.partition), str(p.start), str(p.end), str(p.resumed_at),
                      str(p.copied), str(p.skipped), targets[p.topic])  # fmt: skip
    ctx.out.print(table)
    rate = report.copied / report.seconds if report.seconds else 0.0
    ctx.out.print(
        f"{verb} {report.copied} records, skipped {report.skipped} of the scope, in {report.seconds:.1f}s "
        f"({rate:,.0f}/s)" + ("; resumed from the last commit" if report.resumed else "")
    )


def register(main: click.Group) -> None:
    main.add_command(replay)
