#!/usr/bin/env bash
# Runs the Python package's tests (python/tests) against a freshly built `sesame` binary and
# real redis-server processes that the tests start on free loopback ports.
#
# The virtual environment lives in target/python-venv; the package and its test dependencies
# are installed there again only when python/pyproject.toml changed since the last install.
# Extra arguments go to pytest (for example: scripts/python-tests.sh -k flask -x).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/python-venv
stamp="$venv/.installed-stamp"

if ! command -v python3 >/dev/null 2>&1; then
  echo "error: the Python tests need python3 (3.9 or later)." >&2
  exit 1
fi
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing redis-server with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "error: the Python tests need redis-server (Debian/Ubuntu: sudo apt-get install redis-server)." >&2
    exit 1
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  mkdir -p target
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian ships venv (and ensurepip) separately.
    rm -rf "$venv"
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "== installing python3-venv with apt-get"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      echo "error: python3 -m venv failed (Debian/Ubuntu: sudo apt-get install python3-venv)." >&2
      exit 1
    fi
  fi
fi
if [ ! -f "$stamp" ] || [ python/pyproject.toml -nt "$stamp" ]; then
  echo "== pip install -e 'python[test]' into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e 'python[test]'
  touch "$stamp"
fi

echo "== cargo build -p sesame-cli --bin sesame"
cargo build -q -p sesame-cli --bin sesame --locked
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export SESAME_BIN="$target_dir/debug/sesame"

echo "== pytest python/tests"
"$venv/bin/python" -m pytest -q python/tests "$@"
