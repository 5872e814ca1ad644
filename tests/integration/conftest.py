"""A real Kafka broker for the session: an existing cluster, a testcontainer, or the local broker.

Order: REWIND_TEST_BOOTSTRAP names an existing cluster; else a Kafka testcontainer when a Docker
engine answers (image from REWIND_TEST_KAFKA_IMAGE); else the project's own local KRaft broker on
free loopback ports in a temporary directory.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from processor.config import LocalBrokerSettings, Settings
from processor.devenv.procs import free_port
from processor.kafka.local_broker import LocalBroker

DEFAULT_TEST_IMAGE = "confluentinc/cp-kafka:8.1.0"  # Apache Kafka 4.1


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("REWIND_TEST_BOOTSTRAP")
    if existing:
        yield existing
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        image = os.environ.get("REWIND_TEST_KAFKA_IMAGE", DEFAULT_TEST_IMAGE)
        with KafkaContainer(image).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = LocalBroker(local_broker_settings(tmp_path_factory))
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()


def local_broker_settings(tmp_path_factory: pytest.TempPathFactory) -> LocalBrokerSettings:
    """A broker of its own: free ports, a fresh data dir, the shared jar cache."""
    return LocalBrokerSettings(
        port=free_port(),
        controller_port=free_port(),
        data_dir=tmp_path_factory.mktemp("broker"),
        ready_timeout_s=120,
    )


@pytest.fixture(scope="session")
def settings(kafka_bootstrap: str) -> Settings:
    return Settings(bootstrap_servers=kafka_bootstrap, metrics_port=0)


@pytest.fixture
def unique() -> str:
    """A suffix that keeps each test's topics, groups and transactional ids its own."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic(unique: str) -> str:
    return f"test.{unique}"
