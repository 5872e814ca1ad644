"""Drive the tap core over captured records, with record time as the clock (deterministic)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from processor.tap.core import TapCore, TapOutput
from processor.tap.records import SourceRecord


def run_capture(core: TapCore, records: Iterable[SourceRecord]) -> Iterator[TapOutput]:
    """Yield outputs in order: per record, then timeouts it triggers, then what is left at the end."""
    now = 0
    for record in records:
        now = max(now, record.timestamp_ms or now)
        yield core.process(record, now)
        yield core.tick(now)
    yield core.finish(now)
