"""The compose quickstart's shop (``examples/shop/live.py``) on real PostgreSQL, Kafka Connect and
Debezium: it creates its schema, registers its connector through Connect's REST API, answers its own
events and places orders; rewind configured by the compose file's environment journals them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from examples.shop.live import LiveShop
from processor.app import Rewind
from processor.config import load_settings
from processor.devenv.postgres import Dsn
from processor.journal.serde import deserialize
from processor.kafka import clients, loop
from tests.e2e.conftest import ConnectLauncher

COMPOSE = Path(__file__).parents[2] / "deploy" / "compose" / "compose.yaml"


def test_the_live_shop_runs_and_the_compose_settings_journal_its_orders(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in [n for n in os.environ if n.startswith("REWIND_")]:
        monkeypatch.delenv(name)
    for name, value in services["rewind"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("REWIND_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv(
        "REWIND_CATALOG_FILE", str(Path(__file__).parents[2] / "examples" / "shop" / "catalog.yaml")
    )
    monkeypatch.setenv("REWIND_GRAPH__CHECKPOINT_PATH", str(tmp_path / "graph.npz"))
    monkeypatch.setenv("REWIND_METRICS_PORT", "0")
    monkeypatch.setenv("REWIND_DRILL__EVERY", "0")
    settings = load_settings()

    shop = LiveShop(kafka_bootstrap, postgres, "", orders_per_s=4)
    assert shop.create_schema()
    connect = debezium.start(shop.capture)
    shop = LiveShop(kafka_bootstrap, postgres, connect.rest_url, orders_per_s=4)
    assert not shop.create_schema()  # a restarted shop keeps its rows
    stop = threading.Event()
    running = threading.Thread(target=shop.run, args=(stop,), daemon=True)
    app = Rewind(settings)
    tap = threading.Thread(target=app.tap(kafka_bootstrap).run, args=(stop,), daemon=True)
    app.ensure_topics(kafka_bootstrap)
    running.start()
    tap.start()
    try:
        deadline, emailed = time.monotonic() + 180, 0
        with psycopg.connect(postgres.conninfo(), options="-c search_path=shop") as conn:
            while time.monotonic() < deadline and emailed < 5:
                time.sleep(1)
                emailed = conn.execute("SELECT count(*) FROM emails").fetchone()[0]  # type: ignore[index]
                conn.commit()
        assert emailed >= 5, "the shop's services carried orders through to their emails"
        wanted = {"OrderRequested", "OrderPriced", "StockReserved", "PaymentCaptured", "EmailSent"}
        types: set[str] = set()
        while time.monotonic() < deadline and not wanted <= types:
            time.sleep(2)
            reader = clients.consumer(settings, kafka_bootstrap, "live-shop-check")
            try:
                types = {deserialize(m.value() or b"").action_type
                         for m in loop.read_to_end(reader, settings.topics.journal, what="journal")}  # fmt: skip
            finally:
                reader.close()
        assert wanted <= types, f"journaled only {sorted(types)}"
    finally:
        stop.set()
        running.join(30)
        tap.join(30)
