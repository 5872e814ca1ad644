"""The example shop beside an existing cluster (the compose quickstart's ``shop`` service): its schema
in PostgreSQL, its Debezium connector registered through Kafka Connect's REST API, its services
answering events and rewind's commands, and a steady trickle of orders.

    python -m examples.shop.live   # settings from SHOP_* (below) and REWIND_BOOTSTRAP_SERVERS

Topic names are the catalog's own (``examples/shop/catalog.yaml``), so a ``rewind run`` configured
as ``deploy/compose/compose.yaml`` configures it taps, undoes and drills this shop.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass

import psycopg

from examples.shop.runner import ShopRunner, ShopTopics
from examples.shop.scenario import AGGREGATES, CATALOG, DRILL_SKU, SKUS
from examples.shop.schema import schema_sql, tables
from examples.shop.services import FakeGateway, FakeMailer, Shop
from processor.catalog.catalog import load_catalog
from processor.config import Settings
from processor.devenv.connect import CaptureSpec, connector_config
from processor.devenv.postgres import Dsn
from processor.kafka import clients

logger = logging.getLogger("shop")
SCHEMA, TOPIC_PREFIX, OUTBOX_PREFIX, ENTRY_TOPIC = "shop", "pg", "outbox.", "shop.checkout"


@dataclass(frozen=True)
class LiveShop:
    bootstrap: str
    dsn: Dsn
    connect_url: str
    orders_per_s: float

    @classmethod
    def from_env(cls) -> LiveShop:
        env = os.environ
        dsn = Dsn(env.get("SHOP_PG_HOST", "postgres"), int(env.get("SHOP_PG_PORT", "5432")),
                  env.get("SHOP_PG_USER", "shop"), env.get("SHOP_PG_PASSWORD", "shop"),
                  env.get("SHOP_PG_DATABASE", "shop"))  # fmt: skip
        return cls(env.get("REWIND_BOOTSTRAP_SERVERS", "kafka:9092"), dsn,
                   env.get("SHOP_CONNECT_URL", "http://connect:8083"),
                   float(env.get("SHOP_ORDERS_PER_S", "2")))  # fmt: skip

    @property
    def capture(self) -> CaptureSpec:
        return CaptureSpec(name="shop", dsn=self.dsn, tables=tables(SCHEMA), topic_prefix=TOPIC_PREFIX,
                           outbox_table=f"{SCHEMA}.outbox", outbox_topic_prefix=OUTBOX_PREFIX)  # fmt: skip

    def create_schema(self) -> bool:
        """The shop's tables, once; True when they were created now (and stock is to be seeded)."""
        with psycopg.connect(self.dsn.conninfo(), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone()
            if found:
                return False
            conn.execute(schema_sql(SCHEMA).encode())
            return True

    def register_connector(self) -> None:
        """PUT the connector's configuration (idempotent: a restart changes nothing)."""
        config = connector_config(self.capture)
        name = config.pop("name")
        request = urllib.request.Request(  # noqa: S310 (the operator's Connect URL)
            f"{self.connect_url}/connectors/{name}/config", data=json.dumps(config).encode(),
            method="PUT", headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            logger.info("connector %s registered (%s)", name, response.status)

    def topics(self) -> ShopTopics:
        catalog = load_catalog(CATALOG)
        commands = sorted({s.topic for s in catalog.actions.values() if s.topic and ".commands." in s.topic})
        redrive = sorted({s.redrive.topic for s in catalog.actions.values() if s.redrive})
        return ShopTopics(OUTBOX_PREFIX, tuple(commands), tuple(redrive), (ENTRY_TOPIC,))

    def create_topics(self) -> None:
        """Every topic the shop's connector writes and its services read, before anyone subscribes (a
        tap subscribed to a topic no one has written yet would wait for it)."""
        capture, topics = self.capture, self.topics()
        names = [capture.table_topic(t) for t in capture.tables if t != capture.outbox_table]
        names += [capture.tx_topic, *(f"{OUTBOX_PREFIX}{a}" for a in AGGREGATES), *topics.commands,
                  *topics.redrive, *topics.entry]  # fmt: skip
        settings = Settings(bootstrap_servers=self.bootstrap)
        clients.ensure_topics(
            clients.admin(settings, self.bootstrap), names, partitions=3, replication_factor=1
        )

    def run(self, stop: threading.Event) -> None:
        created = self.create_schema()
        self.create_topics()
        self.register_connector()
        gateway, mailer = FakeGateway(), FakeMailer()
        shop = Shop(self.dsn.conninfo(), SCHEMA, gateway, mailer)
        if created:
            for sku in (*SKUS, DRILL_SKU):  # the drills' canaries order the drill SKU
                shop.stock(sku, 1_000_000)
        services = ShopRunner(self.bootstrap, "shop-services", Shop(self.dsn.conninfo(), SCHEMA, gateway,
                                                                   mailer), self.topics())  # fmt: skip
        thread = threading.Thread(target=services.run, args=(stop,), name="shop-services", daemon=True)
        thread.start()
        number = int(time.time())  # order ids that a restarted shop does not reuse
        while not stop.wait(1 / self.orders_per_s):
            number += 1
            shop.request_order(number, f"customer-{number % 50}", SKUS[number % len(SKUS)], 1)
        thread.join(30)
        shop.close()


def main() -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    LiveShop.from_env().run(stop)


if __name__ == "__main__":
    main()
