"""What a filtered replay copies: start points, per-partition ranges, and refusals (pure)."""

from __future__ import annotations

import pytest

from processor.journal.model import JournalEntry, OutboxEvent, SourcePosition
from processor.replay.scope import Origin, ReplayRefused, Scope, StartKind, StartPoint, plan_ranges


def _entry(n: int, topic: str, partition: int, offset: int, ts: int) -> JournalEntry:
    event = OutboxEvent(f"e{n}", "T", None, None, {}, {}, SourcePosition(topic, partition, offset))
    return JournalEntry(f"a{n}", "T", (), ts, event=event, commit_ts_ms=ts)


SCOPE = Scope.of(
    [_entry(1, "t", 0, 40, 5_000), _entry(2, "t", 0, 45, 6_000), _entry(3, "other", 1, 7, 4_000)]
)


def test_start_points_parse_every_documented_form() -> None:
    assert StartPoint.parse("scope") == StartPoint(StartKind.SCOPE)
    assert StartPoint.parse("earliest") == StartPoint(StartKind.EARLIEST)
    assert StartPoint.parse("offset:12") == StartPoint(StartKind.OFFSET, 12)
    assert StartPoint.parse("1700000000000") == StartPoint(StartKind.TIME, 1_700_000_000_000)
    assert StartPoint.parse("2023-11-14T22:13:20Z") == StartPoint(StartKind.TIME, 1_700_000_000_000)


@pytest.mark.parametrize("text", ["yesterday", "offset:-1", "2023-11-14T22:13:20"])
def test_a_start_point_it_cannot_read_is_refused_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(ReplayRefused) as refused:
        StartPoint.parse(text)
    assert repr(text) in str(refused.value)


def test_the_scope_holds_each_actions_source_positions_and_its_first_time() -> None:
    assert SCOPE.skipped("t", 0) == {40, 45}
    assert SCOPE.skipped("t", 1) == frozenset()
    assert (SCOPE.first_ts_ms, SCOPE.actions) == (4_000, 3)


def test_by_default_a_partition_starts_at_its_first_scope_record_and_others_at_the_scopes_time() -> None:
    ranges = plan_ranges("t", SCOPE, StartPoint(), {0: (0, 100), 1: (0, 80), 2: (0, 10)}, {1: 33, 2: None})
    assert [(r.partition, r.start, r.end, sorted(r.skip)) for r in ranges] == [
        (0, 40, 100, [40, 45]),
        (1, 33, 80, []),
        (2, 10, 10, []),  # nothing written since the scope began: nothing to copy
    ]


def test_earliest_and_offset_starts_keep_the_skips_inside_the_range() -> None:
    earliest = plan_ranges("t", SCOPE, StartPoint(StartKind.EARLIEST), {0: (5, 100)}, {})
    assert (earliest[0].start, sorted(earliest[0].skip)) == (5, [40, 45])
    late = plan_ranges("t", SCOPE, StartPoint(StartKind.OFFSET, 42), {0: (0, 100)}, {})
    assert (late[0].start, sorted(late[0].skip)) == (42, [45])


def test_a_start_before_what_the_partition_still_holds_is_refused_naming_where() -> None:
    with pytest.raises(ReplayRefused) as refused:
        plan_ranges("t", SCOPE, StartPoint(StartKind.OFFSET, 3), {0: (20, 100)}, {})
    text = str(refused.value)
    assert "offset 3" in text and "only from offset 20" in text and "t[0]@3" in text


def test_an_origin_header_round_trips_topic_names_with_slashes() -> None:
    origin = Origin("a/b", 2, 9)
    assert Origin.parse(origin.header()) == origin
