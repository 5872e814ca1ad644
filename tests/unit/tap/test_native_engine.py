"""The native tap engine against the Python reference: the same records must give the same journal
bytes, the same dead letters, the same counts and the same safe offsets, whatever the stream holds."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.catalog.catalog import ActionSpec, Catalog
from processor.config import OutboxConvention, Settings, TapSettings, TopicSettings
from processor.errors import ConfigError, SchemaError
from processor.journal.serde import deserialize, journal_key, serialize
from processor.kafka.messages import SourceRecord
from processor.tap import native
from processor.tap.core import PythonTapCore, TapCore
from processor.tap.engine import tap_core
from processor.undo import Mechanism
from tests.unit.tap.builders import (
    MYSQL_TX_TOPIC,
    OUTBOX_TOPIC,
    TS,
    TX_TOPIC,
    FakeMessage,
    begin,
    change,
    decimal_base64,
    decimal_field,
    end,
    mysql_boundary,
    mysql_change,
    outbox,
    with_schema,
)

needs_native = pytest.mark.skipif(not native.available(), reason="the native engine is not built")

CATALOG = Catalog({
    "OrderPlaced": ActionSpec("OrderPlaced", Mechanism.COMPENSATE),
    "public.orders.update": ActionSpec("public.orders.update", Mechanism.RESTORE),
})  # fmt: skip


def test_ci_builds_the_native_engine() -> None:
    """CI installs the engine (scripts/bootstrap.sh); without it the tap would quietly run slower."""
    if os.environ.get("CI") == "true":
        assert native.available(), "the native tap engine is not installed: pip install ./native"


def test_asking_for_a_missing_native_engine_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "rewind_native", None)
    with pytest.raises(ConfigError, match="native tap engine is not installed") as info:
        tap_core(Settings(tap=TapSettings(engine="native")), Catalog.empty())
    assert "REWIND_TAP__ENGINE=python" in str(info.value)
    assert isinstance(tap_core(Settings(), Catalog.empty()), PythonTapCore)  # auto falls back


# -- generated streams ----------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
keys = st.integers(1, 6)
tables = st.sampled_from(["orders", "notes"])
fields = st.dictionaries(st.sampled_from(["status", "total", "note", "at"]), json_values, max_size=3)


@st.composite
def row_changes(draw: st.DrawFn, tx: int | None, lsn: int) -> SourceRecord:
    table, key = draw(tables), draw(keys)
    op = draw(st.sampled_from(["c", "u", "d", "r", "u", "t", "m"]))
    before: dict[str, Any] | None = {"id": key, **draw(fields)}
    after: dict[str, Any] | None = {"id": key, **draw(fields)}
    if draw(st.booleans()):
        before = {"id": key}  # REPLICA IDENTITY DEFAULT
    if op == "c":
        before = None
    if op == "d":
        after = None
    extra = []
    if op in ("c", "d") and draw(st.booleans()):
        header = "__debezium.oldkey" if op == "c" else "__debezium.newkey"
        extra.append(
            (
                header,
                draw(st.sampled_from(['{"id": 9}', "7", "not json", '{"schema":{},"payload":{"id":3}}'])),
            )
        )
    return change(table, op, {"id": key}, before=before, after=after, tx=tx, lsn=lsn, headers=extra,
                  schemas=draw(st.booleans()))  # fmt: skip


@st.composite
def outbox_events(draw: st.DrawFn, tx: int | None, n: int) -> SourceRecord:
    phase = draw(st.sampled_from([None, "intent", "outcome", '"INTENT"', "other"]))
    extra: list[tuple[str, str | None]] = [
        ("phase", phase),
        ("intentId", draw(st.sampled_from([None, "i-1", "i-2", '"i-1"', ""]))),
        ("decision.rule", draw(st.sampled_from([None, "r9"]))),
        ("externalSystems", draw(st.sampled_from([None, "stripe", "stripe, mail", '["a", 0, "b"]']))),
        ("tracestate", draw(st.sampled_from([None, "", "k=v"]))),
    ]
    if draw(st.booleans()):
        extra.append(("__debezium.context.taskId", "0"))
    payload = {
        "order_id": draw(keys),
        "rule_version": draw(st.sampled_from(["v6", "v7", 7, None, ""])),
        "score": draw(st.sampled_from([1.5, float("nan"), float("inf")])),  # Python's json writes NaN
    }
    payload.update(
        draw(
            st.dictionaries(
                st.sampled_from(
                    [
                        "correlation_id",
                        "causation_id",
                        "type",
                        "rule",
                        "tx_id",
                        "traceparent",
                        "phase",
                        "intent_id",
                    ]
                ),
                json_values,
                max_size=2,
            )
        )
    )
    return outbox(
        f"evt-{tx}-{n}" if draw(st.booleans()) else f"evt-{draw(keys)}",
        draw(st.sampled_from(["OrderPlaced", "ChargeRequested", "ChargeSucceeded", '"Quoted"'])),
        payload,
        tx=tx,
        aggregate_id=draw(st.sampled_from(["1", "order-2"])),
        correlation=draw(st.sampled_from([None, "wf-1", "wf-2", ' "wf-3" '])),
        causation=draw(st.sampled_from([None, "", "a", "a,b", '["x","y"]', "[broken"])),
        traceparent=draw(st.sampled_from([
            None, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage", " 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01 ",
        ])),
        extra=extra,
        escaped=draw(st.booleans()),
    )  # fmt: skip


BROKEN = [
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b"{oops"),
    SourceRecord("shop.public.orders", 0, 0, b"not json", b'{"op":"c","source":{},"after":{}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b'{"op":"x","source":{"table":"orders"}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b'{"op":"c","source":{"table":"orders"},"after":[1]}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":null}', b'{"op":"c","source":{"table":"orders"},"after":{"id":1}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"x":1}', b'{"op":"c","source":{"table":"orders"},"after":{"id":1}}'),
    SourceRecord("shop.public.orders", 0, 0, None, b'{"op":"u","source":{"table":"orders"},"after":{"id":1}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b'{"op":"d","source":{"table":"orders"}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b'{"op":"c","source":{"table":""},"after":{"id":1}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b"[1, 2]"),
    SourceRecord(TX_TOPIC, 0, 0, None, b'{"status":"END","id":"5","event_count":-1}'),
    SourceRecord(TX_TOPIC, 0, 0, None, b'{"status":"END","id":"5","event_count":2,"data_collections":[{"data_collection":"a","event_count":1}]}'),
    SourceRecord(TX_TOPIC, 0, 0, None, b'{"status":"BEGIN"}'),
    SourceRecord(OUTBOX_TOPIC, 0, 0, b'"1"', b'{"a":1}', (("eventType", b"T"),)),
    SourceRecord(OUTBOX_TOPIC, 0, 0, b'"1"', b'{"a":1}', (("id", b"e-x"),)),
    SourceRecord("elsewhere", 0, 0, None, b'{"hello":"world"}'),
    SourceRecord("elsewhere", 0, 0, b'"k"', b'{"a":1}', (("id", b"e-y"), ("eventType", b"Sniffed"))),
    SourceRecord("elsewhere", 0, 0, None, b'{"status":"BEGIN","id":"77:1"}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b'{"op":"c","source":{"table":"orders"},"after":{"id":1,"big":"' + b"x" * 3000 + b'"}}'),
]  # fmt: skip


def delivered(draw: st.DrawFn, records: list[SourceRecord]) -> list[tuple[SourceRecord, int]]:
    """Some redelivered (as Debezium does after a restart), all shuffled, then given offsets in order per
    partition (as Kafka hands them over) and times."""
    if records:
        records = records + draw(st.lists(st.sampled_from(records), max_size=4))
    offsets: dict[tuple[str, int], int] = {}
    out, now = [], TS
    for r in draw(st.permutations(records)):
        offset = offsets.get((r.topic, r.partition), 0)
        offsets[(r.topic, r.partition)] = offset + 1
        now += draw(st.sampled_from([0, 1, 500, 40_000]))
        out.append((replace(r, offset=offset, timestamp_ms=now), now))
    return out


def _end_counts(rows: list[SourceRecord], events: list[SourceRecord]) -> dict[str, int]:
    """An END record's per-collection event counts for these rows and outbox events."""
    counts: dict[str, int] = {}
    for r in rows:
        table = f"public.{r.topic.rsplit('.', 1)[-1]}"
        counts[table] = counts.get(table, 0) + 1
    if events:
        counts["public.outbox"] = len(events)
    return counts


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[SourceRecord, int]]:
    """Records as Kafka would hand them over (offsets in order per partition), each with the time."""
    records: list[SourceRecord] = []
    for tx in range(1, draw(st.integers(1, 6)) + 1):
        grouped = draw(st.booleans())
        tx_id = 700 + tx if grouped else None
        rows = [draw(row_changes(tx_id, 10 * tx + i)) for i in range(draw(st.integers(0, 3)))]
        events = [draw(outbox_events(tx_id, i)) for i in range(draw(st.integers(0, 2)))]
        body = rows + events
        if grouped and draw(st.integers(0, 4)):  # sometimes the END never comes
            body = [begin(tx_id or 0), *body, end(tx_id or 0, _end_counts(rows, events))]
        records += body
    records += draw(st.lists(st.sampled_from(BROKEN), max_size=3))
    return delivered(draw, records)


def _order_placed() -> list[SourceRecord]:
    records = [begin(5), change("orders", "c", {"id": 1}, after={"id": 1}, tx=5),
               outbox("e-5", "OrderPlaced", {"n": 1}, tx=5), end(5, {"public.orders": 1, "public.outbox": 1})]  # fmt: skip
    return [replace(r, offset=i) for i, r in enumerate(records)]


order_placed = _order_placed()


def tap_settings(**tap: Any) -> Settings:
    return Settings(
        topics=TopicSettings(cdc=["shop.public.orders", "shop.public.notes"], tx_metadata=[TX_TOPIC],
                             outbox=[OUTBOX_TOPIC]),
        tap=TapSettings(tx_timeout_ms=30_000, intent_timeout_ms=60_000, max_record_bytes=2048, **tap),
    )  # fmt: skip


def run(core: TapCore, stream: list[tuple[SourceRecord, int]]) -> list[Any]:
    seen: list[Any] = []
    for record, now in stream:
        out = core.process(record, now)
        seen += [("entry", serialize(e)) for e in out.entries]
        seen += [("dead", d.reason, d.message, d.record.offset) for d in out.dead_letters]
        seen += [("tick", serialize(e)) for e in core.tick(now).entries]
        seen.append(("state", core.open_transactions, core.pending_intents, core.safe_offsets()))
    seen += [("finish", serialize(e)) for e in core.finish(stream[-1][1] if stream else TS).entries]
    seen.append(("stats", core.stats, core.dedupe_size))
    return seen


@needs_native
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), group=st.booleans(), deleted_in_tx=st.booleans())
def test_native_engine_matches_the_reference_record_by_record(
    stream: list[tuple[SourceRecord, int]], group: bool, deleted_in_tx: bool
) -> None:
    s = tap_settings(outbox_rows_deleted_in_tx=deleted_in_tx)
    reference = PythonTapCore(s, CATALOG, group_transactions=group)
    engine = native.NativeTapCore(s, CATALOG, group_transactions=group)
    assert run(engine, stream) == run(reference, stream)


@needs_native
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), cut=st.integers(0, 40))
def test_native_seeding_from_journal_bytes_matches_the_reference(
    stream: list[tuple[SourceRecord, int]], cut: int
) -> None:
    """A restart: what was journaled before is read back (the engine reads the Avro bytes itself),
    then the whole stream comes again, as Debezium redelivers after a crash."""
    s = tap_settings()
    first = PythonTapCore(s, CATALOG)
    journal = [serialize(e) for r, now in stream[:cut] for e in first.process(r, now).entries]
    reference, engine = PythonTapCore(s, CATALOG), native.NativeTapCore(s, CATALOG)
    assert engine.seed_journal(journal) == reference.seed_journal(journal) == len(journal)
    assert engine.dedupe_size == reference.dedupe_size and engine.pending_intents == reference.pending_intents
    assert run(engine, stream) == run(reference, stream)


@needs_native
def test_a_journal_entry_that_does_not_read_stops_the_seed_naming_it() -> None:
    reference = PythonTapCore(tap_settings(), CATALOG)
    [good] = [serialize(e) for r in order_placed for e in reference.process(r, TS).entries]
    for core in (PythonTapCore(tap_settings(), CATALOG), native.NativeTapCore(tap_settings(), CATALOG)):
        with pytest.raises(SchemaError, match="journal_entry"):
            core.seed_journal([good, good[:-7]])


# -- the batch path the live loop uses ------------------------------------------------------------


class RetriableError:
    def fatal(self) -> bool:
        return False

    def retriable(self) -> bool:
        return True

    def name(self) -> str:
        return "_TRANSPORT"

    def __str__(self) -> str:
        return "broker transport failure"

    def str(self) -> str:
        return "broker transport failure"


def consume_all(core: TapCore, stream: list[tuple[SourceRecord, int]], batch: int) -> list[Any]:
    seen: list[Any] = []
    messages: list[Any] = [FakeMessage(r) for r, _ in stream]
    if stream:  # a consumer event among the records: logged and skipped
        messages.insert(len(messages) // 2, FakeMessage(stream[0][0], err=RetriableError()))
    for i in range(0, len(messages), batch):
        produced = core.consume(messages[i : i + batch], TS + i)
        seen.append(
            (produced.journal, [(d.reason, d.message) for d in produced.dead_letters], produced.positions)
        )
        seen.append(core.expire(TS + i).journal)
    return seen


@needs_native
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), batch=st.integers(1, 7))
def test_native_batches_match_the_reference(stream: list[tuple[SourceRecord, int]], batch: int) -> None:
    s = tap_settings()
    assert consume_all(native.NativeTapCore(s, CATALOG), stream, batch) == consume_all(
        PythonTapCore(s, CATALOG), stream, batch
    )


@needs_native
def test_batch_output_is_what_the_reference_journals() -> None:
    """The bytes the live loop produces decode to the entries the reference builds."""
    records = [begin(5), change("orders", "c", {"id": 1}, after={"id": 1, "s": "é"}, tx=5),
               outbox("e-5", "OrderPlaced", {"n": 1.5}, tx=5), end(5, {"public.orders": 1, "public.outbox": 1})]  # fmt: skip
    records = [replace(r, offset=i) for i, r in enumerate(records)]
    produced = native.NativeTapCore(tap_settings(), CATALOG).consume([FakeMessage(r) for r in records], TS)
    reference = PythonTapCore(tap_settings(), CATALOG)
    [entry] = [e for r in records for e in reference.process(r, TS).entries]
    assert produced.journal == [(journal_key(entry), serialize(entry))]
    assert deserialize(produced.journal[0][1]).changes[0].after == {"id": 1, "s": "é"}


# -- what deployed connectors send: MySQL, converters, router configurations, decimals, hostile input --

DEEP = "[" * 300 + "1" + "]" * 300
HOSTILE = [
    # transaction ids of the wrong type or shape
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
        b'{"op":"c","after":{"id":1},"source":{"table":"orders","schema":"public","lsn":5,"txId":[1,2]}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 b'{"op":"c","after":{"id":1},"source":{"table":"orders","lsn":5,"txId":{"a":1}}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 '{"op":"c","after":{"id":1},"source":{"table":"orders","lsn":5,"txId":"\u0663\u0664"}}'.encode()),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 '{"op":"c","after":{"id":1},"source":{"table":"orders","lsn":5,"txId":"\u00b2"}}'.encode()),
    SourceRecord(TX_TOPIC, 0, 0, None, b'{"status":"BEGIN","id":[5]}'),
    SourceRecord(TX_TOPIC, 0, 0, None, b'{"status":"END","id":"5","event_count":1,"data_collections":5}'),
    SourceRecord(TX_TOPIC, 0, 0, None,
                 b'{"status":"END","id":"5","event_count":1,"data_collections":[{"data_collection":"a","event_count":9223372036854775807},{"data_collection":"b","event_count":9223372036854775807}]}'),
    # times and positions out of range
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 b'{"op":"c","after":{"id":1},"source":{"table":"orders","lsn":5,"ts_ms":9223372036854775808}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 b'{"op":"c","after":{"id":1},"source":{"table":"orders","lsn":1e400,"ts_ms":-1.9e3}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 b'{"op":"c","after":{"id":1},"source":{"table":"orders","lsn":" 0042 ","ts_ms":"1_000"}}'),
    # nesting: headers and payloads deeper than the rule, row images too
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 b'{"op":"c","after":{"id":1},"source":{"table":"orders","lsn":5}}',
                 (("__debezium.oldkey", DEEP.encode()),)),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 b'{"op":"c","after":{"id":1,"doc":' + DEEP.encode() + b'},"source":{"table":"orders","lsn":5}}'),
    SourceRecord(OUTBOX_TOPIC, 0, 0, b'"1"', json.dumps(DEEP).encode(),
                 (("id", b"e-deep"), ("eventType", b"T"), ("causationId", DEEP.encode()))),
    # bytes that are not UTF-8, in values, keys and headers
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}', b'{"op":"c","after":{"id":"\xff"},"source":{}}'),
    SourceRecord(OUTBOX_TOPIC, 0, 0, b"\xfe\xff", b'{"a":1}', (("id", b"e-bin"), ("eventType", b"T"))),
    SourceRecord(OUTBOX_TOPIC, 0, 0, b'"1"', b'{"a":1}', (("id", b"e-\xc3"), ("eventType", b"T\xe2\x82"))),
    # a CDC key through StringConverter, a connector whose positions rewind cannot read
    SourceRecord("shop.public.orders", 0, 0, b"Struct{id=1}",
                 b'{"op":"c","after":{"id":1},"source":{"table":"orders","lsn":5}}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 b'{"op":"c","after":{"id":1},"source":{"connector":"sqlserver","table":"orders","change_lsn":"0:1"}}'),
    # decimals the schema announces but the bytes do not hold
    with_schema(change("orders", "c", {"id": 1}, after={"id": 1, "total": "not base64!"}, lsn=5),
                {"id": {"type": "int32"}, "total": decimal_field(2)}),
    with_schema(change("orders", "c", {"id": 1}, after={"id": 1, "total": "AA=="}, lsn=5),
                {"id": {"type": "int32"}, "total": {**decimal_field(2), "parameters": {"scale": "x"}}}),
    SourceRecord("shop.public.orders", 0, 0, b'{"id":1}',
                 b'{"op":"c","after":{"id":1,"n":{"scale":2,"value":"' + b"A" * 1400 + b'"}},"source":{"table":"orders","lsn":5}}'),
]  # fmt: skip
ROUTINE = [
    SourceRecord("__debezium-heartbeat.shop", 0, 0, b'{"serverName":"shop"}', b'{"ts_ms":1795466798129}'),
    SourceRecord("shop.public.orders", 0, 0, b'{"serverName":"shop"}',
                 b'{"schema":{"type":"struct"},"payload":{"ts_ms":1795466798129}}'),
    SourceRecord("inv", 0, 0, b'{"databaseName":"inventory"}',
                 b'{"source":{"connector":"mysql","file":"mysql-bin.000003","pos":10},"databaseName":"inventory",'
                 b'"ddl":"ALTER TABLE customers ADD COLUMN note TEXT","tableChanges":[]}'),
]  # fmt: skip

decimal_units = st.integers(-(10**40), 10**40)


@st.composite
def pg_rows(draw: st.DrawFn, tx: int | None, lsn: int) -> SourceRecord:
    """PostgreSQL rows as deployed: REPLICA IDENTITY DEFAULT or FULL, placeholders, decimals in every
    encoding, with or without schemas."""
    key = draw(keys)
    op = draw(st.sampled_from(["u", "d", "d", "c"]))
    identity = draw(st.sampled_from(["default", "full"]))
    status = draw(st.sampled_from(["PAID", "", "NEW"]))
    unscaled = draw(decimal_units)
    encoding = draw(st.sampled_from(["schema", "bare-base64", "variable", "numeric", "string"]))
    total: Any = {
        "schema": decimal_base64(unscaled), "bare-base64": decimal_base64(unscaled),
        "variable": {"scale": 2, "value": decimal_base64(unscaled)},
        "numeric": None, "string": str(Decimal(unscaled).scaleb(-2)),
    }[encoding]  # fmt: skip
    row: dict[str, Any] = {
        "id": key,
        "status": status,
        "total": total,
        "note": draw(st.sampled_from([None, "x"])),
    }
    placeholder = {"id": key, "status": "", "total": draw(st.sampled_from([0, "AA==", None])), "note": None}
    before: dict[str, Any] | None = placeholder if identity == "default" else row
    if op == "u" and identity == "default":
        before = None
    record = change(draw(tables), op, {"id": key}, before=None if op == "c" else before,
                    after=None if op == "d" else row, tx=tx, lsn=lsn)  # fmt: skip
    struct_key = draw(
        st.sampled_from(
            [
                None,
                f"Struct{{id={key}}}",
                f"Struct{{id={key},status={status}}}",
                "Struct{id=x}",
                "Struct{}",
                f",Struct{{id={key}}}",
                f"Struct{{id={key}",
            ]
        )
    )
    if struct_key is not None:  # key.converter=StringConverter: Kafka Connect's text of the key struct
        record = replace(record, key=struct_key.encode())
    if encoding == "numeric":  # decimal.format=NUMERIC: a JSON number, digits as written
        literal = f"{unscaled}e-2".encode()
        record = replace(
            record, value=(record.value or b"").replace(b'"total": null', b'"total": ' + literal)
        )
    if encoding == "schema" or draw(st.booleans()):
        fields = {"id": {"type": "int32"}, "status": {"type": "string", "default": "NEW"},
                  "total": decimal_field(2) if encoding == "schema" else {"type": "string", "optional": True},
                  "note": {"type": "string", "optional": True}}  # fmt: skip
        record = with_schema(record, fields)
    return record


@st.composite
def mysql_tx(draw: st.DrawFn, gtid: int) -> list[SourceRecord]:
    db = draw(st.sampled_from(["inventory", "archive"]))  # same table name in two databases
    rows = []
    for r in range(draw(st.integers(1, 3))):
        key = draw(keys)
        op = draw(st.sampled_from(["c", "u", "d"]))
        image = {"id": key, "email": draw(st.sampled_from(["a@x", "b@x"]))}
        rows.append(mysql_change("customers", op, {"id": key}, before=None if op == "c" else image,
                                 after=None if op == "d" else image, gtid=gtid, pos=1000 + 10 * gtid, row=r, db=db,
                                 connector=draw(st.sampled_from(["mysql", "mariadb"]))))  # fmt: skip
    counts = {f"{db}.customers": len(rows)}
    return [mysql_boundary("BEGIN", gtid), *rows, mysql_boundary("END", gtid, counts)]


@st.composite
def deployed_outbox(draw: st.DrawFn, tx: int | None, n: int) -> SourceRecord:
    record = draw(outbox_events(tx, n))
    drop = draw(
        st.sampled_from(
            [
                (),
                ("eventType",),
                ("eventType", "aggregateType"),  # the router's default
                ("eventType", "txId", "traceparent", "phase", "intentId", "correlationId"),
            ]
        )
    )
    headers = tuple(h for h in record.headers if h[0] not in drop)
    if "txId" in drop and tx is not None:  # the service writes txid_current() into the payload instead
        outer = json.loads(record.value or b"null")
        inner = json.loads(outer) if isinstance(outer, str) else outer
        if isinstance(inner, dict):
            inner["tx_id"] = draw(st.sampled_from([tx, str(tx), 2**32 + tx]))
            inner["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            text = json.dumps(inner)
            record = replace(record, value=json.dumps(text if isinstance(outer, str) else inner).encode())
    key = draw(
        st.sampled_from(
            [record.key, b"pay-1000", b"123", b"1e2", b"null", b'{"schema":{"type":"string"},"payload":"k"}']
        )
    )
    value = record.value
    shape = draw(st.sampled_from(["as-is", "bare-text", "envelope", "envelope-escaped"]))
    if shape == "bare-text":
        value = b"a payload that is not JSON"
    elif shape.startswith("envelope"):
        payload = json.loads(value or b"null")
        inner = (
            payload
            if shape == "envelope-escaped"
            else json.loads(payload)
            if isinstance(payload, str)
            else payload
        )
        envelope = {"payload": inner, "eventType": draw(st.sampled_from(["FromEnvelope", 7])),
                    "eventId": f"env-{n}"}  # fmt: skip
        value = json.dumps(envelope).encode()
    return SourceRecord(record.topic, 0, 0, key, value, headers, record.timestamp_ms)


@st.composite
def deployed_streams(draw: st.DrawFn) -> list[tuple[SourceRecord, int]]:
    records: list[SourceRecord] = []
    for tx in range(1, draw(st.integers(1, 5)) + 1):
        kind = draw(st.sampled_from(["pg", "pg", "mysql"]))
        if kind == "mysql":
            records += draw(mysql_tx(tx))
            continue
        tx_id = 800 + tx
        rows = [draw(pg_rows(tx_id, 10 * tx + i)) for i in range(draw(st.integers(0, 3)))]
        events = [draw(deployed_outbox(tx_id, i)) for i in range(draw(st.integers(0, 2)))]
        records += [begin(tx_id), *rows, *events, end(tx_id, _end_counts(rows, events))]
    records += draw(st.lists(st.sampled_from(HOSTILE + ROUTINE + BROKEN), max_size=4))
    return delivered(draw, records)


def deployed_settings(**tap: Any) -> Settings:
    return Settings(
        topics=TopicSettings(cdc=["shop.public.orders", "shop.public.notes", "^inv\\..*\\.customers"],
                             tx_metadata=[TX_TOPIC, MYSQL_TX_TOPIC], outbox=[OUTBOX_TOPIC]),
        tap=TapSettings(tx_timeout_ms=30_000, intent_timeout_ms=60_000, max_record_bytes=4096, **tap),
    )  # fmt: skip


@needs_native
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=deployed_streams(), envelope=st.booleans())
def test_native_engine_matches_the_reference_on_deployed_shapes(
    stream: list[tuple[SourceRecord, int]], envelope: bool
) -> None:
    s = deployed_settings(outbox=OutboxConvention(envelope=envelope))
    assert run(native.NativeTapCore(s, CATALOG), stream) == run(PythonTapCore(s, CATALOG), stream)


@needs_native
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=deployed_streams(), cut=st.integers(0, 30), batch=st.integers(1, 7))
def test_native_engine_matches_the_reference_on_deployed_shapes_in_batches_and_restarts(
    stream: list[tuple[SourceRecord, int]], cut: int, batch: int
) -> None:
    s = deployed_settings()
    first = PythonTapCore(s, CATALOG)
    journal = [serialize(e) for r, now in stream[:cut] for e in first.process(r, now).entries]
    reference, engine = PythonTapCore(s, CATALOG), native.NativeTapCore(s, CATALOG)
    reference.seed_journal(journal)
    engine.seed_journal(journal)
    assert consume_all(engine, stream, batch) == consume_all(reference, stream, batch)


def test_hostile_records_are_dead_letters_with_a_reason_on_both_engines() -> None:
    """None of them stops the tap; each gets a reason, the same on both engines."""
    s = deployed_settings()
    cores: list[TapCore] = [PythonTapCore(s, CATALOG)]
    if native.available():
        cores.append(native.NativeTapCore(s, CATALOG))
    for core in cores:
        for record in HOSTILE:
            out = core.process(record, TS)
            assert out.entries == [] or out.dead_letters == [], record
            for dead in out.dead_letters:
                assert dead.reason.value and dead.message, record
