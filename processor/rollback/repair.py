"""Plan a repair (pure): which good inputs the scope's seeds mishandled, and where each goes again.

The inputs are the seeds' causes outside the scope: events the bad code consumed and handled wrongly.
Each is re-driven once the undo is verified, as a new event, to the fixed consumer's own topic (the
catalog's ``redrive`` entry of the seed's type), never to the original topic's other consumers, which
already handled it correctly.
"""

from __future__ import annotations

from processor.catalog.catalog import Catalog, RedriveTarget
from processor.journal.model import JournalEntry
from processor.rollback.actions import ActionLookup
from processor.rollback.plan import Redrive, StepState, redrive_key
from processor.rollback.request import RequestInvalid, RollbackRequest


def redrives(
    request: RollbackRequest, seeds: list[str], scope: set[str], actions: ActionLookup, catalog: Catalog
) -> list[Redrive]:
    """A repair's re-drives: the events outside the scope that the seeds consumed (their causation
    ids), each once, in their original order, to the re-drive target the catalog names for the seeds'
    type. Refused, naming what, when a seed has no journaled cause or its type no re-drive target."""
    seed_entries = actions.get_many(seeds)
    consumed: dict[str, list[str]] = {}  # input action id -> the seeds that consumed it
    targets: dict[str, RedriveTarget] = {}
    no_target = sorted({e.action_type for e in seed_entries.values() if _target(catalog, e) is None})
    if no_target:
        raise RequestInvalid(
            f"no re-drive target for {', '.join(no_target)} in the catalog "
            f"({catalog.source or 'none loaded'}): add 'redrive: {{topic: <the fixed consumer's topic>}}' "
            "under each",
            field="repair",
        )
    uncaused = [a for a in seeds if not seed_entries[a].causation_ids]
    if uncaused:
        raise RequestInvalid(
            f"{len(uncaused)} seeds have no journaled cause, so there is no input to re-drive: "
            f"{', '.join(f'{a} ({seed_entries[a].action_type})' for a in uncaused[:5])}",
            field="repair",
        )
    for seed_id in seeds:
        seed = seed_entries[seed_id]
        for cause in seed.causation_ids:
            if cause not in scope:  # a cause inside the scope is re-created by its own seed's re-drive
                consumed.setdefault(cause, []).append(seed_id)
                target = _target(catalog, seed)
                assert target is not None  # checked above for every seed's type
                targets.setdefault(cause, target)
    inputs = actions.get_many(consumed)
    missing = [c for c in consumed if c not in inputs or inputs[c].event is None]
    if missing:
        raise RequestInvalid(
            f"{len(missing)} causes of the seeds are not journaled events, so they cannot be re-driven: "
            f"{', '.join(f'{c} (cause of {consumed[c][0]})' for c in missing[:5])}",
            field="repair",
        )
    excluded_ids, excluded_types = set(request.exclude_inputs), set(request.exclude_input_types)
    found = []
    for cause in sorted(consumed, key=lambda c: (inputs[c].commit_ts_ms or inputs[c].journal_ts_ms, c)):
        entry, target = inputs[cause], targets[cause]
        assert entry.event is not None
        item = Redrive(
            action_id=cause, action_type=entry.action_type, seed_action_ids=tuple(consumed[cause]),
            topic=target.topic, event_type=target.event_type or entry.event.event_type,
            idempotency_key=redrive_key(request.request_id, cause),
        )  # fmt: skip
        if (
            cause in excluded_ids
            or entry.event.event_id in excluded_ids
            or entry.action_type in excluded_types
        ):
            item.state, item.last_error = StepState.SKIPPED, "excluded by the request"
        found.append(item)
    return found


def _target(catalog: Catalog, entry: JournalEntry) -> RedriveTarget | None:
    spec = catalog.actions.get(entry.action_type)
    return spec.redrive if spec else None
