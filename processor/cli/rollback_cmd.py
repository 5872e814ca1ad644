"""Rollback commands: ``worker``, ``plan`` (offline), ``request``, ``approve|pause|resume|abort``,
``status``, and ``catalog check``."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from processor.catalog.coverage import check_catalog
from processor.cli.base import FILE, Context, load_graph, pass_context, stop_on_signals, with_sources
from processor.cli.progress import Bar
from processor.errors import KafkaError
from processor.rollback.approvals import short
from processor.rollback.plan import Plan, PreviewRow, StepState
from processor.rollback.progress import RequestProgress
from processor.rollback.request import (
    Control,
    ControlCommand,
    FieldPredicate,
    Mode,
    RollbackRequest,
    Selector,
    SelectorKind,
)
from processor.rollback.serde import plan_record, status_record

F = TypeVar("F", bound=Callable[..., Any])


SELECT = [
    click.option("--action", "action_ids", multiple=True, help="Select these action ids (repeatable)."),
    click.option("--correlation-id", help="Select a workflow's actions."),
    click.option("--trace-id", help="Select the actions of a trace."),
    click.option("--type", "action_type", help="Select actions of this type (with --from/--to)."),
    click.option("--where", "predicate", help="Field predicate, e.g. 'rule_version == \"v7\"'."),
    click.option("--from", "from_ts_ms", type=int, help="Window start (epoch ms, commit time)."),
    click.option("--to", "to_ts_ms", type=int, help="Window end (epoch ms, commit time)."),
    click.option("--widen", is_flag=True, help="Also take in later writers of entities in scope."),
]


REPAIR = [
    click.option("--repair", is_flag=True,
                 help="After the undo, re-drive the seeds' good inputs to the fixed consumer."),
    click.option("--exclude-input", "exclude_inputs", multiple=True,
                 help="Do not re-drive this input action (event) id (repeatable)."),
    click.option("--exclude-input-type", "exclude_input_types", multiple=True,
                 help="Do not re-drive inputs of this action type (repeatable)."),
]  # fmt: skip


def with_repair(f: F) -> F:
    for option in reversed(REPAIR):
        f = option(f)
    return f


def with_selector(f: F) -> F:
    for option in reversed(SELECT):
        f = option(f)
    return f


def selector_from(
    action_ids: tuple[str, ...],
    correlation_id: str | None,
    trace_id: str | None,
    action_type: str | None,
    predicate: str | None,
    from_ts_ms: int | None,
    to_ts_ms: int | None,
) -> Selector:
    chosen = [name for name, v in (("--action", action_ids), ("--correlation-id", correlation_id),
                                   ("--trace-id", trace_id), ("--where", predicate)) if v]  # fmt: skip
    if len(chosen) > 1:
        raise click.UsageError(f"choose one selector, not {' and '.join(chosen)}")
    window = {"from_ts_ms": from_ts_ms, "to_ts_ms": to_ts_ms}
    if action_ids:
        kind = SelectorKind.ACTION_IDS
    elif correlation_id:
        kind = SelectorKind.CORRELATION_ID
    elif trace_id:
        kind = SelectorKind.TRACE_ID
    elif predicate:
        kind = SelectorKind.FIELD_PREDICATE
    elif action_type:
        kind = SelectorKind.ACTION_TYPE_WINDOW
    else:
        raise click.UsageError(
            "select actions with --action, --correlation-id, --trace-id, --type or --where"
        )
    selector = Selector(
        kind, tuple(action_ids), correlation_id, trace_id, action_type,
        predicate=FieldPredicate.parse(predicate) if predicate else None, **window,
    )  # fmt: skip
    selector.validate()
    return selector


# -- offline planning ---------------------------------------------------------------------------


@click.command("plan")
@with_sources
@with_selector
@with_repair
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_context
def plan_cmd(
    ctx: Context,
    /,
    capture: Path | None,
    journal_dump: Path | None,
    catalog_file: Path | None,
    widen: bool,
    fmt: str,
    repair: bool,
    exclude_inputs: tuple[str, ...],
    exclude_input_types: tuple[str, ...],
    **select: Any,
) -> None:
    """Plan a rollback offline from a capture or journal dump: the same planner the worker runs (with
    --repair, the inputs it would re-drive)."""
    if not (capture or journal_dump):
        raise click.UsageError("rewind plan needs --capture FILE or --journal FILE")
    graph, entries = load_graph(ctx, capture, journal_dump, catalog_file)
    request = RollbackRequest(
        f"offline-{uuid.uuid4()}", "offline", "rewind plan", int(time.time() * 1000),
        selector_from(**select), Mode.DRY_RUN, widen, repair, exclude_inputs, exclude_input_types,
    )  # fmt: skip
    result = ctx.app(catalog_file, fmt=fmt).plan(request, graph, entries)
    if fmt == "json":
        click.echo(json.dumps(plan_json(result), indent=2, default=str))
    else:
        print_plan(ctx, result)


PREVIEW_SHOWN = 50  # rows in the table; --format json lists them all


def plan_json(p: Plan) -> dict[str, Any]:
    """The plan record, its preview as the rows themselves (not their JSON text)."""
    return {**plan_record(p), "preview": [preview_json(r) for r in p.preview]}


def preview_json(r: PreviewRow) -> dict[str, Any]:
    return {"table": r.table, "key": r.key, "now": r.now, "after": r.after, "mechanism": r.mechanism.value,
            "action_ids": r.action_ids}  # fmt: skip


def print_preview(ctx: Context, p: Plan) -> None:
    if not p.preview:
        return
    out = Table(title=f"preview: {len(p.preview)} rows now -> after the undo")
    for column in ("table", "key", "field", "now", "after", "by"):
        out.add_column(column)
    for r in p.preview[:PREVIEW_SHOWN]:
        by = ", ".join(r.action_ids[:3]) + (f" +{len(r.action_ids) - 3}" if len(r.action_ids) > 3 else "")
        key = json.dumps(r.key, default=str)
        for name, now, after in _differences(r.now, r.after):
            out.add_row(r.table, key, name, now, after, f"{r.mechanism.value.lower()} {by}")
    ctx.out.print(out)
    if len(p.preview) > PREVIEW_SHOWN:
        ctx.out.print(f"... and {len(p.preview) - PREVIEW_SHOWN} more rows (--format json lists all)")


def _differences(now: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    if now is None or after is None:
        return [("*", _shown(now), _shown(after))] if now != after else []
    return [
        (name, json.dumps(now.get(name), default=str), json.dumps(after.get(name), default=str))
        for name in after
        if now.get(name) != after.get(name)
    ]


def _shown(row: dict[str, Any] | None) -> str:
    return "(no row)" if row is None else json.dumps(row, default=str)


def print_plan(ctx: Context, p: Plan) -> None:
    """The blast radius first (what an approver weighs), then the steps: through a pager on a terminal
    when they are more than a screen holds."""
    radius = Table(title=f"blast radius: {len(p.scope)} actions, {len(p.steps)} steps in {p.waves} waves")
    for column in ("service", "action type", "mechanism", "count"):
        radius.add_column(column)
    for r in p.blast_radius():
        radius.add_row(r.service, r.action_type, r.mechanism.value, str(r.count))
    ctx.out.print(radius)
    steps = Table(title=f"plan: {len(p.steps)} steps in {p.waves} waves (wave 1 runs first)")
    for column in ("wave", "action", "type", "service", "mechanism", "state", "note"):
        steps.add_column(column)
    for s in p.steps:
        steps.add_row(str(s.wave), s.action_id, s.action_type, s.service or "", s.mechanism.value,
                      s.state.value, s.last_error or "")  # fmt: skip
    if ctx.out.is_terminal and len(p.steps) > ctx.out.height - 8:
        with ctx.out.pager(styles=True):
            ctx.out.print(steps)
    else:
        ctx.out.print(steps)
    for c in p.conflicts:
        ctx.out.print(
            f"conflict: {c.action_id} would restore {c.entity}, "
            f"later changed by {', '.join(c.overwritten_by)}"
        )
    for label, items in (("irreversible", p.irreversible), ("in doubt", p.in_doubt),
                         ("unclassified", p.unclassified), ("blocked", p.blocked),
                         ("unreadable by the selector", p.unreadable)):  # fmt: skip
        if items:
            ctx.out.print(f"{label}: {', '.join(items)}")
    if p.redrive:
        redrive = Table(title=f"repair: {len(p.redrive)} inputs re-driven after the undo, in this order")
        for column in ("input action", "type", "to topic", "as", "for seeds", "state"):
            redrive.add_column(column)
        for item in p.redrive:
            note = f" ({item.last_error})" if item.last_error else ""
            redrive.add_row(item.action_id, item.action_type, item.topic, item.event_type,
                            ", ".join(item.seed_action_ids), item.state.value + note)  # fmt: skip
        ctx.out.print(redrive)
    print_preview(ctx, p)
    if p.needs_approval:
        ctx.out.print(f"needs approval: {'; '.join(p.approval_reasons)}")


# -- requests and control -----------------------------------------------------------------------


@click.command("request")
@with_selector
@with_repair
@click.option("--reason", required=True, help="Why: recorded with the request.")
@click.option("--by", "requested_by", default=lambda: _user(), show_default="$USER", help="Who asks.")
@click.option("--execute", is_flag=True, help="Execute (default: a dry run that only publishes the plan).")
@click.option("--id", "request_id", default=None, help="Request id (default: a new UUID).")
@pass_context
def request_cmd(
    ctx: Context,
    /,
    widen: bool,
    reason: str,
    requested_by: str,
    execute: bool,
    request_id: str | None,
    repair: bool,
    exclude_inputs: tuple[str, ...],
    exclude_input_types: tuple[str, ...],
    **select: Any,
) -> None:
    """Publish a rollback request; the worker plans it (and executes it with --execute; with --repair,
    re-drives the good inputs once the undo is verified)."""
    request = RollbackRequest(
        request_id or str(uuid.uuid4()), requested_by, reason, int(time.time() * 1000),
        selector_from(**select), Mode.EXECUTE if execute else Mode.DRY_RUN, widen,
        repair, exclude_inputs, exclude_input_types,
    )  # fmt: skip
    request.validate()
    app = ctx.app()
    app.publish_request(request)
    signed = (
        f"signed by {app.signing_key.key_id}" if app.signing_key else "unsigned (no REWIND_SIGNING__KEY_FILE)"
    )
    what = f"({request.mode.value}, {signed}): {request.selector.describe()}"
    ctx.out.print(f"request {request.request_id} published {what}")
    ctx.out.print(f"follow it with: rewind status {request.request_id} --follow")


def _control(command: ControlCommand) -> click.Command:
    @click.command(command.value.lower())
    @click.argument("request_id")
    @click.option("--by", "issued_by", default=lambda: _user(), show_default="$USER")
    @click.option("--reason", default=None)
    @pass_context
    def control(ctx: Context, /, request_id: str, issued_by: str, reason: str | None, **more: Any) -> None:
        app = ctx.app()
        plan_hash = more.get("plan_hash")
        if command is ControlCommand.APPROVE and plan_hash is None:
            shown = app.current_plan(request_id)  # what `rewind status` shows is what is approved
            plan_hash = shown.plan_hash
            ctx.out.print(
                f"approving plan {short(plan_hash)} of {request_id}: {shown.state.value}: {shown.reason}"
            )
        app.publish_control(
            Control(request_id, command, issued_by, int(time.time() * 1000), reason, plan_hash)
        )
        signed = f"signed by {app.signing_key.key_id}" if app.signing_key else "unsigned"
        ctx.out.print(f"{command.value} sent for {request_id} ({signed})")

    if command is ControlCommand.APPROVE:
        control = click.option(
            "--plan", "plan_hash", default=None,
            help="The plan's hash as `rewind status` shows it (default: the current plan's).",
        )(control)  # fmt: skip

    control.help = f"Send {command.value} for a rollback request."
    return control


def _user() -> str:
    import getpass

    return getpass.getuser()


# -- status ---------------------------------------------------------------------------------------


@click.command("status")
@click.argument("request_id")
@click.option("--follow", is_flag=True, help="Keep printing changes until the request ends.")
@click.option("--timeout", type=float, default=None, help="With --follow: give up after this many seconds.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_context
def status_cmd(ctx: Context, request_id: str, follow: bool, timeout: float | None, fmt: str) -> None:
    """Show a request's state, plan progress and verification (from the status topic)."""
    updates = ctx.app(fmt=fmt).follow_status(request_id, follow=follow, timeout_s=timeout)
    bar: AbstractContextManager[Callable[[int, int], None] | None] = (
        Bar(ctx.err, f"{request_id} steps", "done") if follow and fmt == "table" else nullcontext()
    )
    try:
        with bar as on_progress:
            for progress, _caught_up in updates:
                if on_progress is not None and progress.plan is not None:
                    steps = progress.plan.steps
                    on_progress(sum(s.state not in OPEN_STEPS for s in steps), len(steps))
                _print_status(ctx, progress, fmt, brief=follow and not progress.final)
    except KafkaError as exc:
        raise click.ClickException(str(exc)) from exc


OPEN_STEPS = frozenset({StepState.PENDING, StepState.EMITTED})  # the rest are where a step ends


def _print_status(ctx: Context, p: RequestProgress, fmt: str, *, brief: bool) -> None:
    if fmt == "json":
        record = status_record(p)
        record.pop("request")  # the request record's Avro bytes: the worker's, to plan it again
        if p.plan is not None:
            record["plan"] = plan_json(p.plan)
        click.echo(json.dumps(record, default=str))
        return
    counts = Counter(s.state.value for s in p.plan.steps) if p.plan else Counter()
    progress = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
    redrive = Counter(r.state.value for r in p.plan.redrive) if p.plan else Counter()
    if redrive:
        progress += "; re-drives: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(redrive.items()))
    ctx.out.print(
        f"{p.request_id} {p.state.value}: {p.reason or ''}" + (f" [{progress}]" if progress else "")
    )
    if brief or p.plan is None:
        return
    _print_audit(ctx, p)
    print_plan(ctx, p.plan)
    for d in p.verification:
        ctx.out.print(
            f"verification: {d.entity} {d.field}: expected {d.expected_json}, found {d.actual_json}"
        )


def _print_audit(ctx: Context, p: RequestProgress) -> None:
    """Who asked, who approved which plan, and every signed message admitted for the request."""
    approvals = ", ".join(a.key_id for a in p.approvals) or "none yet"
    ctx.out.print(f"plan {short(p.plan_hash)}: requested by key {p.requested_key}; approved by {approvals}")
    audit = Table(title="audit: signed messages admitted for this request")
    for column in ("issued", "command", "key", "plan", "what became of it"):
        audit.add_column(column)
    for a in p.audit:
        issued = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.issued_ts_ms / 1000))
        audit.add_row(issued, a.command, a.key_id, short(a.plan_hash) if a.plan_hash else "", a.outcome)
    ctx.out.print(audit)


# -- catalog check ----------------------------------------------------------------------------------


@click.group("catalog")
def catalog_group() -> None:
    """The action catalog."""


@catalog_group.command("check")
@with_sources
@click.option("--strict", is_flag=True, help="Exit 1 when any observed type is unclassified.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_context
def catalog_check(
    ctx: Context, capture: Path | None, journal_dump: Path | None, catalog_file: Path | None, strict: bool,
    fmt: str,
) -> None:  # fmt: skip
    """Action types seen in the journal (or a capture) that the catalog does not classify, with counts,
    and restores that cannot work because before-images hold only the key."""
    app = ctx.app(catalog_file, fmt=fmt)
    catalog = app.catalog
    entries = app.entries(capture, journal_dump) if capture or journal_dump else app.journal()
    report = check_catalog(catalog, entries)
    if fmt == "json":
        click.echo(json.dumps({
            "actions": len(entries), "catalog": str(catalog.source) if catalog.source else None,
            "types": [{"action_type": t, "actions": n,
                       "mechanism": s.mechanism.value if (s := catalog.actions.get(t)) else "UNCLASSIFIED",
                       "warning": report.warnings.get(t)} for t, n in report.observed.most_common()],
            "unclassified": dict(report.unclassified), "notes": report.notes,
        }, indent=2))  # fmt: skip
        if strict and report.unclassified:
            raise SystemExit(1)
        return
    table = Table(
        title=f"{len(entries)} actions, {len(report.observed)} types, catalog {catalog.source or '(none)'}"
    )
    for column in ("action type", "actions", "mechanism", "warning"):
        table.add_column(column)
    for action_type, count in report.observed.most_common():
        spec = catalog.actions.get(action_type)
        table.add_row(action_type, str(count), spec.mechanism.value if spec else "UNCLASSIFIED",
                      report.warnings.get(action_type, ""))  # fmt: skip
    ctx.out.print(table)
    ctx.out.print(
        f"unclassified: {len(report.unclassified)} types, {sum(report.unclassified.values())} actions"
    )
    for note in report.notes:
        ctx.out.print(f"note: {note}")
    if strict and report.unclassified:
        raise SystemExit(1)


# -- the worker -------------------------------------------------------------------------------------


@click.command("worker")
@click.option("--catalog", "catalog_file", type=FILE, help="Action catalog (default: REWIND_CATALOG_FILE).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@pass_context
def worker_cmd(ctx: Context, catalog_file: Path | None, duration: float | None) -> None:
    """Run the rollback worker: plan requests, wait for approval, emit, confirm and verify."""
    app = ctx.app(catalog_file)
    if not app.catalog.actions:
        ctx.err.print("warning: no action catalog: every step is unclassified and nothing will be undone")
    app.run_worker(stop_on_signals(ctx, duration))
    ctx.out.print("rollback worker stopped")


def register(main: click.Group) -> None:
    for command in (worker_cmd, plan_cmd, request_cmd, status_cmd, catalog_group):
        main.add_command(command)
    for c in (ControlCommand.APPROVE, ControlCommand.PAUSE, ControlCommand.RESUME, ControlCommand.ABORT):
        main.add_command(_control(c))
