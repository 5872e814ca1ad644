"""A rollback plan: the scope, the steps in undo order, and what cannot or must not be undone."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeGuard

from processor.journal.model import JsonObject
from processor.jsonvalue import dumps
from processor.undo import StepMechanism

# Idempotency keys are UUIDv5 in this namespace: the same (request, action) always gives the same key.
KEY_NAMESPACE = uuid.UUID("6f1c1f0e-52a4-4e0c-9a51-7d1f0b0c2a11")


class StepState(StrEnum):
    PENDING = "PENDING"
    EMITTED = "EMITTED"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    CONFLICT = "CONFLICT"  # its entity changed later outside the scope: never executed
    SKIPPED = "SKIPPED"  # unclassified, blocked, or not attempted: the reason is in last_error


def idempotency_key(request_id: str, action_id: str) -> str:
    """Also the id of the event rewind emits for the step: what the confirming action names as its cause."""
    return str(uuid.uuid5(KEY_NAMESPACE, f"{request_id}/{action_id}"))


def redrive_key(request_id: str, input_action_id: str) -> str:
    """The new event id of a re-driven input: the same on every attempt, never the original's."""
    return str(uuid.uuid5(KEY_NAMESPACE, f"{request_id}/redrive/{input_action_id}"))


@dataclass(slots=True, kw_only=True)
class Attempted:
    """How far something rewind sends (a step's command, a re-drive) has got: what changes once it is
    planned, and all a status delta carries of it."""

    state: StepState = StepState.PENDING
    attempts: int = 0
    last_error: str | None = None
    emitted_ts_ms: int | None = None
    confirmed_by: str | None = None  # the journaled action that shows the effect
    confirmed_ts_ms: int | None = None


@dataclass(slots=True)
class Step(Attempted):
    action_id: str
    action_type: str
    service: str | None
    mechanism: StepMechanism
    wave: int  # 1 runs first: the most downstream effects
    idempotency_key: str

    @property
    def terminal(self) -> bool:
        """Nothing more will happen to it (a notification of an irreversible action needs no answer)."""
        if self.state is StepState.EMITTED:  # a notice: nothing answers it
            return self.mechanism in (StepMechanism.IRREVERSIBLE, StepMechanism.REPLAY)
        return self.state is not StepState.PENDING

    @property
    def executable(self) -> bool:
        return self.mechanism is not StepMechanism.UNCLASSIFIED and self.state not in (
            StepState.CONFLICT,
            StepState.SKIPPED,
        )


@dataclass(slots=True)
class Redrive(Attempted):
    """A repair's re-drive of one good input: the journaled action whose event a seed consumed, sent
    again as a new event to the fixed consumer only. SKIPPED: excluded by the request (selective
    reapply); CONFIRMED: the journal shows the new action it caused."""

    action_id: str  # the input's action (its event is re-driven)
    action_type: str
    seed_action_ids: tuple[str, ...]  # the scope's seeds that consumed it
    topic: str  # the catalog's re-drive target of the seeds' type
    event_type: str
    idempotency_key: str  # the new event's id

    @property
    def terminal(self) -> bool:
        return self.state in (StepState.CONFIRMED, StepState.FAILED, StepState.SKIPPED)


@dataclass(frozen=True, slots=True)
class StoreReplay:
    """A derived store the plan rebuilds rather than patches: from a filtered replay of ``topics``
    (without the scope's records), for the scope's actions of a ``replay`` type that wrote to it."""

    store: str
    topics: tuple[str, ...]
    action_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Conflict:
    action_id: str
    entity: str
    overwritten_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BlastRow:
    service: str
    action_type: str
    mechanism: StepMechanism
    count: int


Number = int | float | Decimal


def is_number(value: Any) -> TypeGuard[Number]:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def add(a: Number, b: Number) -> Number:
    """a + b; exact when either is a Decimal (the JSON codec reads fractions exactly)."""
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return Decimal(str(a)) + Decimal(str(b))
    return a + b


@dataclass(slots=True)
class PreviewRow:
    entity: str
    table: str  # the collection, 'schema.table'
    key: JsonObject
    mechanism: StepMechanism  # RESTORE or COMPENSATE
    action_ids: list[str]  # the steps that change the row, in undo order
    now: JsonObject | None  # the row as the journal last saw it (None: no row)
    sets: dict[str, Any] = field(default_factory=dict)  # fields left at these values
    moves: dict[str, Number] = field(default_factory=dict)  # compensate: numbers moved by this much
    gone: bool = False  # no row after the undo

    @property
    def after(self) -> JsonObject | None:
        """The row expected after the undo (None: no row)."""
        if self.gone:
            return None
        row = {**(self.now or {}), **self.sets}
        for name, by in self.moves.items():
            if is_number(row.get(name)):
                row[name] = add(row[name], by)
        return row


@dataclass(slots=True)
class Plan:
    scope: tuple[str, ...]
    steps: list[Step]  # in execution order: by wave, then action id
    conflicts: list[Conflict] = field(default_factory=list)
    irreversible: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    unclassified: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # cannot be built from the journal: see the step
    # Actions whose field the selector's numeric predicate could not read: left out, and said so.
    unreadable: list[str] = field(default_factory=list)
    approval_reasons: list[str] = field(default_factory=list)
    # Roles an approver must hold (the catalog's approval_role of an action type in the plan).
    approval_roles: list[str] = field(default_factory=list)
    # A repair: the inputs re-driven once the undo is verified, in their original order.
    redrive: list[Redrive] = field(default_factory=list)
    replays: list[StoreReplay] = field(default_factory=list)
    # Every row it restores or whose owner it compensates: now -> expected after (rollback.preview).
    preview: list[PreviewRow] = field(default_factory=list)

    @property
    def waves(self) -> int:
        return max((s.wave for s in self.steps), default=0)

    @property
    def needs_approval(self) -> bool:
        return bool(self.approval_reasons)

    def blast_radius(self) -> list[BlastRow]:
        counts = Counter((s.service or "(unknown)", s.action_type, s.mechanism) for s in self.steps)
        rows = [BlastRow(svc, t, m, n) for (svc, t, m), n in counts.items()]
        return sorted(rows, key=lambda r: (-r.count, r.service, r.action_type))

    def step(self, action_id: str) -> Step | None:
        return next((s for s in self.steps if s.action_id == action_id), None)

    def digest(self) -> str:
        """The plan's hash (SHA-256 hex) over what it will do, not how far it got: an approval names
        it, and a plan changed since (a wider scope, another step, another preview) has another."""
        what = {
            "scope": sorted(self.scope),
            "steps": [[s.action_id, s.action_type, s.mechanism.value, s.wave, s.idempotency_key]
                      for s in self.steps],
            "conflicts": [[c.action_id, c.entity, list(c.overwritten_by)] for c in self.conflicts],
            "irreversible": self.irreversible, "unclassified": self.unclassified, "blocked": self.blocked,
            "redrive": [[r.action_id, r.topic, r.event_type, r.idempotency_key] for r in self.redrive],
            "replays": [[r.store, list(r.topics), list(r.action_ids)] for r in self.replays],
            "preview": [[r.entity, r.action_ids, r.now, r.sets, r.moves, r.gone] for r in self.preview],
            "approval_roles": self.approval_roles,
        }  # fmt: skip
        return hashlib.sha256(dumps(what, sort_keys=True).encode()).hexdigest()
