"""What is fuzzed: every parser of rewind's own input (requests, control events, status records,
catalog files, selector expressions, capture lines, signature headers) and the tap's two engines side by
side. Each target takes the fuzzer's bytes and must either read them or refuse them with one of
rewind's errors, which carries the reason; any other exception, a crash or a hang is a finding. The tap
target also requires the native engine to say exactly what the Python reference says."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from processor.catalog.catalog import load_catalog
from processor.errors import RewindError, Where
from processor.rollback.request import FieldPredicate
from processor.rollback.serde import decode_control, decode_request, decode_status
from processor.security.signature import Signature
from processor.tap.capture import from_kcat

_CATALOG = Path(tempfile.mkdtemp(prefix="rewind-fuzz-")) / "catalog.yaml"
WHERE = Where(component="fuzz")


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def selector(data: bytes) -> None:
    text = _text(data)
    predicate = FieldPredicate.parse(text)
    again = FieldPredicate.parse(str(predicate))  # what it reads, written out, reads back the same
    assert (again.field, again.op, again.value) == (predicate.field, predicate.op, predicate.value), text


def request(data: bytes) -> None:
    decode_request(data, WHERE).validate()


def control(data: bytes) -> None:
    decode_control(data, WHERE)


def status(data: bytes) -> None:
    decode_status(data, WHERE)


def catalog(data: bytes) -> None:
    _CATALOG.write_bytes(data)
    load_catalog(_CATALOG)


def capture(data: bytes) -> None:
    from_kcat(_text(data), WHERE)


def signature(data: bytes) -> None:
    found = Signature.parse(data)
    assert found is None or found.header() == data  # one spelling per signature


TARGETS: dict[str, Callable[[bytes], None]] = {
    "selector": selector, "request": request, "control": control, "status": status, "catalog": catalog,
    "capture": capture, "signature": signature,
}  # fmt: skip


def run_one(target: Callable[[bytes], None], data: bytes) -> None:
    """One input: read, or refused with a reason (one of rewind's errors, with a message)."""
    try:
        target(data)
    except RewindError as refused:
        if not str(refused).strip():
            raise AssertionError("refused without a reason") from refused
