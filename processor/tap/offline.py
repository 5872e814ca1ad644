"""Drive the tap core over captured records, with record time as the clock (deterministic)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from processor.catalog.catalog import Catalog
from processor.config import Settings
from processor.errors import ConfigError
from processor.kafka.messages import SourceRecord
from processor.tap.capture import read_capture
from processor.tap.core import TapCore, TapOutput, capture_has_tx_metadata
from processor.tap.decoding import SchemaLookup
from processor.tap.engine import tap_core


def run_capture(core: TapCore, records: Iterable[SourceRecord]) -> Iterator[TapOutput]:
    """Yield outputs in order: per record, then timeouts it triggers, then what is left at the end."""
    now = 0
    for record in records:
        now = max(now, record.timestamp_ms or now)
        yield core.process(record, now)
        yield core.tick(now)
    yield core.finish(now)


def open_capture(
    settings: Settings,
    catalog: Catalog,
    path: Path,
    lookup: SchemaLookup | None = None,
    on_error: Callable[[ConfigError], None] | None = None,
) -> tuple[TapCore, Iterator[TapOutput]]:
    """The tap core set up for a capture file (grouping by transaction when it holds BEGIN/END), and
    the outputs it yields over the file. A capture is read whole, so nothing leaves the dedupe index:
    one far-future record time cannot make an action count twice. ``on_error`` hears each line that
    is not a record (they are skipped); without it the first one raises."""
    group = capture_has_tx_metadata(read_capture(path, on_error=lambda _exc: None))
    core = tap_core(settings, catalog, group_transactions=group, lookup=lookup, offline=True)
    return core, run_capture(core, read_capture(path, on_error))
