"""Suite-wide rules: tests under integration/ are marked, and in CI they must really run.

A CI run (CI=true, or REWIND_REQUIRE_INTEGRATION=1) fails when an integration test was skipped or
none passed: a green run that never touched a broker would prove nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"


def _required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get("REWIND_REQUIRE_INTEGRATION")
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
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
