"""Long commands' progress: a bar on a terminal, plain lines (throttled, and the last) when piped."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from processor.cli import progress
from processor.cli.progress import Bar


def test_piped_output_gets_plain_lines_throttled_and_the_final_one(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    with Bar(Console(file=out, width=100), "replay", "offsets") as update:
        update(10, 100)  # printed: the first
        now[0] += 1
        update(20, 100)  # not: within PLAIN_EVERY_S
        now[0] += progress.PLAIN_EVERY_S
        update(70, 100)  # printed
        now[0] += 1
        update(100, 100)  # printed at the end
    assert out.getvalue().splitlines() == [
        "replay: 10/100 offsets (10%)",
        "replay: 70/100 offsets (70%)",
        "replay: 100/100 offsets (100%)",
    ]


def test_a_terminal_gets_the_bar_not_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True)
    with Bar(console, "replay") as update:
        update(5, 10)
    assert "replay: 5/10" not in out.getvalue()
    assert "5/10" in out.getvalue()


def test_closed_early_it_prints_where_it_ended_and_then_nothing() -> None:
    out = io.StringIO()
    bar = Bar(Console(file=out, width=100), "graph catch-up", "entries")
    with bar as update:
        update(40, 40)
        bar.close()  # caught up; the command goes on following the journal
        update(41, 41)
    assert out.getvalue().splitlines() == ["graph catch-up: 40/40 entries (100%)"]
