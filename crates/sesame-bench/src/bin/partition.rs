//! Measures network partitions: `cargo run --release -p sesame-bench --bin partition [cut_s]`.
//!
//! Runs the scenario of `sesame_bench::partition` (root and iptables needed) for a Sentinel
//! group and a Cluster, each without protection, with the server-side write guard and with the
//! durability option, and prints one Markdown table row per run. The cut lasts `cut_s`
//! seconds (default 15), and at least until a replica is promoted. About 6 minutes with the
//! default.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)]

use std::time::Duration;

use sesame_bench::partition::{self, Options, Topology, Writes};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    sesame_bench::log_errors_to_stderr();
    if let Some(why) = partition::unavailable() {
        eprintln!("no network partition can be made here: {why}");
        return std::process::ExitCode::FAILURE;
    }
    let cut_s = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(15);
    let writers = 8;
    println!(
        "{writers} writers, each: load, save the counter + 1, a new session every {} rounds; the master and the app cut off for {cut_s} s (at least until a promotion); bound per request {} ms ({} ms for a durable write)\n",
        partition::LOGIN_EVERY,
        partition::request_bound(false).as_millis(),
        partition::request_bound(true).as_millis(),
    );
    println!("{}", partition::HEADER);
    let runs = [
        (Topology::Sentinel { replicas: 1 }, Writes::Plain),
        (Topology::Sentinel { replicas: 1 }, Writes::Guard),
        (Topology::Sentinel { replicas: 2 }, Writes::Guard),
        (Topology::Sentinel { replicas: 2 }, Writes::Durable { replicas: 1 }),
        (Topology::Sentinel { replicas: 2 }, Writes::Durable { replicas: 2 }),
        (Topology::Cluster, Writes::Plain),
        (Topology::Cluster, Writes::Guard),
        (Topology::Cluster, Writes::Durable { replicas: 1 }),
    ];
    let mut failed = false;
    for (topology, writes) in runs {
        let opts = Options { topology, writes, writers, cut: Duration::from_secs(cut_s) };
        match partition::run(opts).await {
            Ok(r) => {
                println!("{}", partition::row(&opts, &r));
                for wrong in r.tally.wrong.iter().take(5) {
                    eprintln!("  wrong: {wrong}");
                }
            }
            Err(e) => {
                failed = true;
                println!("| {topology:?} | {writes:?} | run failed: {} |", e.0);
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
