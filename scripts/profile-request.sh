#!/usr/bin/env bash
# Counts the CPU instructions one request costs, with callgrind (instruction counts do not
# depend on what else the machine is doing), for a session server of the side-by-side
# benchmark and for the no-session ceiling in the same process:
#
#   scripts/profile-request.sh [SERVER] [ENDPOINT] [REQUESTS] [SESSIONS]
#
# SERVER is sesame-memory (default), sesame, sesame-cache, tower-sessions, actix-session or
# sesame-actix;
# ENDPOINT is /me_ro (default) or /me; REQUESTS defaults to 2000. One keep-alive client sends
# the requests one after another, rotating the cookie over the first SESSIONS sessions (all
# 1000 by default), after one unmeasured request per session (so a near cache starts warm).
# Under callgrind a request takes milliseconds: for sesame-cache, pass a SESSIONS small enough
# (100) that each session comes back within the cache's 5 s, as it does under a real load,
# or the count includes misses. It prints instructions per
# request for both servers and leaves the callgrind files (for callgrind_annotate) in a
# directory it names. Needs valgrind (Debian: apt-get install valgrind) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-sesame-memory}
endpoint=${2:-/me_ro}
requests=${3:-2000}
sessions=${4:-1000}
command -v valgrind >/dev/null || { echo "error: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -q -p sesame-bench --bin http
out=$(mktemp -d -t sesame-profile-XXXXXX)
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
  target/release/http --serve "$server" 3600 >"$out/serving" 2>"$out/valgrind.log" &
pid=$!
# SIGINT lets the server stop its private redis-server on the way out.
trap 'kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  [ "$(grep -c '^serving ' "$out/serving" 2>/dev/null || true)" -ge 2 ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$out/valgrind.log" >&2; exit 1; }
  sleep 1
done
drive() { # url tokens-file count
  python3 - "$1" "$2" "$3" "$sessions" <<'PY'
import http.client, sys, urllib.parse
url, tokens_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
tokens = [t.strip() for t in open(tokens_path) if t.strip()][:int(sys.argv[4])]
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
for i in range(count):
    conn.request("GET", u.path, headers={"Cookie": "sid=" + tokens[i % len(tokens)]})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{url}: status {r.status}")
PY
}
report() { # name
  local ir
  ir=$(callgrind_annotate "$out/$1.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  echo "$1 $endpoint: $((ir / requests)) instructions per request ($ir over $requests requests)"
}
while read -r _ name url tokens; do
  url="$url$endpoint"
  # Warm-up, not counted: one request per session, so that a near cache holds every session
  # the counted requests use, as it does under a sustained load.
  drive "$url" "$tokens" "$sessions"
  callgrind_control -z "$pid" >/dev/null
  drive "$url" "$tokens" "$requests"
  callgrind_control -d "$name" "$pid" >/dev/null
  mv "$(ls -t "$out"/callgrind.out.* | head -1)" "$out/$name.out"
  report "$name"
done <"$out/serving"
echo "callgrind files: $out (callgrind_annotate --inclusive=yes $out/<server>.out)"
