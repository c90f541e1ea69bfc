//! `scale`: memory per session and the latency of load, save, login, list-a-user and
//! revoke-all with 10,000 sessions in one private `redis-server` and 1,000,000 in another,
//! printed as Markdown tables. The timed operations alternate between the servers in rounds.
//!
//! `cargo run --release -p sesame-bench --bin scale` runs the published measurement.
//! Options: `--sessions 10000,1000000` (ascending totals, one server each), `--ops 2000`
//! (timed operations of each kind per total), `--budget-minutes 30` (at most 55; a total whose estimated
//! load does not fit in what is left, or whose memory does not fit in the memory available,
//! is refused), `--smoke` (1000 and 5000 sessions, 200 operations: the test suite's form).
// A command-line measurement tool: printing its report is its whole purpose.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sesame_bench::scale::report::{available_memory, estimate, latency_table, memory_table};
use sesame_bench::scale::{ops, OpLatencies, ScaleBench, ScaleConfig, ScaleFigures};
use sesame_bench::{BenchError, BenchResult};

/// Longest budget: below the sessions' touch age, so no timed load also writes.
const MAX_BUDGET_MINUTES: u64 = 55;

/// Share of the available memory a load may take.
const MEMORY_SHARE: f64 = 0.7;

fn parse_args(args: impl Iterator<Item = String>) -> BenchResult<ScaleConfig> {
    let mut config = ScaleConfig::standard();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().ok_or_else(|| BenchError::new(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--smoke" => config = ScaleConfig { budget: config.budget, ..ScaleConfig::smoke() },
            "--sessions" => {
                config.scales = value("--sessions")?
                    .split(',')
                    .map(|n| number(n.trim(), "--sessions"))
                    .collect::<BenchResult<_>>()?;
            }
            "--ops" => {
                config.ops = usize::try_from(number(&value("--ops")?, "--ops")?)
                    .map_err(|_| BenchError::new("--ops is too large"))?
            }
            "--budget-minutes" => {
                let minutes = number(&value("--budget-minutes")?, "--budget-minutes")?;
                if minutes > MAX_BUDGET_MINUTES {
                    return Err(BenchError::new(format!(
                        "--budget-minutes is at most {MAX_BUDGET_MINUTES} (sessions must not \
                         reach their touch age, an hour, during a run)"
                    )));
                }
                config.budget = Duration::from_secs(minutes.saturating_mul(60));
            }
            other => return Err(BenchError::new(format!("unknown argument {other:?}"))),
        }
    }
    Ok(config)
}

fn number(text: &str, flag: &str) -> BenchResult<u64> {
    match text.replace('_', "").parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(BenchError::new(format!("{flag}: {text:?} is not a positive whole number"))),
    }
}

/// Rounds the timed operations are split into, alternating between the totals.
const ROUNDS: u64 = 10;

async fn run(config: ScaleConfig) -> BenchResult<()> {
    let deadline = Instant::now() + config.budget;
    let (mut benches, mut done) = (Vec::new(), Vec::<ScaleFigures>::new());
    for &total in &config.scales {
        let e = estimate(&done, total);
        let source = if e.measured { "rates measured so far" } else { "assumed rates" };
        eprintln!(
            "{total} sessions: about {:.0} s to load and {:.0} MB in Redis ({source})",
            e.load.as_secs_f64(),
            e.memory_bytes / 1e6
        );
        if let Some(available) = available_memory() {
            if e.memory_bytes > available * MEMORY_SHARE {
                eprintln!("refused: {:.0} MB of memory are available", available / 1e6);
                println!("{total} sessions: refused, they do not fit in memory\n");
                break;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if e.load.mul_f64(1.2) > left {
            eprintln!("refused: {:.0} s of the time budget are left", left.as_secs_f64());
            println!("{total} sessions: refused, the load does not fit in the time budget\n");
            break;
        }
        let mut bench = ScaleBench::start(config.clone(), deadline).await?;
        let load_secs = bench.fill(total).await?;
        let memory = bench.memory().await?;
        done.push(ScaleFigures { sessions: total, memory, load_secs, ops: OpLatencies::all() });
        benches.push(bench);
    }
    if done.is_empty() {
        return Err(BenchError::new("no total could be measured within the budgets"));
    }
    eprintln!("timing operations in {ROUNDS} rounds alternating between the totals");
    for bench in &benches {
        ops::warm_up(bench).await?;
    }
    for round in 0..ROUNDS {
        for (bench, figures) in benches.iter_mut().zip(done.iter_mut()) {
            ops::run_round(bench, round, ROUNDS, &mut figures.ops).await?;
        }
    }
    println!("{}", memory_table(&done));
    println!("{}", latency_table(&done));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args(std::env::args().skip(1)) {
        Ok(config) => run(config).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale: {e}");
            ExitCode::FAILURE
        }
    }
}
