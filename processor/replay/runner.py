"""The filtered replay's Kafka loop: copy each source partition's range into the target topic, skipping
the scope's records, exactly once.

Each transaction holds the copies and the source offsets they came from, committed to the replay's own
consumer group (``<group>-replay-<id>``) in the one commit order of ``kafka.loop``; each committed
offset carries the range it belongs to as metadata, so a restart (after ``kill -9`` too) resumes where
the last commit left off, towards the same end, with no duplicate and no gap. ``init_transactions``
first aborts what the killed run left open. A copy keeps the key, value, headers, timestamp and
partition of its original, and says where it came from in ``rewind.replay_of``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Protocol, cast

from confluent_kafka import OFFSET_INVALID, Consumer, Message, Producer, TopicPartition

from processor.config import Settings
from processor.errors import KafkaError, Where
from processor.kafka import clients, loop
from processor.kafka.messages import is_error
from processor.replay.scope import (
    HEADER_REPLAY_OF,
    PartitionRange,
    PartitionReport,
    ReplayJob,
    ReplayRefused,
    ReplayReport,
    Scope,
    StartKind,
    StartPoint,
    TopicReplay,
    plan_ranges,
)
from processor.runtime import Progress

logger = logging.getLogger(__name__)
BATCH = 1000


class ReplayObserver(Protocol):
    """What the metrics adapter hears."""

    def replayed(self, replay_id: str, copied: int, skipped: int) -> None: ...
    def replay_remaining(self, replay_id: str, records: int) -> None: ...


class FilteredReplay:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        replay_id: str,
        jobs: list[ReplayJob],
        scope: Scope,
        start: StartPoint,
        *,
        observer: ReplayObserver | None = None,
        on_progress: Progress | None = None,
        commit_every: int = 5000,
        max_rate: float | None = None,
    ) -> None:
        self.settings, self.bootstrap, self.replay_id = settings, bootstrap, replay_id
        self.jobs, self.scope, self.start = jobs, scope, start
        self.observer, self.on_progress, self.commit_every = observer, on_progress, commit_every
        self.max_rate = max_rate  # records handled per second at most (spares a busy cluster)
        self.group = f"{settings.group_id}-replay-{replay_id}"
        self._targets = {j.source: j.target for j in jobs}

    # -- what it will do -------------------------------------------------------------------------

    def prepare(self, consumer: Consumer) -> tuple[list[TopicReplay], dict[tuple[str, int], int]]:
        """Each topic's ranges (a resumed run keeps the first run's), and where each partition resumes.
        Refused, before anything is copied, when a start point is past retention or a target cannot
        take the source's partitions."""
        replays, resume = [], {}
        for job in self.jobs:
            if job.source == job.target:
                raise ReplayRefused(f"replay of {job.source} into itself", hint="name another target topic")
            parts = loop.partitions(consumer, job.source, missing_ok=True)
            if not parts:
                raise ReplayRefused(f"source topic {job.source} is not there", where=Where(topic=job.source))
            committed = self._committed(consumer, job.source, parts)
            fresh = plan_ranges(job.source, self.scope, self.start, self._held(consumer, job.source, parts),
                                self._at_time(consumer, job.source, parts))  # fmt: skip
            ranges = []
            for r in fresh:
                kept = committed.get(r.partition)
                if kept is not None:  # the first run's range, and how far its commits got
                    (start, end), resume[(job.source, r.partition)] = kept
                    r = PartitionRange.within(
                        r.partition, start, end, self.scope.skipped(job.source, r.partition)
                    )
                else:
                    resume[(job.source, r.partition)] = r.start
                ranges.append(r)
            replays.append(TopicReplay(job.source, job.target, tuple(ranges)))
        return replays, resume

    def _held(self, consumer: Consumer, topic: str, parts: list[int]) -> dict[int, tuple[int, int]]:
        low, high = loop.beginnings(consumer, topic, parts), loop.ends(consumer, topic, parts)
        return {p: (low[p], high[p]) for p in parts}

    def _at_time(self, consumer: Consumer, topic: str, parts: list[int]) -> dict[int, int | None]:
        if self.start.kind is StartKind.TIME:
            ts = self.start.value
        elif self.start.kind is StartKind.SCOPE:
            ts = self.scope.first_ts_ms
        else:
            return {}
        if ts is None:
            return {}
        found = consumer.offsets_for_times([TopicPartition(topic, p, ts) for p in parts], 30)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}

    def _committed(
        self, consumer: Consumer, topic: str, parts: list[int]
    ) -> dict[int, tuple[tuple[int, int], int]]:
        found = consumer.committed([TopicPartition(topic, p) for p in parts], 30)
        kept = {}
        for tp in found:
            if tp.offset == OFFSET_INVALID or not tp.metadata:
                continue
            try:
                meta = json.loads(tp.metadata)
                kept[tp.partition] = ((int(meta["start"]), int(meta["end"])), tp.offset)
            except (ValueError, KeyError, TypeError):
                continue  # not a range this replay wrote: start afresh
        return kept

    # -- running ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, dry_run: bool = False) -> ReplayReport:
        """Copy (or, dry, count) to the end. A retryable failure starts over from the last commit."""
        started = time.monotonic()
        reports: list[ReplayReport] = []
        loop.run_sessions("replay", lambda s: reports.append(self._session(s, dry_run)), stop)
        if not reports:
            raise loop.Stopping("replay stopped; run it again to resume")
        report = reports[-1]
        report.seconds = time.monotonic() - started
        return report

    def _session(self, stop: threading.Event, dry_run: bool) -> ReplayReport:
        consumer = clients.consumer(self.settings, self.bootstrap, self.group)
        producer: Producer | None = None
        try:
            if not dry_run:  # fence a killed run first: its open transaction aborts, its commits are stable
                producer = clients.producer(
                    self.settings, self.bootstrap,
                    transactional_id=f"{self.settings.transactional_id_prefix}-replay-{self.replay_id}",
                    extra={"linger.ms": 20, "batch.size": 1_000_000, "compression.type": "lz4"},
                )  # fmt: skip
                loop.init_transactions(producer, "replay")
            replays, resume = self.prepare(consumer)
            if producer is not None:
                self._targets_ready(replays)
            report = self._copy(consumer, producer, replays, resume, stop)
        finally:
            consumer.close()
            if producer is not None:
                producer.flush(10)
        return report

    def _targets_ready(self, replays: list[TopicReplay]) -> None:
        admin = clients.admin(self.settings, self.bootstrap)
        topics = admin.list_topics(timeout=30).topics
        for r in replays:
            needed = max((x.partition for x in r.ranges), default=0) + 1
            meta = topics.get(r.target)
            if meta is None:
                clients.ensure_topics(admin, [r.target], partitions=needed,
                                      replication_factor=self.settings.topics.replication_factor)  # fmt: skip
            elif len(meta.partitions) < needed:
                raise ReplayRefused(
                    f"target topic {r.target} has {len(meta.partitions)} partitions; the source {r.source} "
                    f"has {needed}, and each copy keeps its partition",
                    where=Where(topic=r.target),
                )

    def _copy(
        self,
        consumer: Consumer,
        producer: Producer | None,
        replays: list[TopicReplay],
        resume: dict[tuple[str, int], int],
        stop: threading.Event,
    ) -> ReplayReport:
        ranges = {(t.source, r.partition): r for t in replays for r in t.ranges}
        report = ReplayReport(self.replay_id, producer is None)
        rows = {
            key: PartitionReport(key[0], r.partition, r.start, r.end, resume[key])
            for key, r in ranges.items()
        }
        report.partitions = list(rows.values())
        position = dict(resume)
        todo = {key for key, r in ranges.items() if position[key] < r.end}
        total = sum(r.span for r in ranges.values())

        def done() -> int:
            return sum(position[k] - ranges[k].start for k in ranges)

        self._progress(done(), total)
        if not todo:
            return report
        consumer.assign([TopicPartition(t, p, position[(t, p)]) for t, p in todo])
        if producer is not None:
            producer.begin_transaction()
        uncommitted, last_commit = 0, time.monotonic()
        began, handled = last_commit, 0
        while todo:
            if stop.is_set():
                raise loop.Stopping("replay stopped; run it again to resume")
            batch = consumer.consume(BATCH if self.max_rate is None else max(1, int(self.max_rate / 10)), 0.5)
            handled += len(batch)
            for msg in batch:  # the hot loop: one lookup per record, nothing allocated but the copy
                if msg.error() is not None and is_error(msg):
                    continue
                # a record (an error event was handled above) has its topic, partition and offset
                key = cast(tuple[str, int], (msg.topic(), msg.partition()))
                r, offset = ranges[key], cast(int, msg.offset())
                if offset >= r.end or key not in todo:
                    continue  # written after the replay began: not part of it
                row = rows[key]
                if offset in r.skip:
                    row.skipped += 1
                else:
                    row.copied += 1
                    uncommitted += 1
                    if producer is not None:
                        self._produce(producer, msg, key, offset)
            for tp in consumer.position([TopicPartition(t, p) for t, p in todo]):
                key = (tp.topic, tp.partition)
                if tp.offset >= 0:
                    position[key] = min(tp.offset, ranges[key].end)
            finished = {k for k in todo if position[k] >= ranges[k].end}
            if finished:
                consumer.pause([TopicPartition(t, p) for t, p in finished])
            if producer is not None and (
                finished or not (todo - finished) or uncommitted >= self.commit_every
                or time.monotonic() - last_commit > 1.0
            ):  # fmt: skip
                self._commit(producer, consumer, ranges, position)
                uncommitted, last_commit = 0, time.monotonic()
            todo -= finished
            self._progress(done(), total)
            if self.max_rate:
                time.sleep(max(0.0, began + handled / self.max_rate - time.monotonic()))
        if producer is not None:
            self._visible(consumer, [(self._targets[t], p) for t, p in ranges])
        if self.observer is not None:
            self.observer.replayed(self.replay_id, report.copied, report.skipped)
        return report

    def _visible(self, consumer: Consumer, targets: list[tuple[str, int]], timeout_s: float = 60) -> None:
        """Wait until a read_committed reader sees every copy: a commit returns before the brokers have
        written its markers, and a rebuild started at once would otherwise stop short of them. The copies
        are readable when no transaction is open below the end each target partition has now."""
        peek = clients.consumer(self.settings, self.bootstrap, self.group, read_committed=False)
        try:
            ends = {
                tp: peek.get_watermark_offsets(TopicPartition(*tp), 10, cached=False)[1] for tp in targets
            }
        finally:
            peek.close()
        deadline = time.monotonic() + timeout_s
        for (topic, partition), end in sorted(ends.items()):
            tp = TopicPartition(topic, partition)
            while consumer.get_watermark_offsets(tp, 10, cached=False)[1] < end:
                if time.monotonic() > deadline:
                    where = Where(topic=topic, partition=partition, offset=end)
                    why = f"replay: the copies are not readable after {timeout_s:.0f}s"
                    raise KafkaError(why, where=where, retryable=True)
                time.sleep(0.02)

    def _produce(self, producer: Producer, msg: Message, key: tuple[str, int], offset: int) -> None:
        headers = cast(list[tuple[str, str | bytes | None]], msg.headers() or [])  # a list, from a consumer
        headers.append((HEADER_REPLAY_OF, f"{key[0]}/{key[1]}/{offset}"))  # Origin.header(), inline
        kind, ts = msg.timestamp()
        while True:
            try:
                producer.produce(self._targets[key[0]], value=msg.value(), key=msg.key(), headers=headers,
                                 partition=key[1], timestamp=ts if kind else 0)  # fmt: skip
                return
            except BufferError:  # the local queue is full: let deliveries drain
                producer.poll(0.1)

    def _commit(
        self,
        producer: Producer,
        consumer: Consumer,
        ranges: dict[tuple[str, int], PartitionRange],
        position: dict[tuple[str, int], int],
    ) -> None:
        """Every partition's position with its range, finished ones too: a resumed run then keeps the
        first run's ranges everywhere."""
        offsets = [
            TopicPartition(t, p, position[(t, p)],
                           metadata=json.dumps({"start": ranges[(t, p)].start, "end": ranges[(t, p)].end}))
            for t, p in sorted(ranges)
        ]  # fmt: skip
        loop.commit(producer, offsets, consumer.consumer_group_metadata())

    def _progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)
        if self.observer is not None:
            self.observer.replay_remaining(self.replay_id, total - done)
