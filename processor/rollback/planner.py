"""Plan a rollback (pure): scope, undo order, mechanisms, conflicts, and what needs a human.

- Scope: the selected actions and everything causally downstream (plus later writers of the same
  entities when the request widens on overwrites), nothing else.
- Order: reverse topological over causal *and* overwrite edges inside the scope, in waves: an effect is
  undone before its cause, and a later write to an entity is undone before an earlier one, so a chain of
  restores ends at the state before the first scoped write.
- A restore whose entity a later action outside the scope changed is a conflict: listed, never run.
"""

from __future__ import annotations

import numpy as np

from processor.catalog.catalog import ActionSpec, Catalog
from processor.catalog.templates import MappingFailed, context, render
from processor.errors import RewindError
from processor.graph.builder import CausalGraph, IntArray
from processor.graph.model import CycleError, EdgeKind
from processor.graph.queries import closure_nodes, undo_waves_nodes
from processor.journal.model import JournalEntry, Op, Phase
from processor.rollback.actions import ActionLookup
from processor.rollback.plan import Conflict, Plan, Step, StepState, StoreReplay, idempotency_key
from processor.rollback.preview import preview, restored_changes
from processor.rollback.repair import redrives
from processor.rollback.request import RequestInvalid, RollbackRequest, SelectorKind, Thresholds
from processor.undo import Mechanism, StepMechanism

ORDER_KINDS = frozenset({EdgeKind.CAUSED_BY, EdgeKind.OVERWRITES})


class StoreBehind(RewindError):
    """The graph knows an action the action store has not seen yet (retry once the store catches up)."""

    retryable = True


def plan(
    request: RollbackRequest,
    graph: CausalGraph,
    actions: ActionLookup,
    catalog: Catalog,
    thresholds: Thresholds | None = None,
) -> Plan:
    request.validate()
    seed_nodes = _seed_nodes(request, graph, actions)
    scope_nodes = closure_nodes(graph, seed_nodes, widen_on_overwrites=request.widen_on_overwrites)
    limit = (thresholds or Thresholds()).max_scope
    if len(scope_nodes) > limit:
        raise RequestInvalid(
            f"the scope holds {len(scope_nodes)} actions, over the limit of {limit} "
            "(REWIND_ROLLBACK__MAX_SCOPE_ACTIONS): narrow the selector, or raise the limit",
            field="selector",
        )
    try:
        waves = undo_waves_nodes(graph, scope_nodes, ORDER_KINDS)
    except CycleError as exc:
        raise RequestInvalid(f"the scope holds a causal cycle: {exc}", field="selector") from exc
    scope = tuple(graph.action_id(int(n)) for n in scope_nodes)
    entries = actions.get_many(scope)
    if missing := [a for a in scope if a not in entries]:
        raise StoreBehind(
            f"{len(missing)} actions in the graph are not in the action store yet: {missing[:3]}"
        )
    steps = [
        _step(request.request_id, entries[graph.action_id(int(n))], catalog, number)
        for number, wave in enumerate(waves, start=1)
        for n in sorted(wave.tolist(), key=graph.action_id)
    ]
    result = Plan(scope=scope, steps=steps, unreadable=actions.unreadable(request.selector))
    in_scope = np.zeros(len(graph), dtype=bool)
    in_scope[scope_nodes] = True
    for step in steps:
        _classify(step, entries[step.action_id], catalog, graph, in_scope, result)
    result.replays = _replays(steps, catalog)
    result.preview = preview(result, graph, actions, catalog)
    result.approval_roles = _approval_roles(result, catalog)
    result.approval_reasons = _approval_reasons(result, catalog, thresholds or Thresholds())
    if request.repair:
        seeds = [graph.action_id(int(n)) for n in seed_nodes]
        result.redrive = redrives(request, seeds, set(scope), actions, catalog)
    return result


def _seed_nodes(request: RollbackRequest, graph: CausalGraph, actions: ActionLookup) -> IntArray:
    selector = request.selector
    if selector.kind is SelectorKind.ACTION_IDS:
        unknown = [a for a in selector.action_ids if a not in graph]
        if unknown:
            raise RequestInvalid(
                f"no such action in the journal: {', '.join(unknown[:5])}", field="selector.action_ids"
            )
    seeds = actions.select(selector)
    if not seeds:
        unreadable = actions.unreadable(selector)
        why = (
            f"; {len(unreadable)} actions hold the field as text that is not a number (Decimal bytes "
            "without their schema?), which a numeric comparison cannot read"
            if unreadable
            else ""
        )
        raise RequestInvalid(f"{selector.describe()} matched no action{why}", field="selector")
    return graph.nodes(seeds)


def _step(request_id: str, entry: JournalEntry, catalog: Catalog, wave: int) -> Step:
    spec = catalog.actions.get(entry.action_type)
    return Step(
        action_id=entry.action_id,
        action_type=entry.action_type,
        service=entry.service,
        mechanism=StepMechanism.of(spec.mechanism if spec else None),
        wave=wave,
        idempotency_key=idempotency_key(request_id, entry.action_id),
    )


def _classify(
    step: Step, entry: JournalEntry, catalog: Catalog, graph: CausalGraph, in_scope: np.ndarray, out: Plan
) -> None:
    spec = catalog.actions.get(entry.action_type)
    if entry.phase is Phase.IN_DOUBT:
        out.in_doubt.append(step.action_id)
    if spec is None:
        step.state, step.last_error = (
            StepState.SKIPPED,
            "unclassified: the catalog has no entry for this type",
        )
        out.unclassified.append(step.action_id)
        return
    if spec.mechanism is Mechanism.IRREVERSIBLE:
        out.irreversible.append(step.action_id)
        return
    if spec.mechanism is Mechanism.REPLAY:  # rebuilt from a filtered replay: nothing to build here
        return
    problem = _build_problem(entry, spec)
    if problem:
        step.state, step.last_error = StepState.SKIPPED, problem
        out.blocked.append(step.action_id)
        return
    if spec.mechanism is Mechanism.RESTORE:
        conflicts = _conflicts(entry, spec, graph, in_scope)
        if conflicts:
            out.conflicts += conflicts
            step.state = StepState.CONFLICT
            step.last_error = "; ".join(
                f"{c.entity} later changed by {', '.join(c.overwritten_by)}" for c in conflicts
            )


def _replays(steps: list[Step], catalog: Catalog) -> list[StoreReplay]:
    """The stores that rebuild from a filtered replay, each once, with the scope's actions in it."""
    by_store: dict[str, tuple[tuple[str, ...], list[str]]] = {}
    for step in steps:
        spec = catalog.actions.get(step.action_type)
        if spec is not None and spec.mechanism is Mechanism.REPLAY and spec.store:
            by_store.setdefault(spec.store, (spec.replay_topics, []))[1].append(step.action_id)
    return [StoreReplay(store, topics, tuple(ids)) for store, (topics, ids) in sorted(by_store.items())]


def _build_problem(entry: JournalEntry, spec: ActionSpec) -> str | None:
    """Why the undo of this action cannot be built from what the journal holds, if it cannot."""
    if spec.mechanism is Mechanism.COMPENSATE:
        try:
            ctx = context(entry)
            render(spec.payload, ctx)
            render(spec.key, ctx)
        except MappingFailed as exc:
            return f"compensation mapping: {exc}"
        return None
    changes = restored_changes(entry, spec)
    if not changes:
        return "nothing to restore: the action changed no rows of the catalog's tables"
    for c in changes:
        if c.op in (Op.TRUNCATE, Op.MESSAGE):
            return f"{c.entity}: a {c.op.value} cannot be restored from the journal"
        if c.op in (Op.UPDATE, Op.DELETE) and (c.before is None or not c.before_complete):
            fix = f"set REPLICA IDENTITY FULL on {c.collection}"
            return f"{c.entity}: the before-image holds only the key ({fix})"
    return None


def _conflicts(
    entry: JournalEntry, spec: ActionSpec, graph: CausalGraph, in_scope: np.ndarray
) -> list[Conflict]:
    node = graph.node(entry.action_id)
    found = []
    for entity in dict.fromkeys(c.entity for c in restored_changes(entry, spec)):
        writers = graph.writers(entity)
        later = writers[int(np.flatnonzero(writers == node)[0]) + 1 :] if node in writers else writers[:0]
        outside = later[~in_scope[later]]
        if outside.size:
            found.append(Conflict(entry.action_id, entity, tuple(graph.action_id(int(n)) for n in outside)))
    return found


def _approval_reasons(p: Plan, catalog: Catalog, limits: Thresholds) -> list[str]:
    checks = [
        ("steps", len(p.steps), limits.steps),
        ("irreversible steps", len(p.irreversible), limits.irreversible),
        ("conflicts", len(p.conflicts), limits.conflicts),
        ("unclassified steps", len(p.unclassified), limits.unclassified),
        ("in-doubt steps", len(p.in_doubt), limits.in_doubt),
    ]
    reasons = [f"{count} {what} (threshold {limit})" for what, count, limit in checks if count > limit]
    if p.unreadable:
        reasons.append(
            f"the selector could not read its field as a number on {len(p.unreadable)} actions (text that "
            "is not a number, such as Decimal bytes without their schema: enable value.converter."
            "schemas.enable or decimal.handling.mode=string); they are not in the scope"
        )
    flagged = sorted({
        s.action_type
        for s in p.steps
        if (spec := catalog.actions.get(s.action_type)) and spec.requires_approval and not spec.approval_role
    })  # fmt: skip
    reasons += [f"{t} requires approval (catalog)" for t in flagged]
    reasons += [f"{t} needs an approver with role {role} (catalog)" for t, role in _typed_roles(p, catalog)]
    return reasons


def _typed_roles(p: Plan, catalog: Catalog) -> list[tuple[str, str]]:
    """(action type, role) for each type in the plan whose catalog entry names an approval role."""
    return sorted({
        (s.action_type, spec.approval_role)
        for s in p.steps
        if (spec := catalog.actions.get(s.action_type)) and spec.approval_role
    })  # fmt: skip


def _approval_roles(p: Plan, catalog: Catalog) -> list[str]:
    return sorted({role for _, role in _typed_roles(p, catalog)})
