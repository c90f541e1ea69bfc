//! The Sentinel and Cluster examples against real topologies: each connects with the URL form
//! its header shows, with durability on, and answers the curl line its header shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{run_curl_lines, Example, SECRET};
use sesame_testkit::{Cluster, SentinelGroup};

/// The `curl` line in the header comment of `examples/src/bin/<bin>.rs`.
fn header_curl_line(bin: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/bin/{bin}.rs"));
    let source = std::fs::read_to_string(path).unwrap();
    let line = source.lines().find_map(|l| l.strip_prefix("//! curl ")).expect("a curl line");
    format!("curl -sS {line}")
}

/// Starts the example on `url` and runs its header's curl line twice: the second visit sees
/// the first, so the session went through the topology and back.
fn visit_twice(bin: &str, exe: &str, url: &str, ready: &str) {
    // A fresh topology on a busy machine (the test suite runs in parallel) can take longer than
    // the default 500 ms to confirm a write on its replicas: give writes 5 s, and warm up with
    // throwaway sessions (no cookie jar) until eight writes in a row are confirmed (on a
    // cluster, new sessions land on every master), then run the README's lines.
    let env = [("REDIS_URL", url), ("SESSION_SECRET", SECRET), ("DURABILITY_TIMEOUT_MS", "5000")];
    let app = Example::start(exe, &env);
    app.wait_for_log(ready);
    let probe =
        format!("curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{}/visits", app.port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut in_a_row = 0;
    while in_a_row < 8 {
        if common::sh(&probe, Path::new(".")) == "200" {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(std::time::Instant::now() < deadline, "{bin}: writes not confirmed within 60 s");
    }
    let line = header_curl_line(bin);
    let lines = [format!("{line}  # visit number 1"), format!("{line}  # visit number 2")];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    run_curl_lines(&lines, app.port, dir.path());
}

/// Durability is on: with `DURABILITY_REPLICAS` above the replicas a master has (one in these
/// topologies), a write is refused with a 503 instead of acknowledged.
fn durability_is_on(exe: &str, url: &str) {
    let env = [("REDIS_URL", url), ("SESSION_SECRET", SECRET), ("DURABILITY_REPLICAS", "2")];
    let app = Example::start(exe, &env);
    let line =
        format!("curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{}/visits", app.port);
    assert_eq!(common::sh(&line, Path::new(".")), "503");
}

#[test]
fn the_sentinel_example_serves_through_the_sentinels() {
    let group = SentinelGroup::start().unwrap();
    assert!(group.url().starts_with("redis+sentinel://"));
    let exe = env!("CARGO_BIN_EXE_sentinel");
    visit_twice("sentinel", exe, &group.url(), "connected through the sentinels");
    durability_is_on(exe, &group.url());
}

#[test]
fn the_cluster_example_serves_through_the_cluster() {
    let cluster = Cluster::start().unwrap();
    assert!(cluster.url().starts_with("redis+cluster://"));
    let exe = env!("CARGO_BIN_EXE_cluster");
    visit_twice("cluster", exe, &cluster.url(), "connected to the cluster");
    durability_is_on(exe, &cluster.url());
}

// Without REDIS_URL they refuse to start, and say which URL form they want.
#[test]
fn without_a_url_they_say_what_to_set() {
    for (exe, form) in [
        (env!("CARGO_BIN_EXE_sentinel"), "redis+sentinel://"),
        (env!("CARGO_BIN_EXE_cluster"), "redis+cluster://"),
    ] {
        let out = std::process::Command::new(exe)
            .env_remove("REDIS_URL")
            .env("SESSION_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("set REDIS_URL, for example") && stderr.contains(form), "{stderr}");

        // A replica count, or a durability timeout, that is not a number is named, before any
        // connection is tried.
        let url = format!("{form}127.0.0.1:1/sesame");
        let stderr = refused(exe, &url, ("DURABILITY_REPLICAS", "two"));
        assert!(
            stderr.contains("DURABILITY_REPLICAS must be a whole number, not: two"),
            "{stderr}"
        );
        let stderr = refused(exe, &url, ("DURABILITY_TIMEOUT_MS", "1s"));
        assert!(
            stderr
                .contains("DURABILITY_TIMEOUT_MS must be a whole number of milliseconds, not: 1s"),
            "{stderr}"
        );
    }
}

/// Runs `exe` on `url` with the environment variable `var` set, asserts that it exits with a
/// failure, and returns what it printed on stderr.
fn refused(exe: &str, url: &str, (name, value): (&str, &str)) -> String {
    let out = std::process::Command::new(exe)
        .env("REDIS_URL", url)
        .env("SESSION_SECRET", SECRET)
        .env(name, value)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{exe} started with {name}={value}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
