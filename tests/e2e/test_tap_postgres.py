"""Real PostgreSQL -> real Debezium (pgoutput, transaction metadata, outbox router) -> the tap -> journal.

Concurrent database transactions write business rows and outbox rows; the journal must hold one action
per outbox event, joined with exactly the row changes of its own database transaction, plus one action
per transaction that wrote rows but no event.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter

import psycopg

from processor.catalog.catalog import Catalog
from processor.config import Settings, TapSettings, TopicSettings
from processor.devenv.connect import CaptureSpec
from processor.devenv.postgres import Dsn
from processor.kafka import clients
from processor.tap.engine import tap_core
from processor.tap.runner import TapRunner
from tests.e2e.conftest import ConnectLauncher
from tests.integration.tapkit import read_journal

WORKERS, PER_WORKER = 4, 15


def schema_sql(schema: str) -> str:
    return f"""
    CREATE SCHEMA {schema};
    CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, customer text, total_cents int, status text);
    ALTER TABLE {schema}.orders REPLICA IDENTITY FULL;
    CREATE TABLE {schema}.order_lines (order_id bigint, line int, sku text, qty int, PRIMARY KEY (order_id, line));
    ALTER TABLE {schema}.order_lines REPLICA IDENTITY FULL;
    CREATE TABLE {schema}.outbox (
      id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL,
      payload jsonb, tx_id bigint DEFAULT txid_current(), correlation_id text, causation_id text,
      traceparent text, phase text, intent_id text);
    """


def run_workload(
    dsn: Dsn, schema: str, worker: int, expected: dict[str, set[tuple[str, str]]], lock: threading.Lock
) -> None:
    rnd = random.Random(worker)
    with psycopg.connect(dsn.conninfo()) as conn:
        for i in range(PER_WORKER):
            order = worker * 1000 + i
            with conn.transaction():
                txid = conn.execute("SELECT txid_current()").fetchone()[0]  # type: ignore[index]
                conn.execute(
                    f"INSERT INTO {schema}.orders VALUES (%s, %s, %s, 'PLACED')",
                    (order, f"c{worker}", rnd.randint(100, 9999)),
                )
                rows = {("orders", str(order))}
                for line in range(1, rnd.randint(1, 2) + 1):
                    conn.execute(f"INSERT INTO {schema}.order_lines VALUES (%s, %s, 'sku', 1)", (order, line))
                    rows.add(
                        (
                            "order_lines",
                            json.dumps(
                                {"line": line, "order_id": order}, separators=(",", ":"), sort_keys=True
                            ),
                        )
                    )
                event_id = str(uuid.uuid4())
                conn.execute(
                    f"INSERT INTO {schema}.outbox (id, aggregatetype, aggregateid, type, payload, correlation_id) "
                    "VALUES (%s, 'order', %s, 'OrderPlaced', %s, %s)",
                    (event_id, str(order), json.dumps({"order_id": order}), f"wf-{order}"),
                )
            with lock:
                expected[event_id] = rows | {("tx", str(txid % 2**32))}
            if i % 5 == 4:  # a change with no outbox event: an action of rows only
                with conn.transaction():
                    txid = conn.execute("SELECT txid_current()").fetchone()[0]  # type: ignore[index]
                    conn.execute(f"UPDATE {schema}.orders SET status = 'PAID' WHERE id = %s", (order,))
                with lock:
                    expected[f"tx:{txid % 2**32}"] = {("orders", str(order))}


def test_concurrent_database_transactions_are_journaled_as_their_actions(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, unique: str
) -> None:
    schema = f"s{unique}"
    prefix = f"pg{unique}"
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(schema_sql(schema).encode())
    spec = CaptureSpec(
        name=f"cdc-{unique}", dsn=postgres, topic_prefix=prefix,
        tables=(f"{schema}.orders", f"{schema}.order_lines", f"{schema}.outbox"),
        outbox_table=f"{schema}.outbox", outbox_topic_prefix=f"{unique}.outbox.",
    )  # fmt: skip
    debezium.start(spec)

    expected: dict[str, set[tuple[str, str]]] = {}
    lock = threading.Lock()
    workers = [
        threading.Thread(target=run_workload, args=(postgres, schema, w, expected, lock))
        for w in range(WORKERS)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)

    settings = Settings(
        bootstrap_servers=kafka_bootstrap, group_id=f"tap-{unique}", transactional_id_prefix=f"tx-{unique}", metrics_port=0,
        topics=TopicSettings(
            journal=f"{unique}.journal", deadletter=f"{unique}.dlq", requests=f"{unique}.rq", control=f"{unique}.ctl",
            status=f"{unique}.st", cdc=[spec.table_topic(f"{schema}.orders"), spec.table_topic(f"{schema}.order_lines")],
            tx_metadata=[spec.tx_topic], outbox=[f"{unique}.outbox.order"], partitions=3,
        ),
        tap=TapSettings(outbox_tables=[f"{schema}.outbox"], outbox=TapSettings().outbox.model_copy(update={"topic_prefix": f"{unique}.outbox."})),
    )  # fmt: skip
    clients.ensure_topics(
        clients.admin(settings, kafka_bootstrap), settings.topics.own(), partitions=3, replication_factor=1
    )
    done = threading.Event()
    runner = TapRunner(settings, kafka_bootstrap, lambda: tap_core(settings, Catalog.empty()))
    thread = threading.Thread(target=runner.run, args=(done,), daemon=True)
    thread.start()
    entries = read_journal(kafka_bootstrap, settings.topics.journal, expect=len(expected), timeout_s=120)
    done.set()
    thread.join(30)

    events = {k for k in expected if not k.startswith("tx:")}
    assert len(events) == WORKERS * PER_WORKER
    counts = Counter(e.action_id for e in entries)
    assert all(n == 1 for n in counts.values()), "an action was journaled twice"
    by_id = {e.action_id: e for e in entries}
    assert events <= set(by_id), f"missing events: {len(events - set(by_id))}"
    for event_id in events:
        entry = by_id[event_id]
        rows = {(c.table, _key(c.key)) for c in entry.changes}
        tx = next(v for k, v in expected[event_id] if k == "tx")
        assert rows == expected[event_id] - {("tx", tx)}, event_id
        assert entry.tx_id == tx and entry.complete and entry.action_type == "OrderPlaced"
        assert entry.correlation_id == f"wf-{entry.aggregate_id}"
    row_only = [e for e in entries if e.event is None]
    assert sorted((e.tx_id, _key(e.changes[0].key)) for e in row_only) == sorted(
        (k.removeprefix("tx:"), next(iter(v))[1]) for k, v in expected.items() if k.startswith("tx:")
    )
    assert all(e.changes[0].op.value == "UPDATE" and e.changes[0].before_complete for e in row_only)
    assert len(entries) == len(expected)


def _key(key: dict[str, object]) -> str:
    return (
        str(next(iter(key.values())))
        if len(key) == 1
        else json.dumps(key, separators=(",", ":"), sort_keys=True)
    )
