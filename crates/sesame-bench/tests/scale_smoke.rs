//! The scale measurement in its seconds-long smoke form (1000 and 5000 sessions): it loads,
//! every operation runs and checks its outcome, and both tables come out with every row. No
//! figure is asserted: on a shared machine they mean nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn scale(args: &[&str]) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scale")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn the_smoke_run_prints_every_row() {
    let (out, stdout, stderr) = scale(&["--smoke"]);
    assert!(out.status.success(), "the smoke run failed:\n{stderr}\n{stdout}");
    for op in ["load", "save", "login", "list-a-user", "revoke-all"] {
        let row = format!("| {op} |");
        assert!(stdout.contains(&row), "no row {row:?} in:\n{stdout}");
    }
    assert!(stdout.contains("| p50 µs @ 1000 | p99 µs @ 1000 | p50 µs @ 5000 |"), "{stdout}");
    // The memory rows: every total with its key count (4 sessions and an index per user, at
    // least).
    for total in [1000u64, 5000] {
        let row = format!("| {total} | ");
        let line = stdout.lines().find(|l| l.starts_with(&row));
        let line = line.unwrap_or_else(|| panic!("no memory row for {total} in:\n{stdout}"));
        let keys: u64 = line.split('|').nth(2).unwrap().trim().parse().unwrap();
        assert!(keys >= total + total / 4, "{line}");
        // The sampled records' shortest and longest length: a logged-in session with a
        // profile takes more than 200 bytes, and the shortest is not longer than the longest.
        let range = line.split('|').nth(5).unwrap().trim();
        let (short, long) = range.split_once('–').unwrap_or_else(|| panic!("{line}"));
        let (short, long): (u64, u64) = (short.parse().unwrap(), long.parse().unwrap());
        assert!(200 < short && short <= long, "{line}");
    }
    // Progress was shown while loading (periodic lines: stderr is not a terminal here).
    assert!(stderr.contains("5000/5000 sessions"), "{stderr}");
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    for (args, reason) in [
        (&["--sessions", "5000,1000"][..], "ascending"),
        (&["--sessions", "ten"][..], "\"ten\" is not a positive whole number"),
        (&["--ops", "0"][..], "\"0\" is not a positive whole number"),
        (&["--frobnicate"][..], "unknown argument"),
        (&["--budget-minutes", "56"][..], "--budget-minutes is at most 55"),
    ] {
        let (out, _, stderr) = scale(args);
        assert!(!out.status.success(), "{args:?} ran");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

// A total whose load would not fit in the time left, or whose sessions would not fit in the
// machine's memory, is refused before loading; the totals before it are still reported.
#[test]
fn totals_beyond_the_budgets_are_refused_before_loading() {
    for (total, budget, reason) in [
        ("5000000", "1", "the load does not fit in the time budget"),
        ("1000000000000", "55", "they do not fit in memory"),
    ] {
        let sessions = format!("1000,{total}");
        let args = ["--sessions", &sessions, "--ops", "10", "--budget-minutes", budget];
        let (out, stdout, stderr) = scale(&args);
        assert!(out.status.success(), "{args:?}:\n{stderr}\n{stdout}");
        let refusal = format!("{total} sessions: refused, {reason}");
        assert!(stdout.contains(&refusal), "{args:?}: {stdout}");
        assert!(stdout.contains("| 1000 | "), "{args:?}: {stdout}");
        assert!(!stdout.contains(&format!("| {total} | ")), "{args:?}: {stdout}");
        assert!(stderr.contains(&format!("{total} sessions: about")), "no estimate: {stderr}");
    }
}
