//! Writing the report into `docs/BENCHMARKS.md`, between two markers, dated and with the
//! machine it was measured on.

use std::path::PathBuf;

use sesame_bench::{BenchError, BenchResult};

/// The file, relative to the workspace root.
pub(crate) const PATH: &str = "docs/BENCHMARKS.md";
/// The line that opens the measured section.
const BEGIN: &str = "<!-- measured by the http benchmark: begin -->";
/// The line that closes it.
const END: &str = "<!-- measured by the http benchmark: end -->";
/// The markers of the section measured on Valkey (`--valkey`).
const VALKEY_BEGIN: &str = "<!-- measured by the http benchmark on Valkey: begin -->";
const VALKEY_END: &str = "<!-- measured by the http benchmark on Valkey: end -->";

/// Replaces the section between the markers of `docs/BENCHMARKS.md` (the Valkey section's
/// with `valkey`) with `report`, headed by today's date (UTC) and a description of this
/// machine.
pub(crate) fn write_section(report: &str, valkey: bool) -> BenchResult<()> {
    let path = workspace_root().join(PATH);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BenchError::new(format!("cannot read {}: {e}", path.display())))?;
    let section = format!("Measured on {} on {}.\n\n{report}", today(), machine());
    let (begin, end) = if valkey { (VALKEY_BEGIN, VALKEY_END) } else { (BEGIN, END) };
    let replaced = replace_between(&text, &section, begin, end).ok_or_else(|| {
        BenchError::new(format!("{} has no `{begin}` … `{end}` section", path.display()))
    })?;
    std::fs::write(&path, replaced)
        .map_err(|e| BenchError::new(format!("cannot write {}: {e}", path.display())))
}

/// The workspace root: two levels above this crate's manifest directory.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `text` with what lies between the marker lines replaced by `section`; `None` without them.
fn replace_between(text: &str, section: &str, begin: &str, end: &str) -> Option<String> {
    let start = text.find(begin)? + begin.len();
    let end = start + text[start..].find(end)?;
    Some(format!("{}\n{}\n{}", &text[..start], section.trim_end(), &text[end..]))
}

/// Today's date (UTC), `YYYY-MM-DD`.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The CPU model, core count, memory and kernel of this machine, as far as `/proc` says.
fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim()))
        .unwrap_or("an unknown CPU")
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
        .map_or_else(|| "?".to_string(), |kb| format!("{:.0}", kb as f64 / 1_048_576.0));
    // The kernel's major.minor only: the rest of a release string names a build.
    let release = read("/proc/sys/kernel/osrelease");
    let kernel: Vec<&str> = release.trim().split(['.', '-']).take(2).collect();
    format!(
        "{cores} cores of {model}, {mem_gib} GiB, Linux {} (wrk, every server and every Redis \
         share these cores)",
        kernel.join(".")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Dates from day counts, leap days included.
    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
    }

    // Only the text between the markers changes; no markers, no change.
    #[test]
    fn replaces_between_markers() {
        let text = format!("head\n{BEGIN}\nold\n{END}\n{VALKEY_BEGIN}\nv\n{VALKEY_END}\n");
        let out = replace_between(&text, "new\n", BEGIN, END).unwrap();
        assert_eq!(out, format!("head\n{BEGIN}\nnew\n{END}\n{VALKEY_BEGIN}\nv\n{VALKEY_END}\n"));
        let out = replace_between(&text, "w\n", VALKEY_BEGIN, VALKEY_END).unwrap();
        assert_eq!(out, format!("head\n{BEGIN}\nold\n{END}\n{VALKEY_BEGIN}\nw\n{VALKEY_END}\n"));
        assert_eq!(replace_between("nothing here", "new", BEGIN, END), None);
    }
}
