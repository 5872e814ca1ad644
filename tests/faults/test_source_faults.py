"""What the tap reads from fails under load: Kafka Connect killed (`kill -9`) and started again, so
Debezium re-delivers from its last flushed offset; PostgreSQL restarted mid-workload. The journal must
hold every committed database transaction's action exactly once, counted against the database's own
record of what committed (its outbox table), with the tap (`rewind tap`) never restarted by hand."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from processor.config import ConnectSettings, PostgresSettings
from processor.devenv.connect import CaptureSpec, LocalConnect
from processor.devenv.postgres import LocalPostgres
from processor.devenv.procs import free_port
from tests.faults.faultkit import Outcome, Report, exactly_once, restarts, rewind, stop
from tests.integration.tapkit import read_journal

FAULTS = ("connect-kill-9", "postgres-restart")


@pytest.fixture
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPostgres, Path]]:
    """A PostgreSQL of the case's own (not under pytest's 0700 root: the postgres user must reach it)."""
    data_dir = Path(tempfile.mkdtemp(prefix="rewind-fault-pg-"))
    data_dir.chmod(0o755)
    pg = LocalPostgres(PostgresSettings(data_dir=data_dir, port=free_port()))
    pg.start()
    try:
        yield pg, tmp_path_factory.mktemp("connect")
    finally:
        pg.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


class Writer:
    """A service writing order rows with their outbox events, one database transaction each, riding out
    the database going away (what committed is read back from the database afterwards)."""

    def __init__(self, pg: LocalPostgres, schema: str) -> None:
        self.pg, self.schema, self.stop, self.attempts = pg, schema, threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        order = 0
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.pg.dsn.conninfo(), connect_timeout=3) as conn:
                    while not self.stop.is_set():
                        order += 1
                        self.attempts += 1
                        with conn.transaction():
                            conn.execute(
                                f"INSERT INTO {self.schema}.orders VALUES (%s, 'c', %s)", (order, order % 97)
                            )
                            conn.execute(
                                f"INSERT INTO {self.schema}.outbox (id, aggregatetype, aggregateid, type, payload, "
                                "correlation_id) VALUES (%s, 'order', %s, 'OrderPlaced', %s, %s)",
                                (
                                    str(uuid.uuid4()),
                                    str(order),
                                    json.dumps({"order_id": order}),
                                    f"wf-{order}",
                                ),
                            )
                        time.sleep(0.02)
            except psycopg.OperationalError:
                time.sleep(0.5)  # the database is away: try again

    def committed(self) -> set[str]:
        with psycopg.connect(self.pg.dsn.conninfo()) as conn:
            return {str(r[0]) for r in conn.execute(f"SELECT id FROM {self.schema}.outbox")}


@pytest.mark.parametrize("fault", FAULTS)
def test_every_committed_transaction_is_journaled_once_through_a_source_fault(
    fault: str, source: tuple[LocalPostgres, Path], kafka_bootstrap: str, unique: str, tmp_path: Path,
    report: Report,
) -> None:  # fmt: skip
    pg, connect_dir = source
    schema = f"s{unique}"
    with psycopg.connect(pg.dsn.conninfo(), autocommit=True) as conn:
        conn.execute(f"""
            CREATE SCHEMA {schema};
            CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, customer text, total_cents int);
            CREATE TABLE {schema}.outbox (
              id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL,
              payload jsonb, tx_id bigint DEFAULT txid_current(), correlation_id text, causation_id text,
              traceparent text, phase text, intent_id text);
        """.encode())  # fmt: skip
    spec = CaptureSpec(
        name=f"cdc-{unique}", dsn=pg.dsn, topic_prefix=f"pg{unique}", tables=(f"{schema}.orders", f"{schema}.outbox"),
        outbox_table=f"{schema}.outbox", outbox_topic_prefix=f"{unique}.outbox.",
    )  # fmt: skip
    connect = LocalConnect(ConnectSettings(data_dir=connect_dir, rest_port=free_port()), kafka_bootstrap)
    topics = {
        "journal": f"{unique}.journal", "deadletter": f"{unique}.dlq", "requests": f"{unique}.rq",
        "control": f"{unique}.ctl", "status": f"{unique}.st", "cdc": [spec.table_topic(f"{schema}.orders")],
        "tx_metadata": [spec.tx_topic], "outbox": [f"{unique}.outbox.order"], "partitions": 3,
    }  # fmt: skip
    settings = {
        "bootstrap_servers": kafka_bootstrap, "group_id": f"tap-{unique}", "transactional_id_prefix": f"tx-{unique}",
        "topics": topics, "tap": {"outbox_tables": [f"{schema}.outbox"], "outbox": {"topic_prefix": f"{unique}.outbox."}},
    }  # fmt: skip
    log = tmp_path / "tap.log"
    writer = Writer(pg, schema)
    connect.start(spec)
    tap = rewind("tap", settings, tmp_path, log)
    try:
        writer.thread.start()
        time.sleep(6)
        if fault == "connect-kill-9":
            connect.daemon.stop(sig=signal.SIGKILL)
            time.sleep(2)
            connect.start(spec)  # the same offsets file: Debezium resumes from its last flushed offset
            what = "Kafka Connect: kill -9, started again (Debezium re-delivers)"
        else:
            pg.stop()
            time.sleep(2)
            pg.start()
            what = "PostgreSQL: restarted mid-workload"
        fault_ended = time.monotonic()
        time.sleep(6)
        writer.stop.set()
        writer.thread.join(30)
        committed = writer.committed()
        entries = read_journal(kafka_bootstrap, topics["journal"], expect=len(committed), timeout_s=180)  # type: ignore[arg-type]
        recovered = time.monotonic() - fault_ended
    finally:
        writer.stop.set()
        stop(tap, log, stacks=len(locals().get("entries", [])) < len(locals().get("committed", [])))
        connect.stop()
    events = [e.action_id for e in entries if e.event is not None]
    missing, doubled = exactly_once(events, committed)
    report.add(Outcome(
        f"tap journals {len(committed)} database transactions (of {writer.attempts} tried)", what, len(committed),
        len(events), len(missing), len(doubled), "no", recovered, restarts(log),
    ))  # fmt: skip
    assert not missing and not doubled, (
        f"missing {len(missing)}, doubled {doubled}\n{log.read_text()[-3000:]}"
    )
    assert set(events) == committed and len(entries) == len(events)  # every action is an event's
