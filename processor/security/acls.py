"""The least-privilege ACLs of each role (pure): read on what it consumes and its own groups, write on
what it produces, its transactional ids; never create, delete or alter at run time (the admin makes
the topics first) but for the drill's own replay copies. ``rewind acl plan`` prints them and
``rewind acl apply`` creates them.

Roles and what they touch (from the settings and the catalog):
  tap       sources -> journal, dead letters; its group; transactional id <prefix>-tap
  graph     journal -> (a file); its group
  worker    journal, requests, control, status -> status, dead letters, the catalog's topics, the
            notify topic; drills (it hosts them): requests, control, the entry topic, verdicts, and the
            drill's replay copies of the catalog's replay topics
  operator  requests, control; reads status, the journal, verdicts
  approver  control; reads status
  service   reads the catalog's topics (rewind's commands); writes its own (principals.service_topics)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from processor.catalog.catalog import Catalog
from processor.config import Settings


class Resource(StrEnum):
    TOPIC = "TOPIC"
    GROUP = "GROUP"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"


class Pattern(StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


class Operation(StrEnum):
    READ = "READ"
    WRITE = "WRITE"  # on a topic and a transactional id it implies DESCRIBE
    CREATE = "CREATE"
    DELETE = "DELETE"


@dataclass(frozen=True, order=True)
class Grant:
    role: str
    principal: str  # the user name: the principal is User:<principal>
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation
    why: str


def command_topics(settings: Settings, catalog: Catalog) -> list[str]:
    """Where the worker sends commands: each catalog entry's topic and re-drive topic, the notify topic."""
    found = {settings.rollback.notify_topic}
    for spec in catalog.actions.values():
        found |= {t for t in (spec.topic, spec.redrive.topic if spec.redrive else None) if t}
    return sorted(found)


def acl_plan(settings: Settings, catalog: Catalog) -> list[Grant]:
    """Every role's grants, role by role (tap, graph, worker, operator, approver, service)."""
    grants = [*_tap(settings), *_graph(settings), *_worker(settings, catalog), *_people(settings)]
    return list(dict.fromkeys([*grants, *_service(settings, catalog)]))


class _Grants:
    def __init__(self, role: str, principal: str) -> None:
        self.role, self.principal, self.found = role, principal, list[Grant]()

    def add(self, resource: Resource, names: list[str] | str, op: Operation, why: str,
            pattern: Pattern = Pattern.LITERAL) -> _Grants:  # fmt: skip
        for name in [names] if isinstance(names, str) else names:
            self.found.append(Grant(self.role, self.principal, resource, name, pattern, op, why))
        return self


T, G, X = Resource.TOPIC, Resource.GROUP, Resource.TRANSACTIONAL_ID
R, W = Operation.READ, Operation.WRITE


def _tap(s: Settings) -> list[Grant]:
    t = s.topics
    return (
        _Grants("tap", s.principals.tap)
        .add(T, [*t.cdc, *t.tx_metadata, *t.outbox], R, "the sources it journals")
        .add(T, t.journal, R, "the dedupe window, read back at start")
        .add(T, [t.journal, t.deadletter], W, "journal entries and dead letters")
        .add(
            G,
            [s.group_id, f"{s.group_id}-seed"],
            R,
            "its consumer group (offsets committed in its transactions)",
        )
        .add(X, f"{s.transactional_id_prefix}-tap", W, "its transactions")
    ).found


def _graph(s: Settings) -> list[Grant]:
    return (
        _Grants("graph", s.principals.graph)
        .add(T, s.topics.journal, R, "the journal it indexes")
        .add(G, f"{s.group_id}-graph", R, "its reader")
    ).found


def _worker(s: Settings, catalog: Catalog) -> list[Grant]:
    t, prefix, group = s.topics, s.transactional_id_prefix, s.group_id
    grants = (
        _Grants("worker", s.principals.worker)
        .add(T, [t.journal, t.requests, t.control, t.status], R, "what it plans from, and its own progress")
        .add(
            T, [t.status, t.deadletter, *command_topics(s, catalog)], W, "progress, dead letters and commands"
        )
        .add(G, f"{group}-rollback", R, "its groups (requests, journal, status)", Pattern.PREFIXED)
        .add(X, f"{prefix}-rollback-", W, "its transactions", Pattern.PREFIXED)
    )
    if s.drill.entry_topic:
        replayed = sorted({topic for spec in catalog.actions.values() for topic in spec.replay_topics})
        (grants.add(T, [t.requests, t.control, t.drills, s.drill.entry_topic], W,
                    "drills: the canary, its request and approval (its key may only drill), verdicts")
         .add(T, t.drills, R, "drills: earlier verdicts")
         .add(G, f"{group}-drill-", R, "drills: their readers", Pattern.PREFIXED)
         .add(T, replayed, R, "drills: the stores' sources they replay")
         .add(G, f"{group}-replay-drill-", R, "drills: their replays", Pattern.PREFIXED)
         .add(X, f"{prefix}-replay-drill-", W, "drills: their replays", Pattern.PREFIXED))  # fmt: skip
        for topic in replayed:
            for op in (Operation.CREATE, W, Operation.DELETE):
                grants.add(
                    T, f"{topic}.drill-", op, "drills: the replay copy, made and removed", Pattern.PREFIXED
                )
    return grants.found


def _people(s: Settings) -> list[Grant]:
    t, group = s.topics, s.group_id
    operator = (
        _Grants("operator", s.principals.operator)
        .add(T, [t.requests, t.control], W, "rollback requests; pause, resume, abort")
        .add(T, [t.status, t.journal, t.drills], R, "rewind status, history, drill report")
    )
    for purpose in ("status", "history", "catalog", "drills"):
        operator.add(G, f"{group}-{purpose}-", R, f"rewind's {purpose} readers", Pattern.PREFIXED)
    approver = (
        _Grants("approver", s.principals.approver)
        .add(T, t.control, W, "approvals")
        .add(T, t.status, R, "the plan it approves (rewind status, rewind approve)")
        .add(G, f"{group}-status-", R, "rewind's status readers", Pattern.PREFIXED)
    )
    return operator.found + approver.found


def _service(s: Settings, catalog: Catalog) -> list[Grant]:
    p = s.principals
    return (
        _Grants("service", p.service)
        .add(T, command_topics(s, catalog), R, "rewind's commands to the services")
        .add(G, p.service_group, R, "the services' groups", Pattern.PREFIXED)
        .add(T, p.service_topics, W, "what the services write")
    ).found
