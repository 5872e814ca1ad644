"""Every row's versions from the journal's images: state at a time or LSN, history, as known at."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.graph.entities import EntityIndex
from processor.graph.history import EntityHistory, HistoryQueryInvalid, Moment, RowVersions, Undo
from processor.journal.model import JournalEntry, Op, RowChange, SourcePosition
from processor.journal.serde import to_json_view
from tests.unit.rollback.test_repair import repaired


def _write(
    n: int, op: Op, row: dict[str, object] | None, *, ts: int, lsn: int, known: int | None = None,
    table: str = "orders", key: dict[str, object] | None = None, cause: tuple[str, ...] = (),
) -> JournalEntry:  # fmt: skip
    key = key or {"id": 42}
    pos = SourcePosition("t", 0, n, lsn=lsn, tx_id=f"tx{n}", ts_ms=ts)
    change = RowChange("shop", "public", table, key, op, None, row, (), True, pos)
    return JournalEntry(f"a{n}", f"T{n}", (change,), known or ts, commit_ts_ms=ts, causation_ids=cause,
                        correlation_id="order-42", entities=(change.entity,))  # fmt: skip


@pytest.fixture(params=["memory", "index"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], RowVersions]:
    """One contract, two holders: the versions in memory (a dump, a scan) and the builder's index file."""

    def make() -> RowVersions:
        if request.param == "memory":
            return EntityHistory()
        return EntityIndex.open(tmp_path / "history.sqlite", "journal")[0]

    return make


def _history(make: Callable[[], RowVersions]) -> RowVersions:
    h = make()
    h.add_many([
        _write(1, Op.CREATE, {"id": 42, "price": 100}, ts=1_000, lsn=10),
        _write(2, Op.UPDATE, {"id": 42, "price": 90}, ts=2_000, lsn=20, cause=("a1",)),
        _write(3, Op.DELETE, None, ts=3_000, lsn=30),
        _write(4, Op.CREATE, {"id": 42, "price": 95}, ts=4_000, lsn=40, known=9_000),  # re-created
        _write(5, Op.CREATE, {"sku": "a", "n": 1}, ts=1_500, lsn=15, table="stock", key={"sku": "a"}),
    ])  # fmt: skip
    return h


@pytest.mark.parametrize(
    ("at", "expected"),
    [("999", None), ("1000", 100), ("1999", 100), ("2000", 90), ("lsn:19", 100), ("lsn:20", 90),
     ("1970-01-01T00:00:02.5+00:00", 90), ("3500", "deleted"), ("lsn:45", 95)],
)  # fmt: skip
def test_state_at_a_time_or_lsn_is_the_version_in_force_then(
    store: Callable[[], RowVersions], at: str, expected: object
) -> None:
    h = _history(store)
    version = h.state(h.entity("orders", "42"), Moment.parse(at))
    if expected is None:
        assert version is None
    elif expected == "deleted":
        assert version is not None and not version.exists and version.row is None
    else:
        assert version is not None and version.exists and version.row == {"id": 42, "price": expected}


def test_history_lists_every_version_in_order_with_its_action_and_cause(
    store: Callable[[], RowVersions],
) -> None:
    h = _history(store)
    versions = h.history(h.entity("public.orders", '{"id": 42}'))
    assert [(v.action_id, v.op, v.commit_ts_ms) for v in versions] == [
        ("a1", Op.CREATE, 1_000), ("a2", Op.UPDATE, 2_000), ("a3", Op.DELETE, 3_000), ("a4", Op.CREATE, 4_000),
    ]  # fmt: skip
    assert versions[1].causation_ids == ("a1",) and versions[1].correlation_id == "order-42"


def test_as_known_at_answers_as_the_journal_knew_it_then(store: Callable[[], RowVersions]) -> None:
    h = _history(store)
    entity = h.entity("orders", "42")
    now = h.state(entity, Moment(ts_ms=5_000))
    then = h.state(entity, Moment(ts_ms=5_000), as_known_at=8_000)  # before a4 was journaled
    assert now is not None and now.action_id == "a4"
    assert then is not None and then.action_id == "a3" and not then.exists


def test_a_redelivered_action_adds_no_version(store: Callable[[], RowVersions]) -> None:
    h = _history(store)
    h.add_many([_write(2, Op.UPDATE, {"id": 42, "price": 90}, ts=2_000, lsn=20)])
    assert len(h.history(h.entity("orders", "42"))) == 4


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [("nope", "1", "no table 'nope'"), ("orders", "7", "no row public.orders:7"),
     ("orders", "[1]", "is a list"), ("orders", "{}", "names no column")],
)  # fmt: skip
def test_unknown_tables_rows_and_malformed_keys_are_named(
    store: Callable[[], RowVersions], table: str, key: str, problem: str
) -> None:
    h = _history(store)
    with pytest.raises(HistoryQueryInvalid) as refused:
        h.history(h.entity(table, key))
    assert problem in str(refused.value)


def _after_retention(make: Callable[[], RowVersions]) -> RowVersions:
    """Retention deleted every entry before a2 (2,000): row 42's first version held is an update;
    row 7 is created after the gap."""
    h = make()
    h.raise_horizon(2_000)
    h.add_many([
        _write(2, Op.UPDATE, {"id": 42, "price": 90}, ts=2_000, lsn=20),
        _write(6, Op.CREATE, {"id": 7, "price": 5}, ts=2_500, lsn=25, key={"id": 7}),
    ])  # fmt: skip
    return h


@pytest.mark.parametrize(
    ("key", "at", "problem"),
    [("42", "1500", "before the journal's retention"), ("7", "1999", "before the journal's retention"),
     ("42", "lsn:15", "is not its creation")],
)  # fmt: skip
def test_a_time_before_the_journals_retention_is_refused_not_guessed(
    store: Callable[[], RowVersions], key: str, at: str, problem: str
) -> None:
    h = _after_retention(store)
    with pytest.raises(HistoryQueryInvalid) as refused:
        h.state(h.entity("orders", key), Moment.parse(at))
    assert problem in str(refused.value) and "1970-01-01T00:00:02.000+00:00" in str(refused.value)


def test_after_the_horizon_the_versions_held_answer(store: Callable[[], RowVersions]) -> None:
    h = _after_retention(store)
    price = h.state(h.entity("orders", "42"), Moment(ts_ms=2_100))
    assert price is not None and price.row == {"id": 42, "price": 90}
    assert h.state(h.entity("orders", "7"), Moment(ts_ms=2_100)) is None  # created at 2,500: proven absent
    assert h.state(h.entity("orders", "7"), Moment.parse("lsn:21")) is None


def test_the_index_keeps_its_horizon_across_a_restart(tmp_path: Path) -> None:
    first = EntityIndex.open(tmp_path / "history.sqlite", "journal")[0]
    first.raise_horizon(2_000)
    first.raise_horizon(1_000)  # never goes back
    first.close()
    again, why = EntityIndex.open(tmp_path / "history.sqlite", "journal")
    assert why is None and again.horizon_ms == 2_000


@pytest.mark.parametrize("text", ["yesterday", "2024-01-01T00:00:00", "lsn:x"])
def test_a_time_it_cannot_read_is_refused(text: str) -> None:
    with pytest.raises(HistoryQueryInvalid):
        Moment.parse(text)


def test_rewind_state_and_history_answer_offline_from_a_journal_dump(tmp_path: Path) -> None:
    entries = [
        _write(1, Op.CREATE, {"id": 42, "price": 100}, ts=1_000, lsn=10),
        _write(2, Op.UPDATE, {"id": 42, "price": 90}, ts=2_000, lsn=20, cause=("a1",)),
    ]
    dump = tmp_path / "journal.jsonl"
    dump.write_text("".join(json.dumps(to_json_view(e)) + "\n" for e in entries))
    state = CliRunner().invoke(
        main, ["state", "orders", "42", "--at", "lsn:15", "--journal", str(dump), "--format", "json"]
    )
    assert state.exit_code == 0, state.output
    answer = json.loads(state.stdout)
    assert (answer["exists"], answer["row"], answer["action_id"], answer["commit_ts_ms"]) == (
        True, {"id": 42, "price": 100}, "a1", 1_000,
    )  # fmt: skip
    before = CliRunner().invoke(
        main, ["state", "orders", '{"id": 42}', "--at", "500", "--journal", str(dump)]
    )
    assert before.exit_code == 0 and "did not exist at 500" in before.stdout
    history = CliRunner().invoke(
        main, ["history", "public.orders", "42", "--journal", str(dump), "--format", "json"]
    )
    assert [v["action_id"] for v in json.loads(history.stdout)["versions"]] == ["a1", "a2"]
    bad = CliRunner().invoke(main, ["state", "orders", "43", "--at", "500", "--journal", str(dump)])
    assert bad.exit_code == 1 and "no row public.orders:43" in bad.output


def test_a_version_says_which_request_later_undid_or_repaired_its_action(tmp_path: Path) -> None:
    engine, w = repaired(tmp_path)
    history = EntityHistory()
    history.add_many(w.entries)
    for action_id, how, by in engine.requests["r1"].undone():
        history.note_undo(action_id, Undo("r1", how, by))
    versions = history.history(history.entity("orders", "2"))
    marks = {v.action_id: history.undone(v) for v in versions}
    assert marks["price-2"] == Undo("r1", "repaired", "repriced-req-2")  # restored, then repaired
    assert marks["undo-price-2"] is None  # the restore's own version stands
    good = history.history(history.entity("orders", "1"))
    assert all(history.undone(v) is None for v in good)  # an order v7 never priced: untouched
