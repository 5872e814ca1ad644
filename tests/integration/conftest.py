"""Integration tests share the broker fixtures of tests/conftest.py, and run some on both brokers."""

from __future__ import annotations

import pytest

from processor.kafka.local_broker import LocalBroker
from tests.integration.principals import Cluster


@pytest.fixture(params=["plain", "secured"])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The plain broker, then the secured one with every role on its own principal."""
    if request.param == "plain":
        return Cluster(request.getfixturevalue("kafka_bootstrap"))
    broker: LocalBroker = request.getfixturevalue("secured_broker")
    return Cluster(broker.bootstrap, broker)
