"""Nothing under deploy/ goes unchecked: every file there is named by one of these tests, so a file
added later without a validator fails here rather than in someone's cluster."""

from __future__ import annotations

from pathlib import Path

from tests.unit.deploy.exported import DEPLOY


def test_every_file_under_deploy_is_named_by_a_deploy_test() -> None:
    tests = "\n".join(
        p.read_text() for p in Path(__file__).parent.glob("test_*.py") if p.name != Path(__file__).name
    )
    unchecked = [
        str(f.relative_to(DEPLOY)) for f in sorted(DEPLOY.rglob("*")) if f.is_file() and f.name not in tests
    ]
    assert not unchecked, f"deploy files no test checks: {unchecked}"
