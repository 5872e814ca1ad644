"""One progress display for long commands: a bar with rate and time left on a terminal, and plain
lines (at most one every few seconds, and the last) when the output is piped or logged."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

PLAIN_EVERY_S = 5.0


class Bar:
    """``with Bar(console, "replay") as update: update(done, total)``."""

    def __init__(self, console: Console, label: str, unit: str = "") -> None:
        self.console, self.label, self.unit = console, label, unit
        self.terminal = console.is_terminal
        self.progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console, disable=not self.terminal,
        )  # fmt: skip
        self.task = self.progress.add_task(label, total=None)
        self._last: tuple[int, int] | None = None
        self._printed: tuple[int, int] | None = None
        self._printed_at = 0.0
        self._open = False

    def __enter__(self) -> Callable[[int, int], None]:
        self.progress.start()
        self._open = True
        return self.update

    def update(self, done: int, total: int) -> None:
        if not self._open:
            return
        self.progress.update(self.task, completed=done, total=total)
        self._last = (done, total)
        if not self.terminal and time.monotonic() - self._printed_at >= PLAIN_EVERY_S:
            self._plain()

    def _plain(self) -> None:
        if self._last is None:
            return
        done, total = self._last
        share = f" ({100 * done / total:.0f}%)" if total else ""
        unit = f" {self.unit}" if self.unit else ""
        self.console.print(f"{self.label}: {done}/{total}{unit}{share}")
        self._printed, self._printed_at = self._last, time.monotonic()

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Where it ended, once (also before the work is over: a catch-up that then goes on following)."""
        if not self._open:
            return
        self._open = False
        self.progress.stop()
        if not self.terminal and self._last != self._printed:
            self._plain()
