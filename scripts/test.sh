#!/usr/bin/env bash
# Runs every check of the project: formatting, clippy with warnings as errors, the API docs,
# and all tests.
# Tests start their own redis-server processes on free loopback ports; this script installs
# the Debian packages they need when missing and it can (Debian/Ubuntu as root), or says what
# to install.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: redis-server and redis-cli (real servers), wrk (the
# benchmark's smoke run).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "error: these Debian packages are needed by the tests: ${missing[*]}" >&2
    echo "       Debian/Ubuntu: sudo apt-get install ${missing[*]}" >&2
    echo "       (redis-server and redis-cli are Redis 7; on macOS: brew install redis wrk)" >&2
    exit 1
  fi
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "== installing the $component component with rustup"
    rustup component add "$component"
  fi
done

echo "== redis: $(redis-server --version)"
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc (the libraries' API docs; broken links and other doc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib --locked
echo "== cargo test"
cargo test --workspace --locked
