#!/usr/bin/env python3
"""Compares two builds of the side-by-side benchmark's `http` binary on one server and
endpoint, in one run: both serve at once (`http --serve`, each with its own private Redis),
and wrk loads them in turn, alternating which goes first, for a few rounds. Prints per round
and the medians: req/s, p99, Redis CPU and app CPU per request, Redis commands per request
(inside scripts included) and the time inside one EVALSHA.

    cargo build --release -p sesame-bench --bin http && cp target/release/http /tmp/http-new
    git worktree add /tmp/old <commit> && (cd /tmp/old && \\
        cargo build --release -p sesame-bench --bin http && cp target/release/http /tmp/http-old)
    scripts/compare-builds.py /tmp/http-old /tmp/http-new [SERVER] [ENDPOINT] [ROUNDS]

SERVER defaults to sesame-cache (sesame-memory has no Redis: its Redis columns read 0),
ENDPOINT to /me, ROUNDS to 4 (10 s of wrk each, after a 2 s
warm-up). On a shared machine, only a difference that holds in every round means anything.
wrk runs the benchmark's own script, which the NEW build's `--serve` leaves beside its tokens
(so NEW must be a build of this script's commit or later; OLD may be any).
Needs wrk, redis-cli and ss (Debian: wrk, redis-tools, iproute2).
"""

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SECONDS = 10
# Servers that keep their sessions in the process: no Redis figures for them.
WITHOUT_REDIS = ("sesame-memory", "ceiling")

def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", port, *args], capture_output=True, text=True,
                          check=True).stdout


def redis_cpu(port):
    info = cli(port, "INFO", "cpu")
    return sum(float(v) for v in re.findall(r"used_cpu_(?:user|sys):([0-9.]+)", info))


def app_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(script, url, tokens, seconds):
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", script, url,
                          "--", tokens], capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([0-9.]+)(us|ms|s)\b", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return requests, p99_ms


def start(binary, server, out_path):
    with open(out_path, "w") as out:
        proc = subprocess.Popen([binary, "--serve", server, "3600"], stdout=out,
                                stderr=subprocess.DEVNULL)
    for _ in range(240):
        with open(out_path) as f:
            lines = [l.split() for l in f if l.startswith("serving ")]
        if len(lines) >= 2:
            break
        if proc.poll() is not None:
            sys.exit(f"{binary} --serve {server} exited")
        time.sleep(0.5)
    else:
        sys.exit(f"{binary} --serve {server} did not start")
    url, tokens = next((l[2], l[3]) for l in lines if l[1] == server)
    # The server's own redis-server is its child; its listening port tells which it is.
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    port = next((line.split()[3].rsplit(":", 1)[1] for line in listening.splitlines()
                 for c in children if f"pid={c}," in line), None)
    if port is None and server not in WITHOUT_REDIS:
        sys.exit(f"{binary} --serve {server}: no private redis-server found")
    return proc, url, tokens, port


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    old, new = sys.argv[1], sys.argv[2]
    server = sys.argv[3] if len(sys.argv) > 3 else "sesame-cache"
    endpoint = sys.argv[4] if len(sys.argv) > 4 else "/me"
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    work = tempfile.mkdtemp(prefix="sesame-compare-")
    builds = {}
    try:
        for name, binary in (("old", old), ("new", new)):
            builds[name] = start(binary, server, os.path.join(work, f"{name}.serving"))
        script = os.path.join(os.path.dirname(builds["new"][2]), "rotate_cookies.lua")
        if not os.path.exists(script):
            sys.exit(f"{new} --serve left no rotate_cookies.lua: NEW is older than this script")
        for proc, url, tokens, _ in builds.values():
            wrk(script, url + endpoint, tokens, 2)
        rows = {name: [] for name in builds}
        for r in range(rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for name in order:
                proc, url, tokens, port = builds[name]
                if port:
                    cli(port, "CONFIG", "RESETSTAT")
                c0, a0 = redis_cpu(port) if port else 0.0, app_cpu(proc.pid)
                n, p99 = wrk(script, url + endpoint, tokens, SECONDS)
                c1, a1 = redis_cpu(port) if port else 0.0, app_cpu(proc.pid)
                stats = cli(port, "INFO", "commandstats") if port else ""
                calls = sum(int(c) for c in re.findall(r"calls=(\d+)", stats))
                inside = re.search(r"cmdstat_evalsha:.*?usec_per_call=([0-9.]+)", stats)
                row = (n / SECONDS, p99, (c1 - c0) / n * 1e6, (a1 - a0) / n * 1e6, calls / n,
                       float(inside.group(1)) if inside else 0.0)
                rows[name].append(row)
                print(f"round {r + 1} {name}: {row[0]:.0f} req/s, p99 {row[1]:.2f} ms, Redis CPU "
                      f"{row[2]:.1f} µs/req, app CPU {row[3]:.1f} µs/req, {row[4]:.2f} "
                      f"commands/req, {row[5]:.2f} µs inside EVALSHA", flush=True)
        for name in ("old", "new"):
            m = [statistics.median(col) for col in zip(*rows[name])]
            print(f"median {name} ({server} {endpoint}): {m[0]:.0f} req/s, p99 {m[1]:.2f} ms, "
                  f"Redis CPU {m[2]:.1f} µs/req, app CPU {m[3]:.1f} µs/req, {m[4]:.2f} "
                  f"commands/req, {m[5]:.2f} µs inside EVALSHA")
    finally:
        # SIGINT lets each server stop its private redis-server on the way out.
        for proc, *_ in builds.values():
            proc.send_signal(signal.SIGINT)
        for proc, *_ in builds.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
