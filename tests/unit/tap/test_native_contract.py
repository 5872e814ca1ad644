"""The native engine's side of the journal's contract, derived from schemas/journal_entry.avsc itself: a
field or an enum symbol the schema gains and the engine's writer or reader forgets fails here."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, cast

import fastavro
import pytest

from processor.catalog.catalog import ActionSpec, Catalog
from processor.config import Settings, TapSettings, TopicSettings
from processor.journal.serde import serialize
from processor.kafka.messages import SourceRecord
from processor.schemas import SchemaName, parsed_schema, raw_schema
from processor.tap import native
from processor.tap.core import PythonTapCore, TapCore
from processor.undo import Mechanism
from tests.unit.tap.builders import OUTBOX_TOPIC, TS, TX_TOPIC, begin, change, end, mysql_change, outbox

pytestmark = pytest.mark.skipif(not native.available(), reason="the native engine is not built")

SCHEMA = raw_schema(SchemaName.JOURNAL_ENTRY)
CATALOG = Catalog({
    "Restored": ActionSpec("Restored", Mechanism.RESTORE),
    "Compensated": ActionSpec("Compensated", Mechanism.COMPENSATE),
    "Irreversible": ActionSpec("Irreversible", Mechanism.IRREVERSIBLE),
    "Replayed": ActionSpec("Replayed", Mechanism.REPLAY, store="s", replay_topics=("t",)),
})  # fmt: skip
OPS = {"CREATE": "c", "UPDATE": "u", "DELETE": "d", "READ": "r", "TRUNCATE": "t", "MESSAGE": "m"}


def enum_symbols(schema: Any, name: str) -> list[str]:
    """The symbols of the named enum, wherever it is declared in the schema."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "enum" and node.get("name") == name:
                return list(node["symbols"])
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    raise KeyError(name)


def fields(schema: Any, prefix: str = "") -> Iterator[str]:
    """Every field path of the record and the records nested in it, in schema order."""
    for f in schema["fields"]:
        path = f"{prefix}{f['name']}"
        yield path
        for branch in f["type"] if isinstance(f["type"], list) else [f["type"]]:
            inner = branch.get("items", branch) if isinstance(branch, dict) else None
            if isinstance(inner, dict) and inner.get("type") == "record":
                yield from fields(inner, f"{path}.")


def decode(data: bytes) -> dict[str, Any]:
    record = fastavro.schemaless_reader(io.BytesIO(data), parsed_schema(SchemaName.JOURNAL_ENTRY))
    return cast(dict[str, Any], record)


def workload() -> list[tuple[SourceRecord, int]]:
    """Records that make the engine write every field and every symbol it can write."""
    rows = [change("orders", code, {"id": i}, before={"id": i, "s": "a"}, after={"id": i, "s": "b"}, tx=900, lsn=i)
            for i, code in enumerate(OPS.values(), start=1)]  # fmt: skip
    rows = [r if r.value and b'"op": "c"' not in r.value else replace(r, headers=(("__debezium.oldkey", b'{"id":0}'),))
            for r in rows]  # fmt: skip
    events = [
        outbox("e-restored", "Restored", {"rule_version": "v7"}, tx=900, causation="a,b",
               traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
               extra=[("tracestate", "k=v"), ("decision.rule", "r"), ("externalSystems", "s")]),
        outbox("e-intent", "Compensated", {}, extra=[("phase", "intent"), ("intentId", "i-1")]),
        outbox("e-outcome", "Irreversible", {}, extra=[("phase", "outcome"), ("intentId", "i-2")]),
        outbox("e-waits", "Compensated", {}, extra=[("phase", "intent"), ("intentId", "i-3")]),
        outbox("e-unknown", "NotInTheCatalog", {}),
        outbox("e-replayed", "Replayed", {}),
    ]  # fmt: skip
    counts = {"public.orders": len(rows), "public.outbox": 1}
    mysql = mysql_change("customers", "c", {"id": 1}, after={"id": 1}, pos=10)  # a binlog position
    records = [begin(900), *rows, events[0], end(900, counts), *events[1:], mysql]
    return [(replace(r, offset=i), TS) for i, r in enumerate(records)]


def journal(core: TapCore) -> list[bytes]:
    out = [serialize(e) for r, now in workload() for e in core.process(r, now).entries]
    return out + [serialize(e) for e in core.tick(TS + 10**9).entries]  # the waiting intent: in doubt


def settings() -> Settings:
    cdc = ["shop.public.orders", "inv.inventory.customers"]
    return Settings(topics=TopicSettings(cdc=cdc, tx_metadata=[TX_TOPIC], outbox=[OUTBOX_TOPIC]),
                    tap=TapSettings(intent_timeout_ms=1000))  # fmt: skip


def engine_journal() -> list[bytes]:
    """The engine's own Avro bytes (process() decodes them; consume() hands them back as written)."""
    from tests.unit.tap.builders import FakeMessage

    engine = native.NativeTapCore(settings(), CATALOG)
    produced = engine.consume([FakeMessage(r) for r, _ in workload()], TS)
    return [value for _key, value in produced.journal + engine.expire(TS + 10**9).journal]


def test_the_engine_writes_every_field_of_the_schema_as_the_reference_does() -> None:
    ours, reference = engine_journal(), journal(PythonTapCore(settings(), CATALOG))
    assert ours == reference
    decoded = [decode(v) for v in ours]
    for path in fields(SCHEMA):  # every field of the schema, nested ones too, written with a value
        if path not in NEVER_SET_BY_THE_TAP:
            assert any(v not in (None, [], {}) for d in decoded for v in values_at(d, path.split("."))), path


NEVER_SET_BY_THE_TAP = {"rewind_request_id", "compensated_action_id"}  # the worker's, on its own entries


def values_at(node: Any, path: list[str]) -> Iterator[Any]:
    if not path:
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from values_at(item, path)
    elif isinstance(node, dict) and path[0] in node:
        yield from values_at(node[path[0]], path[1:])


@pytest.mark.parametrize("enum", ["RowOp", "Phase", "Reversibility"])
def test_the_engine_writes_every_symbol_of_the_schemas_enums(enum: str) -> None:
    decoded = [decode(v) for v in engine_journal()]
    written = {
        "RowOp": {c["op"] for d in decoded for c in d["changes"]},
        "Phase": {d["phase"] for d in decoded},
        "Reversibility": {d["reversibility"] for d in decoded},
    }[enum]
    assert written == set(enum_symbols(SCHEMA, enum)) - {"UNKNOWN"}


def test_the_engines_reader_takes_every_field_the_reference_writes() -> None:
    """At start-up the engine reads the journal's bytes itself: all of them, every field set."""
    values = journal(PythonTapCore(settings(), CATALOG))
    engine, reference = native.NativeTapCore(settings(), CATALOG), PythonTapCore(settings(), CATALOG)
    assert engine.seed_journal(values) == reference.seed_journal(values) == len(values)
    assert (engine.dedupe_size, engine.pending_intents) == (reference.dedupe_size, reference.pending_intents)
