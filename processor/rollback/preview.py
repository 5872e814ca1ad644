"""What an undo will change (pure): for every row a plan restores, or whose owner it compensates, the row
now and as expected after the undo. The approver sees it before approving; verification checks the same
expectations once the steps are confirmed.

- restore: the row goes back to what the earliest restored writer in the scope found: the fields the
  catalog restores (or the whole before-image), or no row where that writer created it.
- compensate: the owner's answer decides what changes. The catalog's ``effect`` says which fields the
  answer sets, per table; otherwise the answer reverses the action's change: a number moves back by what
  the action added (so changes by other actions since stay), another changed field goes back to its
  before value, a created row goes away and a deleted one comes back. Verification checks this in the
  owner's answers (the confirming actions), not in the latest row, which other writers may have moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from processor.catalog.catalog import ActionSpec, Catalog
from processor.graph.builder import CausalGraph
from processor.journal.model import JournalEntry, JsonObject, Op, RowChange
from processor.rollback.actions import ActionLookup
from processor.rollback.plan import Plan, PreviewRow, StepState, add, is_number
from processor.undo import StepMechanism


def preview(plan: Plan, graph: CausalGraph, actions: ActionLookup, catalog: Catalog) -> list[PreviewRow]:
    """Every row the plan's executable restore and compensate steps change, in the order first met."""
    steps = [s for s in plan.steps if s.executable and s.mechanism in _PREVIEWED]
    entries = actions.get_many(s.action_id for s in steps)
    rows: dict[str, PreviewRow] = {}
    for step in steps:  # undo order: the latest write to a row first
        entry, spec = entries[step.action_id], catalog.actions[step.action_type]
        for change in _changes(entry, spec):
            row = rows.get(change.entity)
            if row is None:
                row = rows[change.entity] = PreviewRow(
                    change.entity, change.collection, change.key, step.mechanism, [], None
                )
            row.action_ids.append(step.action_id)
            if step.mechanism is StepMechanism.RESTORE:
                _restore(row, change, spec)
            else:
                _compensate(row, change, spec)
    latest = _latest_images(list(rows), graph, actions)
    for entity, row in rows.items():
        row.now = latest.get(entity)
    return list(rows.values())


_PREVIEWED = (StepMechanism.RESTORE, StepMechanism.COMPENSATE)


def restored_changes(entry: JournalEntry, spec: ActionSpec) -> list[RowChange]:
    """The row changes a restore sets back (the spec's tables; snapshot reads change nothing)."""
    return [
        c for c in entry.changes
        if (not spec.tables or c.collection in spec.tables or c.table in spec.tables) and c.op is not Op.READ
    ]  # fmt: skip


def _changes(entry: JournalEntry, spec: ActionSpec) -> list[RowChange]:
    """The row changes a restore sets back or a compensation answers (the spec's tables, one row's)."""
    return [c for c in restored_changes(entry, spec) if c.op in (Op.CREATE, Op.UPDATE, Op.DELETE)]


def _restore(row: PreviewRow, change: RowChange, spec: ActionSpec) -> None:
    """Later steps are earlier writers: each one's before-image replaces what a later one set."""
    if change.op is Op.CREATE:
        row.sets, row.gone = {}, True
        return
    before = change.before or {}
    row.sets = {n: before.get(n) for n in spec.fields if n in before} if spec.fields else dict(before)
    row.gone = False


def _compensate(row: PreviewRow, change: RowChange, spec: ActionSpec) -> None:
    declared = spec.effect.get(change.table, spec.effect.get(change.collection))
    if declared is not None:
        row.sets.update(declared)
        return
    if change.op is Op.CREATE:
        row.gone = True
        return
    before = change.before or {}
    if change.op is Op.DELETE:
        row.sets.update(before)
        row.gone = False
        return
    after = change.after or {}
    for name in change.changed_fields or tuple(after):
        old, new = before.get(name), after.get(name)
        if is_number(old) and is_number(new):
            row.moves[name] = add(row.moves.get(name, 0), add(old, -new))
        elif name in before:
            row.sets[name] = old


def last_writers(entities: Iterable[str], graph: CausalGraph) -> dict[str, str]:
    """Each entity's latest journaled writer (entities no action wrote are left out)."""
    return {e: graph.action_id(int(w[-1])) for e in entities if len(w := graph.writers(e))}


def _latest_images(entities: list[str], graph: CausalGraph, actions: ActionLookup) -> dict[str, Any]:
    """Each entity's row as its latest journaled writer left it (None: deleted)."""
    last = last_writers(entities, graph)
    entries = actions.get_many(set(last.values()))
    found: dict[str, Any] = {}
    for entity, action_id in last.items():
        if (entry := entries.get(action_id)) is not None:
            found[entity] = image_after(entry, entity)
    return found


def image_after(entry: JournalEntry, entity: str) -> JsonObject | None:
    """The row an action left (None: it deleted it, or wrote no image of it)."""
    change = next((c for c in reversed(entry.changes) if c.entity == entity), None)
    return None if change is None or change.op is Op.DELETE else change.after


def verified_rows(plan: Plan) -> list[PreviewRow]:
    """The preview's rows whose every step was confirmed: the ones verification can check."""
    confirmed = {s.action_id for s in plan.steps if s.state is StepState.CONFIRMED}
    return [r for r in plan.preview if all(a in confirmed for a in r.action_ids)]
