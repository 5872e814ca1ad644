#!/usr/bin/env bash
# The test command: lint and type-check processor/, then the whole suite against a real broker.
# pytest's exit 5 (no tests collected) is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

"$VENV/bin/ruff" check . || exit 1
"$VENV/bin/mypy" || exit 1

"$VENV/bin/python" -m pytest "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: failing" >&2
  exit 1
fi
exit "$code"
