//! A real network partition of a Sentinel group, made with iptables on the loopback interface
//! (`sesame_testkit::Partition`): the master and the application (this process, with its store)
//! on one side, the replicas and the three sentinels (running as another user) on the other.
//! Packets between the sides are dropped for a few seconds, long enough for the sentinels to
//! promote a replica, then flow again. Checked:
//!
//! - with durability, no acknowledged write is lost, no write is acknowledged during the cut,
//!   and writes whose outcome is unknown are counted;
//! - without durability but with the server-side guard (`min-replicas-to-write`), the isolated
//!   master stops acknowledging writes after the lag, and only writes acknowledged within that
//!   window after the cut are lost;
//! - a session updated on the isolated master, read in its newer state, then saved after the
//!   heal is refused as rolled back (counted in `Stats`), and nothing is merged;
//! - every request fails or succeeds within the store's bound, every read returns the
//!   session's own principal, and after the heal the store follows the new master.
//!
//! The tests need root and iptables (installed with apt-get when missing); elsewhere they say
//! why and pass. They run one at a time. `--nocapture` shows the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sesame::{
    Error, Lookup, Principal, SaveOutcome, SessionConfig, SessionKey, SessionManager, Store,
    StoreError, TokenAction,
};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{key, login, named, policy, record, set};
use sesame_testkit::fixtures::now;
use sesame_testkit::{Partition, RedisServer, RunAs, SentinelGroup, SentinelOptions};

/// The store's timeouts.
const CONNECT: Duration = Duration::from_millis(500);
const RESPONSE: Duration = Duration::from_millis(500);
/// How long a durable write waits for its replicas.
const DURABILITY_WAIT: Duration = Duration::from_millis(500);
/// Scheduling slack on top of a bound (two cores shared by the test, its store and six Redis
/// processes), as in `partition.rs`.
const SLACK: Duration = Duration::from_millis(1500);
/// The store's periodic check of the master (`sentinel::watch::POLL_EVERY`).
const POLL_EVERY: Duration = Duration::from_millis(500);
/// The shortest cut: the sentinels need `down-after-milliseconds` (1 s) and an election.
const MIN_CUT: Duration = Duration::from_secs(3);
/// How long the cut may last while waiting for the promotion: a failed election is retried
/// after twice the failover timeout (5 s).
const MAX_CUT: Duration = Duration::from_secs(20);
/// Concurrent writers (one session each).
const WRITERS: usize = 8;
/// `min-replicas-max-lag` on the guarded master, in seconds.
const GUARD_LAG_S: u64 = 2;

/// The longest a request may take: one master lookup (`connect + response`), then its command
/// (`response`); a durable write may wait its durability timeout on top (docs/OPERATIONS.md).
fn request_bound(durable_write: bool) -> Duration {
    let bound = CONNECT + RESPONSE * 2;
    if durable_write {
        bound + DURABILITY_WAIT
    } else {
        bound
    }
}

/// The longest the store may take to follow the new master once the sentinels can be reached:
/// a check under way when the cut heals runs out its time (`ROLE`, a lookup, `ROLE` on the
/// named node: `2 x connect + 3 x response`), then the next one, half a second later, moves.
fn follow_bound() -> Duration {
    let check = CONNECT * 2 + RESPONSE * 3;
    check + POLL_EVERY + check
}

/// Tests here run one at a time: each starts five or six Redis processes and times requests.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Why a partition cannot be made here (printed when the test skips).
fn skip_reason() -> Option<String> {
    let why = Partition::available().err()?;
    eprintln!("skipped: no network partition can be made here: {why}");
    Some(why)
}

/// A Sentinel group split by user: data node 0 (the first master) runs as root, the replicas and
/// the sentinels as `nobody`; the partition is made first, so that every connection of the group
/// is classified by the side that opened it.
struct Deployment {
    // Declared first: dropped (processes killed) before the partition's rules go.
    group: SentinelGroup,
    partition: Partition,
    side_a: Vec<u16>,
    side_b: Vec<u16>,
}

impl Deployment {
    async fn start(replicas: usize) -> Deployment {
        let partition = Partition::new(RunAs::NOBODY).unwrap();
        let opts =
            SentinelOptions { replicas, run_as: Some(RunAs::NOBODY), ..SentinelOptions::default() };
        let group = tokio::task::spawn_blocking(move || SentinelGroup::start_with(opts))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"));
        let nodes = group.data_nodes();
        assert!(nodes[0].run_as().is_none() && nodes[1..].iter().all(|n| n.run_as().is_some()));
        let side_a = vec![nodes[0].port()];
        let mut side_b: Vec<u16> = nodes[1..].iter().map(RedisServer::port).collect();
        side_b.extend(group.sentinel_ports());
        Deployment { group, partition, side_a, side_b }
    }

    fn old_master(&self) -> &RedisServer {
        &self.group.data_nodes()[0]
    }

    /// Cuts; returns when every rule is in place.
    fn cut(&mut self) -> Instant {
        self.partition.cut(&self.side_a, &self.side_b).unwrap();
        Instant::now()
    }

    /// Heals; returns when the rules started to go (packets may flow from then on).
    fn heal(&mut self) -> Instant {
        let healing = Instant::now();
        self.partition.heal().unwrap();
        healing
    }

    /// Waits (at most [`MAX_CUT`]) until the sentinels, all on side B, agree on a new master
    /// and it answers `ROLE` with `master`; returns its port.
    fn wait_for_promotion(&self) -> u16 {
        let old = self.old_master().port();
        tokio::task::block_in_place(|| self.group.wait_for_failover(old, MAX_CUT))
            .unwrap_or_else(|e| panic!("no promotion during the cut: {e}"))
    }
}

/// Waits until the store uses the master on `port`; returns how long that took from `from`.
async fn follows(s: &RedisStore, port: u16, from: Instant, g: &SentinelGroup) -> Duration {
    let want = Some(format!("127.0.0.1:{port}"));
    let until = Instant::now() + Duration::from_secs(20);
    while s.current_master() != want {
        assert!(Instant::now() < until, "the store never followed port {port}: {}", g.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    from.elapsed()
}

/// The moments the writers compare their requests with.
#[derive(Default)]
struct Timeline {
    cut: OnceLock<Instant>,
    healed: OnceLock<Instant>,
    stop: AtomicBool,
    /// Writers that had a write acknowledged after the heal.
    resumed: AtomicUsize,
}

impl Timeline {
    /// Whether `t` falls between the cut and the heal.
    fn during_cut(&self, t: Instant) -> bool {
        self.cut.get().is_some_and(|c| t > *c) && self.healed.get().is_none_or(|h| t < *h)
    }
}

/// What one writer saw.
#[derive(Default, Debug)]
struct Tally {
    loads: u64,
    acked: u64,
    /// Writes that failed with "outcome unknown" (applied or not).
    unknown: u64,
    /// Other unavailable answers (no master, `NOREPLICAS`, a timeout on a read).
    unavailable: u64,
    /// Of those, saves refused with `NOREPLICAS` by the guarded master.
    noreplicas: u64,
    /// Loads refused with `NOREPLICAS`: the touch that pushes the idle deadline, due on the
    /// load, is a write.
    loads_refused: u64,
    /// Saves refused because the session went back to an older version.
    rolled_back: u64,
    slowest_load: Duration,
    slowest_save: Duration,
    /// Acknowledged writes a later read did not show: (value, when acknowledged).
    lost: Vec<(u64, Instant)>,
    /// Saves started after the cut and acknowledged before the heal.
    acked_during_cut: Vec<Instant>,
    /// Anything that must not happen (a wrong principal, an unexpected error or outcome).
    wrong: Vec<String>,
    /// Per writer, in order: the last acknowledged value not seen lost (0 for none).
    last_acked: Vec<u64>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.loads += o.loads;
        self.acked += o.acked;
        self.unknown += o.unknown;
        self.unavailable += o.unavailable;
        self.noreplicas += o.noreplicas;
        self.rolled_back += o.rolled_back;
        self.slowest_load = self.slowest_load.max(o.slowest_load);
        self.slowest_save = self.slowest_save.max(o.slowest_save);
        self.lost.extend(o.lost);
        self.acked_during_cut.extend(o.acked_during_cut);
        self.wrong.extend(o.wrong);
        self.loads_refused += o.loads_refused;
        self.last_acked.extend(o.last_acked);
    }
}

/// The counter a writer keeps in its session.
fn counter(r: &sesame::Record) -> u64 {
    let bytes = r.attrs.get("n").expect("the counter attribute");
    std::str::from_utf8(bytes).unwrap().parse().unwrap()
}

/// One session of its own per writer, created (logged in as `p`) with the counter at 0.
async fn session(s: &RedisStore, i: usize) -> (SessionKey, Principal) {
    let p = named(&format!("writer-{i}-{}", now()));
    let k = key(p.user().tag());
    let pol = policy();
    let created =
        s.create(&k, &record(Some(&p), &[("n", b"0")]), Some(&login(&p, 0)), now(), &pol).await;
    assert_eq!(created.unwrap(), sesame::CreateOutcome::Created);
    (k, p)
}

/// Loads its session and saves the counter plus one, again and again until told to stop,
/// through the store API; checks each answer and keeps count.
async fn writer(s: RedisStore, k: SessionKey, p: Principal, tl: Arc<Timeline>) -> Tally {
    let pol = policy();
    let mut t = Tally::default();
    // Acknowledged values not yet seen to be lost, with when they were acknowledged.
    let mut acked: Vec<(u64, Instant)> = Vec::new();
    let mut resumed = false;
    while !tl.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let started = Instant::now();
        let loaded = s.load(&k, now(), &pol).await;
        t.slowest_load = t.slowest_load.max(started.elapsed());
        t.loads += 1;
        let base = match loaded {
            Ok(Lookup::Live(l)) => l.record,
            Ok(other) => {
                t.wrong.push(format!("{}: the session is gone: {other:?}", p.name()));
                continue;
            }
            Err(e) if e.is_unavailable() => {
                t.unavailable += 1;
                if e.to_string().contains("NOREPLICAS") {
                    t.loads_refused += 1;
                }
                continue;
            }
            Err(e) => {
                t.wrong.push(format!("load: {e}"));
                continue;
            }
        };
        if base.principal.as_ref() != Some(&p) {
            t.wrong.push(format!(
                "{} read {:?}",
                p.name(),
                base.principal.as_ref().map(|q| q.name())
            ));
            continue;
        }
        let seen = counter(&base);
        // Writes acknowledged above what the store shows now were lost.
        let first_lost = acked.partition_point(|(v, _)| *v <= seen);
        t.lost.extend(acked.drain(first_lost..));
        let next = seen + 1;
        let started = Instant::now();
        let saved =
            s.save(&k, &base, &set(&[("n", next.to_string().as_bytes())]), now(), &pol).await;
        let done = Instant::now();
        t.slowest_save = t.slowest_save.max(done - started);
        match saved {
            Ok(SaveOutcome::Saved(r)) => {
                if counter(&r) != next || r.principal.as_ref() != Some(&p) {
                    t.wrong.push(format!("{} saved {next}, the store wrote {r:?}", p.name()));
                }
                t.acked += 1;
                acked.push((next, done));
                if !resumed && tl.healed.get().is_some_and(|h| started > *h) {
                    resumed = true;
                    tl.resumed.fetch_add(1, Ordering::Relaxed);
                }
                if tl.during_cut(started) && tl.during_cut(done) {
                    t.acked_during_cut.push(done);
                }
            }
            Ok(other) => t.wrong.push(format!("{}: save answered {other:?}", p.name())),
            Err(e) if e.is_outcome_unknown() => t.unknown += 1,
            Err(StoreError::RolledBack { .. }) => t.rolled_back += 1,
            Err(e) if e.is_unavailable() => {
                t.unavailable += 1;
                if e.to_string().contains("NOREPLICAS") {
                    t.noreplicas += 1;
                }
            }
            Err(e) => t.wrong.push(format!("save: {e}")),
        }
    }
    t.last_acked = vec![acked.last().map_or(0, |(v, _)| *v)];
    t
}

/// What [`writers_across_a_cut`] saw.
struct Run {
    tally: Tally,
    cut: Instant,
    /// When the sentinels agreed on the new master.
    promoted: Instant,
    healed: Instant,
    /// The new master's port.
    port: u16,
    /// From the heal until the store used the new master.
    followed: Duration,
    /// From the heal until every writer had a write acknowledged again.
    resumed: Duration,
    sessions: Vec<(SessionKey, Principal)>,
}

/// Runs the writers around one cut and heal: a second before the cut, the cut until the
/// sentinels have promoted a replica (at least [`MIN_CUT`]), then until every writer has had a
/// write acknowledged after the heal (at most 30 s).
async fn writers_across_a_cut(d: &mut Deployment, s: &RedisStore) -> Run {
    let mut sessions = Vec::new();
    for i in 0..WRITERS {
        sessions.push(session(s, i).await);
    }
    let tl = Arc::new(Timeline::default());
    let tasks: Vec<_> = sessions
        .iter()
        .map(|(k, p)| tokio::spawn(writer(s.clone(), *k, p.clone(), tl.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut = d.cut();
    tl.cut.set(cut).unwrap();
    let port = d.wait_for_promotion();
    let promoted = Instant::now();
    tokio::time::sleep((cut + MIN_CUT).saturating_duration_since(Instant::now())).await;
    // From the moment the rules start to go, a write may be acknowledged legitimately.
    tl.healed.set(Instant::now()).unwrap();
    d.heal();
    let healed = *tl.healed.get().unwrap();
    let followed = follows(s, port, healed, &d.group).await;
    let until = healed + Duration::from_secs(30);
    while tl.resumed.load(Ordering::Relaxed) < WRITERS && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resumed = healed.elapsed();
    tl.stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await.unwrap());
    }
    let writers = tl.resumed.load(Ordering::Relaxed);
    assert_eq!(writers, WRITERS, "writers with a write acknowledged after the heal");
    Run { tally, cut, promoted, healed, port, followed, resumed, sessions }
}

/// A store on the group with the test's timeouts.
async fn store(g: &SentinelGroup, durable: bool) -> RedisStore {
    let b = RedisStore::builder(g.url()).connect_timeout(CONNECT).response_timeout(RESPONSE);
    let b = if durable { b.durability(2, DURABILITY_WAIT) } else { b };
    b.connect().await.unwrap()
}

/// The counters as a fresh store (found through the sentinels) reads them, checking the
/// principals.
async fn read_back(g: &SentinelGroup, sessions: &[(SessionKey, Principal)]) -> Vec<u64> {
    let fresh = store(g, false).await;
    let mut out = Vec::new();
    for (k, p) in sessions {
        let r = match fresh.load(k, now(), &policy()).await.unwrap() {
            Lookup::Live(l) => l.record,
            other => panic!("{}: {other:?}", p.name()),
        };
        assert_eq!(r.principal.as_ref(), Some(p), "a session answered with another principal");
        out.push(counter(&r));
    }
    out
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// Durability on (`WAIT 2` within 500 ms, both replicas on the far side): while the master is cut
// off from its replicas no write is acknowledged (each fails as "outcome unknown" within the
// bound), the sentinels promote a replica, and after the heal the store follows it. Every write
// acknowledged before, during or after the cut is there, read back through a fresh store; a save
// built on an unconfirmed write read during the cut may be refused as rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_survive_a_partition() {
    if skip_reason().is_some() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Deployment::start(2).await;
    let s = store(&d.group, true).await;
    let run = writers_across_a_cut(&mut d, &s).await;
    let finals = read_back(&d.group, &run.sessions).await;
    let t = &run.tally;
    eprintln!(
        "durable: {} loads, {} writes acknowledged, {} outcome unknown, {} other unavailable, {} \
         rolled back; promotion {} ms after the cut, heal at {} ms, store on the new master {} ms \
         after the heal, every writer acknowledged again {} ms after the heal; slowest load {} \
         ms, slowest save {} ms (bounds {} / {} ms); counters {finals:?}",
        t.loads,
        t.acked,
        t.unknown,
        t.unavailable,
        t.rolled_back,
        ms(run.promoted - run.cut),
        ms(run.healed - run.cut),
        ms(run.followed),
        ms(run.resumed),
        ms(t.slowest_load),
        ms(t.slowest_save),
        ms(request_bound(false)),
        ms(request_bound(true)),
    );
    assert!(t.wrong.is_empty(), "{:?}", t.wrong);
    assert!(t.lost.is_empty(), "{} acknowledged writes were lost", t.lost.len());
    for ((k, p), (last, now)) in run.sessions.iter().zip(t.last_acked.iter().zip(&finals)) {
        assert!(now >= last, "{} ({}): {last} acknowledged, {now} read back", p.name(), k.id());
    }
    assert!(t.acked_during_cut.is_empty(), "writes acknowledged while no replica was reachable");
    assert!(t.unknown > 0, "no write failed during the cut: was anything cut?");
    assert_ne!(run.port, d.old_master().port());
    assert!(t.slowest_load <= request_bound(false) + SLACK, "a load took {:?}", t.slowest_load);
    assert!(t.slowest_save <= request_bound(true) + SLACK, "a save took {:?}", t.slowest_save);
    assert!(run.followed <= follow_bound() + SLACK, "followed after {:?}", run.followed);
}

// No durability, but the master refuses writes once its replicas lag more than 2 s
// (`min-replicas-to-write 1`, `min-replicas-max-lag 2`). Cut off, it acknowledges writes for
// about that long, then refuses them (`NOREPLICAS`: unavailable). The promoted replica never
// received them: they are lost, and the writers see it on their next read. Only writes
// acknowledged within the lag window after the cut may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_guard_bounds_the_loss_to_the_lag() {
    if skip_reason().is_some() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Deployment::start(1).await;
    let lag = GUARD_LAG_S.to_string();
    for (name, value) in [("min-replicas-to-write", "1"), ("min-replicas-max-lag", lag.as_str())] {
        assert_eq!(d.old_master().cli(&["CONFIG", "SET", name, value]).unwrap(), "OK");
    }
    let s = store(&d.group, false).await;
    let run = writers_across_a_cut(&mut d, &s).await;
    let finals = read_back(&d.group, &run.sessions).await;
    let (t, cut) = (&run.tally, run.cut);
    // The master counts a replica as good while its last acknowledgement (sent every second)
    // is at most the lag old, in whole seconds, re-counted every second: it can take writes up
    // to lag + 2 s after the cut.
    let window = Duration::from_secs(GUARD_LAG_S + 2);
    let last_lost = t.lost.iter().map(|(_, at)| at.saturating_duration_since(cut)).max();
    let last_acked_during_cut =
        t.acked_during_cut.iter().map(|at| at.saturating_duration_since(cut)).max();
    eprintln!(
        "guard: {} loads, {} writes acknowledged, {} of them lost (the last acknowledged {:?} ms \
         after the cut); last write acknowledged during the cut {:?} ms after it; {} saves and \
         {} loads (the touch is a write) refused with NOREPLICAS, {} other unavailable, {} \
         rolled back; promotion {} ms after the cut, heal at {} ms, store on the new master {} \
         ms after the heal, every writer acknowledged again {} ms after the heal; slowest load \
         {} ms, slowest save {} ms (bound {} ms); counters {finals:?}",
        t.loads,
        t.acked,
        t.lost.len(),
        last_lost.map(ms),
        last_acked_during_cut.map(ms),
        t.noreplicas,
        t.loads_refused,
        t.unavailable - t.noreplicas - t.loads_refused,
        t.rolled_back,
        ms(run.promoted - cut),
        ms(run.healed - cut),
        ms(run.followed),
        ms(run.resumed),
        ms(t.slowest_load),
        ms(t.slowest_save),
        ms(request_bound(false)),
    );
    assert!(t.wrong.is_empty(), "{:?}", t.wrong);
    assert!(t.noreplicas > 0, "the isolated master never refused a write");
    assert_eq!(t.loads_refused, 0, "loads go on while the master refuses writes (no touch then)");
    assert!(!t.lost.is_empty(), "nothing acknowledged during the cut was lost: was anything cut?");
    for (value, at) in &t.lost {
        let after = at.saturating_duration_since(cut);
        assert!(after <= window, "write {value} acknowledged {after:?} after the cut was lost");
    }
    let late: Vec<_> = t.acked_during_cut.iter().filter(|at| **at > cut + window).collect();
    assert!(late.is_empty(), "{} writes acknowledged after the guard's window", late.len());
    for ((k, p), (last, now)) in run.sessions.iter().zip(t.last_acked.iter().zip(&finals)) {
        assert!(now >= last, "{} ({}): {last} acknowledged, {now} read back", p.name(), k.id());
    }
    assert!(t.slowest_load <= request_bound(false) + SLACK, "a load took {:?}", t.slowest_load);
    assert!(t.slowest_save <= request_bound(false) + SLACK, "a save took {:?}", t.slowest_save);
    assert!(run.followed <= follow_bound() + SLACK, "followed after {:?}", run.followed);
}

fn token(a: TokenAction) -> sesame::SessionToken {
    match a {
        TokenAction::Set { token, .. } => token,
        other => panic!("expected a new token, got {other:?}"),
    }
}

// No durability, no guard: a session read before the cut is updated on the isolated master
// (acknowledged), and a request reads that newer state. The sentinels promote the replica, which
// never received the update; after the heal the store follows it, and the request's save finds
// the older state: refused as rolled back, counted, nothing merged. Once the sentinels demote the
// old master, its update is gone there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_lost_in_a_partition_is_refused_as_rolled_back() {
    if skip_reason().is_some() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Deployment::start(1).await;
    let s = store(&d.group, false).await;
    let config = SessionConfig::builder().insecure_development_secret().build().unwrap();
    let m = SessionManager::new(Arc::new(s.clone()), config);

    let first = m.open(None);
    first.login("ann").await.unwrap();
    first.insert("n", &1).await.unwrap();
    let t = token(first.commit().await.unwrap());
    let before = m.open(Some(&t.expose()));
    assert_eq!(before.get::<i32>("n").await.unwrap(), Some(1));
    // Replicated before the cut.
    tokio::task::block_in_place(|| {
        let replica = &d.group.data_nodes()[1];
        let until = Instant::now() + Duration::from_secs(10);
        let key = s.session_key(&t.key());
        while replica.cli(&["EXISTS", &key]).unwrap() != "1" {
            assert!(Instant::now() < until, "the replica never got the session");
            std::thread::sleep(Duration::from_millis(20));
        }
    });

    let cut = d.cut();
    let update = m.open(Some(&t.expose()));
    update.insert("n", &2).await.unwrap();
    update.commit().await.unwrap();
    let newer = m.open(Some(&t.expose()));
    assert_eq!(newer.get::<i32>("n").await.unwrap(), Some(2));
    assert_eq!(newer.principal().await.unwrap().as_deref(), Some("ann"));
    let port = d.wait_for_promotion();
    let promoted = Instant::now();
    tokio::time::sleep((cut + MIN_CUT).saturating_duration_since(Instant::now())).await;
    let healed = d.heal();
    let followed = follows(&s, port, healed, &d.group).await;

    newer.insert("m", &3).await.unwrap();
    let e = newer.commit().await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::RolledBack { .. })), "{e}");
    assert_eq!(m.stats().rolled_back, 1);
    // Nothing merged: the session is as it was before the cut, still ann's.
    let again = m.open(Some(&t.expose()));
    assert_eq!(again.get::<i32>("n").await.unwrap(), Some(1));
    assert_eq!(again.get::<i32>("m").await.unwrap(), None);
    assert_eq!(again.principal().await.unwrap().as_deref(), Some("ann"));
    // The request that read before the cut has the state the store holds: its save goes through.
    before.insert("m", &4).await.unwrap();
    before.commit().await.unwrap();
    assert_eq!(m.stats().rolled_back, 1);

    // The sentinels demote the old master, which drops its update.
    let key = s.session_key(&t.key());
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
            assert!(Instant::now() < until, "the old master was never demoted: {}", d.group.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let on_old = tokio::task::block_in_place(|| d.old_master().cli(&["GET", &key]).unwrap());
    let on_new =
        tokio::task::block_in_place(|| d.group.data_nodes()[1].cli(&["GET", &key]).unwrap());
    assert_eq!(on_old, on_new, "the old master kept its own version");
    eprintln!(
        "rollback: promotion {} ms after the cut, heal at {} ms, store on the new master {} ms \
         after the heal, old master demoted {} ms after the heal",
        ms(promoted - cut),
        ms(healed - cut),
        ms(followed),
        ms(demoted),
    );
}
