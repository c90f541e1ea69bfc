#!/usr/bin/env bash
# Runs every check of the project: formatting, clippy with warnings as errors, the API docs,
# and all tests.
# Tests start their own redis-server processes on free loopback ports, the benchmark's smoke
# run drives wrk, and the examples' tests run curl and openssl; this script installs what is
# missing when it can (Debian/Ubuntu as root), or says what to install. The Python tests run
# in a virtual environment that scripts/python-tests.sh creates (Flask, pytest, schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian/Ubuntu packages the tests need, by the command that must exist.
missing=()
for pair in redis-server:redis-server redis-cli:redis-tools wrk:wrk curl:curl openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "error: the tests need redis-server and redis-cli (Redis 7), wrk, curl and openssl." >&2
    echo "       Debian/Ubuntu: sudo apt-get install ${missing[*]}" >&2
    echo "       macOS: brew install redis wrk curl openssl" >&2
    exit 1
  fi
fi

# The browser test (crates/sesame-cli/tests/browser.rs) drives the demo in headless Chromium
# through Node and playwright-core; SESAME_SKIP_BROWSER=1 skips it.
if [ "${SESAME_SKIP_BROWSER:-}" != 1 ]; then
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && [ -z "${SESAME_CHROMIUM:-}" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "== installing chromium with apt-get"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "error: the browser test needs Chromium (Debian: sudo apt-get install chromium)," >&2
      echo "       or SESAME_CHROMIUM=<path to a Chromium binary>, or SESAME_SKIP_BROWSER=1." >&2
      exit 1
    fi
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: the browser test needs Node.js 18 or later with npm, or SESAME_SKIP_BROWSER=1." >&2
    exit 1
  fi
  browser_dir=crates/sesame-cli/tests/browser
  if ! cmp -s "$browser_dir/package-lock.json" "$browser_dir/node_modules/.installed-lock.json"; then
    echo "== npm ci in $browser_dir"
    (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error \
      && cp package-lock.json node_modules/.installed-lock.json)
  fi
fi

# Tests that run on Valkey (8.1 and later: the store's native compare-and-set) spawn the server
# SESAME_VALKEY_SERVER names; scripts/valkey.sh fetches Valkey 9.1 when it is not set.
if [ -z "${SESAME_VALKEY_SERVER:-}" ]; then
  echo "== fetching a Valkey server (scripts/valkey.sh)"
  SESAME_VALKEY_SERVER=$(scripts/valkey.sh)
  export SESAME_VALKEY_SERVER
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "== installing the $component component with rustup"
    rustup component add "$component"
  fi
done

echo "== redis: $(redis-server --version)"
echo "== valkey: $("$SESAME_VALKEY_SERVER" --version)"
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc (the libraries' API docs; broken links and other doc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== python tests (the sesame_session package, the Flask scenario, schemathesis)"
scripts/python-tests.sh
