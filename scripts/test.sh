#!/usr/bin/env bash
# The test command: lint, type-check and check the import rules (and lint the native engine's Rust),
# then the whole suite against a real broker.
# pytest's exit 5 (no tests collected) is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

"$VENV/bin/ruff" check . || exit 1
"$VENV/bin/mypy" || exit 1  # processor, examples, tests and bench
"$VENV/bin/lint-imports" || exit 1  # the import rules of docs/architecture.md (pyproject.toml)
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
if command -v cargo >/dev/null; then  # the native tap engine: formatted and lint-free too
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kafka-rewind/cargo-target} \
    cargo clippy -q --release --manifest-path native/Cargo.toml -- -D warnings || exit 1
  cargo fmt --manifest-path native/Cargo.toml --check && cargo fmt --manifest-path native/fuzz/Cargo.toml --check || exit 1
  # The native fuzz targets' seed corpus replayed through the engine alone (native/src/harness.rs).
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kafka-rewind/cargo-target} \
    cargo test -q --no-default-features --manifest-path native/Cargo.toml || exit 1
fi

"$VENV/bin/python" -m pytest --durations=25 "$@"  # the slowest, to keep the run within its budget
code=$?
if [ "$code" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: failing" >&2
  exit 1
fi
exit "$code"
