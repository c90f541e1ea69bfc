//! `http`: sesame side by side with its peers and a no-session ceiling, in one run, on the
//! workload of the field's published session benchmark, printed as Markdown tables.
//!
//! Ten servers run in this process on their own loopback ports: the **ceiling** (axum, the
//! same routes without sessions), **ceiling-actix** (the same on actix-web), **handler-only** (the same, its handlers decoding and
//! encoding the same attributes from memory, so that what a session server costs beyond it is
//! the session layer's own cost), **sesame** (sesame-axum over a `RedisStore`),
//! **sesame-cache** (the same with the store's near cache), **sesame-memory** (the same app
//! on `MemoryStore`), **tower-sessions** (0.14, with tower-sessions-redis-store 0.16 on one
//! fred connection), **actix-session** (0.11, `RedisSessionStore`) and **sesame-actix** (the
//! sesame app on actix-web over a `RedisStore`, run as actix-session is) and
//! **sesame-per-thread** (the sesame app on axum, served as the actix-web servers are: one
//! current-thread runtime per core, the store on a thread of its own). Each Redis-backed
//! server has its own private `redis-server`. Every session server gets its sessions through
//! real `POST /login` requests; then `wrk` loads `GET /me` (read and write the session) and
//! `GET /me_ro` (a pure read) with the session cookie rotating over 1000 tokens, in
//! interleaved rounds. Any error response fails the run.
//!
//! Run with `cargo run --release -p sesame-bench --bin http` (needs `wrk` and
//! `redis-server`); `--write-docs` also replaces the measured section of
//! `docs/BENCHMARKS.md`, and `--smoke` makes a seconds-long run whose figures mean nothing.
//! `--valkey` runs every Redis-backed server on its own Valkey instead (the server
//! `SESAME_VALKEY_SERVER` names, as `scripts/valkey.sh` prints), where sesame saves with
//! Valkey's own compare-and-set, and writes its own section of the file.
// A command-line measurement tool: printing its report is its whole purpose.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

mod actix_app;
mod apps;
mod bench;
mod cpu;
mod docs;
mod peers;
mod redis_figures;
mod serve;
mod setup;
mod table;
mod wrk;

use std::process::ExitCode;

use sesame_bench::{BenchError, BenchResult};

/// Session keys whose `MEMORY USAGE` is averaged.
pub(crate) const KEYS_MEASURED: usize = 100;
/// The endpoints measured, in order.
const ENDPOINTS: [&str; 2] = ["/me", "/me_ro"];
/// The command that reproduces the table (on Valkey: with `--valkey`, after
/// `export SESAME_VALKEY_SERVER=$(scripts/valkey.sh)`).
const REPRODUCE: &str = "cargo run --release -p sesame-bench --bin http -- --write-docs";

/// How much to measure.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Sessions per server, and how many of them the load uses.
    sessions: bench::Sessions,
    /// Interleaved rounds; the table gives medians.
    rounds: usize,
    /// Length of each measured wrk run, seconds.
    seconds: u64,
    /// Length of the unmeasured warm-up run per server, seconds.
    warmup_seconds: u64,
}

/// The full measurement: 100,000 logins per server for the bytes per session, 1000 of them
/// loaded, three rounds of 10 s.
const FULL: Scale = Scale {
    sessions: bench::Sessions { total: 100_000, used: 1000 },
    rounds: 3,
    seconds: 10,
    warmup_seconds: 2,
};

/// A seconds-long run that exercises every server and check (for the test suite; its
/// figures mean nothing).
const SMOKE: Scale = Scale {
    sessions: bench::Sessions { total: 100, used: 50 },
    rounds: 1,
    seconds: 1,
    warmup_seconds: 1,
};

const USAGE: &str = "usage: http [--valkey] [--smoke] [--write-docs] | http [--valkey] --serve SERVER SECONDS\n  \
    --valkey      every Redis-backed server on its own Valkey (SESAME_VALKEY_SERVER, else\n                \
    valkey-server from PATH; scripts/valkey.sh fetches one) instead of redis-server\n  \
    --smoke       a seconds-long run of every server and check; figures are meaningless\n  \
    --write-docs  also replace the measured section of docs/BENCHMARKS.md (its Valkey\n                \
    section with --valkey)\n  \
    --serve       start SERVER (sesame, sesame-cache, sesame-memory, tower-sessions,\n                \
    actix-session, sesame-actix, sesame-per-thread) and the servers without sessions,\n                \
    with 1000 sessions, print where they\n                \
    listen and where the tokens are, serve for SECONDS, then exit (for a profiler: see\n                \
    docs/BENCHMARKS.md)";

fn main() -> ExitCode {
    let mut scale = FULL;
    let mut write_docs = false;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let valkey = args.iter().any(|a| a == "--valkey");
    args.retain(|a| a != "--valkey");
    if valkey {
        bench::use_flavor(sesame_testkit::Flavor::Valkey);
    }
    if let [flag, server, seconds] = args.as_slice() {
        if flag == "--serve" {
            return match seconds.parse() {
                Ok(seconds) => match serve::run(server, seconds) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                },
                Err(_) => {
                    eprintln!("{USAGE}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    for arg in &args {
        match arg.as_str() {
            "--smoke" => scale = SMOKE,
            "--write-docs" => write_docs = true,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    if !wrk::available() {
        eprintln!("install wrk (Debian: apt-get install wrk)");
        return ExitCode::FAILURE;
    }
    let result = run(scale).and_then(|report| {
        if write_docs {
            docs::write_section(&report, bench::flavor() == sesame_testkit::Flavor::Valkey)?;
            eprintln!("wrote the measured section of {}", docs::PATH);
        }
        Ok(report)
    });
    match result {
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
fn run(scale: Scale) -> BenchResult<String> {
    let dir = tempfile::Builder::new()
        .prefix("sesame-http-bench-")
        .tempdir()
        .map_err(|e| BenchError::new(format!("temporary directory: {e}")))?;
    let script = wrk::write_script(dir.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(format!("tokio runtime: {e}")))?;
    let targets = runtime.block_on(bench::start_targets(
        dir.path(),
        &bench::SESSION_SERVERS,
        scale.sessions,
    ))?;
    let runs_total = (scale.rounds * ENDPOINTS.len() * targets.len()) as u64;
    eprintln!(
        "{runs_total} wrk runs of {} s plus warm-up: about {} s",
        scale.seconds,
        runs_total * scale.seconds + targets.len() as u64 * scale.warmup_seconds
    );
    let plan = bench::Plan {
        script: &script,
        rounds: scale.rounds,
        seconds: scale.seconds,
        warmup_seconds: scale.warmup_seconds,
        endpoints: &ENDPOINTS,
    };
    // On Ctrl-C, stop here so that wrk, the Redis servers and the files are cleaned up.
    let runs = runtime.block_on(async {
        tokio::select! {
            runs = bench::measure(&targets, &plan) => runs,
            _ = tokio::signal::ctrl_c() => Err(BenchError::new("interrupted")),
        }
    })?;
    bench::check_counters(&targets, scale.sessions.total)?;

    let servers: Vec<&'static str> = targets.iter().map(|t| t.name).collect();
    let rows = table::rows(&runs, &servers, &ENDPOINTS, bench::CEILING);
    let mut report = table::markdown(&rows);
    report.push_str(
        "\nEach session server's requests per second over `handler-only`'s (the same handler \
         work without sessions), same run:\n\n",
    );
    let without = [bench::CEILING, bench::CEILING_ACTIX];
    report.push_str(&table::against(&rows, bench::HANDLER_ONLY, &without));
    report.push_str(
        "\nThe servers on actix-web over `ceiling-actix` (actix-web without sessions, the \
         ceiling's fixed answers), same run:\n\n",
    );
    let not_actix: Vec<&str> =
        servers.iter().copied().filter(|s| !bench::ON_ACTIX.contains(s)).collect();
    report.push_str(&table::against(&rows, bench::CEILING_ACTIX, &not_actix));
    report.push('\n');
    report.push_str(&memory_table(&targets));
    let version = match targets.iter().find_map(|t| t.redis.as_ref()) {
        Some(r) => redis_figures::version(r)?,
        None => "?".into(),
    };
    report.push_str(&notes(&scale, &version, bench::flavor()));
    // Stop the servers before the Redis servers and the temporary directory go away.
    drop(runtime);
    drop(targets);
    Ok(report)
}

/// The bytes-per-session table of the servers that keep sessions in Redis.
fn memory_table(targets: &[bench::Target]) -> String {
    let mut s = String::from(
        "| server | sessions | `used_memory` growth per session | `MEMORY USAGE` of a session key | of a per-user index key |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for t in targets {
        if let Some(m) = &t.memory {
            s.push_str(&format!(
                "| {} | {} | {:.0} | {:.0} | {} |\n",
                t.name,
                m.sessions,
                m.used_per_session,
                m.session_key,
                m.index_key.map_or_else(|| "—".to_string(), |v| format!("{v:.0}")),
            ));
        }
    }
    s
}

/// How the figures were made.
fn notes(scale: &Scale, server_version: &str, flavor: sesame_testkit::Flavor) -> String {
    let options = wrk::options(scale.seconds).join(" ");
    let bench::Sessions { total, used } = scale.sessions;
    let (server, saves, reproduce) = match flavor {
        sesame_testkit::Flavor::Redis => (
            format!("`redis-server` {server_version}"),
            "runs a save as one `EVALSHA` (the commands inside it are counted in the commands \
             column)",
            REPRODUCE.to_string(),
        ),
        sesame_testkit::Flavor::Valkey => (
            format!("`valkey-server` {server_version} (the build `scripts/valkey.sh` fetches)"),
            "runs a save not due a touch as one `SET … IFEQ … KEEPTTL`, Valkey's own \
             compare-and-set, and one due a touch as one `EVALSHA` (the commands inside it are \
             counted in the commands column)",
            format!("export SESAME_VALKEY_SERVER=$(scripts/valkey.sh); {REPRODUCE} --valkey"),
        ),
    };
    format!(
        "\n- Servers: `ceiling` is axum with the same routes and no sessions; `ceiling-actix` \
         is the same on actix-web (one worker per core, its own actix system); `handler-only` \
         is the same without sessions but for its handlers, which decode `user_id`, the \
         profile and (`/me`) `hits` from JSON kept in memory and encode `hits + 1`, as the \
         session app's handlers do through the session; `sesame` and \
         `sesame-memory` are sesame-axum on a `RedisStore` and on the `MemoryStore`, default \
         `SessionConfig` (JSON values); `sesame-cache` is `sesame` with the store's near \
         cache (default settings: 10,000 entries, 5 s); `tower-sessions` is tower-sessions 0.14 with \
         tower-sessions-redis-store 0.16 on one fred connection; `actix-session` is \
         actix-session 0.11 with its `RedisSessionStore` on actix-web 4 (one worker per core); \
         `sesame-actix` is the sesame app (same handlers, default configuration) on \
         sesame-actix's middleware, run as actix-session is (its own actix system, one worker \
         per core, the store connected inside it); `sesame-per-thread` is the `sesame` app \
         served as the actix-web servers are: one current-thread tokio runtime per core \
         accepting on one listener, the store connected on a thread of its own. The other \
         axum servers share one multi-threaded tokio runtime (one worker per core), all in \
         one process; \
         each Redis-backed server has its own private {server} on loopback.\n\
         - Sessions: {total} logins per session server through real `POST /login` requests; \
         the load rotates the cookie over the first {used}. Bytes per session: \
         `used_memory` after the logins minus before, divided by the logins (sesame's \
         per-user index included), and the mean `MEMORY USAGE` of {KEYS_MEASURED} keys.\n\
         - wrk: `wrk {options} -s rotate_cookies.lua http://127.0.0.1:<port><endpoint> -- \
         tokens.txt` per (server, endpoint); {} interleaved rounds after a {} s warm-up per \
         server; medians. `vs ceiling` = median req/s / the ceiling's for the same endpoint.\n\
         - Redis figures from `INFO commandstats` and `INFO cpu` of the server's own Redis, \
         per completed request. Round trips: sesame sends a load as one `GET` (the record \
         carries its idle deadline), a touch as one `EVALSHA`, and {saves}; the peers send one command per round trip. App CPU: this process's user + \
         system time during the run (only the server being loaded is busy), per request.\n\
         - Every `sesame`, `sesame-actix` and `sesame-per-thread` run is checked against its \
         store protocol, \
         after each `/me` run every \
         session server must still answer a read as the right user, and any error response \
         fails the whole run.\n\
         - Reproduce: `{reproduce}`\n",
        scale.rounds, scale.warmup_seconds,
    )
}
