"""A jar fetch with progress: Maven's listing of the closure counts exactly the jars the copy brings."""

from __future__ import annotations

from pathlib import Path

from processor.config import LocalBrokerSettings
from processor.devenv.procs import fetch_closure


def test_the_progress_of_a_fetch_ends_at_the_number_of_jars_fetched(tmp_path: Path) -> None:
    version = LocalBrokerSettings().kafka_version
    calls: list[tuple[int, int]] = []
    dest = fetch_closure(
        "broker.pom.xml", tmp_path / "jars", {"kafka.version": version}, "broker jars",
        lambda done, total: calls.append((done, total)),
    )  # fmt: skip
    jars = sorted(p.name for p in dest.glob("*.jar"))
    assert jars and f"kafka_2.13-{version}.jar" in jars
    assert calls[-1] == (len(jars), len(jars))
    assert all(done <= total == len(jars) for done, total in calls)
    again: list[tuple[int, int]] = []
    fetch_closure(
        "broker.pom.xml", dest, {"kafka.version": version}, "broker jars", lambda d, t: again.append((d, t))
    )
    assert again == [], "a complete fetch is reused without asking Maven"
