//! The side-by-side HTTP benchmark in its seconds-long smoke form: every server (the ceilings
//! on axum and actix-web, the handler-only server, sesame on Redis and in memory,
//! tower-sessions, actix-session, sesame on actix-web, sesame on axum served per thread)
//! starts, takes its logins and its load, and passes the run's checks (no error response,
//! sesame's store protocol, every session still answering as its user). No figure is
//! asserted: on a shared machine they mean nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

/// One smoke run at a time: two would share the two cores with two wrk.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `http --smoke` with `extra` arguments; its report.
fn smoke(extra: &[&str]) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let wrk = Command::new("wrk").arg("--version").output();
    assert!(
        wrk.is_ok(),
        "wrk is not installed: the test script installs it (Debian: apt-get install wrk)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_http")).args(extra).arg("--smoke").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the smoke run failed:\n{stderr}\n{stdout}");
    stdout.into_owned()
}

#[test]
fn every_server_runs_the_workload() {
    let stdout = smoke(&[]);
    assert_rows(&stdout);
    assert!(stdout.contains("private `redis-server` 7."), "{stdout}");
}

// The same on Valkey (the server SESAME_VALKEY_SERVER names): the run's protocol check takes
// sesame's native saves (`SET … IFEQ`), and a `/me` runs no script but for a touch or a lost
// race.
#[test]
fn every_server_runs_the_workload_on_valkey() {
    let stdout = smoke(&["--valkey"]);
    assert_rows(&stdout);
    assert!(stdout.contains("private `valkey-server` "), "{stdout}");
    let calls = stdout
        .lines()
        .find(|l| l.starts_with("Redis calls per request, sesame GET /me:"))
        .unwrap_or_else(|| panic!("no calls line for sesame /me in:\n{stdout}"));
    assert!(calls.contains("set 1.0") && !calls.contains("evalsha 1."), "{calls}");
}

fn assert_rows(stdout: &str) {
    for server in [
        "ceiling",
        "ceiling-actix",
        "handler-only",
        "sesame",
        "sesame-cache",
        "sesame-memory",
        "tower-sessions",
        "actix-session",
        "sesame-actix",
        "sesame-per-thread",
    ] {
        for endpoint in ["GET /me ", "GET /me_ro "] {
            let row = format!("| {server} | {endpoint}|");
            assert!(stdout.contains(&row), "no row {row:?} in:\n{stdout}");
        }
    }
    for server in [
        "sesame",
        "sesame-cache",
        "tower-sessions",
        "actix-session",
        "sesame-actix",
        "sesame-per-thread",
    ] {
        let row = format!("| {server} | 100 |");
        assert!(stdout.contains(&row), "no bytes-per-session row for {server} in:\n{stdout}");
    }
    // Every session server over the handler-only server, per endpoint (the ceilings left out).
    let header = "| endpoint | handler-only vs ceiling | sesame vs handler-only | sesame-cache vs \
                  handler-only | sesame-memory vs handler-only | tower-sessions vs handler-only | \
                  actix-session vs handler-only | sesame-actix vs handler-only | \
                  sesame-per-thread vs handler-only |";
    assert_ratios(stdout, header, 8);
    // The actix-web servers over the actix-web ceiling, and it over the axum one.
    let header = "| endpoint | ceiling-actix vs ceiling | actix-session vs ceiling-actix | \
                  sesame-actix vs ceiling-actix |";
    assert_ratios(stdout, header, 3);
}

/// The table under `header` has a line per endpoint with `columns` ratios, each above 0.
fn assert_ratios(stdout: &str, header: &str, columns: usize) {
    assert!(stdout.contains(header), "no table {header:?} in:\n{stdout}");
    for endpoint in ["GET /me |", "GET /me_ro |"] {
        let line = stdout
            .lines()
            .skip_while(|l| !l.starts_with(header))
            .find(|l| l.starts_with(&format!("| {endpoint}")))
            .unwrap_or_else(|| panic!("no {endpoint} line under {header:?} in:\n{stdout}"));
        let ratios: Vec<f64> = line
            .split('|')
            .skip(2)
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.trim().parse().unwrap_or_else(|_| panic!("not a ratio: {c:?} in {line}")))
            .collect();
        assert_eq!(ratios.len(), columns, "{line}");
        assert!(ratios.iter().all(|r| *r > 0.0), "{line}");
    }
}
