//! Real network partitions, made with iptables on the loopback interface (see
//! `sesame_bench::partition`): the application (this process, with its store) and one master
//! on one side; the replicas and the sentinels, or the rest of a cluster, on the other. Packets
//! between the sides are dropped until the far side has promoted a replica (at least 3 s), then
//! flow again. Checked, for a Sentinel group and for a Cluster:
//!
//! - with durability, no acknowledged write or login is lost, no write is acknowledged during
//!   the cut, writes whose outcome is unknown are counted, and service comes back within a few
//!   seconds of the heal (Sentinel: `WAIT 1` with two replicas, so the promoted master can
//!   still confirm writes);
//! - without durability, the isolated master stops acknowledging writes after the guard's lag
//!   (Sentinel, `min-replicas-to-write`) or the node timeout (Cluster, a master in the
//!   minority), and only writes acknowledged within that window are lost;
//! - a session updated on the isolated master, read in its newer state, then saved after the
//!   heal is refused as rolled back (counted in `Stats`), and nothing is merged;
//! - every request ends within the store's bound, every read returns the session's own
//!   principal, and after the heal the store follows the new master.
//!
//! The tests need root and iptables (installed with apt-get when missing); elsewhere they say
//! why and pass. They run one at a time. `--nocapture` shows the figures; the `partition`
//! binary measures longer cuts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sesame::{Error, SessionConfig, SessionManager, StoreError, TokenAction};
use sesame_bench::partition::{
    self, follow_bound, request_bound, Deployment, Options, Report, Topology, Writes,
    CLUSTER_NODE_TIMEOUT, GUARD_LAG_S,
};

/// Scheduling slack on top of a bound (two cores shared by the test, its store and six to nine
/// Redis processes).
const SLACK: Duration = Duration::from_millis(1500);
/// The shortest cut: the far side needs its failure detection (1 s for the sentinels, 2 s for
/// the cluster) and an election.
const MIN_CUT: Duration = Duration::from_secs(3);
/// Concurrent writers.
const WRITERS: usize = 8;

/// Tests here run one at a time: each starts six to nine Redis processes and times requests.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Why a partition cannot be made here (printed when the test skips).
fn skip() -> bool {
    match partition::unavailable() {
        Some(why) => {
            eprintln!("skipped: no network partition can be made here: {why}");
            true
        }
        None => false,
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

async fn scenario(topology: Topology, writes: Writes) -> (Options, Report) {
    let _one = ONE_AT_A_TIME.lock().await;
    let opts = Options { topology, writes, writers: WRITERS, cut: MIN_CUT };
    let r = partition::run(opts).await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}\n{}", partition::HEADER, partition::row(&opts, &r));
    let t = &r.tally;
    assert!(t.wrong.is_empty(), "{:?}", t.wrong);
    assert!(r.all_resumed, "not every writer had a write acknowledged after the heal");
    assert!(t.acked > 100 && t.logins > 0, "too little load to mean anything: {t:?}");
    let durable = matches!(writes, Writes::Durable { .. });
    assert!(t.slowest_load <= request_bound(false) + SLACK, "a load took {:?}", t.slowest_load);
    assert!(t.slowest_save <= request_bound(durable) + SLACK, "a save took {:?}", t.slowest_save);
    (opts, r)
}

/// Checks that nothing acknowledged was lost and nothing was acknowledged during the cut.
fn nothing_acknowledged_lost(r: &Report) {
    let t = &r.tally;
    assert!(t.lost.is_empty(), "{} acknowledged writes were lost", t.lost.len());
    assert!(t.sessions_lost.is_empty(), "{} acknowledged logins lost", t.sessions_lost.len());
    assert!(t.acked_during_cut.is_empty(), "writes acknowledged while no replica was reachable");
    assert!(t.unknown > 0, "no write failed during the cut: was anything cut?");
}

/// Checks that every lost write was acknowledged within `window` of the cut, and that nothing
/// was acknowledged later during the cut.
fn losses_within(r: &Report, window: Duration) {
    let t = &r.tally;
    assert!(!t.lost.is_empty(), "nothing acknowledged during the cut was lost: was anything cut?");
    for (value, at) in &t.lost {
        let after = at.saturating_duration_since(r.cut);
        assert!(after <= window, "write {value} acknowledged {after:?} after the cut was lost");
    }
    for at in &t.sessions_lost {
        let after = at.saturating_duration_since(r.cut);
        assert!(after <= window, "a login acknowledged {after:?} after the cut was lost");
    }
    let late = t.acked_during_cut.iter().filter(|at| **at > r.cut + window).count();
    assert_eq!(late, 0, "writes acknowledged after the window of {window:?}");
}

// Durability on (`WAIT 1` within 500 ms, two replicas, both on the far side): while the master
// is cut off no write is acknowledged (each fails as "outcome unknown" within the bound), the
// sentinels promote a replica, and after the heal the store follows it and writes succeed at
// once: the promoted master still has a replica to confirm them. Every write and login
// acknowledged before, during or after the cut is there, read back through a fresh store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_durable_writes_survive_a_partition_and_resume_at_the_heal() {
    if skip() {
        return;
    }
    let (_, r) =
        scenario(Topology::Sentinel { replicas: 2 }, Writes::Durable { replicas: 1 }).await;
    nothing_acknowledged_lost(&r);
    assert!(r.followed <= follow_bound() + SLACK, "followed after {:?}", r.followed);
    assert!(r.resumed <= follow_bound() + SLACK * 2, "writes resumed after {:?}", r.resumed);
}

// No durability, but every node refuses writes once its replicas lag more than 2 s
// (`min-replicas-to-write 1`, `min-replicas-max-lag 2`), with two replicas. Cut off, the master
// acknowledges writes for about that long, then refuses them (`NOREPLICAS`: unavailable). The
// promoted replica never received them: they are lost, and the writers see it on their next
// read. Only writes and logins acknowledged within the lag window after the cut may be lost;
// loads go on meanwhile. The promoted master keeps one replica, so writes resume at the heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_write_guard_bounds_the_loss_to_the_lag() {
    if skip() {
        return;
    }
    let (_, r) = scenario(Topology::Sentinel { replicas: 2 }, Writes::Guard).await;
    let t = &r.tally;
    assert!(t.noreplicas > 0, "the isolated master never refused a write");
    assert_eq!(t.loads_refused, 0, "loads go on while the master refuses writes (no touch then)");
    // The master counts a replica as good while its last acknowledgement (sent every second)
    // is at most the lag old, in whole seconds, re-counted every second: it can take writes up
    // to lag + 2 s after the cut.
    losses_within(&r, Duration::from_secs(GUARD_LAG_S + 2));
    assert!(r.followed <= follow_bound() + SLACK, "followed after {:?}", r.followed);
    assert!(r.resumed <= follow_bound() + SLACK * 2, "writes resumed after {:?}", r.resumed);
}

// A cluster with durability (`WAIT 1`, one replica per master): node 0, cut off with the
// application, acknowledges nothing during the cut; its replica is promoted by the majority;
// after the heal node 0 rejoins as a replica, the store follows the slots to the new master,
// and writes are confirmed again once node 0 has resynchronised. Nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_durable_writes_survive_a_partition() {
    if skip() {
        return;
    }
    let (_, r) = scenario(Topology::Cluster, Writes::Durable { replicas: 1 }).await;
    nothing_acknowledged_lost(&r);
    assert!(r.followed <= CLUSTER_NODE_TIMEOUT + SLACK * 2, "followed after {:?}", r.followed);
}

// A cluster without durability: node 0, in the minority, keeps acknowledging writes until it
// finds the other masters unreachable (the node timeout, 2 s), then refuses them
// (`CLUSTERDOWN`). Those writes are lost when its replica is promoted; later ones are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_minority_master_stops_acknowledging_after_the_node_timeout() {
    if skip() {
        return;
    }
    let (_, r) = scenario(Topology::Cluster, Writes::Plain).await;
    // The node marks the others as failing after the node timeout, checked every 100 ms, and
    // re-evaluates the cluster's state on its next cron run.
    losses_within(&r, CLUSTER_NODE_TIMEOUT + Duration::from_secs(2));
    assert!(r.followed <= CLUSTER_NODE_TIMEOUT + SLACK * 2, "followed after {:?}", r.followed);
}

fn token(a: TokenAction) -> sesame::SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a new token, got {other:?}"),
    }
}

/// No durability, no guard: a session read before the cut is updated on the isolated master
/// (acknowledged), and a request reads that newer state. The far side promotes a replica,
/// which never received the update; after the heal the store follows it, and the request's
/// save finds the older state: refused as rolled back, counted, nothing merged. Once the old
/// master rejoins as a replica, its update is gone there too.
async fn rolled_back(topology: Topology) {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Deployment::start(topology).await.unwrap();
    let s = partition::store(&d, Writes::Plain).await.unwrap();
    let config = SessionConfig::builder().insecure_development_secret().build().unwrap();
    let m = SessionManager::new(Arc::new(s.clone()), config);

    // A session on the old master's slots (always, for Sentinel).
    let mut t = None;
    for i in 0..64 {
        let first = m.open(None);
        first.login(&format!("ann-{i}")).await.unwrap();
        first.insert("n", &1).await.unwrap();
        let token = token(first.commit().await.unwrap());
        if d.on_old_master(&s.session_key(&token.key())) {
            t = Some(token);
            break;
        }
    }
    let t = t.expect("a session on node 0's slots in 64 logins");
    let key = s.session_key(&t.key());
    let before = m.open(Some(&t.expose()));
    assert_eq!(before.get::<i32>("n").await.unwrap(), Some(1));
    // Replicated to the old master's replicas before the cut: their offsets reach the
    // master's (a cluster replica would answer `MOVED` to a read).
    let old_port = d.old_master().port().to_string();
    tokio::task::block_in_place(|| {
        let until = Instant::now() + Duration::from_secs(10);
        let offset = |role: &str, line: usize| -> u64 {
            role.lines().nth(line).and_then(|l| l.parse().ok()).unwrap_or(0)
        };
        let written = offset(&d.old_master().cli(&["ROLE"]).unwrap(), 1);
        let replicas: Vec<_> = d.nodes()[1..]
            .iter()
            .filter(|n| n.cli(&["ROLE"]).unwrap().lines().nth(2) == Some(old_port.as_str()))
            .collect();
        assert!(!replicas.is_empty(), "the old master has no replica");
        while !replicas.iter().all(|n| offset(&n.cli(&["ROLE"]).unwrap(), 4) >= written) {
            assert!(Instant::now() < until, "a replica never got the session");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let user = before.principal().await.unwrap().unwrap();

    let cut = d.cut().unwrap();
    let update = m.open(Some(&t.expose()));
    update.insert("n", &2).await.unwrap();
    update.commit().await.unwrap();
    let newer = m.open(Some(&t.expose()));
    assert_eq!(newer.get::<i32>("n").await.unwrap(), Some(2));
    assert_eq!(newer.principal().await.unwrap().as_deref(), Some(user.as_str()));
    let port = tokio::task::block_in_place(|| d.wait_for_promotion()).unwrap();
    let promoted = Instant::now();
    tokio::time::sleep((cut + MIN_CUT).saturating_duration_since(Instant::now())).await;
    let healed = d.heal().unwrap();

    newer.insert("m", &3).await.unwrap();
    // Wait until the store reads from the new master: a fresh read shows the older state (the
    // old master is unreachable, or a cluster node in the minority answers CLUSTERDOWN, until
    // then).
    let until = healed + Duration::from_secs(20);
    loop {
        let fresh = m.open(Some(&t.expose()));
        if let Ok(Some(1)) = fresh.get::<i32>("n").await {
            break;
        }
        assert!(Instant::now() < until, "the store never read from the new master");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let followed = healed.elapsed();
    let e = newer.commit().await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::RolledBack { .. })), "{e}");
    assert_eq!(m.stats().rolled_back, 1);
    // Nothing merged: the session is as it was before the cut, still the same user's.
    let again = m.open(Some(&t.expose()));
    assert_eq!(again.get::<i32>("n").await.unwrap(), Some(1));
    assert_eq!(again.get::<i32>("m").await.unwrap(), None);
    assert_eq!(again.principal().await.unwrap().as_deref(), Some(user.as_str()));
    // The request that read before the cut has the state the store holds: its save goes through.
    before.insert("m", &4).await.unwrap();
    before.commit().await.unwrap();
    assert_eq!(m.stats().rolled_back, 1);

    // The old master becomes a replica of the new one and drops its update.
    let demoted = tokio::task::block_in_place(|| {
        let old = d.old_master();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let role = old.cli(&["ROLE"]).unwrap();
            if role.starts_with("slave") && role.contains(&port.to_string()) {
                let info = old.cli(&["INFO", "replication"]).unwrap();
                if info.contains("master_link_status:up") {
                    return healed.elapsed();
                }
            }
            assert!(Instant::now() < until, "the old master was never demoted: {}", d.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // Its copy is the new master's once its resynchronisation has loaded (a cluster replica
    // answers reads with `MOVED`, so there the demotion with the link up is what is checked).
    if !d.is_cluster() {
        let new_master = d.nodes().iter().find(|n| n.port() == port).unwrap();
        let on_new = tokio::task::block_in_place(|| new_master.cli(&["GET", &key]).unwrap());
        let until = Instant::now() + Duration::from_secs(10);
        while tokio::task::block_in_place(|| d.old_master().cli(&["GET", &key]).unwrap()) != on_new
        {
            assert!(Instant::now() < until, "the old master kept its own version");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "rollback ({topology:?}): promotion {} ms after the cut, heal at {} ms, the save refused \
         as rolled back {} ms after the heal, old master a replica {} ms after the heal",
        ms(promoted - cut),
        ms(healed - cut),
        ms(followed),
        ms(demoted),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_update_lost_in_a_partition_is_refused_as_rolled_back() {
    if skip() {
        return;
    }
    rolled_back(Topology::Sentinel { replicas: 1 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_update_lost_in_a_partition_is_refused_as_rolled_back() {
    if skip() {
        return;
    }
    rolled_back(Topology::Cluster).await;
}
