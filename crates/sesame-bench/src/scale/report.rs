//! The Markdown tables of the scale measurement, and the estimate printed before a load.

use std::time::Duration;

use super::{OpKind, ScaleFigures};

/// Bytes per session assumed before any has been measured.
pub const ASSUMED_BYTES: f64 = 1000.0;
/// Sessions made per second assumed before any load has been timed.
pub const ASSUMED_RATE: f64 = 5000.0;

/// The latency table: one row per operation, p50 and p99 at each total, and the ratio of the
/// p50 at the largest total to the p50 at the smallest.
pub fn latency_table(figures: &[ScaleFigures]) -> String {
    let mut out = String::from("| operation |");
    let mut rule = String::from("|---|");
    for f in figures {
        out.push_str(&format!(" p50 µs @ {0} | p99 µs @ {0} |", f.sessions));
        rule.push_str("---:|---:|");
    }
    out.push_str(" p50 ratio |\n");
    rule.push_str("---:|\n");
    out.push_str(&rule);
    for kind in OpKind::ALL {
        out.push_str(&format!("| {} |", kind.label()));
        let p50s: Vec<f64> = figures
            .iter()
            .filter_map(|f| f.ops.iter().find(|o| o.kind == kind))
            .map(|o| {
                out.push_str(&format!(" {:.0} | {:.0} |", o.p50(), o.p99()));
                o.p50()
            })
            .collect();
        let ratio = match (p50s.first(), p50s.last()) {
            (Some(&first), Some(&last)) if first > 0.0 => format!("{:.2}", last / first),
            _ => "–".to_string(),
        };
        out.push_str(&format!(" {ratio} |\n"));
    }
    out
}

/// The memory table: one row per total.
pub fn memory_table(figures: &[ScaleFigures]) -> String {
    let mut out = String::from(
        "| sessions | keys in Redis | used_memory per session (B) | MEMORY USAGE of a session key (B) | its record, shortest–longest (B) | user index per session (B) | load (s) | sessions/s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in figures {
        let m = &f.memory;
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {}–{} | {:.0} | {:.1} | {:.0} |\n",
            f.sessions,
            m.keys,
            m.used_memory,
            m.session_key,
            m.record_bytes.0,
            m.record_bytes.1,
            m.index_share,
            f.load_secs,
            rate(f)
        ));
    }
    out
}

/// Sessions made per second during the load of `f`'s total.
fn rate(f: &ScaleFigures) -> f64 {
    f.sessions as f64 / f.load_secs.max(1e-9)
}

/// What a load of sessions is expected to take, from the figures so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Time to make the sessions.
    pub load: Duration,
    /// Redis memory for the sessions, bytes.
    pub memory_bytes: f64,
    /// Whether the figures were measured (false: assumed, no total measured yet).
    pub measured: bool,
}

/// Estimates a load of `total` sessions after `done` (the totals loaded so far).
pub fn estimate(done: &[ScaleFigures], total: u64) -> Estimate {
    let last = done.last();
    let rate = last.filter(|f| f.load_secs > 0.0).map_or(ASSUMED_RATE, rate);
    let bytes = last.map_or(ASSUMED_BYTES, |f| f.memory.used_memory.max(1.0));
    let secs = total as f64 / rate;
    Estimate {
        load: Duration::from_secs_f64(secs.min(1e9)),
        memory_bytes: bytes * total as f64,
        measured: last.is_some(),
    }
}

/// The memory this machine has available, bytes (`MemAvailable` of `/proc/meminfo`), when
/// known.
pub fn available_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}
