"""``rewind state`` and ``rewind history``: what a row looked like at a time or log position, and every
version it had, from the journal's before/after images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from processor.cli.base import Context, pass_context, with_sources
from processor.graph.history import Moment, Undo, Version

OPTIONS = [
    click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True),
    click.option("--as-known-at", "known", help="Answer as the journal knew it then (ISO-8601 or epoch ms)."),
]


def _offline(f: Any) -> Any:
    """--capture / --journal / --catalog (as every offline command), --format, --as-known-at."""
    for option in reversed(OPTIONS):
        f = option(f)
    return with_sources(f)


def version_record(v: Version, undo: Undo | None = None) -> dict[str, Any]:
    later = (
        None
        if undo is None
        else {"request_id": undo.request_id, "how": undo.how, "by_action": undo.by_action}
    )
    return {
        "exists": v.exists, "row": v.row, "action_id": v.action_id, "action_type": v.action_type,
        "commit_ts_ms": v.commit_ts_ms, "lsn": v.lsn, "correlation_id": v.correlation_id,
        "causation_ids": list(v.causation_ids), "op": v.op.value, "known_ts_ms": v.known_ts_ms,
        "undone_by": later,
    }  # fmt: skip


NO_ROW = {"exists": False, "row": None, "action_id": None, "commit_ts_ms": None}


def _known(text: str | None) -> int | None:
    if text is None:
        return None
    moment = Moment.parse(text)
    if moment.ts_ms is None:
        raise click.UsageError("--as-known-at takes a time (ISO-8601 or epoch ms), not an LSN")
    return moment.ts_ms


@click.command("state")
@click.argument("table")
@click.argument("key")
@click.option("--at", "at", required=True, help="ISO-8601 time, epoch milliseconds, or lsn:N.")
@_offline
@pass_context
def state_cmd(
    ctx: Context, table: str, key: str, at: str, capture: Path | None, journal_dump: Path | None,
    catalog_file: Path | None, fmt: str, known: str | None,
) -> None:  # fmt: skip
    """The row of TABLE with KEY (its JSON object, or a one-column key's value) as it was at --at."""
    moment, as_known = Moment.parse(at), _known(known)
    history = ctx.app(catalog_file, fmt=fmt).history(capture, journal_dump)
    entity = history.entity(table, key)
    version = history.state(entity, moment, as_known)
    if fmt == "json":
        record = version_record(version, history.undone(version)) if version else NO_ROW
        click.echo(json.dumps({"entity": entity, **record}, indent=2))
        return
    if version is None:
        ctx.out.print(f"{entity} did not exist at {at}")
    elif not version.exists:
        ctx.out.print(f"{entity} was deleted at {at}, by {version.action_id} ({version.action_type})")
    else:
        ctx.out.print(f"{entity} at {at}: {json.dumps(version.row)}")
        ctx.out.print(f"  written by {version.action_id} ({version.action_type}) at {version.commit_ts_ms}"
                      + (f", lsn {version.lsn}" if version.lsn is not None else ""))  # fmt: skip


@click.command("history")
@click.argument("table")
@click.argument("key")
@_offline
@pass_context
def history_cmd(
    ctx: Context, table: str, key: str, capture: Path | None, journal_dump: Path | None,
    catalog_file: Path | None, fmt: str, known: str | None,
) -> None:  # fmt: skip
    """Every version of the row of TABLE with KEY: when, which action, its type, correlation and cause."""
    history = ctx.app(catalog_file, fmt=fmt).history(capture, journal_dump)
    entity = history.entity(table, key)
    versions = history.history(entity, _known(known))
    if fmt == "json":
        records = [version_record(v, history.undone(v)) for v in versions]
        # complete_from_ms: retention deleted older entries (None: the journal holds all of them)
        body = {"entity": entity, "versions": records, "complete_from_ms": history.horizon_ms}
        click.echo(json.dumps(body, indent=2))
        return
    out = Table(title=f"{entity}: {len(versions)} versions")
    for column in ("commit ts", "lsn", "op", "action", "type", "correlation", "cause", "row", "later"):
        out.add_column(column)
    for v in versions:
        out.add_row(str(v.commit_ts_ms), "" if v.lsn is None else str(v.lsn), v.op.value, v.action_id,
                    v.action_type, v.correlation_id or "", ", ".join(v.causation_ids),
                    json.dumps(v.row) if v.row is not None else "(none)",
                    _later(history.undone(v)))  # fmt: skip
    ctx.out.print(out)
    if history.horizon_ms is not None:
        ctx.out.print(
            f"retention deleted the journal's entries before {history.horizon_ms}: "
            "older versions are not shown"
        )


def _later(undo: Undo | None) -> str:
    return "" if undo is None else f"{undo.how} by {undo.request_id}"


def register(main: click.Group) -> None:
    main.add_command(state_cmd)
    main.add_command(history_cmd)
