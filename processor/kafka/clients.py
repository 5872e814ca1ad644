"""Client factories: every producer, consumer and admin client is built here from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType  # (re-exported, untyped)
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.cimpl import NewTopic

from processor.config import Settings
from processor.errors import KafkaError
from processor.security.acls import Grant

# librdkafka's own log lines (mostly transient retries) go through Python logging under this name;
# the CLI shows them only at DEBUG.
LIBRDKAFKA_LOGGER = logging.getLogger("rewind.librdkafka")


def _base(settings: Settings, bootstrap: str) -> dict[str, Any]:
    return {**settings.client_config(bootstrap), "logger": LIBRDKAFKA_LOGGER}


def producer(
    settings: Settings,
    bootstrap: str,
    *,
    transactional_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Producer:
    conf: dict[str, Any] = {
        **(extra or {}),
        **_base(settings, bootstrap),
        **settings.clients.producer,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    }
    if transactional_id:
        conf["transactional.id"] = transactional_id
    return Producer(conf)


def publish(
    settings: Settings, bootstrap: str, topic: str, key: str, value: bytes,
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> str | None:  # fmt: skip
    """One record, delivered (or not) before returning: the delivery error, if any."""
    sent = producer(settings, bootstrap)
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    sent.produce(topic, key=key, value=value, headers=headers or [], on_delivery=delivered)
    sent.flush(30)
    return errors[0] if errors else None


def consumer(
    settings: Settings,
    bootstrap: str,
    group_id: str,
    *,
    read_committed: bool = True,
    extra: dict[str, Any] | None = None,
) -> Consumer:
    return Consumer(
        {
            **(extra or {}),
            **_base(settings, bootstrap),
            **settings.clients.consumer,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "enable.partition.eof": False,
        }
    )


def admin(settings: Settings, bootstrap: str) -> AdminClient:
    return AdminClient(_base(settings, bootstrap))


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str | None
    brokers: int
    topics: int


def describe_cluster(client: AdminClient, timeout_s: float = 10.0) -> ClusterInfo:
    try:
        meta = client.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaError(f"the cluster did not answer: {exc}", retryable=True) from exc
    return ClusterInfo(meta.cluster_id, len(meta.brokers), len(meta.topics))


def ensure_topics(
    client: AdminClient,
    names: list[str],
    *,
    partitions: int,
    replication_factor: int,
    timeout_s: float = 30.0,
    configs: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (with per-topic configs); return the ones created."""
    existing = set(client.list_topics(timeout=timeout_s).topics)
    wanted = [n for n in dict.fromkeys(names) if n not in existing]
    if not wanted:
        return []
    futures = client.create_topics(
        [
            NewTopic(
                n,
                num_partitions=partitions,
                replication_factor=replication_factor,
                config=(configs or {}).get(n, {}),
            )
            for n in wanted
        ],
        operation_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if err.name() != "TOPIC_ALREADY_EXISTS":  # lost a race with another creator: fine
                raise KafkaError(
                    f"cannot create topic {name}: {err.name()}: {err.str()}", retryable=err.retriable()
                ) from exc
    return created


def create_acls(client: AdminClient, grants: list[Grant], timeout_s: float = 30.0) -> int:
    """ALLOW bindings for the grants (creating one that exists changes nothing); returns how many."""
    bindings = [
        AclBinding(
            ResourceType[g.resource.value],
            g.name,
            ResourcePatternType[g.pattern.value],
            f"User:{g.principal}",
            "*",
            AclOperation[g.operation.value],
            AclPermissionType.ALLOW,
        )
        for g in grants
    ]
    if not bindings:
        return 0
    for binding, future in client.create_acls(bindings, request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            err = exc.args[0]
            raise KafkaError(
                f"cannot create the ACL {binding}: {err.str()}", retryable=err.retriable(),
                hint="apply them as the cluster's admin (a super user, or allowed ALTER on the cluster)",
            ) from exc  # fmt: skip
    return len(bindings)
