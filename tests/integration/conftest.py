"""Integration tests share the broker fixtures of tests/conftest.py, and add the secured broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from processor.config import LocalBrokerSettings
from processor.devenv.procs import free_port
from processor.kafka.local_broker import LocalBroker
from tests.integration.principals import Cluster


@pytest.fixture(scope="session")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """The project's local broker secured: SASL/SCRAM-SHA-512 over TLS, StandardAuthorizer, no ACL no
    access, one SCRAM user per role (always the local broker: it must hold those users)."""
    broker = LocalBroker(LocalBrokerSettings(
        data_dir=tmp_path_factory.mktemp("secured-broker"), port=free_port(), controller_port=free_port(),
        secure=True, ready_timeout_s=120,
    ))  # fmt: skip
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(params=["plain", "secured"])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The plain broker, then the secured one with every role on its own principal."""
    if request.param == "plain":
        return Cluster(request.getfixturevalue("kafka_bootstrap"))
    broker: LocalBroker = request.getfixturevalue("secured_broker")
    return Cluster(broker.bootstrap, broker)
