"""The tap on Debezium output this project did not write: Debezium's documentation and test resources,
Apache Flink's captures, and real connectors captured in the configurations users run (each source is
named in fixtures/debezium/README.md). Every fixture's journal, on both engines, must be its expected
journal (``expected/``, written by ``REWIND_REGENERATE_CORPUS=1`` and read by a person before it is
committed); the facts a user would check are asserted one by one beside it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from processor.catalog.catalog import Catalog
from processor.config import OutboxConvention, Settings, TapSettings
from processor.journal.model import JournalEntry, Op
from processor.journal.serde import to_json_view
from processor.jsonvalue import dumps, loads
from processor.kafka.messages import SourceRecord
from processor.rollback.request import FieldPredicate
from processor.tap.capture import read_capture
from processor.tap.core import TapOutput, capture_has_tx_metadata
from processor.tap.engine import tap_core
from processor.tap.offline import run_capture
from tests.unit.tap.builders import TAP_ENGINES

ROOT = Path(__file__).parents[2] / "fixtures" / "debezium"
PUBLIC, CAPTURED, EXPECTED = ROOT / "public", ROOT / "captured", ROOT / "expected"
DOCS = PUBLIC / "debezium-docs"


def _json(path: Path) -> bytes:
    return json.dumps(json.loads(path.read_text())).encode()


def record(topic: str, offset: int, key: Any, value: bytes | None, headers: Iterable[tuple[str, str]] = (),
           ts: int = 0) -> SourceRecord:  # fmt: skip
    raw_key = key if isinstance(key, bytes | None) else json.dumps(key).encode()
    return SourceRecord(
        topic, 0, offset, raw_key, value, tuple((k, v.encode()) for k, v in headers), ts or None
    )


# -- the public sources, as records (the README says what each adds: topic names, Kafka keys) ----------


def docs_postgresql() -> list[SourceRecord]:
    topic, tx = "PostgreSQL_server.public.customers", "PostgreSQL_server.transaction"
    return [
        record(tx, 0, {"id": "571:53195829"}, _json(DOCS / "postgresql-transaction-begin.json")),
        record(topic, 0, {"id": 1}, _json(DOCS / "postgresql-create.json")),
        record(topic, 1, {"id": 1}, _json(DOCS / "postgresql-update.json")),
        record(topic, 2, {"id": 1}, _json(DOCS / "postgresql-delete.json")),
        record(topic, 3, {"id": 1}, None),  # the tombstone after the delete
        record(topic, 4, None, _json(DOCS / "postgresql-truncate.json")),
        record("PostgreSQL_server.message", 0, {"prefix": "foo"}, _json(DOCS / "postgresql-message-transactional.json")),
        record("PostgreSQL_server.message", 1, {"prefix": "foo"},
               _json(DOCS / "postgresql-message-non-transactional.json")),
        record(tx, 1, {"id": "571:53195832"}, _json(DOCS / "postgresql-transaction-end.json")),
    ]  # fmt: skip


def docs_mysql() -> list[SourceRecord]:
    topic, key = "mysql-server-1.inventory.customers", json.loads((DOCS / "mysql-key.json").read_text())
    key["payload"]["id"] = 1004  # the documentation's key example is row 1001; its events are row 1004
    return [
        record("mysql-server-1.transaction", 0, None, _json(DOCS / "mysql-transaction-begin.json")),
        record(topic, 0, key, _json(DOCS / "mysql-create.json")),
        record(topic, 1, key, _json(DOCS / "mysql-update.json")),
        record(topic, 2, key, _json(DOCS / "mysql-delete.json")),
        record("mysql-server-1", 0, json.loads((DOCS / "mysql-schema-change-key.json").read_text()),
               _json(DOCS / "mysql-schema-change.json")),
        record("mysql-server-1.transaction", 1, None, _json(DOCS / "mysql-transaction-end.json")),
    ]  # fmt: skip


OUTBOX_ID = ("id", "4d47e190-0402-4048-bc2c-89dd54343cdc")


def docs_outbox_default() -> list[SourceRecord]:
    return [record("outbox.event.order", 0, "1", _json(DOCS / "outbox-default-message.json"), [OUTBOX_ID],
                   ts=1556890294484)]  # fmt: skip


def docs_outbox_string_key() -> list[SourceRecord]:
    [r] = docs_outbox_default()  # the same message, its key through StringConverter: the bare aggregate id
    return [SourceRecord(r.topic, 0, 0, b"1", r.value, r.headers, r.timestamp_ms)]


def docs_outbox_expanded() -> list[SourceRecord]:
    return [record("outbox.event.order", 0, "1", _json(DOCS / "outbox-expanded-payload.json"), [OUTBOX_ID],
                   ts=1556890294484)]  # fmt: skip


def docs_outbox_table() -> list[SourceRecord]:
    change = json.loads((DOCS / "outbox-raw-change-event.json").read_text())
    return [record("dbserver1-bare.inventory.outboxevent", 0, {"id": change["after"]["id"]}, _json(
        DOCS / "outbox-raw-change-event.json"))]  # fmt: skip


def serde_resource(name: str) -> Callable[[], list[SourceRecord]]:
    def build() -> list[SourceRecord]:
        path = PUBLIC / "debezium-test-resources" / name
        return [record("mysql-server-1.inventory.customers", 0, {"id": 1004}, _json(path))]

    return build


def flink(name: str) -> Callable[[], list[SourceRecord]]:
    def build() -> list[SourceRecord]:
        lines = (PUBLIC / name).read_text().splitlines()
        out = []
        for offset, line in enumerate(lines):
            image = json.loads(line)["after"] or json.loads(line)["before"]
            key = {"id": image["id"]} if image else {"id": 111}  # the delete without an image: row 111
            out.append(record("fullfillment.inventory.products", offset, key, line.encode()))
        return out

    return build


PUBLIC_SCENARIOS: dict[str, Callable[[], list[SourceRecord]]] = {
    "docs-postgresql": docs_postgresql,
    "docs-mysql": docs_mysql,
    "docs-outbox-default": docs_outbox_default,
    "docs-outbox-string-key": docs_outbox_string_key,
    "docs-outbox-expanded": docs_outbox_expanded,
    "docs-outbox-table": docs_outbox_table,
    "debezium-serde-with-schema": serde_resource("serde-with-schema.json"),
    "debezium-serde-without-schema": serde_resource("serde-without-schema.json"),
    "debezium-serde-update": serde_resource("serde-update.json"),
    "flink-postgres-full": flink("flink-debezium-postgres-data-schema-exclude.txt"),
    "flink-postgres-replica-identity": flink("flink-debezium-postgres-data-replica-identity.txt"),
}
CAPTURED_SCENARIOS = sorted(p.stem for p in CAPTURED.glob("*.jsonl"))


def settings_for(name: str, engine: str) -> Settings:
    """A captured connector's names: topic prefix = the configuration, schema = s_<configuration>."""
    schema = "s_" + name.replace("-", "_")
    outbox = OutboxConvention(topic_prefix=f"{name}.outbox.", envelope=name == "pg-router-envelope")
    return Settings(tap=TapSettings(engine=engine, outbox=outbox, outbox_tables=[f"{schema}.outbox"]))


def decode(name: str, engine: str) -> tuple[list[JournalEntry], list[TapOutput], Any]:
    if name in PUBLIC_SCENARIOS:
        records = PUBLIC_SCENARIOS[name]()
        settings = Settings(tap=TapSettings(engine=engine))
    else:
        records = list(read_capture(CAPTURED / f"{name}.jsonl"))
        settings = settings_for(name, engine)
    core = tap_core(
        settings, Catalog.empty(), group_transactions=capture_has_tx_metadata(records), offline=True
    )
    outputs = list(run_capture(core, records))
    return [e for o in outputs for e in o.entries], outputs, core.stats


def journal_text(name: str, engine: str) -> str:
    entries, outputs, stats = decode(name, engine)
    dead = [f"dead letter {d.record.topic}@{d.record.offset} [{d.reason.value}] {d.message}"
            for o in outputs for d in o.dead_letters]  # fmt: skip
    lines = [dumps(to_json_view(e)) for e in entries] + dead
    lines.append(
        f"stats: duplicates {stats.duplicates}, incomplete {stats.incomplete}, in doubt {stats.in_doubt}"
    )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("engine", TAP_ENGINES)
@pytest.mark.parametrize("name", [*PUBLIC_SCENARIOS, *CAPTURED_SCENARIOS])
def test_each_fixture_journals_as_expected(name: str, engine: str) -> None:
    expected = EXPECTED / f"{name}.jsonl"
    text = journal_text(name, engine)
    if os.environ.get("REWIND_REGENERATE_CORPUS") and engine == "python":
        expected.parent.mkdir(exist_ok=True)
        expected.write_text(text)
    assert text == expected.read_text(), f"{name} ({engine}) differs from {expected}"


# -- what a user would check ---------------------------------------------------------------------------


def journal(name: str) -> list[JournalEntry]:
    return decode(name, "python")[0]


def dead_letters(name: str) -> list[str]:
    return [d.reason.value for o in decode(name, "python")[1] for d in o.dead_letters]


def test_postgresql_documentation_events() -> None:
    entries = journal("docs-postgresql")
    assert [e.changes[0].op for e in entries] == [Op.CREATE, Op.UPDATE, Op.DELETE, Op.TRUNCATE, Op.MESSAGE,
                                                   Op.MESSAGE] and dead_letters("docs-postgresql") == []  # fmt: skip
    create, update, delete, truncate, message, untransacted = (e.changes[0] for e in entries)
    assert create.after == {
        "id": 1,
        "first_name": "Anne",
        "last_name": "Kretchmar",
        "email": "annek@noanswer.org",
    }
    assert create.before_complete and not update.before_complete and not delete.before_complete  # DEFAULT
    assert truncate.entity == "public.customers:*" and message.table == "message.foo"
    assert message.position.tx_id == "556" and untransacted.position.tx_id is None


def test_mysql_documentation_events_are_three_actions_of_one_row() -> None:
    """No LSN and no txId: the binlog position tells them apart (the tap once dropped all but the first)."""
    entries = journal("docs-mysql")
    assert [(e.changes[0].op, e.changes[0].entity) for e in entries] == [
        (Op.CREATE, "inventory.customers:1004"), (Op.UPDATE, "inventory.customers:1004"),
        (Op.DELETE, "inventory.customers:1004")]  # fmt: skip
    assert [e.changes[0].position.log_position for e in entries] == [
        "mysql-bin.000003:154:0", "mysql-bin.000003:484:0", "mysql-bin.000003:805:0"]  # fmt: skip
    assert dead_letters("docs-mysql") == []  # the schema change and BEGIN/END are read, not refused
    assert entries[1].changes[0].changed_fields == ("first_name",)


def test_the_outbox_routers_default_message_is_journaled_typed_by_its_aggregate() -> None:
    for name in ("docs-outbox-default", "docs-outbox-string-key", "docs-outbox-expanded"):
        [entry] = journal(name)
        assert (entry.action_id, entry.action_type, entry.aggregate_id) == (OUTBOX_ID[1], "order", "1"), name
        assert entry.type_fallback and entry.event is not None
        assert entry.event.payload["lineItems"][0]["totalPrice"] == Decimal("39.98"), name
    [table_change] = journal("docs-outbox-table")
    assert table_change.action_type == "inventory.outboxevent.create" and table_change.tx_id == "584"


def test_debezium_test_resources_read_alike_with_and_without_schema() -> None:
    [with_schema], [without] = journal("debezium-serde-with-schema"), journal("debezium-serde-without-schema")
    assert with_schema.changes[0].after == without.changes[0].after
    assert with_schema.changes[0].entity == "inventory.customers:1004"


def test_flinks_captures_keep_every_value_and_tell_full_from_default_images() -> None:
    full, default = journal("flink-postgres-full"), journal("flink-postgres-replica-identity")
    assert len(full) == len(default) == 16
    assert (full[0].changes[0].after or {})["weight"] == Decimal(
        "3.14"
    )  # not 3.140000104904175 or 3.14000000000000012
    updates = [e.changes[0] for e in full if e.changes[0].op in (Op.UPDATE, Op.DELETE)]
    assert updates and all(c.before_complete for c in updates)
    assert not any(e.changes[0].before_complete for e in default if e.changes[0].op in (Op.UPDATE, Op.DELETE))
    assert (
        default[-1].changes[0].op is Op.DELETE and default[-1].changes[0].entity == "inventory.products:111"
    )


CAPTURED_CONFIGS = [n for n in CAPTURED_SCENARIOS if n.startswith("pg-")]
BIG = 12345678901234567890123456789012345678


def _orders(name: str) -> list[JournalEntry]:
    return [e for e in journal(name) if any(c.table == "orders" for c in e.changes)]


LOSSY_AT_THE_SOURCE = {"pg-decimal-double"}  # Debezium rounds NUMERIC keys to doubles before rewind reads
STRUCT_KEYS = {"pg-string-keys-default-router"}  # NUMERIC keys through StringConverter cannot be spelled back


@pytest.mark.parametrize("name", CAPTURED_CONFIGS)
def test_every_captured_configuration_journals_the_workload(name: str) -> None:
    entries = journal(name)
    events = sorted(e.action_type for e in entries if e.event is not None)
    assert len(events) == 3, (name, events)  # OrderPlaced, OrderPaid, Pinged (or their aggregates)
    ledger = {c.entity for e in entries for c in e.changes if c.table == "ledger"}
    if name in LOSSY_AT_THE_SOURCE:
        assert ledger == {f"s_{name.replace('-', '_')}.ledger:1.2345678901234568E+37"}  # one row for two
    elif name in STRUCT_KEYS:
        assert ledger == set() and dead_letters(name) == ["missing_key"] * 3, (
            name
        )  # the ledger's three changes
        return
    else:
        assert len(ledger) == 2, (name, ledger)  # two NUMERIC(38,0) keys one apart stay two rows
    assert dead_letters(name) == [], name


@pytest.mark.parametrize("name", ["pg-schemas-full", "pg-decimal-numeric"])
def test_numbers_are_exact_where_the_connector_sent_them_exactly(name: str) -> None:
    [placed] = [e for e in journal(name) if e.action_type == "OrderPlaced"]
    assert (placed.changes[0].after or {})["total"] == Decimal("123456789012345678.91")
    assert placed.event is not None and placed.event.payload["total"] == Decimal("123456789012345678.91")
    keys = sorted(c.key["id"] for e in journal(name) for c in e.changes if c.table == "ledger")
    assert keys[0] == BIG and keys[-1] == BIG + 1
    amounts = {c.after["amount"] for e in journal(name) for c in e.changes if c.table == "ledger" and c.after}
    assert {Decimal("1.5"), Decimal("0.000001"), Decimal("2.5")} == amounts


def test_decimals_as_text_and_undecodable_bytes_are_said_so_by_numeric_selectors() -> None:
    string_mode = [e for e in journal("pg-decimal-string") if e.action_type == "OrderPlaced"]
    assert (string_mode[0].changes[0].after or {})["total"] == "123456789012345678.91"
    assert FieldPredicate.parse("after.total > 100").matches(string_mode[0])
    bytes_mode = next(e for e in journal("pg-json-full") if e.action_type == "OrderPlaced")
    assert base64.b64decode((bytes_mode.changes[0].after or {})["total"])  # precise without schemas: bytes
    assert FieldPredicate.parse("after.total > 100").unreadable(bytes_mode)


@pytest.mark.parametrize(("name", "restorable"), [("pg-json-full", True), ("pg-schemas-full", True),
                                                  ("pg-json-default", False), ("pg-schemas-default", False)])  # fmt: skip
def test_deletes_are_restorable_only_under_replica_identity_full(name: str, restorable: bool) -> None:
    deletes = [c for e in _orders(name) for c in e.changes if c.table == "orders" and c.op is Op.DELETE]
    assert len(deletes) == 2 and all(c.before_complete is restorable for c in deletes), name


def test_string_converter_keys_and_the_default_router() -> None:
    entries = journal("pg-string-keys-default-router")
    events = [e for e in entries if e.event is not None]
    assert {(e.action_type, e.aggregate_id, e.type_fallback) for e in events} == {("order", "1", True),
                                                                               ("ping", "p-1", True)}  # fmt: skip
    assert {c.entity for e in _orders("pg-string-keys-default-router") for c in e.changes} == {
        "s_pg_string_keys_default_router.orders:1", "s_pg_string_keys_default_router.orders:2"}  # fmt: skip


def test_the_routers_envelope_placement_joins_events_with_their_rows() -> None:
    entries = journal("pg-router-envelope")
    [placed] = [e for e in entries if e.action_type == "OrderPlaced"]
    assert (
        placed.correlation_id == "wf-1"
        and [c.table for c in placed.changes] == ["orders"]
        and placed.complete
    )


def test_mariadb_through_the_mysql_connector() -> None:
    name = "mariadb-mysql-connector"
    if not (CAPTURED / f"{name}.jsonl").exists():
        pytest.skip("not captured")
    entries = journal(name)
    changes = [(c.collection, c.op) for e in entries for c in e.changes]
    assert changes == [("inventory.customers", Op.CREATE), ("inventory.customers", Op.UPDATE),
                       ("archive.customers", Op.CREATE), ("inventory.customers", Op.UPDATE),
                       ("inventory.customers", Op.UPDATE), ("inventory.customers", Op.DELETE)]  # fmt: skip
    assert dead_letters(name) == []  # schema changes and heartbeats are read as routine
    assert all(loads(dumps(c.key)) == {"id": 1} for e in entries for c in e.changes)
