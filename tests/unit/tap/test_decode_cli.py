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
