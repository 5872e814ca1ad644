"""`rewind decode --capture`: entries on stdout as JSON lines, dead letters on stderr with their reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from processor.cli import main
from tests.unit.tap.test_core import FIXTURE


def test_decode_prints_one_entry_per_line_with_the_promised_fields(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    shutil.copy(FIXTURE, capture)
    with capture.open("a") as f:
        f.write(json.dumps({"topic": "shop.public.orders", "partition": 0, "offset": 99, "ts": 1, "headers": [],
                            "key": '{"id":1}', "payload": "{oops"}) + "\n")  # fmt: skip
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "actions:\n  OrderPlaced: {mechanism: compensate, topic: orders.commands, event_type: CancelOrder,"
        " payload: {order: '{payload.order_id}'}}\n"
    )
    result = CliRunner().invoke(main, ["decode", "--capture", str(capture), "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5
    for entry in lines:
        assert {
            "action_id",
            "action_type",
            "correlation_id",
            "causation_ids",
            "changes",
            "phase",
            "reversibility",
        } <= set(entry)
        for c in entry["changes"]:
            assert {"table", "key", "op", "before", "after"} <= set(c)
    placed = next(e for e in lines if e["action_type"] == "OrderPlaced")
    assert placed["reversibility"] == "COMPENSABLE" and placed["changes"][0]["after"]["status"] == "PLACED"
    assert "dead letter [bad_json]" in result.stderr and "shop.public.orders[0]@99" in result.stderr
    assert "5 journal entries, 1 dead letters" in result.stderr


def test_a_malformed_capture_line_is_named_and_the_rest_is_read(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    record = {"topic": "outbox.event.order", "offset": 1, "key": "o-1", "payload": '{"n": 1}',
              "headers": ["id", "e-1", "eventType", "OrderPlaced"]}  # fmt: skip
    capture.write_bytes(
        b'not json\n{"topic": "t", "offset": 9223372036854775808}\n' + json.dumps(record).encode()
    )
    result = CliRunner().invoke(main, ["decode", "--capture", str(capture)])
    assert result.exit_code == 0, result.output
    assert f"{capture}:1" in result.stderr and f"{capture}:2" in result.stderr and "offset" in result.stderr
    [entry] = [json.loads(line) for line in result.stdout.splitlines()]
    assert entry["action_id"] == "e-1" and entry["aggregate_id"] == "o-1"
    assert "1 journal entries, 0 dead letters" in result.stderr and "2 unreadable lines" in result.stderr


def _line(**fields: object) -> bytes:
    base = {"topic": "shop.public.orders", "partition": 0, "ts": 1_000, "headers": []}
    return json.dumps(base | fields).encode() + b"\n"


CHANGE = (
    '{"op":"c","after":{"id":%d},"source":{"connector":"postgresql","name":"shop","table":"orders","lsn":%d}}'
)


def test_decode_survives_what_kcat_writes_from_hostile_topics(tmp_path: Path) -> None:
    """Binary values kcat writes unescaped, nesting no parser should follow, a payload kcat's Avro mode
    writes as JSON with its unions wrapped, a far-future timestamp: named, read, and nothing doubled."""
    deep = "[" * 1000 + "]" * 1000
    avro_mode = {"before": None, "after": {"shop.public.orders.Value": {"id": {"long": 7}}},
                 "source": {"connector": {"string": "postgresql"}, "name": "shop", "table": "orders", "lsn": 77},
                 "op": "c"}  # fmt: skip
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(
        _line(offset=0, key='{"id":1}', payload=CHANGE % (1, 10))
        + _line(offset=1, key='{"id":2}').replace(
            b"}\n", b', "payload": "\xff\xfe binary"}\n'
        )  # invalid UTF-8
        + _line(offset=2, key='{"id":3}', payload=deep)  # a value nested 1,000 levels deep
        + b'{"topic": "t", "offset": 0, "payload": '
        + deep.encode()
        + b"}\n"  # the capture line itself
        + _line(offset=3, key='{"id":7}', payload=avro_mode)
        + _line(offset=4, key='{"id":8}', payload=CHANGE % (8, 80), ts=2**62)  # far in the future
        + _line(offset=5, key='{"id":1}', payload=CHANGE % (1, 10), ts=2**62 + 1)  # a redelivery after it
    )
    result = CliRunner().invoke(main, ["decode", "--capture", str(capture)])
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(e["changes"][0]["key"]["id"] for e in entries) == [1, 7, 8]  # row 1 once, not twice
    [avro] = [e for e in entries if e["changes"][0]["key"]["id"] == 7]
    assert avro["changes"][0]["after"] == {"id": 7}
    assert "dead letter [bad_json] bad_json: value is not JSON: not UTF-8" in result.stderr
    assert "nested deeper than 256 levels" in result.stderr
    assert (
        f"unreadable line: not a kcat -J record: nested deeper than 256 levels (at {capture}:4)"
        in result.stderr
    )
    assert "3 journal entries, 2 dead letters, 1 duplicates dropped" in result.stderr
