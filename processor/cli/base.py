"""What every command shares: settings loaded once, lazily, and one console for output."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click
from rich.console import Console

from processor.config import Settings, load_settings
from processor.kafka import clients


class Context:
    def __init__(self, config_file: Path | None) -> None:
        self._config_file = config_file
        self._settings: Settings | None = None
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self._config_file)
        return self._settings


pass_context = click.make_pass_decorator(Context)


def stop_on_signals(ctx: Context, duration: float | None = None) -> threading.Event:
    """An event set by SIGTERM/SIGINT, or after ``duration`` seconds."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        ctx.err.print(f"received {signal.Signals(signum).name}, stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    return stop


def ensure_own_topics(ctx: Context, settings: Settings, bootstrap: str) -> None:
    names = [*settings.topics.own(), settings.rollback.notify_topic]
    created = clients.ensure_topics(
        clients.admin(settings, bootstrap), names,
        partitions=settings.topics.partitions, replication_factor=settings.topics.replication_factor,
        configs=own_topic_configs(settings),
    )  # fmt: skip
    ctx.out.print(f"topics: {len(names)} ready ({len(created)} created)")


def own_topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Status records carry whole plans: their topic takes large records."""
    return {settings.topics.status: {"max.message.bytes": str(settings.rollback.status_max_bytes)}}
