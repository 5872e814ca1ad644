"""What /healthz answers: each check true now, or the reason it is not.

- every component started is still running (one that stopped makes the pod unhealthy: a dead worker
  must not look alive);
- each component's loop turned recently (a loop stuck in a call, or a thread wedged, stops beating);
- each component's consumer is assigned its partitions (a consumer without them reads nothing);
- the broker answered recently (asked by the probe itself, at most every ``broker_every_s``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checks: tuple[str, ...]  # one line per check: "ok ..." or "FAIL ..."

    def text(self) -> str:
        return "\n".join(("ok" if self.ok else "unhealthy", *self.checks)) + "\n"


@dataclass
class Health:
    stale_after_s: float = 120.0
    broker_every_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _running: dict[str, bool] = field(default_factory=dict)
    _beats: dict[str, tuple[float, bool]] = field(default_factory=dict)
    _broker: tuple[float, str | None] | None = None  # (asked at, error) of the last broker probe
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, component: str) -> None:
        with self._lock:
            self._running[component] = True

    def stopped(self, component: str) -> None:
        with self._lock:
            self._running[component] = False
            self._beats.pop(component, None)

    def beat(self, component: str, assigned: bool) -> None:
        """One turn of the component's loop; ``assigned``: its consumer holds partitions."""
        with self._lock:
            self._beats[component] = (self.clock(), assigned)

    def check(self, broker: Callable[[], str | None] | None = None) -> Verdict:
        """``broker``: asks the cluster, returning None when it answered or the error."""
        now = self.clock()
        with self._lock:
            running, beats = dict(self._running), dict(self._beats)
        checks = [f"{'ok' if up else 'FAIL'} {name}: {'running' if up else 'stopped'}"
                  for name, up in sorted(running.items())]  # fmt: skip
        if not running:
            checks.append("FAIL no component runs")
        for name, (at, assigned) in sorted(beats.items()):
            age = now - at
            if age > self.stale_after_s:
                checks.append(
                    f"FAIL {name}: its loop last turned {age:.0f}s ago (limit {self.stale_after_s:.0f}s)"
                )
            elif not assigned:
                checks.append(f"FAIL {name}: its consumer holds no partition")
            else:
                checks.append(f"ok {name}: loop turned {age:.1f}s ago, partitions assigned")
        if broker is not None:
            checks.append(self._broker_check(broker, now))
        return Verdict(all(c.startswith("ok") for c in checks), tuple(checks))

    def _broker_check(self, broker: Callable[[], str | None], now: float) -> str:
        last = self._broker
        if last is None or now - last[0] >= self.broker_every_s:
            last = (now, broker())
            self._broker = last
        return "ok broker: answered" if last[1] is None else f"FAIL broker: {last[1]}"
