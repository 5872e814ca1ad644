"""Suite-wide rules and the real broker every integration and end-to-end test shares.

Tests under integration/ and e2e/ are marked `integration`, and in CI they must really run.

A CI run (CI=true, or REWIND_REQUIRE_INTEGRATION=1) fails when an integration test was skipped or
none passed: a green run that never touched a broker would prove nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.config import LocalBrokerSettings, Settings
from processor.devenv.procs import free_port
from processor.kafka.local_broker import LocalBroker

NEEDS_BROKER = tuple(Path(__file__).parent / d for d in ("integration", "e2e", "faults"))


def _required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get("REWIND_REQUIRE_INTEGRATION")
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parents = Path(str(item.fspath)).parents
        if any(d in parents for d in NEEDS_BROKER):
            item.add_marker(pytest.mark.integration)


_counts = {"passed": 0, "skipped": 0, "failed": 0, "refused": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "integration" not in report.keywords:
        return
    if report.when == "call" and report.passed:
        _counts["passed"] += 1
    elif report.skipped:
        _counts["skipped"] += 1
    elif report.failed:
        _counts["failed"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Runs before the terminal summary is written, so the verdict below is printed with it.
    if _required() and exitstatus == 0 and (_counts["skipped"] or not _counts["passed"]):
        session.exitstatus = 1
        _counts["refused"] = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    c = _counts
    terminalreporter.write_line(
        f"integration tests on a real broker: {c['passed']} passed, {c['failed']} failed, "
        f"{c['skipped']} skipped"
    )
    if c.get("refused"):
        terminalreporter.write_line(
            "FAILED: in CI every integration test must run against a real broker", red=True
        )


@pytest.fixture(scope="session", autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What components write to their default state directory (graph checkpoints, action stores)
    stays in this run's temporary directory, not the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    yield
    patch.undo()


# -- the broker ------------------------------------------------------------------------------------
# Order: REWIND_TEST_BOOTSTRAP names an existing cluster; else a Kafka testcontainer when a Docker
# engine answers (image from REWIND_TEST_KAFKA_IMAGE); else the project's own local KRaft broker on
# free loopback ports in a temporary directory.

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
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """The project's local broker secured: SASL/SCRAM-SHA-512 over TLS, StandardAuthorizer, no ACL no
    access, one SCRAM user per role (always the local broker: it must hold those users)."""
    secured = local_broker_settings(tmp_path_factory).model_copy(update={"secure": True})
    broker = LocalBroker(secured)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


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
