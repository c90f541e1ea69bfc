//! A progress line on stderr while sessions load: rewritten in place with `\r` when stderr
//! is a terminal, one line every few seconds otherwise (logs and pipes stay readable).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the printer looks whether the load finished.
const TICK: Duration = Duration::from_millis(50);

/// Shared counters of one load, updated by the loading tasks and read by the printer.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    finished: AtomicBool,
}

impl Progress {
    /// Counts one more session loaded.
    pub fn add(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Sessions loaded so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Stops the printer.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }
}

/// Prints the progress of loading `from..to` until [`Progress::finish`]; counts in `progress`
/// start at 0 for `from`.
pub async fn print_until_finished(progress: Arc<Progress>, from: u64, to: u64) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal { Duration::from_millis(250) } else { Duration::from_secs(5) };
    let started = Instant::now();
    let mut printed: Option<Instant> = None;
    loop {
        let finished = progress.finished.load(Ordering::Relaxed);
        if finished || printed.is_none_or(|at| at.elapsed() >= every) {
            printed = Some(Instant::now());
            let line = progress_line(from, to, progress.done(), started.elapsed());
            if terminal {
                eprint!("\r{line}");
                if finished {
                    eprintln!();
                }
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
        }
        if finished {
            return;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// `[#####.....]  52% 520000/1000000 sessions, 18000/s, about 26 s left`.
pub fn progress_line(from: u64, to: u64, done: u64, elapsed: Duration) -> String {
    const WIDTH: u64 = 30;
    let now = from.saturating_add(done);
    let span = to.saturating_sub(from).max(1);
    let share = done.min(span);
    let filled = share.saturating_mul(WIDTH) / span;
    let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '.' }).collect();
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let left = if rate > 0.0 {
        format!("about {:.0} s left", span.saturating_sub(share) as f64 / rate)
    } else {
        "starting".to_string()
    };
    let percent = share.saturating_mul(100) / span;
    format!("[{bar}] {percent:>3}% {now}/{to} sessions, {rate:.0}/s, {left}   ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_share_count_and_rate() {
        let line = progress_line(1000, 3000, 1000, Duration::from_secs(2));
        assert!(line.contains(" 50% 2000/3000 sessions, 500/s, about 2 s left"), "{line}");
        assert!(line.starts_with(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))), "{line}");
        let start = progress_line(0, 10, 0, Duration::ZERO);
        assert!(start.contains("  0% 0/10 sessions, 0/s, starting"), "{start}");
    }
}
