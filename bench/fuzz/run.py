"""Coverage-guided fuzzing of rewind's parsers with atheris (libFuzzer for Python).

    .venv/bin/python -m bench.fuzz.run --target selector --runs 1000000
    .venv/bin/python -m bench.fuzz.run --all --runs 1000000      # each target in turn

Each target starts from its seed corpus (bench/fuzz/corpus/<target>, real inputs) and writes what it
learns to a scratch copy; a crash is saved as crash-<hash> in the working directory (libFuzzer's way)
and becomes a regression test in tests/unit/test_fuzz_corpus.py.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
# The targets' names (bench.fuzz.targets.TARGETS): importing them here would import rewind's modules
# before atheris can instrument them.
NAMES = ("selector", "request", "control", "status", "catalog", "capture", "signature", "tap", "journal")


def fuzz(target: str, runs: int, max_len: int) -> None:
    """Runs in this process: atheris takes it over and exits when done."""
    import atheris

    with atheris.instrument_imports(include=["processor"]):
        from bench.fuzz.targets import TARGETS, run_one
    one = TARGETS[target]
    scratch = Path(tempfile.mkdtemp(prefix=f"rewind-fuzz-{target}-"))
    seeds = CORPUS / target
    if seeds.is_dir():
        for seed in seeds.iterdir():
            shutil.copy(seed, scratch / seed.name)
    argv = [sys.argv[0], str(scratch), f"-runs={runs}", f"-max_len={max_len}", "-timeout=10",
            "-print_final_stats=1"]  # fmt: skip
    atheris.Setup(argv, lambda data: run_one(one, data))
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", action="append", default=[])
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--max-len", type=int, default=4096)
    args = parser.parse_args()
    targets = list(NAMES) if args.all else args.target
    if len(targets) == 1:
        fuzz(targets[0], args.runs, args.max_len)
        return
    for target in targets:  # one process each: atheris owns the process it fuzzes in
        started = time.monotonic()
        cmd = [sys.executable, "-m", "bench.fuzz.run", "--target", target, "--runs", str(args.runs),
               "--max-len", str(args.max_len)]  # fmt: skip
        done = subprocess.run(cmd, check=False, capture_output=True, text=True)
        stats = [line for line in done.stderr.splitlines() if line.startswith(("stat::", "Done"))]
        print(f"{target}: exit {done.returncode} in {time.monotonic() - started:.0f} s; {'; '.join(stats)}")
        if done.returncode != 0:
            print(done.stderr[-4000:])


if __name__ == "__main__":
    main()
