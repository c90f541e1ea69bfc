//! Measures the near cache's invalidation latency:
//! `cargo run --release -p sesame-bench --bin invalidation [trials]` (default 10,000 per
//! topology; `--smoke`: 100 on standalone only). Prints a Markdown table.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)]

use sesame_bench::invalidation::{self, Topology, HEADER};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let trials =
        args.iter().find_map(|a| a.parse().ok()).unwrap_or(if smoke { 100 } else { 10_000 });
    let topologies: &[Topology] =
        if smoke { &[Topology::Standalone] } else { &[Topology::Standalone, Topology::Cluster] };
    println!("{HEADER}");
    let mut failed = false;
    for &t in topologies {
        match invalidation::run(t, trials).await {
            Ok(l) => println!("{}", invalidation::row(t, &l)),
            Err(e) => {
                failed = true;
                println!("| {t} | run failed: {} |", e.0);
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
