"""The tap's metrics, heard through the core's observer hooks, on a fresh registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from processor.catalog.catalog import ActionSpec, Catalog
from processor.config import Settings, TapSettings
from processor.kafka.messages import SourceRecord
from processor.metrics import Metrics
from processor.tap import native
from processor.tap.core import PythonTapCore
from processor.tap.engine import tap_core
from processor.undo import Mechanism
from tests.unit.tap.builders import TS, FakeMessage, begin, change, end, outbox


def value(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


PATHS = [("python", "process"), ("python", "consume")]
if native.available():
    PATHS += [("native", "process"), ("native", "consume")]


@pytest.mark.parametrize(("engine", "path"), PATHS)
def test_tap_counts_what_it_did(engine: str, path: str) -> None:
    """Per record (rewind decode) and per batch (the live loop), on both tap cores."""
    metrics = Metrics(CollectorRegistry())
    catalog = Catalog({"OrderPlaced": ActionSpec("OrderPlaced", Mechanism.COMPENSATE)})
    settings = Settings(tap=TapSettings(tx_timeout_ms=1000, engine=engine))
    core = tap_core(settings, catalog, group_transactions=True, observer=metrics)
    records = [
        begin(1),
        change("orders", "c", {"id": 1}, after={"id": 1}, tx=1),
        outbox("e1", "OrderPlaced", {}, tx=1),
        end(1, {"public.orders": 1, "public.outbox": 1}),
        SourceRecord("shop.public.orders", 0, 9, b'{"id":1}', b"{bad"),
        change("orders", "c", {"id": 1}, after={"id": 1}, tx=1, offset=50),  # redelivery
        begin(2),
        change("orders", "c", {"id": 2}, after={"id": 2}, tx=2),  # never ends
        outbox_without_type("e9"),  # the router's default configuration
        SourceRecord("__debezium-heartbeat.shop", 0, 0, b'{"serverName":"shop"}', b'{"ts_ms":1}'),
    ]
    if path == "process":
        for r in records:
            core.process(r, TS)
        core.tick(TS + 1000)
    else:
        core.consume([FakeMessage(r) for r in records], TS)
        core.expire(TS + 1000)
    assert (
        value(
            metrics,
            "rewind_tap_actions_journaled_total",
            action_type="OrderPlaced",
            reversibility="COMPENSABLE",
        )
        == 1
    )
    assert (
        value(
            metrics,
            "rewind_tap_actions_journaled_total",
            action_type="public.orders.create",
            reversibility="UNCLASSIFIED",
        )
        == 1
    )
    assert value(metrics, "rewind_tap_dead_letters_total", reason="bad_json") == 1
    assert value(metrics, "rewind_tap_duplicates_dropped_total") == 1
    assert value(metrics, "rewind_tap_incomplete_transactions_total") == 1
    assert value(metrics, "rewind_tap_records_consumed_total", topic="shop.public.orders", kind="cdc") == 3
    # No topics configured and not decodable: its kind cannot be told.
    assert (
        value(metrics, "rewind_tap_records_consumed_total", topic="shop.public.orders", kind="unrecognized")
        == 1
    )
    assert (
        value(metrics, "rewind_tap_records_consumed_total", topic="shop.transaction", kind="tx_metadata") == 3
    )
    assert value(metrics, "rewind_tap_untyped_events_total", action_type="order") == 1
    assert (
        value(
            metrics, "rewind_tap_records_consumed_total", topic="__debezium-heartbeat.shop", kind="heartbeat"
        )
        == 1
    )


def outbox_without_type(event_id: str) -> SourceRecord:
    record = outbox(event_id, "unused", {})
    headers = tuple(h for h in record.headers if h[0] not in ("eventType", "aggregateType"))
    return SourceRecord(record.topic, 0, 99, record.key, record.value, headers, record.timestamp_ms)


def test_lag_and_commit_latency_are_exported() -> None:
    metrics = Metrics(CollectorRegistry())
    core = PythonTapCore(Settings(), Catalog.empty(), group_transactions=True)
    metrics.tap_lag("shop.public.orders", 2, 17)
    metrics.tap_committed(0.02, core)
    text = generate_latest(metrics.registry).decode()
    assert 'rewind_tap_consumer_lag{partition="2",topic="shop.public.orders"} 17.0' in text
    assert "rewind_tap_transaction_commit_seconds_count 1.0" in text
    assert "rewind_tap_open_transactions 0.0" in text
