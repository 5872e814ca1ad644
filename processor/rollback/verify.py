"""Verify an undo (pure) against the plan's preview, once its steps are confirmed.

- A restored row: its latest journaled image holds the preview's values (or there is no row).
- A compensated row: the owner's answers (the actions confirming the steps) made the preview's change:
  each number moved by what the preview says, each set field left at its value, the row deleted where
  it goes away. The answers, not the latest row, because other writers may have moved it since.
"""

from __future__ import annotations

from typing import Any

from processor.graph.builder import CausalGraph
from processor.journal.model import JournalEntry, Op, RowChange
from processor.jsonvalue import canonical_json
from processor.rollback.actions import ActionLookup
from processor.rollback.plan import Plan, PreviewRow, add, is_number
from processor.rollback.preview import image_after, last_writers, verified_rows
from processor.rollback.progress import Diff
from processor.undo import StepMechanism

_ABSENT = object()


def verify(plan: Plan, graph: CausalGraph, actions: ActionLookup) -> list[Diff]:
    rows = verified_rows(plan)
    restored = [r for r in rows if r.mechanism is StepMechanism.RESTORE]
    compensated = [r for r in rows if r.mechanism is StepMechanism.COMPENSATE]
    last = last_writers((r.entity for r in restored), graph)
    answer_of = {s.action_id: s.confirmed_by for s in plan.steps if s.confirmed_by}
    answers = {a for r in compensated for s in r.action_ids if (a := answer_of.get(s))}
    entries = actions.get_many({*last.values(), *answers})
    diffs: list[Diff] = []
    for row in restored:
        entry = entries.get(last.get(row.entity, ""))
        actual = _ABSENT if entry is None else image_after(entry, row.entity)
        diffs += compare(row.entity, None if row.gone else row.sets, actual)
    for row in compensated:
        found = [entries[a] for s in row.action_ids if (a := answer_of.get(s)) in entries]
        diffs += _answered(row, [c for e in found for c in _changes_of(e, row.entity)])
    return sorted(diffs, key=lambda d: (d.entity, d.field))


def _changes_of(entry: JournalEntry, entity: str) -> list[RowChange]:
    return [c for c in entry.changes if c.entity == entity]


def _answered(row: PreviewRow, changes: list[RowChange]) -> list[Diff]:
    """Whether the owner's answers changed the row as the preview says."""
    if not changes:
        return [Diff(row.entity, "*", _json(row.after), "unchanged: no answer of the owner changed the row")]
    last = max(changes, key=lambda c: (c.position.lsn or 0, c.position.offset))
    if row.gone:
        return [] if last.op is Op.DELETE else [Diff(row.entity, "*", None, _json(last.after))]
    diffs = [
        Diff(row.entity, name, _json(value), _json((last.after or {}).get(name)))
        for name, value in sorted(row.sets.items())
        if (last.after or {}).get(name) != value
    ]
    for name, by in sorted(row.moves.items()):
        moved: Any = 0
        for c in changes:
            before, after = (c.before or {}).get(name), (c.after or {}).get(name)
            if not (is_number(before) and is_number(after)):
                where = f"{c.position.topic}@{c.position.offset}"
                moved = f"unknown: the answer at {where} has no before and after {name}"
                break
            moved = add(moved, add(after, -before))
        if moved != by:
            diffs.append(Diff(row.entity, f"{name} (moved by)", _json(by), _json(moved)))
    return diffs


def compare(entity: str, expected: dict[str, Any] | None, actual: Any) -> list[Diff]:
    if actual is _ABSENT:
        return [Diff(entity, "*", _json(expected), "unknown: no journaled image of the entity")]
    if expected is None or actual is None:
        return [] if expected == actual else [Diff(entity, "*", _json(expected), _json(actual))]
    return [
        Diff(entity, name, _json(value), _json(actual.get(name)))
        for name, value in sorted(expected.items())
        if actual.get(name) != value
    ]


def _json(value: Any) -> str | None:
    return None if value is None else canonical_json(value)
