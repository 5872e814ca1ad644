#!/usr/bin/env bash
# The native engine's fuzz targets (native/fuzz: tap, journal, json), built with libFuzzer's coverage
# instrumentation the way `cargo fuzz build` builds them (nightly Rust; `cargo fuzz run <target>` works
# too where cargo-fuzz is installed), then run on a copy of the seed corpus:
#
#     bash bench/fuzz/native.sh tap 1000000       # target, runs
#
# Findings are written to the working directory as crash-<sha1>, as with bench.fuzz.run.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target=${1:?target: tap, journal or json}
runs=${2:-100000}
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
out=${FUZZ_TARGET_DIR:-$HOME/.cache/kafka-rewind/fuzz-target}
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo +nightly build -q --release --target x86_64-unknown-linux-gnu \
  --manifest-path "$root/native/fuzz/Cargo.toml" --target-dir "$out"
# Seeds: the tap's captures, the journal's entries, capture lines for JSON (bench/fuzz/seed.py).
case "$target" in
  tap) seeds=tap ;; journal) seeds=journal ;; json) seeds=capture ;;
  *) echo "unknown target: $target" >&2; exit 2 ;;
esac
corpus=$(mktemp -d)
cp "$root/bench/fuzz/corpus/$seeds/"* "$corpus/"
exec "$out/x86_64-unknown-linux-gnu/release/$target" -runs="$runs" -max_len=16384 -timeout=10 \
  -rss_limit_mb=1024 -print_final_stats=1 "$corpus"
