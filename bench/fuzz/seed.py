"""Writes the fuzzers' seed corpus (bench/fuzz/corpus/<target>/) from real inputs: Debezium's captured
records (tests/fixtures/debezium/captured, from real connectors), the shop's catalog, and requests,
control events, status records and signatures made by rewind's own encoders.

    .venv/bin/python -m bench.fuzz.seed
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processor.catalog.catalog import Catalog
from processor.rollback.progress import RequestProgress, RequestState
from processor.rollback.request import (
    Control,
    ControlCommand,
    FieldPredicate,
    Mode,
    RollbackRequest,
    Selector,
    SelectorKind,
)
from processor.rollback.serde import encode_control, encode_request, encode_status
from processor.security.keys import SigningKey
from processor.security.signature import Kind, sign
from processor.tap.core import PythonTapCore

from . import targets
from .targets import NATIVE_CONFIG, native_config

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
SELECTORS = ('rule_version == "v7"', "after.price < 85", 'status in ["a", "b"]', "model == v7",
             "decision.model_id == null", "payload.order.total >= 1e3", 'a == "x<y"')  # fmt: skip


def _write(target: str, items: list[bytes]) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        (folder / hashlib.sha1(item).hexdigest()[:16]).write_bytes(item)


def _journal_entries(streams: list[bytes]) -> list[bytes]:
    """What the Python engine journals of those captures (as the tap target runs it), as the journal
    topic holds it."""
    found: list[bytes] = []
    for stream in streams:
        records = targets._records(stream)
        seen = targets._journaled(PythonTapCore(targets._settings(records), Catalog.empty()), records)
        found += [item[1] for item in seen if item[0] in ("entry", "tick", "finish")]  # type: ignore[index]
    return found[:40]


def main() -> None:
    _write("selector", [s.encode() for s in SELECTORS])
    selectors = [
        Selector(SelectorKind.FIELD_PREDICATE, predicate=FieldPredicate.parse(SELECTORS[0])),
        Selector(SelectorKind.ACTION_IDS, action_ids=("price-1", "price-2")),
        Selector(SelectorKind.CORRELATION_ID, correlation_id="order-1"),
        Selector(SelectorKind.ACTION_TYPE_WINDOW, action_type="OrderPriced", from_ts_ms=1, to_ts_ms=2),
        Selector(SelectorKind.TRACE_ID, trace_id="4bf92f3577b34da6a3ce929d0e0e4736"),
    ]
    requests = [RollbackRequest(f"r{n}", "olivia", "bad rule", 1_700_000_000_000, s, Mode.EXECUTE)
                for n, s in enumerate(selectors)]  # fmt: skip
    _write("request", [encode_request(r) for r in requests])
    controls = [Control("r0", c, "adam", 1_700_000_000_000, plan_hash="ab" * 32) for c in ControlCommand]
    _write("control", [encode_control(c) for c in controls])
    status = RequestProgress(
        "r0", RequestState.AWAITING_APPROVAL, 7, "olivia", "why", Mode.EXECUTE, "sel", 3, ""
    )
    _write("status", [encode_status(status)])
    _write("catalog", [(ROOT / "examples/shop/catalog.yaml").read_bytes()])
    lines = []
    for capture in sorted((ROOT / "tests/fixtures/debezium/captured").glob("*.jsonl")):
        lines += [line for line in capture.read_bytes().splitlines() if len(line) < 8192][:6]
    _write("capture", lines)
    # The tap: whole captures of real connectors (a transaction's records together), a line each kept short.
    streams = []
    for capture in sorted((ROOT / "tests/fixtures/debezium/captured").glob("*.jsonl")):
        kept = [line for line in capture.read_bytes().splitlines() if len(line) < 8192][:12]
        streams.append(b"\n".join(kept))
    _write("tap", streams)
    _write("journal", _journal_entries(streams))
    key = SigningKey(
        "olivia", Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    )  # the same seeds each run
    _write("signature", [sign(key, Kind.REQUEST, b"body", 1_700_000_000_000, nonce=f"{n:032x}").header()
                         for n in range(3)])  # fmt: skip
    NATIVE_CONFIG.write_text(native_config().model_dump_json(indent=2) + "\n")


if __name__ == "__main__":
    main()
