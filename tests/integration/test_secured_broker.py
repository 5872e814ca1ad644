"""rewind on a secured broker: SASL/SCRAM-SHA-512 over TLS, StandardAuthorizer, no ACL no access, one
principal per role with the ACLs of `rewind acl plan` (applied by the admin step, `rewind acl apply`).
Each role is refused, with the broker's authorization error, what it must not do; and a rollback runs
with the worker, the services, the operator and the approver each on its own principal."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from processor.config import Settings
from processor.errors import KafkaError
from processor.kafka import clients, loop
from processor.kafka.local_broker import LocalBroker
from processor.kafka.messages import header_pairs
from processor.rollback.request import ControlCommand, Selector, SelectorKind
from tests.integration.principals import Cluster
from tests.integration.rollkit import (
    APPROVER,
    OPERATOR,
    RollbackTopics,
    Running,
    Services,
    deliver,
    people,
    publish_journal,
    send_control,
    send_request,
)
from tests.unit.rollback.world import World

DENIED = "TOPIC_AUTHORIZATION_FAILED"


class Roles:
    """The settings of each role on the secured broker, after the admin step."""

    def __init__(self, broker: LocalBroker, unique: str, tmp_path: Path) -> None:
        self.broker, self.topics = broker, RollbackTopics(unique)
        self.cluster = Cluster(broker.bootstrap, broker)
        self.base = self.topics.settings(broker.bootstrap)
        self.catalog = self.topics.catalog(tmp_path)
        self.cluster.prepare(self.topics, self.base, self.catalog)
        admin = self.as_role("admin")
        existing = clients.admin(admin, broker.bootstrap).list_topics(timeout=10).topics
        own = {*self.base.topics.own(), self.base.rollback.notify_topic}
        assert own <= set(existing), "the admin step made rewind's topics"

    def as_role(self, role: str) -> Settings:
        return self.cluster.settings(self.base, role)

    def conf(self, role: str) -> dict[str, str]:
        return self.as_role(role).client_config(self.broker.bootstrap)


def test_each_role_is_refused_what_it_must_not_do(
    secured_broker: LocalBroker, unique: str, tmp_path: Path
) -> None:
    roles, secured = Roles(secured_broker, unique, tmp_path), secured_broker
    t, command = roles.base.topics, roles.topics.commands[0]
    allowed = {
        ("tap", t.journal), ("tap", t.deadletter), ("operator", t.requests), ("operator", t.control),
        ("approver", t.control), ("worker", t.status), ("worker", command),
    }  # fmt: skip
    refused = {
        ("tap", t.status), ("tap", t.requests), ("operator", command), ("operator", t.status),
        ("approver", t.requests), ("service", t.requests), ("service", t.control), ("graph", t.journal),
        ("worker", t.journal),
    }  # fmt: skip
    outcome = {
        (role, topic): deliver(roles.conf(role), topic, "k", b"v") for role, topic in allowed | refused
    }
    assert {k: v for k, v in outcome.items() if k in allowed and v is not None} == {}
    assert {k: v for k, v in outcome.items() if k in refused and v != DENIED} == {}
    with pytest.raises(KafkaError, match="AUTHORIZATION_FAILED"):  # no role creates topics at run time
        clients.ensure_topics(clients.admin(roles.as_role("tap"), secured.bootstrap), [f"{unique}.new"],
                              partitions=1, replication_factor=1)  # fmt: skip
    group = roles.base.group_id
    assert _read_error(roles.conf("graph"), f"{group}-graph", t.journal) is None
    assert _read_error(roles.conf("graph"), f"{group}-graph", t.requests) == DENIED  # the journal only
    assert _read_error(roles.conf("service"), "shop-x", t.status) == DENIED


def _read_error(conf: dict[str, str], group: str, topic: str) -> str | None:
    """The error reading ``topic`` as ``group`` gives (None: it reads a record there): the topic's
    metadata says whether the principal may see it at all; then a record is fetched."""
    consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            return str(meta.error.name())
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                error = msg.error()
                return None if error is None else str(error.name())
        return "NOTHING_READ"
    finally:
        consumer.close()


def test_a_rollback_runs_with_every_part_on_its_own_principal(
    secured_broker: LocalBroker, unique: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every line any part logs, to look for secrets in
    roles, secured = Roles(secured_broker, unique, tmp_path), secured_broker
    world = World()
    world.order(1, rule="v7", price=90)
    publish_journal(secured.bootstrap, roles.base.topics.journal, world.entries, roles.conf("tap"))
    services = Services(
        secured.bootstrap,
        roles.topics,
        roles.base.topics.journal,
        conf=roles.conf("service"),
        journal_conf=roles.conf("tap"),
        journal_group=f"{roles.base.group_id}-seed",
    )  # fmt: skip (they journal as the tap)
    operator, approver = roles.as_role("operator"), roles.as_role("approver")
    with Running(roles.as_role("worker"), roles.topics, tmp_path, services=services, reader=operator) as run:
        request_id = send_request(operator, Selector(SelectorKind.CORRELATION_ID, correlation_id="order-1"))
        waiting = run.status.wait(request_id, {"AWAITING_APPROVAL", "EXECUTING"})
        send_control(approver, request_id, ControlCommand.APPROVE, plan_hash=waiting.plan_hash)
        final = run.status.wait(request_id, {"COMPLETED", "PARTIALLY_ROLLED_BACK"}, 90)
    assert final.state.value == "COMPLETED", final.reason
    # No secret anywhere: not a password of the broker's users, not a private signing key, in any log
    # line or any record (key, value, headers) on any topic the rollback wrote.
    secrets = [*secured.credentials().values(), *(_pem_body(people()[1][p]) for p in (OPERATOR, APPROVER))]
    admin = roles.conf("admin")
    t = roles.base.topics
    written = [caplog.text.encode()]
    for topic in (
        t.status,
        t.deadletter,
        t.journal,
        *roles.topics.commands,
        roles.base.rollback.notify_topic,
    ):
        written += [_everything(m) for m in _read_all(admin, topic)]
    leaked = [s for s in secrets if any(s.encode() in blob for blob in written)]
    assert not leaked, f"{len(leaked)} secrets were printed or written"
    assert sorted(c["compensated_action_id"] for c in run.services.seen) == [
        "mail-1",
        "pay-1",
        "price-1",
        "reserve-1",
    ]


def _pem_body(path: Path) -> str:
    """The base64 of a private key file (what would show if it leaked)."""
    return "".join(line for line in path.read_text().splitlines() if not line.startswith("-----"))


def _read_all(conf: dict[str, str], topic: str) -> list[Message]:
    reader = Consumer({**conf, "group.id": "kafka-rewind-audit", "enable.auto.commit": False})
    try:
        return loop.read_to_end(reader, topic, what=topic)
    finally:
        reader.close()


def _everything(msg: Message) -> bytes:
    headers = b"".join(k.encode() + (v or b"") for k, v in header_pairs(msg.headers()))
    return (msg.key() or b"") + (msg.value() or b"") + headers
