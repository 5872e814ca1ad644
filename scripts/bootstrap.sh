#!/usr/bin/env bash
# Install everything kafka-rewind needs on a fresh Debian machine, idempotently:
# system packages (Java 17+, Maven, PostgreSQL, Graphviz, Prometheus) when missing, the Python environment, the Kafka broker jars.
# Downloads are cached where a second run reuses them: ~/.cache/pip, ~/.m2, ~/.cache/kafka-rewind.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
java_major() { java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then need_apt+=(openjdk-17-jre-headless); fi
command -v mvn >/dev/null || need_apt+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v dot >/dev/null || need_apt+=(graphviz)  # pictures of rollback scopes (graph export)
command -v promtool >/dev/null || need_apt+=(prometheus)  # alert rules checked and unit-tested; the real-Prometheus test
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then need_apt+=(python3-venv); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "bootstrap: missing ${need_apt[*]}; install them (Debian: apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "bootstrap: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: Python environment in $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[test,dev]'
  touch "$stamp"
fi

# The native tap engine (native/, Rust via maturin): built when a Rust toolchain is present (rustup puts
# it in ~/.cargo/bin); without one the tap runs its Python core, and CI's tests say so. The cargo target
# directory lives in the cache, so a second run only rebuilds what changed.
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
native_stamp="$VENV/.native-installed"
if command -v cargo >/dev/null; then
  if [ ! -f "$native_stamp" ] || [ -n "$(find native -type f -newer "$native_stamp" -not -path 'native/target/*' | head -1)" ]; then
    echo "bootstrap: building the native tap engine (native/, Rust)"
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kafka-rewind/cargo-target} \
      "$VENV/bin/python" -m pip install -q ./native
    touch "$native_stamp"
  fi
else
  echo "bootstrap: no Rust toolchain (cargo): the tap runs its Python core; install Rust (https://rustup.rs) for the native engine" >&2
fi

"$VENV/bin/rewind" kafka fetch
"$VENV/bin/rewind" cdc fetch
