"""Field mappings of the catalog: literal values and ``{path}`` references into the original action.

A string that is exactly one reference (``"{payload.amount}"``) takes the referenced value with its
type; a string with references inside text (``"refund for {action.action_id}"``) is formatted; other
values (numbers, booleans, text without braces) are literals. Dicts and lists are mapped recursively.

Roots of a path: ``payload`` (the outbox event's payload), ``before`` and ``after`` (the action's first
row change; ``changes.N.before`` for another), ``action`` (action_id, action_type, correlation_id,
aggregate_id, aggregate_type, service, tx_id), ``decision`` (decision metadata).
"""

from __future__ import annotations

import re
from typing import Any

from processor.journal.model import JournalEntry

ROOTS = frozenset({"payload", "before", "after", "action", "decision", "changes"})
_REFERENCE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class MappingFailed(Exception):
    """A reference does not resolve in an action: the step cannot be built (not retryable)."""


def references(template: Any) -> list[str]:
    """Every path a template refers to (used to validate a catalog on load)."""
    if isinstance(template, str):
        return _REFERENCE.findall(template)
    if isinstance(template, dict):
        return [p for v in template.values() for p in references(v)]
    if isinstance(template, list):
        return [p for v in template for p in references(v)]
    return []


def context(entry: JournalEntry) -> dict[str, Any]:
    """What a template can refer to, for one action."""
    first = entry.changes[0] if entry.changes else None
    return {
        "payload": entry.event.payload if entry.event else None,
        "before": first.before if first else None,
        "after": first.after if first else None,
        "changes": [{"table": c.collection, "key": c.key, "before": c.before, "after": c.after}
                    for c in entry.changes],
        "action": {
            "action_id": entry.action_id, "action_type": entry.action_type,
            "correlation_id": entry.correlation_id, "aggregate_id": entry.aggregate_id,
            "aggregate_type": entry.aggregate_type, "service": entry.service, "tx_id": entry.tx_id,
        },
        "decision": entry.decision,
    }  # fmt: skip


def render(template: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        return {k: render(v, ctx) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, ctx) for v in template]
    if not isinstance(template, str):
        return template
    whole = _REFERENCE.fullmatch(template)
    if whole:
        return resolve(ctx, whole.group(1))
    return _REFERENCE.sub(lambda m: _text(resolve(ctx, m.group(1))), template)


def resolve(ctx: Any, path: str) -> Any:
    value = ctx
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise MappingFailed(f"'{path}' is not in the action ('{part}' missing)")
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value)
