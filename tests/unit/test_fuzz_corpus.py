"""The fuzzers' seed corpus read by every target (each input read or refused with a reason), and a short
coverage-guided run of each target (atheris), as the test command's share of bench/fuzz: the long runs
(>= 1M inputs per target) are recorded in docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fuzz.run import CORPUS, NAMES
from bench.fuzz.targets import TARGETS, run_one

ROOT = Path(__file__).resolve().parents[2]


def test_every_target_has_a_seed_corpus_and_the_runner_knows_them_all() -> None:
    assert set(NAMES) == set(TARGETS)
    for name in NAMES:
        assert any((CORPUS / name).iterdir()), f"no seeds for {name}"


@pytest.mark.parametrize("name", NAMES)
def test_every_seed_is_read_or_refused_with_a_reason(name: str) -> None:
    for seed in sorted((CORPUS / name).iterdir()):
        run_one(TARGETS[name], seed.read_bytes())


@pytest.mark.parametrize("name", NAMES)
def test_a_short_fuzzing_run_finds_no_crash(name: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.fuzz.run", "--target", name, "--runs", "3000"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done 3000 runs" in done.stderr


def test_the_native_fuzz_targets_are_told_what_the_engines_are_told_here() -> None:
    """native/src/harness.rs reads this file (it has no Python); it must not drift from the settings."""
    from bench.fuzz.targets import NATIVE_CONFIG, native_config

    assert json.loads(NATIVE_CONFIG.read_text()) == native_config().model_dump(mode="json")
