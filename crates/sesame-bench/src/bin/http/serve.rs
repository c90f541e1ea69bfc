//! `--serve`: one session server and the ceiling, left running for a profiler and a load
//! generator outside this process (`scripts/profile-request.sh`).

use std::time::Duration;

use sesame_bench::{BenchError, BenchResult};

use crate::{bench, wrk};

/// Starts `server` and the ceiling with 1000 logged-in sessions, prints one line per server
/// (`serving NAME http://ADDR TOKENS_FILE`) on stdout, serves for `seconds` (or until SIGINT),
/// then returns. The benchmark's wrk script (`rotate_cookies.lua`, which rotates the cookie
/// over a tokens file) is left beside the tokens files for a load generator outside.
pub(crate) fn run(server: &str, seconds: u64) -> BenchResult<()> {
    let dir = tempfile::Builder::new()
        .prefix("sesame-http-serve-")
        .tempdir()
        .map_err(|e| BenchError::new(format!("temporary directory: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(format!("tokio runtime: {e}")))?;
    wrk::write_script(dir.path())?;
    let sessions = bench::Sessions { total: 1000, used: 1000 };
    let targets = runtime.block_on(bench::start_targets(dir.path(), &[server], sessions))?;
    for t in &targets {
        println!("serving {} http://{} {}", t.name, t.addr(), t.tokens_path().display());
    }
    // Until the time is up or SIGINT: either way the servers and their Redis stop cleanly.
    runtime.block_on(async {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
    drop(runtime);
    drop(targets);
    Ok(())
}
