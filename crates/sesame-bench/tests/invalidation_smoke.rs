//! The invalidation-latency measurement in its smoke form (100 trials on standalone Redis):
//! every trial's revocation reaches the other instance, whose reads before it were served by
//! its near cache. No figure is asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn the_smoke_run_completes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_invalidation"))
        .arg("--smoke")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| standalone | 100 |"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let hits: u64 = row.trim_end_matches('|').rsplit('|').next().unwrap().trim().parse().unwrap();
    assert!(hits >= 100, "B's second read of each session is a cache hit: {row}");
}
