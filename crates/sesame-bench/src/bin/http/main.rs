//! `http`: HTTP throughput of sesame against a ceiling measured in the same run, on the
//! workload of the field's published session benchmark, printed as a Markdown table.
//!
//! Three axum servers run in this process on their own loopback ports: the **ceiling** (the
//! same routes without sessions), **sesame** (`SessionLayer` over a `RedisStore` on a private
//! `redis-server`) and **sesame-memory** (the same app on `MemoryStore`). Each session server
//! gets 1000 sessions through real `POST /login` requests; then `wrk` loads `GET /me` (read
//! and write the session) and `GET /me_ro` (a pure read) with the session cookie rotating
//! over the 1000 tokens, in interleaved rounds. Any error response fails the whole run.
//!
//! Run with `cargo run --release -p sesame-bench --bin http` (needs `wrk` and `redis-server`).
// A command-line measurement tool: printing its report is its whole purpose.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

mod apps;
mod bench;
mod redis_figures;
mod setup;
mod table;
mod wrk;

use std::process::ExitCode;

use sesame_bench::{BenchError, BenchResult};
use sesame_testkit::{RedisOptions, RedisServer};

/// Sessions created per session server.
const SESSIONS: u32 = 1000;
/// Interleaved rounds; the table gives medians.
const ROUNDS: usize = 3;
/// Length of each measured wrk run, seconds.
const SECONDS: u64 = 10;
/// Length of the unmeasured warm-up run per server, seconds.
const WARMUP_SECONDS: u64 = 2;
/// Session keys whose `MEMORY USAGE` is averaged.
const KEYS_MEASURED: usize = 100;
/// The endpoints measured, in order.
const ENDPOINTS: [&str; 2] = ["/me", "/me_ro"];
/// The command that reproduces the table.
const REPRODUCE: &str = "cargo run --release -p sesame-bench --bin http";

fn main() -> ExitCode {
    if !wrk::available() {
        eprintln!("install wrk (Debian: apt-get install wrk)");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The whole measurement; returns the report.
fn run() -> BenchResult<String> {
    let dir = tempfile::Builder::new()
        .prefix("sesame-http-bench-")
        .tempdir()
        .map_err(|e| BenchError::new(format!("temporary directory: {e}")))?;
    let script = wrk::write_script(dir.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(format!("tokio runtime: {e}")))?;
    let redis = RedisServer::start_with(RedisOptions::default())?;
    let runs_total = ROUNDS * ENDPOINTS.len() * 3;
    eprintln!(
        "{runs_total} wrk runs of {SECONDS} s plus warm-up: about {} s",
        runs_total as u64 * SECONDS + 3 * WARMUP_SECONDS + 10
    );

    let targets = runtime.block_on(bench::start_targets(&redis, dir.path(), SESSIONS))?;
    let (session_bytes, sessions_measured) =
        redis_figures::mean_key_bytes(&redis, redis_figures::SESSION_PATTERN, KEYS_MEASURED)?;
    let (index_bytes, _) =
        redis_figures::mean_key_bytes(&redis, redis_figures::INDEX_PATTERN, KEYS_MEASURED)?;

    let plan = bench::Plan {
        script: &script,
        redis: &redis,
        rounds: ROUNDS,
        seconds: SECONDS,
        warmup_seconds: WARMUP_SECONDS,
        endpoints: &ENDPOINTS,
    };
    // On Ctrl-C, stop here so that wrk, the Redis server and the files are cleaned up.
    let runs = runtime.block_on(async {
        tokio::select! {
            runs = bench::measure(&targets, &plan) => runs,
            _ = tokio::signal::ctrl_c() => Err(BenchError::new("interrupted")),
        }
    })?;
    bench::check_counters(&targets, SESSIONS)?;

    let servers: Vec<&'static str> = targets.iter().map(|t| t.name).collect();
    let rows = table::rows(&runs, &servers, &ENDPOINTS, bench::CEILING);
    let mut report = table::markdown(&rows);
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let options = wrk::options(SECONDS).join(" ");
    report.push_str(&format!(
        "\n- Bytes per session: {session_bytes:.0} (`MEMORY USAGE` of a session key, mean of \
         {sessions_measured} keys), plus {index_bytes:.0} per user for the per-user index key.\n\
         - Machine: {cores} cores, shared by wrk, the three servers (one tokio multi-thread \
         runtime in one process) and Redis.\n\
         - Redis {}: a private `redis-server` on loopback; {SESSIONS} sessions per session \
         server; default `SessionConfig` (JSON values).\n\
         - wrk: `wrk {options} -s rotate_cookies.lua http://127.0.0.1:<port><endpoint> -- \
         tokens.txt` per (server, endpoint), the script rotating `Cookie: sid=<token>` over \
         the {SESSIONS} tokens; {ROUNDS} interleaved rounds after a {WARMUP_SECONDS} s \
         warm-up per server; medians.\n\
         - `vs ceiling` = median req/s / the ceiling's for the same endpoint. From \
         `INFO commandstats` after `CONFIG RESETSTAT` (the `INFO`, `CONFIG` and `SCRIPT` calls \
         made to measure left out), per request completed: scripts/req = `EVALSHA` calls; \
         commands/req = the calls of every command, those run inside scripts included, \
         listed per command above. Redis CPU = its CPU seconds (`INFO cpu`) per second of \
         the run.\n\
         - The store's protocol: a load is one round trip of pipelined `GET` + `PTTL`, plus \
         a round trip of `PEXPIRE` (and `ZADD` + `PEXPIREAT` of the user's index) only when \
         the idle deadline is due for a push (once per session per minute); a save merges on \
         the client and sends one `EVALSHA` of a compare-and-set script (`GET`, compare, \
         `SET ... PX`, then `ZADD` + `PEXPIREAT` of the user's index), retried when another \
         save came first. Round trips per request: GET /me_ro 1 (2 when the touch is due), \
         GET /me 2 (plus the touch, plus one per retry). Every sesame run is checked against \
         it: on /me_ro no `EVALSHA` and no `SET`, one `PTTL` per request; on /me one `SET` \
         per request; `GET` = loads + scripts; `ZADD` = `PEXPIREAT` = touches + saves.\n\
         - Reproduce: `{REPRODUCE}`\n",
        redis_figures::version(&redis)?,
    ));
    // Stop the servers before the Redis server and the temporary directory go away.
    drop(runtime);
    Ok(report)
}
