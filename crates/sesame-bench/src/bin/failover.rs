//! Measures failovers: `cargo run --release -p sesame-bench --bin failover [clients]`.
//!
//! Runs the scenario of `sesame_bench::failover` for Sentinel and Cluster, with and without
//! the durability option, and prints one Markdown table row per run.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)]

use sesame_bench::failover::{self, Options, Topology};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sesame_bench::log_errors_to_stderr();
    let clients = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    println!("{clients} clients; each logs in, then GET /api/me (read + update) in a loop, logging in again every {} requests\n", failover::RELOGIN_EVERY);
    println!("{}", failover::HEADER);
    let mut failed = false;
    for topology in [Topology::Sentinel, Topology::Cluster] {
        for durability in [false, true] {
            let opts = Options { topology, durability, clients };
            match failover::run(opts).await {
                Ok(r) => {
                    println!("{}", failover::row(&opts, &r));
                    for sample in &r.other_samples {
                        eprintln!("  other error: {sample}");
                    }
                }
                Err(e) => {
                    failed = true;
                    println!("| {topology} | {durability} | run failed: {} |", e.0);
                }
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
