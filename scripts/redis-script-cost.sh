#!/usr/bin/env bash
# Redis's own cost of sesame's save script (`save.lua`, the compare-and-set every save runs)
# against a plain GET and SET of the same 300-byte value, on a private redis-server on a free
# loopback port: Redis CPU per call (INFO cpu, over 200,000 calls from redis-benchmark with 32
# connections) and the time inside the command (INFO commandstats). The script is called so
# that it succeeds every time (it writes back the value it expects), taking its usual path
# (no touch due: GET, SET KEEPTTL).
#
#   scripts/redis-script-cost.sh
#   REDIS_SERVER=$(scripts/valkey.sh) scripts/redis-script-cost.sh
#
# REDIS_SERVER names the server program (redis-server by default). On a server with
# `SET … IFEQ` (Valkey 8.1 and later) it also measures the native compare-and-set the store
# sends instead of the script for a save not due a touch.
# Needs redis-server, redis-cli and redis-benchmark (Debian: redis-server, redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
dir=$(mktemp -d)
"${REDIS_SERVER:-redis-server}" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/pid" >/dev/null
trap 'kill $(cat "$dir/pid"); rm -rf "$dir"' EXIT
sleep 0.3
cli() { redis-cli -p "$port" "$@"; }
# The save script as the store sends it: the paragraphs of lua/lib.lua whose `local` name
# save.lua names (none of those names another helper), then save.lua.
src=$(python3 - <<'PY'
import re
lib = open("crates/sesame-redis/src/lua/lib.lua").read()
body = open("crates/sesame-redis/src/ops/save.lua").read()
out = []
for para in lib.split("\n\n"):
    m = re.search(r"^local (?:function )?([A-Za-z_][A-Za-z0-9_]*)", para, re.M)
    if m and re.search(r"(?<![A-Za-z0-9_])" + m.group(1) + r"(?![A-Za-z0-9_])", body):
        out.append(para.rstrip())
print("\n".join(out + [body]), end="")
PY
)
sha=$(cli SCRIPT LOAD "$src")
val=$(python3 -c 'print("x"*300)')
cli SET k "$val" PX 600000 >/dev/null
n=200000
run() { cli CONFIG RESETSTAT >/dev/null; local c0; c0=$(cli INFO cpu | awk -F: '/used_cpu_(user|sys):/ {s+=$2} END {print s}');
  redis-benchmark -p "$port" -n $n -c 32 -q "$@" >/dev/null
  local c1; c1=$(cli INFO cpu | awk -F: '/used_cpu_(user|sys):/ {s+=$2} END {print s}')
  echo "$1: $(python3 -c "print(round(($c1-$c0)/$n*1e6,2))") µs of Redis CPU per call; $(cli INFO commandstats | grep -E "cmdstat_$(echo $1 | tr A-Z a-z):" | sed 's/.*usec_per_call=\([0-9.]*\).*/\1/') µs inside the command"; }
run GET k
run SET k "$val" KEEPTTL
run EVALSHA "$sha" 1 k "$val" "$val"
if [ "$(cli SET k "$val" IFEQ "$val" KEEPTTL 2>&1)" = OK ]; then
  echo "native compare-and-set (SET … IFEQ … KEEPTTL):"
  run SET k "$val" IFEQ "$val" KEEPTTL
fi
