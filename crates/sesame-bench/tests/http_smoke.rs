//! The side-by-side HTTP benchmark in its seconds-long smoke form: every server (the ceiling,
//! sesame on Redis and in memory, tower-sessions, actix-session, sesame on actix-web) starts, takes its logins and
//! its load, and passes the run's checks (no error response, sesame's store protocol, every
//! session still answering as its user). No figure is asserted: on a shared machine they mean
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn every_server_runs_the_workload() {
    let wrk = Command::new("wrk").arg("--version").output();
    assert!(
        wrk.is_ok(),
        "wrk is not installed: the test script installs it (Debian: apt-get install wrk)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_http")).arg("--smoke").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the smoke run failed:\n{stderr}\n{stdout}");
    for server in [
        "ceiling",
        "sesame",
        "sesame-cache",
        "sesame-memory",
        "tower-sessions",
        "actix-session",
        "sesame-actix",
    ] {
        for endpoint in ["GET /me ", "GET /me_ro "] {
            let row = format!("| {server} | {endpoint}|");
            assert!(stdout.contains(&row), "no row {row:?} in:\n{stdout}");
        }
    }
    for server in ["sesame", "sesame-cache", "tower-sessions", "actix-session", "sesame-actix"] {
        let row = format!("| {server} | 100 |");
        assert!(stdout.contains(&row), "no bytes-per-session row for {server} in:\n{stdout}");
    }
}
