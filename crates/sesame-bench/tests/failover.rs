//! Failover under load, on real servers: HTTP clients log in, update and read sessions while
//! the master is killed with SIGKILL (see `sesame_bench::failover`). Requests in the window
//! fail with 503, never with a wrong or empty session; service comes back by itself; with the
//! durability option every acknowledged login and update survives. Without it, losses are
//! counted and printed (they are possible, not required).
//!
//! The runs are serialized: two failovers at once on two cores would measure each other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sesame_bench::failover::{self, Options, Report, Topology};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn scenario(topology: Topology, durability: bool) -> Report {
    let _one = ONE_AT_A_TIME.lock().await;
    let opts = Options { topology, durability, clients: 8 };
    let r = failover::run(opts).await.unwrap();
    eprintln!("{}\n{}", failover::HEADER, failover::row(&opts, &r));
    assert!(r.recovered, "service did not come back: {r:?}");
    assert_eq!(r.wrong_sessions, 0, "a client saw another user's session: {r:?}");
    assert_eq!(r.other_errors, 0, "failures other than 503: {r:?}");
    assert!(r.failed > 0, "the kill was not noticed at all, so the test proved nothing: {r:?}");
    assert!(r.ok > 100 && r.logins_acked >= 8, "too little load to mean anything: {r:?}");
    if durability {
        assert_eq!(r.sessions_lost, 0, "acknowledged logins lost despite WAIT: {r:?}");
        assert_eq!(r.updates_lost, 0, "acknowledged updates lost despite WAIT: {r:?}");
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_without_durability() {
    scenario(Topology::Sentinel, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_with_durability() {
    scenario(Topology::Sentinel, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_without_durability() {
    scenario(Topology::Cluster, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_with_durability() {
    scenario(Topology::Cluster, true).await;
}
