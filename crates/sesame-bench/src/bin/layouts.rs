//! `layouts`: compares the compact session layout (one MessagePack string per session, as
//! built), with JSON and with MessagePack attribute values, and one Redis hash per session,
//! on the same content, and prints a Markdown table: bytes per session, and Redis time and
//! CPU per read and per read+write request.
//!
//! Every round starts fresh private `redis-server` processes on loopback ports; nothing else
//! is touched. Run with `cargo run --release -p sesame-bench --bin layouts`.
// A command-line measurement tool: printing its report is its whole purpose.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use std::process::ExitCode;

use sesame_bench::content;
use sesame_bench::layout::Layout;
use sesame_bench::measure::{measure_layout, Config};
use sesame_bench::report;

/// Rounds of the whole measurement (each layout goes first once); the report gives the
/// median of each figure.
const ROUNDS: usize = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = Config::standard();
    let sizes = content::sizes(config.sessions).expect("content");
    let mut all = Vec::new();
    for round in 0..ROUNDS {
        // Rotate which layout goes first, so none always runs on a colder machine.
        let mut order = Layout::ALL;
        order.rotate_left(round % Layout::ALL.len());
        for layout in order {
            eprintln!("round {}/{ROUNDS}: {layout}...", round + 1);
            match measure_layout(layout, &config).await {
                Ok(figures) => all.push(figures),
                Err(e) => {
                    eprintln!("error: measuring the {layout} layout: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    println!("{}", report::markdown(&config, &sizes, &all));
    ExitCode::SUCCESS
}
