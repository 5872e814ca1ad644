"""What a filtered replay copies (pure): per source partition, where it starts, where it ends, and which
offsets belong to the scope and are skipped.

The default start is the known-good point just before the scope: in a partition holding scope records,
the first of them; in one holding none, the first record written at or after the scope's first record
(a cut across the topic at one time), else the partition's end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from processor.errors import RewindError, Where
from processor.journal.model import JournalEntry

HEADER_REPLAY_OF = "rewind.replay_of"


class ReplayRefused(RewindError):
    """The replay cannot be run as asked; nothing was copied (not retryable)."""


class StartKind(StrEnum):
    SCOPE = "scope"  # just before the scope's first record
    EARLIEST = "earliest"  # the first record each partition still holds
    OFFSET = "offset"  # the same offset in every partition
    TIME = "time"  # the first record at or after a time


_OFFSET = re.compile(r"offset:(\d+)")


@dataclass(frozen=True, slots=True)
class StartPoint:
    kind: StartKind = StartKind.SCOPE
    value: int | None = None  # the offset, or the time in epoch milliseconds

    @classmethod
    def parse(cls, text: str) -> StartPoint:
        """``scope``, ``earliest``, ``offset:N``, epoch milliseconds, or an ISO-8601 time."""
        text = text.strip()
        if text in (StartKind.SCOPE, StartKind.EARLIEST):
            return cls(StartKind(text))
        if match := _OFFSET.fullmatch(text):
            return cls(StartKind.OFFSET, int(match.group(1)))
        if text.isdigit():
            return cls(StartKind.TIME, int(text))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ReplayRefused(
                f"start point {text!r} is none of scope, earliest, offset:N, epoch ms or an ISO-8601 time",
                where=Where(component="replay"),
            ) from None
        if moment.tzinfo is None:
            raise ReplayRefused(f"start time {text!r} needs a time zone (e.g. +00:00 or Z)")
        return cls(StartKind.TIME, int(moment.timestamp() * 1000))

    def __str__(self) -> str:
        if self.kind is StartKind.OFFSET:
            return f"offset:{self.value}"
        if self.kind is StartKind.TIME:
            return f"time:{self.value}"
        return self.kind.value


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a copy came from: its ``rewind.replay_of`` header is 'topic/partition/offset'."""

    topic: str
    partition: int
    offset: int

    def header(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Origin:
        topic, partition, offset = text.rsplit("/", 2)
        return cls(topic, int(partition), int(offset))


@dataclass(frozen=True, slots=True)
class Scope:
    """A scope's records in the source topics: topic -> partition -> offsets, and when it began."""

    records: Mapping[str, Mapping[int, frozenset[int]]]
    first_ts_ms: int | None  # the commit time of the scope's earliest action
    actions: int = 0

    @classmethod
    def of(cls, entries: Iterable[JournalEntry]) -> Scope:
        records: dict[str, dict[int, set[int]]] = {}
        first: int | None = None
        count = 0
        for entry in entries:
            count += 1
            for p in entry.positions:
                records.setdefault(p.topic, {}).setdefault(p.partition, set()).add(p.offset)
            ts = entry.commit_ts_ms or entry.journal_ts_ms
            first = ts if first is None else min(first, ts)
        frozen = {t: {p: frozenset(o) for p, o in parts.items()} for t, parts in records.items()}
        return cls(frozen, first, count)

    def skipped(self, topic: str, partition: int) -> frozenset[int]:
        return self.records.get(topic, {}).get(partition, frozenset())


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Copy offsets [start, end) of one partition, skipping ``skip``."""

    partition: int
    start: int
    end: int
    skip: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def within(cls, partition: int, start: int, end: int, scope_offsets: frozenset[int]) -> PartitionRange:
        """The range, skipping the scope's offsets that fall inside it."""
        return cls(partition, start, end, frozenset(o for o in scope_offsets if start <= o < end))

    @property
    def span(self) -> int:
        return max(self.end - self.start, 0)


@dataclass(frozen=True, slots=True)
class TopicReplay:
    source: str
    target: str
    ranges: tuple[PartitionRange, ...]


def plan_ranges(
    topic: str,
    scope: Scope,
    start: StartPoint,
    held: Mapping[int, tuple[int, int]],
    at_time: Mapping[int, int | None],
) -> tuple[PartitionRange, ...]:
    """Each partition's range. ``held``: partition -> (first offset still held, end); ``at_time``:
    partition -> the first offset at or after the start time (or the scope's first record's time), None
    past the end. A start before what a partition still holds is refused: those records are gone."""
    ranges = []
    for partition, (low, end) in sorted(held.items()):
        skip = scope.skipped(topic, partition)
        begin = _start(start, skip, low, end, at_time.get(partition))
        if begin < low:
            where = Where(topic=topic, partition=partition, offset=begin)
            raise ReplayRefused(
                f"the start point ({start}) is offset {begin}, but the partition holds records only from "
                f"offset {low} (retention removed the rest)",
                where=where,
                hint="replay from a later point (--start), or restore the topic from a backup first",
            )
        ranges.append(PartitionRange.within(partition, begin, end, skip))
    return tuple(ranges)


def _start(start: StartPoint, skip: frozenset[int], low: int, end: int, at_time: int | None) -> int:
    if start.kind is StartKind.EARLIEST:
        return low
    if start.kind is StartKind.OFFSET:
        assert start.value is not None
        return min(start.value, end)
    if start.kind is StartKind.SCOPE and skip:
        return min(skip)
    return end if at_time is None else at_time


@dataclass(frozen=True, slots=True)
class ReplayJob:
    source: str
    target: str


@dataclass(slots=True)
class PartitionReport:
    topic: str
    partition: int
    start: int
    end: int
    resumed_at: int
    copied: int = 0
    skipped: int = 0


@dataclass(slots=True)
class ReplayReport:
    replay_id: str
    dry_run: bool
    partitions: list[PartitionReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def copied(self) -> int:
        return sum(p.copied for p in self.partitions)

    @property
    def skipped(self) -> int:
        return sum(p.skipped for p in self.partitions)

    @property
    def resumed(self) -> bool:
        return any(p.resumed_at > p.start for p in self.partitions)
