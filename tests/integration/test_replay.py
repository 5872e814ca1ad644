"""Filtered replay on a real broker: every record but the scope's, once, in order, in its partition,
marked with its origin; resumable after kill -9; refused past retention; a dry run writes nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from processor.app import Rewind
from processor.config import Settings
from processor.kafka import clients, loop
from processor.replay.scope import ReplayJob, ReplayRefused, Scope, StartPoint
from processor.rollback.request import FieldPredicate, Selector, SelectorKind
from tests.integration.replaykit import Copy, Sourced, fill_source, read_target, scope_dump, scope_entries

RECORDS = 24_000
KILLS = 4


def _settings(bootstrap: str, unique: str) -> Settings:
    return Settings(bootstrap_servers=bootstrap, group_id=f"rp-{unique}", transactional_id_prefix=f"tx-{unique}",
                    metrics_port=0)  # fmt: skip


def _world(bootstrap: str, unique: str, count: int) -> tuple[Settings, str, str, list[Sourced]]:
    """This test's settings, a source topic of ``count`` records (every 7th bad) and its target's name."""
    settings = _settings(bootstrap, unique)
    source = f"{unique}.events"
    return settings, source, f"{source}.replay", fill_source(bootstrap, settings, source, count)


def _config(settings: Settings, path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "bootstrap_servers": settings.bootstrap_servers, "group_id": settings.group_id,
        "transactional_id_prefix": settings.transactional_id_prefix, "metrics_port": 0,
    }))  # fmt: skip
    return path


def _replay_cmd(config: Path, source: str, target: str, dump: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "processor.cli", "--config", str(config), "replay", source, "--target", target,
            "--journal", str(dump), "--where", "bad == true", "--start", "earliest", *extra]  # fmt: skip


def _written(bootstrap: str, topic: str) -> int:
    """Offsets used in the target so far (committed, aborted and markers alike): grows while it copies."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        if topic not in consumer.list_topics(timeout=10).topics:
            return 0
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in range(3))
    finally:
        consumer.close()


def _expected(records: list[Sourced]) -> dict[tuple[int, int], Sourced]:
    return {(r.origin.partition, r.origin.offset): r for r in records if not r.bad}


def _assert_exact_copy(records: list[Sourced], found: list[Copy]) -> None:
    expected = _expected(records)
    origins = Counter((c.origin.partition, c.origin.offset) for c in found)
    duplicates = {k: n for k, n in origins.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} records copied twice, e.g. {list(duplicates)[:3]}"
    assert set(origins) == set(expected), (
        f"missing {len(set(expected) - set(origins))}, unexpected {len(set(origins) - set(expected))}"
    )
    last: dict[int, int] = {}
    for c in found:
        original = expected[(c.origin.partition, c.origin.offset)]
        assert c.partition == c.origin.partition  # the copy keeps its partition
        assert (c.key, c.value, c.headers) == (original.key, original.value, original.headers)
        assert c.origin.offset > last.get(c.partition, -1), "order within the partition changed"
        last[c.partition] = c.origin.offset


def test_kill_9_at_random_points_copies_every_good_record_exactly_once(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings, source, target, records = _world(kafka_bootstrap, unique, RECORDS)
    dump = scope_dump(records, tmp_path / "journal.jsonl")
    config = _config(settings, tmp_path / "rewind.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    log = (tmp_path / "replay.log").open("ab")
    cmd = _replay_cmd(config, source, target, dump, "--id", f"kill-{unique}", "--max-rate", "3000")
    rnd = random.Random(unique)
    killed_mid_work = 0
    for _ in range(KILLS):
        written = _written(kafka_bootstrap, target)
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 60
        while _written(kafka_bootstrap, target) <= written and proc.poll() is None:  # copying again
            assert time.monotonic() < deadline, "the replay made no progress in 60s"
            time.sleep(0.1)
        time.sleep(rnd.uniform(0.1, 1.5))
        if proc.poll() is None:
            killed_mid_work += 1
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert killed_mid_work >= 2, f"only {killed_mid_work} kills landed mid-replay: the test proved nothing"
    assert "resumed from the last commit" in done.stdout
    found = read_target(kafka_bootstrap, target, expect=len(_expected(records)))
    _assert_exact_copy(records, found)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert again.returncode == 0 and "copied 0 records" in again.stdout, again.stdout + again.stderr


def test_dry_run_counts_per_partition_and_writes_nothing(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings, source, target, records = _world(kafka_bootstrap, unique, 3_000)
    dump = scope_dump(records, tmp_path / "journal.jsonl")
    config = _config(settings, tmp_path / "rewind.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}
    result = subprocess.run(_replay_cmd(config, source, target, dump, "--dry-run", "--format", "json"),
                            capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    good = sum(not r.bad for r in records)
    assert (report["dry_run"], report["copied"], report["skipped"]) == (True, good, len(records) - good)
    for row in report["partitions"]:
        mine = [r for r in records if r.origin.partition == row["partition"]]
        assert (row["copied"], row["skipped"]) == (sum(not r.bad for r in mine), sum(r.bad for r in mine))
        assert (row["start"], row["end"], row["target"]) == (0, len(mine), target)
    topics = Rewind(settings).existing_cluster  # the target was never created
    assert target not in clients.admin(settings, topics).list_topics(timeout=10).topics


def test_default_start_is_just_before_the_scope_and_the_rest_follows(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings, source, target, records = _world(kafka_bootstrap, unique, 600)
    late = [r for r in records if r.origin.offset >= 100]  # the scope: bad records from offset 100 on
    scope = Scope.of(scope_entries(r for r in late if r.bad))
    app = Rewind(settings)
    report = app.replay("default", [ReplayJob(source, target)], scope, StartPoint(), threading.Event())
    reader = clients.consumer(settings, kafka_bootstrap, f"now-{unique}")
    try:  # readable as soon as the replay returns: a rebuild may start at once
        assert len(loop.read_to_end(reader, target, what="the copies")) == report.copied
    finally:
        reader.close()
    for row in report.partitions:
        first_bad = min(r.origin.offset for r in late if r.bad and r.origin.partition == row.partition)
        assert row.start == first_bad
    found = read_target(kafka_bootstrap, target, expect=report.copied)
    expected = {(r.origin.partition, r.origin.offset) for r in records
                if not (r in late and r.bad) and r.origin.offset >= report.partitions[r.origin.partition].start}  # fmt: skip
    assert {(c.origin.partition, c.origin.offset) for c in found} == expected


def test_a_start_past_retention_is_refused_before_anything_is_written(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings, source, target, records = _world(kafka_bootstrap, unique, 300)
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(source, p, 50) for p in range(3)]).values():
        future.result()  # retention removed each partition's first 50 records
    scope = Scope.of(scope_entries(r for r in records if r.bad))
    app = Rewind(settings)
    with pytest.raises(ReplayRefused) as refused:
        app.replay(
            "retention", [ReplayJob(source, target)], scope, StartPoint.parse("offset:10"), threading.Event()
        )
    assert "holds records only from offset 50" in str(refused.value)
    assert source in str(refused.value)
    assert target not in admin.list_topics(timeout=10).topics


def test_a_selector_scope_is_planned_with_everything_downstream(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, unique)
    records = fill_source(kafka_bootstrap, settings, f"{unique}.events", 70)
    dump = scope_dump(records, tmp_path / "journal.jsonl")
    selector = Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse("bad == true"))
    scope = Rewind(settings).replay_scope(selector=selector, dump=dump)
    assert scope.actions == sum(r.bad for r in records)


def test_a_missing_source_a_narrow_target_and_a_copy_into_itself_are_refused(
    kafka_bootstrap: str, unique: str
) -> None:
    settings, source, target, records = _world(kafka_bootstrap, unique, 30)
    clients.ensure_topics(clients.admin(settings, kafka_bootstrap), [f"{unique}.narrow"], partitions=1,
                          replication_factor=1)  # fmt: skip
    scope = Scope.of(scope_entries(r for r in records if r.bad))
    app, stop, start = Rewind(settings), threading.Event(), StartPoint.parse("earliest")
    cases = [
        (ReplayJob(f"{unique}.nothing", target), f"source topic {unique}.nothing is not there"),
        (ReplayJob(source, f"{unique}.narrow"), f"target topic {unique}.narrow has 1 partitions"),
        (ReplayJob(source, source), f"replay of {source} into itself"),
    ]
    for job, problem in cases:
        with pytest.raises(ReplayRefused) as refused:
            app.replay(f"bad-{unique}", [job], scope, start, stop)
        assert problem in str(refused.value)
    assert target not in clients.admin(settings, kafka_bootstrap).list_topics(timeout=10).topics
    peek = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "watermarks"})
    try:  # refused before anything was copied
        assert peek.get_watermark_offsets(TopicPartition(f"{unique}.narrow", 0), 10)[1] == 0
    finally:
        peek.close()
