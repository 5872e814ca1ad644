from __future__ import annotations

import json

import pytest

from processor.errors import DeadLetterReason, InvalidRecord
from processor.kafka.messages import SourceRecord
from processor.tap.transactions import parse_tx_metadata
from tests.unit.tap.builders import TX_TOPIC, begin, end


def parse_value(record: SourceRecord) -> object:
    return json.loads(record.value or b"")


def test_begin_and_end_share_the_normalized_id() -> None:
    b = parse_tx_metadata(begin(729, lsn=26411776), parse_value(begin(729, lsn=26411776)))
    e_rec = end(729, {"public.orders": 1, "public.outbox": 1}, lsn=26412464)
    e = parse_tx_metadata(e_rec, parse_value(e_rec))
    assert b.status == "BEGIN" and e.status == "END" and b.tx_id == e.tx_id == "729"
    assert e.event_count == 2 and e.collections == {"public.orders": 1, "public.outbox": 1}
    assert e.position is not None and e.position.topic == TX_TOPIC


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"status": "COMMIT", "id": "1"}, "not a BEGIN/END"),
        ({"status": "END", "id": "1", "event_count": None}, "valid event_count"),
        ({"status": "END", "id": "1", "event_count": 2,
          "data_collections": [{"data_collection": "a", "event_count": 1}]}, "add up to 1"),
        ({"status": "END", "id": "1", "event_count": 1, "data_collections": ["oops"]}, "malformed"),
    ],
)  # fmt: skip
def test_bad_metadata_is_named(value: dict[str, object], text: str) -> None:
    record = SourceRecord(TX_TOPIC, 0, 3, None, json.dumps(value).encode())
    with pytest.raises(InvalidRecord) as info:
        parse_tx_metadata(record, value)
    assert info.value.reason is DeadLetterReason.BAD_TX_METADATA and text in str(info.value)
