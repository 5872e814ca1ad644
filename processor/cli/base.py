"""What every command shares: settings loaded once, lazily, one console for output, and the composition
root (processor.app) built from them."""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from rich.console import Console

from processor.app import Rewind
from processor.config import Settings, load_settings
from processor.errors import ConfigError
from processor.graph.builder import CausalGraph
from processor.journal.model import JournalEntry

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


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

    def app(self, catalog_file: Path | None = None, *, fmt: str = "table") -> Rewind:
        """The composition root for this command, saying what it starts on the console (on stderr when
        the command prints JSON, which stands alone on stdout)."""
        return Rewind(self.settings, catalog_file, say=(self.err if fmt == "json" else self.out).print)


pass_context = click.make_pass_decorator(Context)


def stop_on_signals(ctx: Context, duration: float | None = None) -> threading.Event:
    """An event set by SIGTERM/SIGINT, or after ``duration`` seconds."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        ctx.err.print(f"received {signal.Signals(signum).name}, stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if sys.__stderr__ is not None:  # `kill -USR1`: where every thread is, on the process's stderr
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    return stop


F = TypeVar("F", bound=Callable[..., Any])

SOURCES = [
    click.option("--capture", type=FILE, help="Build from a kcat -J capture, through the tap's decoder."),
    click.option(
        "--journal", "journal_dump", type=FILE, help="Build from a journal dump (`rewind decode` output)."
    ),
    click.option(
        "--catalog", "catalog_file", type=FILE, help="Action catalog, for reversibility with --capture."
    ),
]


def with_sources(f: F) -> F:
    for option in reversed(SOURCES):
        f = option(f)
    return f


def load_graph(
    ctx: Context, capture: Path | None, journal_dump: Path | None, catalog_file: Path | None
) -> tuple[CausalGraph, dict[str, JournalEntry]]:
    """The graph from a capture or a dump (with each action's entry), else the builder's checkpoint."""
    return ctx.app(catalog_file).graph(capture, journal_dump, _unreadable)


def _unreadable(error: ConfigError) -> None:
    click.echo(f"unreadable line: {error}", err=True)
