"""Process-level tuning shared by rewind's long-running loops."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """rewind's loops keep many long-lived objects (open transactions, dedupe and graph indexes): with
    CPython's default thresholds the cyclic collector rescans them over and over (a quarter of the
    tap's CPU in bench/tap, and pauses of milliseconds in graph queries). Freeze what start-up built
    and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
