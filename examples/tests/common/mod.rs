//! Running the example binaries and the README's shell lines in tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an example may take to start listening (connecting to a Sentinel group or a
/// Cluster included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A secret for the examples' `SESSION_SECRET` (the README's own line is run in `readme.rs`).
pub const SECRET: &str = "an example secret that is long enough, 32+ bytes";

/// An example binary running as a child process, listening on a free loopback port. Killed
/// (by its own handle) when dropped.
pub struct Example {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Example {
    /// Starts `bin` with `LISTEN=127.0.0.1:<free port>` and `env`, and waits until it accepts
    /// connections; fails with its log output when it exits first or takes too long.
    pub fn start(bin: &str, env: &[(&str, &str)]) -> Example {
        let port = sesame_testkit::free_port();
        let mut cmd = Command::new(bin);
        cmd.env("LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut example = Example { child, port, stderr };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = example.child.try_wait().unwrap() {
                panic!("{bin} exited ({status}) before listening:\n{}", example.log());
            }
            assert!(Instant::now() < deadline, "{bin} is not listening:\n{}", example.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        example
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) until its log contains `needle`, and fails with the log otherwise.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails with a clear message when the `curl` program is missing.
pub fn require_curl() {
    let ok = Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the `curl` program is needed by these tests (Debian/Ubuntu: apt-get install curl)"
    );
}

/// A shell line and the output a comment after it promises: `cmd  # output` gives
/// `("cmd", Some("output"))`.
pub fn split_expected(line: &str) -> (&str, Option<&str>) {
    match line.split_once("  # ") {
        Some((cmd, expected)) => (cmd.trim_end(), Some(expected.trim())),
        None => (line.trim_end(), None),
    }
}

/// Runs `line` with `sh -c` in `dir` and returns its stdout; fails with its stderr unless it
/// succeeds.
pub fn sh(line: &str, dir: &Path) -> String {
    let out = Command::new("sh").arg("-c").arg(line).current_dir(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{line}` failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs one `curl` line (with `127.0.0.1:3000` pointed at `port`) in `dir`, and checks its
/// output against the one its comment promises.
pub fn run_curl_line(line: &str, port: u16, dir: &Path) {
    let (cmd, expected) = split_expected(line);
    assert!(cmd.starts_with("curl "), "not a curl line: {line}");
    let cmd = cmd.replace("127.0.0.1:3000", &format!("127.0.0.1:{port}"));
    let out = sh(&cmd, dir);
    if let Some(expected) = expected {
        assert_eq!(out.trim_end(), expected, "output of `{cmd}`");
    }
}

/// Runs each of `lines` with [`run_curl_line`], in order.
pub fn run_curl_lines(lines: &[&str], port: u16, dir: &Path) {
    require_curl();
    assert!(!lines.is_empty(), "no curl lines to run");
    for line in lines {
        run_curl_line(line, port, dir);
    }
}

/// The value of the cookie `name` in the curl cookie jar `jar`, if it holds one.
pub fn jar_cookie(jar: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(jar).ok()?;
    text.lines().find_map(|l| {
        let fields: Vec<&str> = l.split('\t').collect();
        (fields.len() == 7 && fields[5] == name).then(|| fields[6].to_owned())
    })
}
