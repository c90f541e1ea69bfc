//! Output of the commands: times, durations, sizes, tables, and writing to stdout.

use std::io::Write as _;

/// The latest time printed as a date (9999-12-31T23:59:59.999Z); later values are shown as
/// raw milliseconds.
const MAX_DATE_MS: u64 = 253_402_300_799_999;

/// `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn iso(ms: u64) -> String {
    if ms > MAX_DATE_MS {
        return format!("{ms} ms");
    }
    let (days, rem) = (ms / 86_400_000, ms % 86_400_000);
    let (y, m, d) = civil(days);
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// `ms` as `YYYY-MM-DD HH:MM:SSZ`, for tables.
pub fn short(ms: u64) -> String {
    if ms > MAX_DATE_MS {
        return format!("{ms} ms");
    }
    let (days, rem) = (ms / 86_400_000, ms % 86_400_000);
    let (y, m, d) = civil(days);
    let (h, min, s) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}Z")
}

/// The civil date of a day count since 1970-01-01 (at most year 9999, see [`MAX_DATE_MS`]).
fn civil(days: u64) -> (u64, u64, u64) {
    // Days since 0000-03-01, in 400-year eras (H. Hinnant's algorithm, non-negative form).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A duration as `2h05m`, `29m59s`, `12s` or `850ms`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// `at` relative to `now`: `in 29m59s` or `12s ago`.
pub fn relative(at: u64, now: u64) -> String {
    if at >= now {
        format!("in {}", duration(at - now))
    } else {
        format!("{} ago", duration(now - at))
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                s.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Writes `text` and a newline to stdout. A closed stdout (`| head`) is not an error worth
/// reporting: the reader has what it wanted.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// Writes a JSON value on one line to stdout.
pub fn json(value: &serde_json::Value) {
    out(&value.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(1_764_488_412_345), "2025-11-30T07:40:12.345Z");
        assert_eq!(short(MAX_DATE_MS), "9999-12-31 23:59:59Z");
        assert_eq!(iso(u64::MAX), format!("{} ms", u64::MAX));
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(1_799_000), "29m59s");
        assert_eq!(duration(7_500_000), "2h05m");
        assert_eq!(relative(10_000, 4_000), "in 6s");
        assert_eq!(relative(4_000, 10_000), "6s ago");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
    }

    #[test]
    fn tables() {
        let t =
            table(&["ID", "N"], &[vec!["abc".into(), "1".into()], vec!["a".into(), "22".into()]]);
        assert_eq!(t, "ID   N\nabc  1\na    22");
    }
}
