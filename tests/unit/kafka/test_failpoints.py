"""Failpoints: off unless armed; armed, they kill the process at the named step's N-th time."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from processor.errors import ConfigError
from processor.kafka import failpoints


def test_steps_and_counts_are_read_and_anything_else_refused_by_name() -> None:
    assert failpoints.parse("") == {}
    assert failpoints.parse("commit.after_offsets=3, commit.after_commit=1") == {
        "commit.after_offsets": 3, "commit.after_commit": 1,
    }  # fmt: skip
    for bad in (
        "commit.sometime=1",
        "commit.after_offsets",
        "commit.after_offsets=0",
        "commit.after_offsets=x",
    ):
        with pytest.raises(ConfigError, match="REWIND_FAILPOINTS"):
            failpoints.parse(bad)


def _reach(times: int, armed: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from processor.kafka import failpoints\n"
        f"for n in range({times}):\n"
        "    failpoints.reach('commit.after_offsets'); print(n, flush=True)\n"
    )
    env = {**os.environ, failpoints.ENV: armed}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_an_armed_step_kills_the_process_the_nth_time_it_is_reached() -> None:
    killed = _reach(5, "commit.after_offsets=3")
    assert killed.returncode == -9 and killed.stdout.split() == ["0", "1"]
    assert _reach(5, "commit.after_commit=1").returncode == 0  # another step armed: this one runs on
    assert _reach(5, "").stdout.split() == ["0", "1", "2", "3", "4"]
