"""What is fuzzed: every parser of rewind's own input (requests, control events, status records,
catalog files, selector expressions, capture lines, signature headers) and the tap's two engines side by
side. Each target takes the fuzzer's bytes and must either read them or refuse them with one of
rewind's errors, which carries the reason; any other exception, a crash or a hang is a finding. The tap
target also requires the native engine to say exactly what the Python reference says."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from processor.catalog.catalog import Catalog, load_catalog
from processor.config import Settings, TapSettings, TopicSettings
from processor.errors import RewindError, Where
from processor.journal.serde import deserialize, serialize
from processor.kafka.messages import SourceRecord
from processor.rollback.request import FieldPredicate
from processor.rollback.serde import decode_control, decode_request, decode_status
from processor.security.signature import Signature
from processor.tap import native
from processor.tap.capture import from_kcat
from processor.tap.core import PythonTapCore, TapCore

_CATALOG = Path(tempfile.mkdtemp(prefix="rewind-fuzz-")) / "catalog.yaml"
WHERE = Where(component="fuzz")
NOW = 1_795_000_000_000


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


def journal(data: bytes) -> None:
    """A journal record as the graph builder and the worker read it: read or refused; what reads,
    written again, reads the same."""
    entry = deserialize(data)
    assert deserialize(serialize(entry)) == entry


def signature(data: bytes) -> None:
    found = Signature.parse(data)
    assert found is None or found.header() == data  # one spelling per signature


def _records(data: bytes) -> list[SourceRecord]:
    found = []
    for n, line in enumerate(data.splitlines()):
        try:
            found.append(from_kcat(_text(line), WHERE))
        except RewindError:
            continue
        found[-1] = replace(found[-1], offset=n)
    return found


def _settings(records: list[SourceRecord]) -> Settings:
    """Each record's topic as what its name says: transaction metadata, an outbox topic, or CDC."""
    names = sorted({r.topic for r in records})
    tx = [t for t in names if t.endswith(".transaction")]
    outbox = [t for t in names if "outbox" in t and t not in tx]
    cdc = [t for t in names if t not in tx and t not in outbox]
    return Settings(
        topics=TopicSettings(cdc=cdc, tx_metadata=tx, outbox=outbox),
        tap=TapSettings(tx_timeout_ms=30_000, intent_timeout_ms=60_000, max_record_bytes=4096),
    )


def native_config() -> native.EngineSettings:
    """What both engines are told here; the native fuzz targets read it from NATIVE_CONFIG (no Python
    there), group_transactions set per input as the reference sets it."""
    return native.engine_config(_settings([]), group_transactions=False)


NATIVE_CONFIG = Path(__file__).parent / "native-config.json"


def _journaled(core: TapCore, records: list[SourceRecord]) -> list[object]:
    seen: list[object] = []
    for n, record in enumerate(records):
        out = core.process(record, NOW + n)
        seen += [("entry", serialize(e)) for e in out.entries]
        seen += [("dead", d.reason, d.message, d.record.offset) for d in out.dead_letters]
        seen += [("tick", serialize(e)) for e in core.tick(NOW + n).entries]
        seen.append(("state", core.open_transactions, core.pending_intents, core.safe_offsets()))
    seen += [("finish", serialize(e)) for e in core.finish(NOW + len(records)).entries]
    return [*seen, ("stats", core.stats, core.dedupe_size)]


def tap(data: bytes) -> None:
    """Capture lines (kcat -C -J) through both engines: the native one must say what the Python
    reference says, record by record."""
    records = _records(data)
    if not records or not native.available():
        return
    settings = _settings(records)
    reference = _journaled(PythonTapCore(settings, Catalog.empty()), records)
    fast = _journaled(native.NativeTapCore(settings, Catalog.empty()), records)
    assert fast == reference, "the native engine and the reference disagree"


TARGETS: dict[str, Callable[[bytes], None]] = {
    "selector": selector, "request": request, "control": control, "status": status, "catalog": catalog,
    "capture": capture, "signature": signature, "tap": tap, "journal": journal,
}  # fmt: skip


def run_one(target: Callable[[bytes], None], data: bytes) -> None:
    """One input: read, or refused with a reason (one of rewind's errors, with a message)."""
    try:
        target(data)
    except RewindError as refused:
        if not str(refused).strip():
            raise AssertionError("refused without a reason") from refused
