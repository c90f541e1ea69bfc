//! The README's axum section is what runs: its program is `axum-app` word for word, its
//! `[dependencies]` match the workspace, and its shell lines (the secret, the binary, every
//! curl line with its output) run against the axum and the actix-web examples, on a real
//! redis-server, with the real `curl`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{jar_cookie, require_curl, run_curl_line, sh, Example};
use sesame_testkit::RedisServer;

const BEGIN: &str = "<!-- begin: run by examples/tests/readme.rs -->";
const END: &str = "<!-- end: run by examples/tests/readme.rs -->";
const COOKIE: &str = "__Host-sesame";

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The README's axum section, from its heading to the next one.
fn axum_section() -> String {
    let readme = repo_file("README.md");
    let start = readme.find("## Using it with axum\n").expect("the axum section");
    let rest = &readme[start + 1..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_owned()
}

/// The body of the first fenced block that opens with "```" + `lang` in `text`.
fn fenced(text: &str, lang: &str) -> String {
    let open = format!("```{lang}\n");
    let start = text.find(&open).unwrap_or_else(|| panic!("no {open:?} block")) + open.len();
    let len = text[start..].find("```\n").expect("an unclosed block");
    text[start..start + len].to_owned()
}

/// The shell lines between the README's markers (inside its `sh` blocks).
fn tested_lines() -> Vec<String> {
    let section = axum_section();
    let start = section.find(BEGIN).expect("the begin marker") + BEGIN.len();
    let end = section.find(END).expect("the end marker");
    let mut lines = Vec::new();
    let mut in_block = false;
    for line in section[start..end].lines() {
        match line {
            "```sh" => in_block = true,
            "```" => in_block = false,
            l if in_block && !l.trim().is_empty() => lines.push(l.to_owned()),
            _ => {}
        }
    }
    lines
}

#[test]
fn the_readme_program_is_the_axum_example() {
    let source = repo_file("examples/src/bin/axum-app.rs");
    let code = source.lines().skip_while(|l| l.starts_with("//!") || l.is_empty());
    let code: String = code.map(|l| format!("{l}\n")).collect();
    assert_eq!(fenced(&axum_section(), "rust,no_run"), code);
}

#[test]
fn the_readme_dependencies_match_the_workspace() {
    let deps = fenced(&axum_section(), "toml");
    let workspace = repo_file("Cargo.toml");
    let mut names = Vec::new();
    for line in deps.lines().skip_while(|l| *l != "[dependencies]").skip(1) {
        let (name, spec) = line.split_once(" = ").unwrap();
        names.push(name.to_owned());
        if let Some(path) = spec.strip_prefix("{ path = \"../sesame/") {
            let path = path.split('"').next().unwrap();
            assert_eq!(path, format!("crates/{name}"));
            assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path).is_dir());
            continue;
        }
        let version = spec.split('"').nth(1).unwrap_or_else(|| panic!("no version: {line}"));
        let ours = workspace
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} is not a workspace dependency"));
        assert!(
            ours.contains(&format!("\"{version}\"")),
            "{name} {version} is not the workspace's: {ours}"
        );
    }
    // Every crate the program names is listed.
    let program = fenced(&axum_section(), "rust,no_run");
    for used in
        ["sesame", "sesame_axum", "sesame_redis", "axum", "tokio", "tracing", "tracing_subscriber"]
    {
        assert!(program.contains(&format!("{used}::")), "the program does not use {used}");
        assert!(names.contains(&used.replace('_', "-")), "{used} is not in [dependencies]");
    }
}

/// Runs the README's lines against the example `bin`: the secret from its `export` line, the
/// binary its `cargo run` line names, and every curl line; then checks what the text says
/// about the cookie: a new token at login, none after logout, a new one after that.
fn run_readme_lines_against(bin: &str, name: &str) {
    require_curl();
    let redis = RedisServer::start();
    let lines = tested_lines();
    let mut secret = None;
    let mut curls = Vec::new();
    for line in &lines {
        if line.starts_with("export SESSION_SECRET=") {
            let value = sh(&format!("{line}; printf %s \"$SESSION_SECRET\""), Path::new("."));
            assert_eq!(value.len(), 64, "48 random bytes in base64: {value:?}");
            secret = Some(value);
        } else if let Some(bin_name) = line.strip_prefix("cargo run -p sesame-examples --bin ") {
            assert_eq!(bin_name, "axum-app");
        } else if line.starts_with("curl ") {
            curls.push(line.as_str());
        } else {
            panic!("a README line this test does not run: {line}");
        }
    }
    let secret = secret.expect("the line that makes the secret");
    assert_eq!(curls.len(), 5, "the login walk-through: {curls:?}");

    let app = Example::start(bin, &[("REDIS_URL", &redis.url()), ("SESSION_SECRET", &secret)]);
    app.wait_for_log(&format!("listening on http://127.0.0.1:{}", app.port));
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("jar");
    let mut tokens = Vec::new();
    for line in &curls {
        run_curl_line(line, app.port, dir.path());
        tokens.push(jar_cookie(&jar, COOKIE));
    }
    let anonymous = tokens[0].clone().expect("a cookie after the first visit");
    let logged_in = tokens[1].clone().expect("a cookie after the login");
    assert_ne!(anonymous, logged_in, "{name}: the login rotates the token");
    assert_eq!(tokens[2].as_deref(), Some(logged_in.as_str()));
    assert_eq!(tokens[3], None, "{name}: the logout clears the cookie");
    let fresh = tokens[4].clone().expect("a cookie after the last visit");
    assert!(fresh != anonymous && fresh != logged_in, "{name}: a new session after logout");
}

#[test]
fn the_readme_lines_run_against_the_axum_example() {
    run_readme_lines_against(env!("CARGO_BIN_EXE_axum-app"), "axum");
}

#[test]
fn the_readme_lines_run_against_the_actix_example() {
    run_readme_lines_against(env!("CARGO_BIN_EXE_actix-app"), "actix-web");
}
