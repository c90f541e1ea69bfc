//! The demo in a real browser: headless Chromium, driven by `tests/browser/demo.mjs` (Node and
//! `playwright-core`), logs in, sees its session, revokes it from a second browser context
//! through the admin view, and sees the first context logged out. It writes a screenshot of
//! each step to a folder it prints.
//!
//! Needs `chromium` (or `SESAME_CHROMIUM=<path>`), `node`, and `npm ci` run in
//! `tests/browser` (`scripts/test.sh` installs all three). Without them the test fails and
//! says what is missing, unless `SESAME_SKIP_BROWSER=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SKIP: &str = "SESAME_SKIP_BROWSER";
const STEPS: [&str; 5] =
    ["1-logged-in", "2-session-listed", "3-admin-view", "4-admin-revoked", "5-logged-out"];

/// Writes past the test harness's capture, so the line shows in a passing run too.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn on_path(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs).map(|d| d.join(name)).find(|p| p.is_file())
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SESAME_CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    ["chromium", "chromium-browser"].into_iter().find_map(on_path)
}

/// Chromium's path, or what is missing.
fn prerequisites(dir: &Path) -> Result<PathBuf, String> {
    let mut missing = Vec::new();
    let browser = chromium();
    if browser.is_none() {
        missing.push("chromium (Debian: apt-get install chromium; or set SESAME_CHROMIUM)".into());
    }
    if on_path("node").is_none() {
        missing.push("node (Node.js 18 or later)".to_string());
    }
    if !dir.join("node_modules/playwright-core/package.json").is_file() {
        missing.push(format!("the node modules: run `npm ci` in {}", dir.display()));
    }
    match browser {
        Some(b) if missing.is_empty() => Ok(b),
        _ => Err(missing.join("; ")),
    }
}

/// Starts `sesame demo` on a free port; returns the process and its base URL once it answers.
async fn start_demo() -> (tokio::process::Child, String) {
    let port = sesame_testkit::free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sesame"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--instances", "3"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while reqwest::get(format!("{base}/api/info")).await.is_err() {
        assert!(Instant::now() < deadline, "the demo did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, base)
}

#[tokio::test]
async fn revoked_from_a_second_browser_logs_the_first_out() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let browser = match prerequisites(&dir) {
        Ok(b) => b,
        Err(missing) if std::env::var(SKIP).is_ok_and(|v| v == "1") => {
            say(&format!("browser test skipped ({SKIP}=1); missing: {missing}"));
            return;
        }
        Err(missing) => panic!(
            "the browser test needs: {missing}.\n`scripts/test.sh` installs them; or set {SKIP}=1 to skip this test"
        ),
    };
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let (mut demo, base) = start_demo().await;
    let run = tokio::process::Command::new("node")
        .arg(dir.join("demo.mjs"))
        .current_dir(&dir)
        .env("DEMO_URL", &base)
        .env("CHROMIUM", &browser)
        .env("SHOT_DIR", &shots)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run did not end within 3 minutes")
        .unwrap();
    demo.kill().await.unwrap();
    say(&format!("browser test screenshots: {}", shots.display()));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("browser flow passed"), "{stdout}");
    for step in STEPS {
        let png = shots.join(format!("{step}.png"));
        let len = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "no screenshot {}", png.display());
    }
}
