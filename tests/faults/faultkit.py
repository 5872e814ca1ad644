"""The fault suite's parts: a broker of the test's own to break (kill -9, SIGSTOP past the session and
transaction timeouts, a clean restart), a producer that keeps what it was given through an outage, and
the table of cases x outcomes the suite writes (docs/reliability.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer

from processor.config import Settings
from processor.kafka.local_broker import LocalBroker
from processor.kafka.messages import SourceRecord
from tests.integration.rollkit import RollbackTopics, publish_journal
from tests.integration.tapkit import TapTopics
from tests.unit.rollback.world import World

# Short client timeouts, so a stalled broker outlives them within a test's time (the defaults are 45 s
# and 60 s); the broker's group.min.session.timeout.ms is 6 s.
SESSION_TIMEOUT_MS, TRANSACTION_TIMEOUT_MS = 6_000, 10_000
CLIENTS = {
    "producer": {"transaction.timeout.ms": str(TRANSACTION_TIMEOUT_MS)},
    "consumer": {"session.timeout.ms": str(SESSION_TIMEOUT_MS), "heartbeat.interval.ms": "1000"},
}
STALL_S = 14.0  # longer than both timeouts


@dataclass
class Bouncer:
    """A broker of one test's own, and the ways it fails."""

    broker: LocalBroker
    log: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def _pid(self) -> int:
        pid = self.broker.running_pid()
        assert pid is not None, "the broker is not running"
        return pid

    def kill_9(self, down_s: float = 2.0) -> None:
        """SIGKILL, down for ``down_s``, started again on the same storage."""
        pid = self._pid()
        os.kill(pid, signal.SIGKILL)
        _gone(pid)
        time.sleep(down_s)
        self.broker.start()
        self.log.append(f"kill -9, {down_s:.0f} s down, restarted")

    def stall(self, seconds: float = STALL_S) -> None:
        """SIGSTOP for longer than the clients' session and transaction timeouts, then SIGCONT."""
        pid = self._pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        self.log.append(f"SIGSTOP {seconds:.0f} s, SIGCONT")

    def restart(self) -> None:
        """A clean restart: SIGTERM (controlled shutdown), started again."""
        self.broker.stop()
        self.broker.start()
        self.log.append("clean restart")

    def fault(self, name: str) -> Callable[[], None]:
        return {"kill-9": self.kill_9, "stall": self.stall, "restart": self.restart}[name]


def rewind(
    command: str,
    settings: Mapping[str, object],
    tmp_path: Path,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``rewind <command>`` as users run it, on these settings and the short client timeouts."""
    config = tmp_path / f"{command}.yaml"
    config.write_text(yaml.safe_dump({**settings, "metrics_port": 0, "clients": CLIENTS}))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("REWIND_")}, **(extra_env or {})}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "processor.cli", "--config", str(config), command],
                                stdout=out, stderr=out, env=env)  # fmt: skip


def stop(process: subprocess.Popen[bytes], log: Path, *, stacks: bool = False) -> None:
    """SIGTERM (after SIGUSR1 with ``stacks``: every thread's stack into the log, to see a hang)."""
    alive = process.poll() is None
    if stacks and alive:
        process.send_signal(signal.SIGUSR1)
        time.sleep(1)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
    assert alive, f"rewind exited by itself during the fault:\n{log.read_text()[-3000:]}"


def restarts(log: Path) -> int:
    text = log.read_text()
    return text.count("restarting in") + text.count("session restarts from committed state")


def tap_settings(topics: TapTopics, bootstrap: str) -> tuple[Settings, dict[str, object]]:
    """The tap's topics made, its settings, and what its settings file says (commits every 100 ms)."""
    base = topics.settings(bootstrap)
    topics.create(base)
    return base, {
        "bootstrap_servers": bootstrap, "group_id": base.group_id,
        "transactional_id_prefix": base.transactional_id_prefix, "topics": base.topics.model_dump(mode="json"),
        "tap": {"outbox": {"topic_prefix": base.tap.outbox.topic_prefix}, "commit_interval_ms": 100},
    }  # fmt: skip


def bad_orders_journaled(
    bootstrap: str, unique: str, orders: int, tmp_path: Path, **rollback: object
) -> tuple[RollbackTopics, Settings, dict[str, object]]:
    """``orders`` orders priced by the bad rule (v7) and one untouched, journaled; rewind's topics made;
    the worker's settings file (``rollback``: its settings over these: pacing, timeouts)."""
    topics = RollbackTopics(unique)
    base = topics.settings(bootstrap)
    topics.create(base)
    world = World()
    for n in range(orders):
        world.order(n, rule="v7", price=90)
    world.order(orders, rule="v6", price=100)
    publish_journal(bootstrap, base.topics.journal, world.entries)
    return topics, base, {
        "bootstrap_servers": bootstrap, "group_id": base.group_id,
        "transactional_id_prefix": base.transactional_id_prefix, "topics": base.topics.model_dump(mode="json"),
        "signing": base.signing.model_dump(mode="json"), "catalog_file": str(topics.catalog(tmp_path)),
        "rollback": {
            "notify_topic": base.rollback.notify_topic,
            "approve_over_irreversible": 1000, "approve_over_steps": 1000, "confirm_timeout_s": 180,
            "max_emits_per_transaction": 2, **rollback,
        },
    }  # fmt: skip


BAD_RULE = 'rule_version == "v7"'


FAULTS = ("kill-9", "stall", "restart")


def _gone(pid: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


class SteadyProducer:
    """Source records produced as a connector would (idempotent), kept through an outage: it waits for
    every record's delivery and fails loudly if any is lost, so a count later is a count of rewind's."""

    def __init__(self, bootstrap: str, conf: dict[str, Any] | None = None) -> None:
        self.producer = Producer({
            "bootstrap.servers": bootstrap, **(conf or {}), "enable.idempotence": True, "linger.ms": 5,
            "message.timeout.ms": 300_000,
        })  # fmt: skip
        self.failed: list[str] = []

    def send(self, topics: TapTopics, records: Iterable[SourceRecord]) -> None:
        for r in records:
            partition = abs(hash(r.key) % 3) if r.topic != "shop.transaction" else 0
            while True:
                try:
                    self.producer.produce(topics.map[r.topic], key=r.key, value=r.value, headers=list(r.headers),
                                          partition=partition, on_delivery=self._delivered)  # fmt: skip
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.producer.poll(0)

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))

    def drain(self, timeout_s: float = 240) -> None:
        left = self.producer.flush(timeout_s)
        assert left == 0 and not self.failed, f"{left} source records undelivered; errors {self.failed[:3]}"


def exactly_once(action_ids: Iterable[str], expected: set[str]) -> tuple[set[str], dict[str, int]]:
    """(missing, doubled) of the journal's action ids against what should be there, once each."""
    counts = Counter(action_ids)
    return expected - set(counts), {k: n for k, n in counts.items() if n > 1}


@dataclass(frozen=True)
class Outcome:
    """One row of docs/reliability.md."""

    case: str  # what ran, e.g. "tap journals 300 source transactions"
    fault: str  # what broke, e.g. "broker: kill -9, 2 s down, restarted"
    expected: int
    delivered: int  # what arrived (journal entries, commands)
    missing: int
    doubled: int
    stuck: str  # "no" or what did not finish
    recovered_s: float  # from the fault's end to the last expected output
    restarts: int  # sessions rewind's components started over

    @property
    def passed(self) -> bool:
        return self.missing == 0 and self.doubled == 0 and self.stuck == "no"


class Report:
    """Outcomes collected over a session, written as a markdown table."""

    def __init__(self) -> None:
        self.rows: list[Outcome] = []
        self.lock = threading.Lock()

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.rows.append(outcome)

    def markdown(self) -> str:
        lines = [
            "| case | fault | expected | delivered | missing | doubled | stuck | recovered in | restarts | |",
            "|---|---|---:|---:|---:|---:|---|---:|---:|---|",
        ]
        for o in self.rows:
            lines.append(
                f"| {o.case} | {o.fault} | {o.expected} | {o.delivered} | {o.missing} | {o.doubled} | {o.stuck} "
                f"| {o.recovered_s:.1f} s | {o.restarts} | {'pass' if o.passed else '**FAIL**'} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        """The table into ``path`` between its markers (the rest of the page is prose)."""
        start, end = "<!-- fault-suite-table -->", "<!-- /fault-suite-table -->"
        text = path.read_text() if path.is_file() else f"{start}\n{end}\n"
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        path.write_text(f"{head}{start}\n{self.markdown()}{end}{tail}")
