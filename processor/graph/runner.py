"""The graph builder's Kafka loop: journal entries in, the whole-graph index and its checkpoint out.

Start-up loads the checkpoint and resumes the journal at the offsets it reflects (no consumer group:
the checkpoint is where the offsets live, so index and offsets can never disagree). Without one, it
reads the journal from the start. It checkpoints every ``checkpoint_interval_s`` and when stopped.
Beside the graph it keeps the entity index (every row's versions, ``graph.entities``), read from the
older of its own position and the checkpoint's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from processor.config import Settings
from processor.errors import Restart, SchemaError
from processor.graph import store
from processor.graph.entities import EntityIndex, index_path
from processor.graph.history import committed_at
from processor.graph.queries import new_cycles
from processor.journal.serde import deserialize
from processor.kafka import clients, loop
from processor.kafka.messages import is_error
from processor.metrics import Metrics
from processor.runtime import Progress, release_free_memory, tune_gc

logger = logging.getLogger(__name__)


class GraphBuilder:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        on_catch_up: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.on_catch_up = on_catch_up  # the read up to the journal's end at start, then no more
        self._catch_up: tuple[dict[int, int], dict[int, int]] | None = None  # (from, to) per partition
        self.bootstrap = bootstrap
        self.metrics = metrics
        self.clock = clock
        self.topic = settings.topics.journal
        self.path = settings.graph.checkpoint_path
        self.checkpoint: store.Checkpoint | None = None  # the current session's

    def run(self, stop: threading.Event) -> store.Checkpoint:
        """Sessions (processor.kafka.loop) until stopped; each resumes from the checkpoint on disk."""
        loop.run_sessions("graph builder", self._session, stop, on_restart=self._restarted)
        assert self.checkpoint is not None
        return self.checkpoint

    def _restarted(self, cause: Restart) -> None:
        if self.metrics is not None:
            self.metrics.session_restarted("graph", cause)

    def _session(self, stop: threading.Event) -> None:
        self.checkpoint = checkpoint = store.load_or_empty(self.path, self.topic)
        self.index, why = EntityIndex.open(index_path(self.path, self.topic), self.topic)
        if why:
            logger.warning("graph: %s; the entity index is filled from the journal", why)
        self._index_at = self.index.positions()
        tune_gc()
        release_free_memory()
        logger.info(
            "graph: resumed %d actions from %s at offsets %s",
            len(checkpoint.graph),
            self.path,
            checkpoint.offsets,
        )
        consumer = clients.consumer(self.settings, self.bootstrap, f"{self.settings.group_id}-graph")
        try:
            self._assign(consumer, checkpoint, self._index_at)
            last_save = time.monotonic()
            while not stop.is_set():
                self._read(consumer, checkpoint)
                self._report_catch_up(consumer)
                if time.monotonic() - last_save >= self.settings.graph.checkpoint_interval_s:
                    self._save(checkpoint)
                    last_save = time.monotonic()
                if self.metrics:  # cheap, every pass: a stuck builder shows as a growing age
                    self.metrics.graph_checkpoint_age(self.clock() - checkpoint.written_at)
            self._save(checkpoint)
        finally:
            consumer.close()
            self.index.close()

    def _assign(self, consumer: Consumer, checkpoint: store.Checkpoint, index_at: dict[int, int]) -> None:
        """From the older of the checkpoint's and the entity index's positions: entries the graph holds
        already change nothing in it, and the index adds a version once."""
        parts = loop.partitions(consumer, self.topic)
        start = {p: min(checkpoint.offsets.get(p, 0), index_at.get(p, 0)) for p in parts}
        # Partitions whose entries the index lacks were deleted by retention: its first entry read
        # there bounds how far back the index is complete.
        lows = loop.beginnings(consumer, self.topic, parts)
        self._gaps = {p for p in parts if index_at.get(p, 0) < lows[p]}
        consumer.assign([TopicPartition(self.topic, p, start[p] or OFFSET_BEGINNING) for p in parts])
        if self.on_catch_up:
            first = {p: max(start[p], lows[p]) for p in parts}
            self._catch_up = (first, loop.ends(consumer, self.topic, parts))

    def _report_catch_up(self, consumer: Consumer) -> None:
        if self.on_catch_up is None or self._catch_up is None:
            return
        done, total = loop.read_so_far(consumer, *self._catch_up)
        self.on_catch_up(done, total)
        if done >= total:
            self._catch_up = None

    def _read(self, consumer: Consumer, checkpoint: store.Checkpoint) -> None:
        batch = []
        if self.metrics:
            self.metrics.beat("graph", bool(consumer.assignment()))
        for msg in consumer.consume(1000, timeout=0.2):
            if is_error(msg):
                continue
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            try:
                entry = deserialize(msg.value() or b"")
            except SchemaError as exc:  # rewind wrote the journal; a bad entry is a bug, not a stop
                logger.error("graph: skipped journal entry %s[%d]@%d: %s", self.topic, partition, offset, exc)
            else:
                checkpoint.graph.add(entry)
                batch.append(entry)
                if partition in self._gaps:
                    self._gaps.discard(partition)
                    self.index.raise_horizon(committed_at(entry))
            checkpoint.offsets[partition] = max(checkpoint.offsets.get(partition, 0), offset + 1)
            self._index_at[partition] = offset + 1
        if batch:
            self.index.add_many(batch)

    def _save(self, checkpoint: store.Checkpoint) -> None:
        for cycle in new_cycles(checkpoint.graph):
            logger.error(
                "graph: causal cycle among %d actions (a data error): %s", len(cycle), ", ".join(cycle[:20])
            )
            if self.metrics:
                self.metrics.cycle_detected()
        checkpoint.written_at = self.clock()
        store.save(self.path, checkpoint)
        self.index.mark(self._index_at)  # its versions were committed as they were read
        release_free_memory()
        logger.info(
            "graph: checkpoint of %d actions at offsets %s", len(checkpoint.graph), checkpoint.offsets
        )
        if self.metrics:  # edge counts need the derived edges: taken per checkpoint, not per pass
            self.metrics.graph_state(checkpoint.graph.stats())
            self.metrics.graph_checkpoint_age(0.0)
