"""The tap's Kafka loop: consume sources, run the core, produce journal entries and dead letters, and
commit the consumed offsets in the same Kafka transaction (exactly once), on processor.kafka.loop.

One session:
1. ``init_transactions``: fences a previous instance with the same transactional id and aborts its
   open transaction, so nothing half-written is ever read back.
2. Seed the core from the journal (read_committed, over the dedupe window): what is journaled already
   is known as duplicate, and intents still waiting for an outcome are pending again.
3. Loop: consume -> core -> produce; every ``commit_interval_ms``, the loop module's commit.
   A partition's committed offset never passes a record the core still holds (an open source
   transaction), so after a crash those records are read again; the seeded dedupe drops the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from processor.config import Settings
from processor.errors import ConfigError, Restart
from processor.kafka import clients, loop
from processor.kafka.deadletters import dead_letter_message
from processor.metrics import Metrics
from processor.runtime import tune_gc
from processor.tap.core import Produced, TapCore

logger = logging.getLogger(__name__)

BATCH = 500
LAG_EVERY_S = 5.0


def source_topics(settings: Settings) -> list[str]:
    topics = [*settings.topics.cdc, *settings.topics.tx_metadata, *settings.topics.outbox]
    if not topics:
        raise ConfigError(
            "the tap has no source topics",
            hint="set REWIND_TOPICS__CDC, __TX_METADATA and/or __OUTBOX (JSON lists of topic names)",
        )
    return topics


@dataclass
class _Session:
    consumer: Consumer
    producer: Producer
    core: TapCore
    positions: dict[tuple[str, int], int]
    tx_started: float = 0.0
    dirty: bool = False
    revoked: bool = False


class TapRunner:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        make_core: Callable[[], TapCore],
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.make_core = make_core
        self.metrics = metrics
        self.clock = clock
        self.topics = source_topics(settings)
        self.transactional_id = f"{settings.transactional_id_prefix}-tap"

    def run(self, stop: threading.Event) -> None:
        loop.run_sessions("tap", self._session, stop, on_restart=self._restarted)

    def _restarted(self, cause: Restart) -> None:
        if self.metrics is not None:
            self.metrics.session_restarted("tap", cause)

    # -- one session ------------------------------------------------------------------------------

    def _session(self, stop: threading.Event) -> None:
        producer = clients.producer(self.settings, self.bootstrap, transactional_id=self.transactional_id)
        loop.init_transactions(producer, "tap")
        core = self.make_core()
        seeded = core.seed_journal(self._journal_values())
        tune_gc()
        logger.info(
            "tap (%s engine) seeded with %d journal entries; dedupe holds %d identities",
            core.engine,
            seeded,
            core.dedupe_size,
        )
        consumer = clients.consumer(
            self.settings, self.bootstrap, self.settings.group_id,
            extra={"group.instance.id": f"{self.settings.client_id}-{self.settings.tap.instance_id}",
                   "session.timeout.ms": 10_000,
                   # a source topic Debezium has not created yet is picked up seconds after it appears
                   "topic.metadata.refresh.interval.ms": 5_000},
        )  # fmt: skip
        session = _Session(consumer, producer, core, {})
        consumer.subscribe(self.topics, on_revoke=lambda _c, _p: setattr(session, "revoked", True))
        try:
            self._loop(session, stop)
        finally:
            consumer.close()
            producer.flush(10)

    def _loop(self, s: _Session, stop: threading.Event) -> None:
        interval = self.settings.tap.commit_interval_ms / 1000
        s.producer.begin_transaction()
        s.tx_started = time.monotonic()
        last_lag = 0.0
        while not stop.is_set():
            messages = s.consumer.consume(BATCH, timeout=min(interval, 0.1))
            if self.metrics:
                self.metrics.beat("tap", bool(s.consumer.assignment()))
            if messages:
                produced = s.core.consume(messages, self._now_ms())
                s.positions.update(produced.positions)
                s.dirty = True
                self._emit(s, produced)
            s.producer.poll(0)  # serve delivery reports once per batch
            self._emit(s, s.core.expire(self._now_ms()))
            if s.revoked:
                loop.abort(s.producer, "partitions were revoked (rebalance)")
            if time.monotonic() - s.tx_started >= interval:
                self._commit(s)
            if self.metrics and time.monotonic() - last_lag >= LAG_EVERY_S:
                self._report_lag(s)
                last_lag = time.monotonic()
        self._commit(s)

    def _emit(self, s: _Session, out: Produced) -> None:
        journal, dlq = self.settings.topics.journal, self.settings.topics.deadletter
        produce = s.producer.produce
        for key, value in out.journal:
            produce(journal, key=key, value=value)
        if out.journal:
            s.dirty = True
        for dead in out.dead_letters:
            message = dead_letter_message(dead, self.settings.topics.deadletter_max_bytes)
            s.producer.produce(dlq, key=message.key, value=message.value, headers=message.headers)
            note = " (too large: written as a reference)" if message.truncated else ""
            logger.warning("dead letter%s: %s", note, dead.message)

    def _commit(self, s: _Session) -> None:
        if not s.dirty:
            s.tx_started = time.monotonic()
            return
        started = time.perf_counter()
        held = s.core.safe_offsets()
        offsets = [
            TopicPartition(topic, partition, min(next_offset, held.get((topic, partition), next_offset)))
            for (topic, partition), next_offset in s.positions.items()
        ]
        loop.commit(s.producer, offsets, s.consumer.consumer_group_metadata())
        if self.metrics:
            self.metrics.tap_committed(time.perf_counter() - started, s.core)
        s.dirty = False
        s.tx_started = time.monotonic()

    # -- start-up and lag -------------------------------------------------------------------------

    def _journal_values(self) -> list[bytes]:
        """Committed journal entries (Avro bytes) within the dedupe window, read once at session start."""
        topic = self.settings.topics.journal
        reader = clients.consumer(self.settings, self.bootstrap, f"{self.settings.group_id}-seed")
        try:
            parts = loop.partitions(reader, topic, missing_ok=True)  # no journal yet: nothing to seed
            if not parts:
                return []
            since = int((self.clock() - self.settings.tap.dedupe_window_hours * 3600) * 1000)
            starts = reader.offsets_for_times([TopicPartition(topic, p, since) for p in parts], 30)
            begin = {tp.partition: tp.offset for tp in starts if tp.offset >= 0}
            stop_at = loop.ends(reader, topic, parts)
            # A partition with nothing since the window started: nothing of it to read.
            begin |= {p: stop_at[p] for p in parts if p not in begin}
            found = loop.read_to_end(reader, topic, begin, what="the journal back at start-up")
            return [v for m in found if (v := m.value()) is not None]
        finally:
            reader.close()

    def _report_lag(self, s: _Session) -> None:
        assert self.metrics is not None
        for tp in s.consumer.assignment():
            # The high watermark each fetch response brought: a query (cached=False) on this connection
            # would wait behind the consumer's own long-poll fetch, up to fetch.wait.max.ms per partition.
            _low, high = s.consumer.get_watermark_offsets(tp, cached=True)
            position = s.positions.get((tp.topic, tp.partition))
            if position is not None and high >= 0:
                self.metrics.tap_lag(tp.topic, tp.partition, max(high - position, 0))

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)
