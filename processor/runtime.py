"""Process-level tuning shared by rewind's long-running loops, and the progress callback they report to."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import cache

Progress = Callable[[int, int], None]
"""``(done, total)`` of a long piece of work (offsets replayed, entries caught up, jars fetched): the
CLI draws it as a bar; library callers pass nothing."""


def tune_gc() -> None:
    """rewind's loops keep many long-lived objects (open transactions, dedupe and graph indexes): with
    CPython's default thresholds the cyclic collector rescans them over and over (a quarter of the
    tap's CPU in bench/tap, and pauses of milliseconds in graph queries). Freeze what start-up built
    and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it otherwise): loading a graph checkpoint
    and building adjacency leave a third of the index's size behind in temporaries. No-op off glibc."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
