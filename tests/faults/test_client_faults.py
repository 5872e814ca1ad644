"""The two classes of transactional error librdkafka defines, forced on a running tap (`rewind tap`) on
a real broker: a fatal one (fenced: a second producer takes the tap's transactional id), after which the
tap must start over with new clients; an abortable one (the tap itself stalled, SIGSTOP, past its
transaction timeout, so the broker aborts its open transaction), after which it must abort and start
over. Either way every source transaction is journaled exactly once and the tap never exits."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.faults.faultkit import (
    STALL_S,
    Outcome,
    Report,
    SteadyProducer,
    exactly_once,
    restarts,
    rewind,
    stop,
    tap_settings,
)
from tests.integration.tapkit import TapTopics, interleave, read_journal, transaction


@pytest.mark.parametrize("fault", ["fenced", "stalled"])
def test_the_tap_starts_over_and_journals_exactly_once_when_fenced_or_timed_out(
    fault: str, kafka_bootstrap: str, unique: str, tmp_path: Path, report: Report
) -> None:
    topics = TapTopics(unique)
    base, settings = tap_settings(topics, kafka_bootstrap)
    log, source, done = tmp_path / "tap.log", SteadyProducer(kafka_bootstrap), threading.Event()
    fed: list[str] = []

    def feed() -> None:
        tx = 10_000
        while not done.is_set():
            source.send(topics, interleave([transaction(tx + i, with_note=False) for i in range(5)], seed=tx))
            fed.extend(f"evt-{tx + i}" for i in range(5))
            tx += 5
            time.sleep(0.25)

    tap = rewind("tap", settings, tmp_path, log)
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        time.sleep(3)
        feeder.start()
        time.sleep(3)
        if fault == "fenced":  # a zombie's successor: init_transactions bumps the epoch, fencing the tap
            intruder = Producer({"bootstrap.servers": kafka_bootstrap,
                                 "transactional.id": f"{base.transactional_id_prefix}-tap"})  # fmt: skip
            intruder.init_transactions(30)
            what = "the tap fenced: a second producer took its transactional id"
        else:
            os.kill(tap.pid, signal.SIGSTOP)
            time.sleep(STALL_S)  # past its 10 s transaction timeout: the broker aborts what it left open
            os.kill(tap.pid, signal.SIGCONT)
            what = f"the tap stalled (SIGSTOP {STALL_S:.0f} s, past its transaction timeout)"
        fault_ended = time.monotonic()
        time.sleep(4)
        done.set()
        feeder.join(30)
        source.drain()
        entries = read_journal(kafka_bootstrap, topics.journal, expect=len(fed), timeout_s=120)
        recovered = time.monotonic() - fault_ended
    finally:
        done.set()
        stop(tap, log, stacks=len(locals().get("entries", [])) < len(fed))
    missing, doubled = exactly_once((e.action_id for e in entries), set(fed))
    text = log.read_text()
    report.add(Outcome(
        f"tap journals {len(fed)} source transactions", what, len(fed), len(entries), len(missing), len(doubled),
        "no", recovered, restarts(log),
    ))  # fmt: skip
    assert not missing and not doubled, f"missing {len(missing)}, doubled {doubled}\n{text[-3000:]}"
    assert restarts(log) >= 1, f"the tap never started over:\n{text[-3000:]}"
    if fault == "fenced":
        assert "fatal client error" in text and "with new clients" in text, text[-3000:]
