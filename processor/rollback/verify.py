"""Verify restores (pure): each restored entity's latest CDC after-image equals the expected state.

The expected state of an entity is what its earliest restored writer in the scope saw before it wrote
(the fields the catalog restores, or the whole before-image; no row for an action that created it).
"""

from __future__ import annotations

from typing import Any

from processor.catalog.catalog import Catalog
from processor.graph.builder import CausalGraph
from processor.journal.model import Op
from processor.jsonvalue import canonical_json
from processor.rollback.actions import ActionLookup
from processor.rollback.commands import restore_row
from processor.rollback.plan import Plan, StepState
from processor.rollback.planner import restored_changes
from processor.rollback.progress import Diff
from processor.undo import StepMechanism

_ABSENT = object()


def verify(plan: Plan, graph: CausalGraph, actions: ActionLookup, catalog: Catalog) -> list[Diff]:
    restored = [
        s for s in plan.steps if s.mechanism is StepMechanism.RESTORE and s.state is StepState.CONFIRMED
    ]
    entries = actions.get_many(s.action_id for s in restored)
    rows: dict[str, dict[str, dict[str, Any]]] = {}  # entity -> action -> the row its restore set
    for step in restored:
        entry, spec = entries[step.action_id], catalog.actions[step.action_type]
        for change in restored_changes(entry, spec):
            rows.setdefault(change.entity, {})[step.action_id] = restore_row(change, spec)
    diffs: list[Diff] = []
    for entity, by_action in sorted(rows.items()):
        writers = [graph.action_id(int(n)) for n in graph.writers(entity)]
        earliest = next(a for a in writers if a in by_action)
        diffs += compare(entity, by_action[earliest]["expected"], _actual(entity, writers[-1], actions))
    return diffs


def _actual(entity: str, last_writer: str, actions: ActionLookup) -> Any:
    entry = actions.get_many([last_writer]).get(last_writer)
    if entry is None:
        return _ABSENT
    change = next((c for c in reversed(entry.changes) if c.entity == entity), None)
    if change is None:
        return _ABSENT
    return None if change.op is Op.DELETE else change.after


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
