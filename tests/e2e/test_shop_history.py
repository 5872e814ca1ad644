"""``rewind state`` against consistent snapshots of the shop's tables, on real PostgreSQL + Debezium.

While orders flow through the shop's services (and a churn writer deletes and re-creates stock rows),
the test takes snapshots at known points: each holds SHARE locks on every captured table, so no writer
is mid-transaction and none commits until it ends, and it records the WAL insert position and the time
there. The point is then exactly a commit boundary. For every (row, point) pair, the row as ``rewind
state`` answers from the graph builder's entity index must equal the snapshot's (or be absent where the
snapshot has no such row), asked four ways: at the snapshot's time, at the commit time of the last
transaction before it, at the LSN just before its WAL position, and at the last change's LSN before it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner
from psycopg.rows import dict_row

from examples.shop.scenario import SKUS, Scenario
from examples.shop.schema import tables
from processor.cli import main
from processor.devenv.postgres import Dsn
from processor.graph.entities import EntityIndex, index_path
from processor.graph.history import Moment, RowVersions, versions_of_entry
from tests.e2e.conftest import ConnectLauncher

ORDERS = 240
SNAPSHOTS = 6
CHURN = tuple(f"churn-{n}" for n in range(6))  # stock rows deleted and re-created as orders flow
KEYS = {"orders": "id", "stock": "sku", "payments": "id", "emails": "id", "revenue": "sku",
        "applied_commands": "idempotency_key"}  # fmt: skip
Rows = dict[tuple[str, str], dict[str, Any]]  # (table, key value as text) -> the row


@dataclass(frozen=True)
class Point:
    ts_ms: int
    wal_lsn: int  # the WAL insert position while no writer was mid-transaction
    rows: Rows


def snapshot(conninfo: str, schema: str) -> Point:
    """The captured tables at one commit boundary (writers wait for the snapshot, never the reverse:
    a lock wait that would deadlock with a writer times out first and is tried again)."""
    captured = ", ".join(tables(schema))
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        while True:
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL lock_timeout = '50ms'")
                    conn.execute(f"LOCK TABLE {captured} IN SHARE MODE".encode())
                    at = conn.execute(
                        "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS lsn, "
                        "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ts"
                    ).fetchone()
                    assert at is not None
                    rows: Rows = {}
                    for table, key in KEYS.items():
                        for row in conn.execute(f"SELECT * FROM {schema}.{table}".encode()):
                            rows[(table, str(row[key]))] = dict(row)
                    conn.execute("SELECT pg_sleep(0.005)")  # the next commit is in a later millisecond
                return Point(int(at["ts"]), int(at["lsn"]), rows)
            except psycopg.errors.LockNotAvailable:
                time.sleep(0.01)


def churn(conninfo: str, schema: str, stop: threading.Event) -> None:
    rnd = random.Random(3)
    with psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}") as conn:
        while not stop.is_set():
            sku = rnd.choice(CHURN)
            if conn.execute("DELETE FROM stock WHERE sku = %s", (sku,)).rowcount == 0:
                conn.execute("INSERT INTO stock VALUES (%s, %s, 0)", (sku, rnd.randrange(1, 1000)))
            time.sleep(0.02)


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.5)


def test_rewind_state_equals_consistent_snapshots_taken_while_orders_flow(
    kafka_bootstrap: str, postgres: Dsn, debezium: ConnectLauncher, tmp_path: Path
) -> None:
    scenario = Scenario(kafka_bootstrap, postgres, debezium.start, tmp_path, orders=ORDERS)
    scenario.create_databases()
    conninfo, schema = postgres.conninfo(), scenario.schema
    points: list[Point] = []
    with scenario.running(graph=True) as live:
        shop = scenario.shop(live.gateway, live.mailer)
        stop_churn = threading.Event()
        churner = threading.Thread(target=churn, args=(conninfo, schema, stop_churn), daemon=True)
        try:
            for sku in SKUS:
                shop.stock(sku, 100_000)
            churner.start()
            for n in range(1, ORDERS + 1):
                shop.request_order(n, f"c{n}", SKUS[n % 3], 1 + n % 3)
                if n % (ORDERS // SNAPSHOTS) == 0:
                    points.append(snapshot(conninfo, schema))
                time.sleep(0.01)
            _wait(lambda: len(live.mailer.sent) >= ORDERS, 300, "every order reached its email")
            stop_churn.set()
            churner.join(10)
            points.append(snapshot(conninfo, schema))  # the shop at rest
        finally:
            stop_churn.set()
            shop.close()

        def indexed() -> bool:  # every version of the journal (as it is now) is in the index
            entries = scenario.app.journal()
            return len(index()) == sum(len(versions_of_entry(e)) for e in entries) and len(entries) > ORDERS

        path = index_path(scenario.settings.graph.checkpoint_path, scenario.settings.topics.journal)

        def index() -> EntityIndex:
            return EntityIndex(path) if path.is_file() else EntityIndex()

        _wait(indexed, 180, "the entity index holds every version of the journal")
    journal = scenario.app.journal()
    history = scenario.app.history()  # the index, as `rewind state` reads it
    assert isinstance(history, EntityIndex)
    versions = [v for e in journal for v in versions_of_entry(e)]
    seen = {key for p in points for key in p.rows}
    assert any(
        p.rows.keys() & {("stock", s) for s in CHURN} != points[0].rows.keys() & {("stock", s) for s in CHURN}
        for p in points
    )  # fmt: skip  (churn rows were deleted and re-created between points)
    asked = 0
    for point in points:
        last_commit = max(v.commit_ts_ms for v in versions if v.commit_ts_ms <= point.ts_ms)
        last_lsn = max(v.lsn for v in versions if v.lsn is not None and v.lsn < point.wal_lsn)
        moments = (Moment(ts_ms=point.ts_ms), Moment(ts_ms=last_commit), Moment(lsn=point.wal_lsn - 1),
                   Moment(lsn=last_lsn))  # fmt: skip
        for table, key in sorted(seen):
            entity = history.entity(f"{schema}.{table}", json.dumps({KEYS[table]: key}))
            expected = point.rows.get((table, key))
            for moment in moments:
                asked += 1
                assert _row(history, entity, moment) == expected, (entity, moment, point.ts_ms)
        _boundary_is_sharp(history, versions, last_commit, schema)
    assert asked >= 4 * len(points) * ORDERS * 4  # orders, payments, emails, commands at every point

    # the command itself, as an operator would ask it, on a few pairs
    env = {"REWIND_BOOTSTRAP_SERVERS": kafka_bootstrap, "REWIND_METRICS_PORT": "0",
           "REWIND_TOPICS__JOURNAL": scenario.settings.topics.journal,
           "REWIND_TOPICS__STATUS": scenario.settings.topics.status,
           "REWIND_GRAPH__CHECKPOINT_PATH": str(scenario.settings.graph.checkpoint_path)}  # fmt: skip
    rnd = random.Random(11)
    for point in rnd.sample(points, 3):
        table, key = rnd.choice(sorted(point.rows))
        shown = CliRunner().invoke(main, ["state", f"{schema}.{table}", key, "--at", str(point.ts_ms),
                                          "--format", "json"], env=env)  # fmt: skip
        assert shown.exit_code == 0, shown.output
        answer = json.loads(shown.stdout)
        assert answer["exists"] and answer["row"] == point.rows[(table, key)] and answer["action_id"]


def _row(history: RowVersions, entity: str, at: Moment) -> dict[str, Any] | None:
    version = history.state(entity, at)
    return version.row if version is not None and version.exists else None


def _boundary_is_sharp(history: RowVersions, versions: list[Any], commit_ts: int, schema: str) -> None:
    """A millisecond before the last commit's time, the rows it wrote show their earlier version."""
    for v in (v for v in versions if v.commit_ts_ms == commit_ts and v.collection.startswith(schema)):
        before = history.state(v.entity, Moment(ts_ms=commit_ts - 1))
        assert before is None or before.action_id != v.action_id, v.entity
