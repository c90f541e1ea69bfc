//! `api-client` against `api-server`: tokens in headers only, on a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{Example, SECRET};
use sesame_testkit::RedisServer;

fn start_server(redis: &RedisServer) -> Example {
    Example::start(
        env!("CARGO_BIN_EXE_api-server"),
        &[("REDIS_URL", &redis.url()), ("SESSION_SECRET", SECRET)],
    )
}

fn run_client(port: u16, user: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_api-client"))
        .env("API_URL", format!("http://127.0.0.1:{port}"))
        .env("API_USER", user)
        .output()
        .unwrap()
}

// The client logs in, calls twice with its bearer token (the counter goes up), logs out, and
// its old token is refused; the server never sets a cookie.
#[test]
fn the_client_logs_in_calls_and_logs_out() {
    let redis = RedisServer::start();
    let server = start_server(&redis);
    let out = run_client(server.port, "alice");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout,
        "logged in as alice\n\
         me: \"alice\" (call 1)\n\
         me: \"alice\" (call 2)\n\
         logged out\n\
         the old token is refused: \"log in first\"\n"
    );
    // Logged out means gone from Redis: no session key is left.
    let keys = redis.cli(&["--scan", "--pattern", "sesame:*:s:*"]).unwrap();
    assert_eq!(keys.trim(), "", "session keys left after logout");

    // The token comes in a header, never in a cookie.
    common::require_curl();
    let login = format!(
        "curl -sS -i -H 'content-type: application/json' -d '{{\"user\":\"bob\"}}' \
         http://127.0.0.1:{}/login",
        server.port
    );
    let head = common::sh(&login, std::path::Path::new(".")).to_ascii_lowercase();
    assert!(head.contains("\r\nx-session-token: "), "{head}");
    assert!(!head.contains("set-cookie"), "{head}");
}

// Several clients at once, as different users, each see their own counter.
#[test]
fn concurrent_clients_keep_their_own_sessions() {
    let redis = RedisServer::start();
    let server = start_server(&redis);
    let port = server.port;
    let runs: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || (i, run_client(port, &format!("user{i}")))))
        .collect();
    for run in runs {
        let (i, out) = run.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("me: \"user{i}\" (call 2)\n")), "{stdout}");
    }
}

// The client stops with an error, rather than carry on, when the server is not there.
#[test]
fn the_client_fails_without_a_server() {
    let out = run_client(sesame_testkit::free_port(), "alice");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error"), "{out:?}");
}
