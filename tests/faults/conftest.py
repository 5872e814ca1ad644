"""The fault suite's fixtures: each case breaks a broker of its own; the outcomes of every case go into
one table, written where REWIND_RELIABILITY_MD names (docs/reliability.md keeps the last one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.kafka.local_broker import LocalBroker
from tests.conftest import local_broker_settings
from tests.faults.faultkit import Bouncer, Report

_REPORT = Report()


@pytest.fixture
def bouncer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bouncer]:
    broker = LocalBroker(local_broker_settings(tmp_path_factory))
    broker.start()
    try:
        yield Bouncer(broker)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    yield _REPORT
    target = os.environ.get("REWIND_RELIABILITY_MD")
    if target and _REPORT.rows:
        _REPORT.write(Path(target))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT.rows:
        terminalreporter.write_sep("-", "fault suite: cases x outcomes")
        terminalreporter.write(_REPORT.markdown())
