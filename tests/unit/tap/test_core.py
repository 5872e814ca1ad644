"""The tap core on hand-written and real Debezium records: grouping, timeouts, dedupe, dead letters."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.catalog.catalog import ActionSpec, Catalog
from processor.config import Settings
from processor.errors import DeadLetterReason
from processor.journal.model import JournalEntry, Phase
from processor.journal.serde import deserialize, serialize, to_json_view
from processor.kafka.messages import SourceRecord
from processor.tap.capture import read_capture
from processor.tap.core import PythonTapCore, TapCore, TapOutput, capture_has_tx_metadata
from processor.tap.engine import tap_core
from processor.tap.offline import run_capture
from processor.undo import Mechanism, Reversibility
from tests.unit.tap.builders import TS, begin, change, each_tap_engine, end, outbox, tap_settings, tombstone  # noqa: F401

FIXTURE = Path(__file__).parents[2] / "fixtures" / "debezium" / "pg_outbox_pgoutput.jsonl"


pytestmark = pytest.mark.usefixtures("each_tap_engine")  # every test here runs on both tap cores


def core(group: bool = True, catalog: Catalog | None = None, **tap: object) -> TapCore:
    settings = Settings(tap=tap_settings(**tap))
    return tap_core(settings, catalog or Catalog.empty(), group_transactions=group)


def feed(c: TapCore, records: list[SourceRecord], now: int = TS) -> TapOutput:
    out = TapOutput()
    for r in records:
        out.extend(c.process(r, now))
    return out


def order_placed_tx(tx: int = 729, order: int = 1, base: int = 0) -> list[SourceRecord]:
    return [
        begin(tx, offset=base),
        change("orders", "c", {"id": order}, after={"id": order, "total_cents": 4599}, tx=tx, lsn=tx * 10, offset=base),
        outbox(f"evt-{tx}", "OrderPlaced", {"order_id": order, "rule_version": "v7"}, tx=tx, offset=base,
               correlation=f"wf-{order}"),
        end(tx, {"public.orders": 1, "public.outbox": 1}, offset=base + 1),
    ]  # fmt: skip


def test_outbox_event_joins_its_transactions_rows() -> None:
    out = feed(core(), order_placed_tx())
    [entry] = out.entries
    assert entry.action_id == "evt-729" and entry.action_type == "OrderPlaced"
    assert entry.tx_id == "729" and entry.complete and entry.correlation_id == "wf-1"
    assert [c.table for c in entry.changes] == ["orders"] and entry.entities == ("public.orders:1",)
    assert entry.decision == {"rule_version": "v7"}


def test_nothing_is_journaled_before_end_counts_are_met() -> None:
    c = core()
    records = order_placed_tx()
    assert feed(c, records[:3]).entries == []
    assert c.open_transactions == 1
    assert len(feed(c, records[3:]).entries) == 1 and c.open_transactions == 0


@pytest.mark.parametrize("seed", range(8))
def test_any_arrival_order_gives_the_same_actions(seed: int) -> None:
    records = order_placed_tx(729, 1) + order_placed_tx(730, 2, base=10)
    baseline = feed(core(), records).entries
    random.Random(seed).shuffle(records)
    shuffled = feed(core(), records).entries
    assert (
        sorted(e.action_id for e in shuffled)
        == sorted(e.action_id for e in baseline)
        == ["evt-729", "evt-730"]
    )
    assert {e.action_id: e.changes for e in shuffled} == {e.action_id: e.changes for e in baseline}


def test_transaction_without_outbox_event_is_one_action_of_all_its_rows() -> None:
    out = feed(core(), [
        begin(730),
        change("orders", "u", {"id": 1}, before={"id": 1, "s": "a"}, after={"id": 1, "s": "b"}, tx=730, lsn=2),
        change("notes", "c", {"id": 1}, after={"id": 1, "body": "x"}, tx=730, lsn=3),
        end(730, {"public.orders": 1, "public.notes": 1}),
    ])  # fmt: skip
    [entry] = out.entries
    assert entry.action_id == "tx:shop:730" and entry.action_type == "public.orders.update"
    assert [c.table for c in entry.changes] == ["orders", "notes"]
    assert entry.service == "shop" and entry.reversibility is Reversibility.UNCLASSIFIED


def test_rows_without_transaction_metadata_are_single_row_actions() -> None:
    out = feed(core(group=False), [
        change("orders", "c", {"id": 1}, after={"id": 1}, lsn=1),
        change("orders", "c", {"id": 2}, after={"id": 2}, lsn=2),
    ])  # fmt: skip
    assert [len(e.changes) for e in out.entries] == [1, 1]
    assert len({e.action_id for e in out.entries}) == 2


def test_unfinished_transaction_is_journaled_incomplete_after_the_timeout() -> None:
    c = core(tx_timeout_ms=1000)
    records = order_placed_tx()
    feed(c, records[:2])  # BEGIN and one row, never the END
    assert c.tick(TS + 999).entries == []
    [entry] = c.tick(TS + 1000).entries
    assert not entry.complete and len(entry.changes) == 1 and c.stats.incomplete == 1
    assert c.safe_offsets() == {}


def test_safe_offsets_never_pass_a_held_record() -> None:
    c = core()
    feed(c, [begin(1, offset=5), change("orders", "c", {"id": 1}, after={"id": 1}, tx=1, offset=40)])
    feed(c, [begin(2, offset=6), change("orders", "c", {"id": 2}, after={"id": 2}, tx=2, offset=41),
             end(2, {"public.orders": 1}, offset=7)])  # fmt: skip
    assert c.safe_offsets() == {("shop.transaction", 0): 5, ("shop.public.orders", 0): 40}


def test_debezium_redelivery_is_journaled_once() -> None:
    c = core()
    first = feed(c, order_placed_tx())
    again = feed(
        c, order_placed_tx(base=100)
    )  # the same changes at new offsets, as after a connector restart
    assert len(first.entries) == 1 and again.entries == []
    assert c.stats.duplicates == 4 and c.open_transactions == 0


def test_duplicates_are_known_across_a_restart_through_the_journal() -> None:
    first = core()
    journaled = feed(first, order_placed_tx()).entries
    restarted = core()
    restarted.seed(deserialize(serialize(e)) for e in journaled)  # what start-up reads back from the journal
    assert feed(restarted, order_placed_tx()).entries == []
    assert restarted.open_transactions == 0


def test_duplicate_row_inside_an_open_transaction_is_dropped() -> None:
    row = change("orders", "c", {"id": 1}, after={"id": 1}, tx=5, lsn=9)
    out = feed(core(), [begin(5), row, row, end(5, {"public.orders": 1})])
    assert len(out.entries) == 1 and len(out.entries[0].changes) == 1


def test_outbox_rows_deleted_in_their_transaction_count_once() -> None:
    records = order_placed_tx()
    records[-1] = end(729, {"public.orders": 1, "public.outbox": 2})  # insert + delete of the outbox row
    assert len(feed(core(outbox_rows_deleted_in_tx=True), records).entries) == 1
    assert feed(core(), records).entries == []


def test_two_events_in_one_transaction_rows_go_to_the_first() -> None:
    out = feed(core(), [
        begin(9),
        change("orders", "c", {"id": 1}, after={"id": 1}, tx=9),
        outbox("a", "OrderPlaced", {}, tx=9, offset=0),
        outbox("b", "OrderAudited", {}, tx=9, offset=1),
        end(9, {"public.orders": 1, "public.outbox": 2}),
    ])  # fmt: skip
    assert [(e.action_id, len(e.changes)) for e in out.entries] == [("a", 1), ("b", 0)]


def test_intent_without_outcome_becomes_in_doubt() -> None:
    c = core(group=False, intent_timeout_ms=60_000)
    [intent] = feed(c, [outbox("i-evt", "ChargeRequested", {}, extra=[("phase", "intent"), ("intentId", "i-1")],
                               causation="order-1")]).entries  # fmt: skip
    assert intent.phase is Phase.INTENT and c.pending_intents == 1
    assert c.tick(TS + 59_999).entries == []
    [doubt] = c.tick(TS + 60_000).entries
    assert doubt.phase is Phase.IN_DOUBT and doubt.action_id == "i-evt:in-doubt"
    assert doubt.causation_ids == ("i-evt",) and doubt.intent_id == "i-1" and doubt.correlation_id == "wf-1"


def test_outcome_resolves_its_intent_and_points_back_to_it() -> None:
    c = core(group=False, intent_timeout_ms=60_000)
    feed(c, [outbox("i-evt", "ChargeRequested", {}, extra=[("phase", "intent"), ("intentId", "i-1")])])
    [outcome] = feed(
        c, [outbox("o-evt", "ChargeSucceeded", {}, extra=[("phase", "outcome"), ("intentId", "i-1")])]
    ).entries
    assert outcome.phase is Phase.OUTCOME and "i-evt" in outcome.causation_ids
    assert c.pending_intents == 0 and c.tick(TS + 120_000).entries == []


def test_pending_intents_survive_a_restart_through_the_journal() -> None:
    first = core(group=False, intent_timeout_ms=60_000)
    [intent] = feed(
        first, [outbox("i-evt", "Charge", {}, extra=[("phase", "intent"), ("intentId", "i-1")])]
    ).entries
    restarted = core(group=False, intent_timeout_ms=60_000)
    restarted.seed([deserialize(serialize(intent))])
    assert [e.phase for e in restarted.tick(TS + 60_000).entries] == [Phase.IN_DOUBT]


def test_reversibility_comes_from_the_catalog() -> None:
    catalog = Catalog({"OrderPlaced": ActionSpec("OrderPlaced", Mechanism.COMPENSATE)})
    [entry] = feed(core(catalog=catalog), order_placed_tx()).entries
    assert entry.reversibility is Reversibility.COMPENSABLE


def test_tombstones_are_skipped_quietly() -> None:
    out = feed(core(group=False), [tombstone("notes", {"id": 1})])
    assert out.entries == [] and out.dead_letters == []


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (SourceRecord("shop.public.orders", 0, 1, b'{"id":1}', b"{oops"), DeadLetterReason.BAD_JSON),
        (SourceRecord("elsewhere", 0, 1, None, b'{"hello":"world"}'), DeadLetterReason.UNRECOGNIZED),
        (
            SourceRecord("shop.transaction", 0, 1, None, b'{"status":"END","id":"1"}'),
            DeadLetterReason.BAD_TX_METADATA,
        ),
        (SourceRecord("x", 0, 1, None, b"\x00\x00\x00\x00\x07garbage"), DeadLetterReason.BAD_AVRO),
    ],
)
def test_bad_records_become_dead_letters_and_the_tap_goes_on(
    record: SourceRecord, reason: DeadLetterReason
) -> None:
    c = core()
    out = feed(c, [record, *order_placed_tx()])
    assert [d.reason for d in out.dead_letters] == [reason]
    assert [e.action_id for e in out.entries] == ["evt-729"]


def test_oversized_record_is_a_dead_letter() -> None:
    out = feed(core(max_record_bytes=200), [outbox("e", "T", {"blob": "x" * 500})])
    [dead] = out.dead_letters
    assert dead.reason is DeadLetterReason.OVERSIZED and "REWIND_TAP__MAX_RECORD_BYTES" in dead.message


# -- the real connector's records ---------------------------------------------------------------


def decode_fixture() -> list[JournalEntry]:
    records = list(read_capture(FIXTURE))
    c = core(group=capture_has_tx_metadata(records))
    return [e for out in run_capture(c, records) for e in out.entries]


def test_real_capture_yields_the_actions_postgres_committed() -> None:
    entries = {e.tx_id: e for e in decode_fixture()}
    assert set(entries) == {"729", "730", "731", "732", "733"}
    placed = entries["729"]
    assert placed.action_type == "OrderPlaced" and placed.correlation_id == "wf-1"
    assert [(c.table, c.op.value) for c in placed.changes] == [("orders", "CREATE")]
    assert placed.trace is not None and placed.trace.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert [(c.table, c.op.value) for c in entries["730"].changes] == [
        ("orders", "UPDATE"),
        ("notes", "CREATE"),
    ]
    assert entries["730"].changes[0].changed_fields == ("status",)
    # notes has REPLICA IDENTITY DEFAULT: neither its update nor its delete can be restored.
    assert [c.before_complete for c in entries["731"].changes] == [False, False]
    pk = entries["733"].changes
    assert [(c.op.value, c.key, c.other_key) for c in pk] == [
        ("DELETE", {"id": 2}, {"id": 3}),
        ("CREATE", {"id": 3}, {"id": 2}),
    ]
    assert all(e.complete for e in entries.values())


def test_decoding_is_deterministic() -> None:
    first = [to_json_view(e) for e in decode_fixture()]
    second = [to_json_view(e) for e in decode_fixture()]
    for view in first + second:
        view.pop("journal_ts_ms")
    assert first == second


def test_real_entries_round_trip_through_the_journal_schema() -> None:
    for entry in decode_fixture():
        assert deserialize(serialize(entry)) == entry


# -- property: grouping does not depend on arrival order ------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=6), st.randoms(use_true_random=False)
)
def test_property_every_row_lands_in_exactly_one_action_whatever_the_order(
    rows_per_tx: list[int], rnd: random.Random
) -> None:
    records: list[SourceRecord] = []
    for i, n in enumerate(rows_per_tx):
        tx = 1000 + i
        records.append(begin(tx, offset=2 * i))
        for j in range(n):
            records.append(
                change(
                    "orders",
                    "c",
                    {"id": tx * 10 + j},
                    after={"id": tx * 10 + j},
                    tx=tx,
                    lsn=tx * 100 + j,
                    offset=i * 10 + j,
                )
            )
        records.append(end(tx, {"public.orders": n}, offset=2 * i + 1))
    rnd.shuffle(records)
    out = feed(core(), records)
    keys = [c.key["id"] for e in out.entries for c in e.changes]
    assert sorted(keys) == sorted(
        tx * 10 + j
        for tx, n in zip(range(1000, 1000 + len(rows_per_tx)), rows_per_tx, strict=True)
        for j in range(n)
    )
    assert len(out.entries) == len(rows_per_tx) and all(e.complete for e in out.entries)


def test_offline_decoding_does_not_keep_closed_transactions() -> None:
    """`rewind decode` never asks for safe offsets; closed transactions must not stay referenced by the
    held-offset queues (they did: ~5 KB per action, the whole capture in memory). What stays is the
    dedupe index and a bounded cache of transaction ids (~1.6 KB per action here)."""
    c = PythonTapCore(Settings(), Catalog.empty(), group_transactions=True)

    def decode(first: int, count: int) -> None:
        for tx in range(first, first + count):
            for r in order_placed_tx(tx, tx, base=2 * tx):
                c.process(r, TS)

    decode(1, 200)  # warm up: caches, interned strings
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    decode(1000, 2000)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown / 2000 < 3000, f"{grown / 2000:.0f} bytes kept per decoded action"


def test_a_dead_letter_too_large_to_write_whole_is_a_reference() -> None:
    import hashlib

    from processor.kafka.deadletters import DeadLetter, dead_letter_message

    small = SourceRecord("t", 1, 7, b"k", b"v" * 100, (("h", b"1"),))
    whole = dead_letter_message(DeadLetter(small, DeadLetterReason.BAD_JSON, "why"), max_bytes=10_000)
    assert not whole.truncated and whole.value == small.value and ("h", b"1") in whole.headers
    big = SourceRecord("t", 1, 7, b"k" * 5000, b"v" * 50_000, (("h", b"1"),))
    ref = dead_letter_message(DeadLetter(big, DeadLetterReason.OVERSIZED, "too big"), max_bytes=10_000)
    headers = dict(ref.headers)
    assert ref.truncated and ref.value == b"v" * 4096 and ref.key == b"k" * 1024 and "h" not in headers
    assert headers["rewind.dlq.value.sha256"] == hashlib.sha256(big.value or b"").hexdigest().encode()
    assert (
        headers["rewind.dlq.source.offset"] == b"7"
        and headers["rewind.dlq.truncated"] == str(big.size).encode()
    )


def test_a_capture_line_with_an_undecodable_byte_is_refused_naming_its_line(tmp_path: Path) -> None:
    """Found by fuzzing (bench/fuzz, the tap target): read with surrogateescape, such a byte reached the
    native engine as a lone surrogate in a topic name and crashed it."""
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b'{"topic": "shop.orders", "offset": 0, "payload": null}\n'
                        b'{"topic": "shop.\xee", "offset": 1, "payload": null}\n')  # fmt: skip
    refused: list[str] = []
    records = list(read_capture(capture, on_error=lambda exc: refused.append(str(exc))))
    assert [r.topic for r in records] == ["shop.orders"]
    assert len(refused) == 1 and "name is not UTF-8 text" in refused[0] and f"{capture}:2" in refused[0]
