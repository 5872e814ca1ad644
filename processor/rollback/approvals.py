"""Who may approve a plan, and when enough have (pure).

An approval counts when it names the current plan's hash, comes from a key other than the
requester's (the two-person rule), and is the first from its key. A plan runs once
``approvers_required`` distinct keys approved it and, for each role the catalog asks of its action
types, one of them holds that role. A drill is the exception to the two-person rule: a key that only
drills may request and approve its own canary's undo, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from processor.rollback.request import ControlCommand
from processor.security.gate import UNSIGNED_KEY, Signer
from processor.security.keys import Role

# The roles that may send each message; the gate refuses any other signer.
REQUEST_ROLES = frozenset({Role.OPERATOR, Role.DRILL})
CONTROL_ROLES = {
    ControlCommand.APPROVE: frozenset({Role.APPROVER, Role.DRILL}),
    ControlCommand.PAUSE: frozenset({Role.OPERATOR, Role.APPROVER, Role.DRILL}),
    ControlCommand.RESUME: frozenset({Role.OPERATOR, Role.DRILL}),
    ControlCommand.ABORT: frozenset({Role.OPERATOR, Role.APPROVER, Role.DRILL}),
}
DRILL_TAG = "drill-"  # a drill's request ids and its canary's correlation ids start with it


def short(plan_hash: str | None) -> str:
    return (plan_hash or "none")[:12]


def drill_only(roles: frozenset[str] | tuple[str, ...]) -> bool:
    """A key that may drill but not operate: its requests must be drills."""
    return Role.DRILL in roles and Role.OPERATOR not in roles


@dataclass(frozen=True, slots=True)
class Approval:
    key_id: str
    plan_hash: str
    ts_ms: int  # when it was issued (signed)
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A signed message admitted for a request and what became of it: ``rewind status`` shows them,
    and their nonces are remembered across restarts."""

    command: str  # REQUEST, APPROVE, PAUSE, RESUME, ABORT
    key_id: str
    issued_ts_ms: int
    nonce: str
    plan_hash: str | None
    outcome: str
    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, command: str, signer: Signer, plan_hash: str | None, outcome: str) -> AuditEntry:
        roles = tuple(sorted(signer.roles))
        return cls(command, signer.key_id, signer.issued_ms, signer.nonce, plan_hash, outcome, roles)


@dataclass(frozen=True, slots=True)
class ApprovalRules:
    approvers_required: int = 1

    def refusal(
        self, signer: Signer, plan_hash: str | None, current: str | None, requester: AuditEntry | None,
        approvals: list[Approval],
    ) -> str | None:  # fmt: skip
        """Why this approval does not count, or None."""
        if plan_hash is None:
            return "the approval names no plan hash (`rewind approve` reads it from the status)"
        if plan_hash != current:
            return f"it approves plan {short(plan_hash)}, but the plan is now {short(current)}"
        own = requester is not None and signer.key_id == requester.key_id and signer.key_id != UNSIGNED_KEY
        drill = requester is not None and drill_only(requester.roles) and Role.DRILL in signer.roles
        if own and not drill:
            return f"{signer.key_id} requested it and cannot approve it too (two-person rule)"
        if any(a.key_id == signer.key_id for a in approvals):
            return f"{signer.key_id} approved this plan already"
        return None

    def missing(self, approvals: list[Approval], roles: list[str], *, drill: bool = False) -> list[str]:
        """What the approvals still lack: more approvers, or one holding a role; empty when enough."""
        lacking = []
        needed = 1 if drill else self.approvers_required
        if len(approvals) < needed:
            more = needed - len(approvals)
            lacking.append(f"{more} more approver{'s' if more > 1 else ''} (of {needed})")
        held = {r for a in approvals for r in a.roles}
        lacking += [f"an approver with role {role}" for role in roles if role not in held]
        return lacking
