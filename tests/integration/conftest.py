"""Integration tests share the broker fixtures of tests/conftest.py, and run some on both brokers."""

from __future__ import annotations

import os

import pytest

from processor.kafka.local_broker import LocalBroker
from tests.integration.principals import Cluster


def _clusters() -> list[str]:
    """The secured local broker always; a plain one only when it is a cluster named for the run (the
    plain local broker has the fault suite's kill-at-every-commit-step tests, and CI time is short)."""
    return ["plain", "secured"] if os.environ.get("REWIND_TEST_BOOTSTRAP") else ["secured"]


@pytest.fixture(params=_clusters())
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The named cluster, then the secured local broker with every role on its own principal."""
    if request.param == "plain":
        return Cluster(request.getfixturevalue("kafka_bootstrap"))
    broker: LocalBroker = request.getfixturevalue("secured_broker")
    return Cluster(broker.bootstrap, broker)
