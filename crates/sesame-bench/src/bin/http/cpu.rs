//! CPU time of this process (every server under test runs in it), from `/proc/self/stat`.

use sesame_bench::{BenchError, BenchResult};

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds this process has used so far, all threads.
pub(crate) fn process_seconds() -> BenchResult<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| BenchError::new(format!("cannot read /proc/self/stat: {e}")))?;
    parse(&stat).ok_or_else(|| BenchError::new("/proc/self/stat has no utime/stime"))
}

/// `utime + stime` in seconds from the text of a `/proc/<pid>/stat` file.
fn parse(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces; fields count on from
    // the last ')': state is field 3, utime field 14, stime field 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    // utime and stime are fields 14 and 15, counted past a command name with spaces.
    #[test]
    fn parses_stat() {
        let stat = "4242 (http (bench)) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse(stat), Some(4.0));
        assert_eq!(parse("garbage"), None);
    }
}
