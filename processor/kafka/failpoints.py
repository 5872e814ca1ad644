"""Failpoints: named steps of the transactional commit where a fault test may have the process killed
(`kill -9` of itself) at an exact moment, which a kill from outside only hits by chance. Off unless
``REWIND_FAILPOINTS`` arms them, read once at start: ``commit.after_offsets=3`` kills the process the
3rd time it has sent a transaction's offsets and not yet committed it.

The steps (processor.kafka.loop.commit): ``commit.before_offsets`` (outputs produced, nothing sent to
the transaction coordinator yet), ``commit.after_offsets`` (offsets in the transaction, not committed),
``commit.after_commit`` (committed, the next transaction not begun).
"""

from __future__ import annotations

import logging
import os
import signal

from processor.errors import ConfigError

logger = logging.getLogger(__name__)

STEPS = ("commit.before_offsets", "commit.after_offsets", "commit.after_commit")
ENV = "REWIND_FAILPOINTS"


def parse(text: str) -> dict[str, int]:
    """``name=N,name=N`` -> {name: N}; an unknown name or a count below 1 is refused by name."""
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition("=")
        if name not in STEPS or not count.isdigit() or int(count) < 1:
            raise ConfigError(
                f"{ENV}: {item!r} is not <step>=<count>", hint=f"steps: {', '.join(STEPS)}; counts from 1"
            )
        armed[name] = int(count)
    return armed


_armed: dict[str, int] | None = None  # read at the first step reached
_reached: dict[str, int] = {}


def reach(step: str) -> None:
    """Count ``step``; the armed time, kill this process (SIGKILL: nothing runs after it)."""
    global _armed
    if _armed is None:
        _armed = parse(os.environ.get(ENV, ""))
    if not _armed:
        return
    _reached[step] = _reached.get(step, 0) + 1
    if _armed.get(step) == _reached[step]:
        logger.warning("failpoint %s reached the %d. time: kill -9", step, _reached[step])
        os.kill(os.getpid(), signal.SIGKILL)
