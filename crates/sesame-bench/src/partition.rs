//! The network-partition scenario: writers update sessions through the store while the master
//! they use is cut off from the rest of a replicated deployment, with iptables on the loopback
//! interface ([`sesame_testkit::Partition`]), until the rest promotes a replica; then the cut
//! heals.
//!
//! Everything runs on `127.0.0.1`, so the two sides are told apart by user. Side A is this
//! process (the application with its store) and the master it starts on: the Sentinel group's
//! master, or a Cluster's node 0 (a master with a third of the slots). Side B is every other
//! data node and the sentinels, running as `nobody`. During the cut the application reaches
//! only the old master, as an application stranded with it would.
//!
//! Each writer owns one session at a time. It loads it, checks the principal, saves the
//! counter plus one, and every [`LOGIN_EVERY`] rounds logs in again (a new session with a
//! fresh counter). On a cluster, half the writers keep every session of theirs on node 0's
//! slots and half elsewhere, so that every cut strands some writers and spares others. It
//! remembers every acknowledged value; a later read that shows less means those writes were
//! lost. At the end a fresh store reads every session back.
//!
//! [`run`] does one cut; the tests in `tests/partition.rs` assert on short cuts, and the
//! `partition` binary (`cargo run --release -p sesame-bench --bin partition`) prints the
//! figures of `docs/OPERATIONS.md`. Root and iptables are needed (see
//! [`Partition::available`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sesame::{Lookup, Principal, Record, SaveOutcome, SessionKey, Store, StoreError};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{key, login, named, policy, record, set};
use sesame_testkit::fixtures::now;
use sesame_testkit::{
    key_slot, Cluster, ClusterOptions, Partition, RedisServer, RunAs, SentinelGroup,
    SentinelOptions,
};

use crate::BenchError;

/// The store's connect timeout.
pub const CONNECT: Duration = Duration::from_millis(500);
/// The store's response timeout.
pub const RESPONSE: Duration = Duration::from_millis(500);
/// How long a durable write waits for its replicas.
pub const DURABILITY_WAIT: Duration = Duration::from_millis(500);
/// The store's periodic check of a Sentinel group's master (`sentinel::watch::POLL_EVERY`).
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long the cut may last while waiting for the promotion: a failed election is retried
/// after twice the failover timeout.
pub const MAX_CUT: Duration = Duration::from_secs(30);
/// A writer logs in again (a new session) every this many rounds.
pub const LOGIN_EVERY: u64 = 40;
/// `min-replicas-max-lag` of the write guard, in seconds.
pub const GUARD_LAG_S: u64 = 2;
/// `cluster-node-timeout` of the testkit's clusters.
pub const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a request may take: one master lookup (`connect + response`), then its command
/// (`response`); a durable write may wait its durability timeout on top (docs/OPERATIONS.md).
pub fn request_bound(durable_write: bool) -> Duration {
    let bound = CONNECT + RESPONSE * 2;
    if durable_write {
        bound + DURABILITY_WAIT
    } else {
        bound
    }
}

/// The longest a Sentinel-followed store may take to use the new master once the sentinels
/// can be reached: a check under way when the cut heals runs out its time (`ROLE`, a lookup,
/// `ROLE` on the named node: `2 x connect + 3 x response`), then the next one moves.
pub fn follow_bound() -> Duration {
    let check = CONNECT * 2 + RESPONSE * 3;
    check + POLL_EVERY + check
}

/// Which replicated topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One master, `replicas` replicas, three sentinels.
    Sentinel {
        /// Replicas of the master.
        replicas: usize,
    },
    /// Three masters, one replica each; node 0 is cut off.
    Cluster,
}

/// How writes are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Nothing: writes are acknowledged by the master alone.
    Plain,
    /// The server-side guard on every master: `min-replicas-to-write 1`,
    /// `min-replicas-max-lag` [`GUARD_LAG_S`].
    Guard,
    /// The store's durability option: `WAIT replicas` within [`DURABILITY_WAIT`].
    Durable {
        /// Replicas that must confirm each write.
        replicas: u32,
    },
}

/// One run's settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The deployment.
    pub topology: Topology,
    /// The protection of writes.
    pub writes: Writes,
    /// Concurrent writers.
    pub writers: usize,
    /// The shortest cut; it lasts at least until the promotion.
    pub cut: Duration,
}

/// Why a partition cannot be made here, if it cannot.
pub fn unavailable() -> Option<String> {
    Partition::available().err()
}

enum Group {
    Sentinel(SentinelGroup),
    Cluster(Cluster),
}

/// A replicated deployment split by user, with the partition made before the processes so
/// that every connection is classified by the side that opened it.
pub struct Deployment {
    // Declared first: dropped (processes killed) before the partition's rules go.
    group: Group,
    partition: Partition,
    side_a: Vec<u16>,
    side_b: Vec<u16>,
    old_slots: OldSlots,
}

/// The slot ranges node 0 served when the deployment started (`None` for Sentinel, where
/// every key is on the old master). Read once, so that writers can place sessions during the
/// cut without asking a node.
#[derive(Debug, Clone)]
pub struct OldSlots(Option<Arc<[(u16, u16)]>>);

impl OldSlots {
    /// Whether the Redis key `redis_key` lives on the old master's slots.
    pub fn holds(&self, redis_key: &str) -> bool {
        match &self.0 {
            None => true,
            Some(ranges) => {
                let slot = key_slot(redis_key.as_bytes());
                ranges.iter().any(|&(from, to)| (from..=to).contains(&slot))
            }
        }
    }
}

impl Deployment {
    /// Starts `topology` with side B as `nobody`.
    pub async fn start(topology: Topology) -> Result<Deployment, BenchError> {
        let partition = Partition::new(RunAs::NOBODY).map_err(err)?;
        let group = tokio::task::spawn_blocking(move || match topology {
            Topology::Sentinel { replicas } => {
                let opts = SentinelOptions {
                    replicas,
                    run_as: Some(RunAs::NOBODY),
                    ..SentinelOptions::default()
                };
                SentinelGroup::start_with(opts).map(Group::Sentinel)
            }
            Topology::Cluster => {
                let mut run_as = vec![None];
                run_as.extend([Some(RunAs::NOBODY); 5]);
                Cluster::start_with(ClusterOptions { run_as, ..ClusterOptions::default() })
                    .map(Group::Cluster)
            }
        })
        .await
        .map_err(err)?
        .map_err(err)?;
        let nodes = match &group {
            Group::Sentinel(g) => g.data_nodes(),
            Group::Cluster(c) => c.nodes(),
        };
        let first = nodes[0].port();
        let mut side_a = vec![first];
        let mut side_b: Vec<u16> = nodes[1..].iter().map(RedisServer::port).collect();
        let mut old_slots = OldSlots(None);
        match &group {
            Group::Sentinel(g) => side_b.extend(g.sentinel_ports()),
            Group::Cluster(c) => {
                // Node 0 must be a master for the cut to strand one; `redis-cli` makes the
                // first three nodes masters.
                if c.nodes()[0].cli(&["ROLE"]).map_err(err)?.lines().next() != Some("master") {
                    return Err(BenchError::new("cluster node 0 is not a master"));
                }
                old_slots = OldSlots(Some(c.slots_of(0).map_err(err)?.into()));
                // The cluster bus: client port + 10000.
                side_a.push(bus(first)?);
                for p in nodes[1..].iter().map(RedisServer::port) {
                    side_b.push(bus(p)?);
                }
            }
        }
        Ok(Deployment { group, partition, side_a, side_b, old_slots })
    }

    /// The store URL.
    pub fn url(&self) -> String {
        match &self.group {
            Group::Sentinel(g) => g.url(),
            Group::Cluster(c) => c.url(),
        }
    }

    /// The data nodes; node 0 is the master on side A.
    pub fn nodes(&self) -> &[RedisServer] {
        match &self.group {
            Group::Sentinel(g) => g.data_nodes(),
            Group::Cluster(c) => c.nodes(),
        }
    }

    /// The master cut off with the application.
    pub fn old_master(&self) -> &RedisServer {
        &self.nodes()[0]
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.group, Group::Cluster(_))
    }

    /// The last log lines of every process, for failure messages.
    pub fn logs(&self) -> String {
        match &self.group {
            Group::Sentinel(g) => g.logs(),
            Group::Cluster(c) => c.logs(),
        }
    }

    /// Whether the Redis key `redis_key` lives on the old master: always
    /// for Sentinel; for a cluster, when its slot was one of node 0's at the start.
    pub fn on_old_master(&self, redis_key: &str) -> bool {
        self.old_slots.holds(redis_key)
    }

    /// Node 0's slots at the start, to place sessions with.
    pub fn old_slots(&self) -> OldSlots {
        self.old_slots.clone()
    }

    /// Sets the write guard (`min-replicas-to-write 1`, lag [`GUARD_LAG_S`]) on every node, so
    /// that it holds on whichever becomes master.
    pub fn set_guard(&self) -> Result<(), BenchError> {
        let lag = GUARD_LAG_S.to_string();
        for node in self.nodes() {
            for (name, value) in [("min-replicas-to-write", "1"), ("min-replicas-max-lag", &lag)] {
                let reply = node.cli(&["CONFIG", "SET", name, value]).map_err(err)?;
                if reply != "OK" {
                    return Err(BenchError::new(format!("CONFIG SET {name}: {reply}")));
                }
            }
        }
        Ok(())
    }

    /// Cuts; returns when every rule is in place.
    pub fn cut(&mut self) -> Result<Instant, BenchError> {
        self.partition.cut(&self.side_a, &self.side_b).map_err(err)?;
        Ok(Instant::now())
    }

    /// Heals; returns when the rules started to go (packets may flow from then on).
    pub fn heal(&mut self) -> Result<Instant, BenchError> {
        let healing = Instant::now();
        self.partition.heal().map_err(err)?;
        Ok(healing)
    }

    /// Waits (at most [`MAX_CUT`]) until side B has promoted a replica in place of node 0:
    /// the sentinels agree on a new master that answers `ROLE` with `master`, or node 1 sees
    /// node 0's first slot served by another node. Returns the new master's port.
    pub fn wait_for_promotion(&self) -> Result<u16, BenchError> {
        let old = self.old_master().port();
        match &self.group {
            Group::Sentinel(g) => g.wait_for_failover(old, MAX_CUT).map_err(err),
            Group::Cluster(c) => {
                let slot = self.first_slot_of_old_master(c)?;
                let until = Instant::now() + MAX_CUT;
                loop {
                    if let Ok(i) = c.master_for_slot_seen_by(&c.nodes()[1], slot) {
                        if i != 0 {
                            return Ok(c.nodes()[i].port());
                        }
                    }
                    if Instant::now() > until {
                        return Err(BenchError::new(format!(
                            "no promotion during the cut: {}",
                            c.logs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn first_slot_of_old_master(&self, c: &Cluster) -> Result<u16, BenchError> {
        // Node 0 got the first slot range from `redis-cli --cluster create`.
        for slot in [0u16, 5461, 10923] {
            if c.master_for_slot_seen_by(&c.nodes()[1], slot).map_err(err)? == 0 {
                return Ok(slot);
            }
        }
        Err(BenchError::new("node 0 serves none of the slots 0, 5461, 10923"))
    }
}

fn bus(port: u16) -> Result<u16, BenchError> {
    port.checked_add(10_000).ok_or_else(|| BenchError::new(format!("no bus port for {port}")))
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::new(e.to_string())
}

/// A store on `d` with the scenario's timeouts, and durability when `writes` asks for it.
pub async fn store(d: &Deployment, writes: Writes) -> Result<RedisStore, BenchError> {
    let b = RedisStore::builder(d.url()).connect_timeout(CONNECT).response_timeout(RESPONSE);
    let b = match writes {
        Writes::Durable { replicas } => b.durability(replicas, DURABILITY_WAIT),
        _ => b,
    };
    b.connect().await.map_err(err)
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

/// One session a writer used, with the acknowledged values not yet seen lost.
#[derive(Debug)]
struct Used {
    key: SessionKey,
    principal: Principal,
    /// When its login was acknowledged (`None` for a writer's first session).
    created: Option<Instant>,
    acked: Vec<(u64, Instant)>,
}

impl Used {
    /// Its login time and acknowledged values, leaving it without them.
    fn take(&mut self) -> Used {
        Used {
            key: self.key,
            principal: self.principal.clone(),
            created: self.created.take(),
            acked: std::mem::take(&mut self.acked),
        }
    }

    /// Counts the session, and the updates acknowledged in it, as lost.
    fn lost(self, t: &mut Tally) {
        t.sessions_lost.extend(self.created);
        t.lost.extend(self.acked.into_iter().filter(|(v, _)| *v > 0));
    }
}

/// What the writers saw.
#[derive(Default, Debug)]
pub struct Tally {
    /// Loads made.
    pub loads: u64,
    /// Saves acknowledged.
    pub acked: u64,
    /// Logins (new sessions) acknowledged.
    pub logins: u64,
    /// Writes (saves and logins) that failed with "outcome unknown" (applied or not).
    pub unknown: u64,
    /// Other unavailable answers (no master, `NOREPLICAS`, `CLUSTERDOWN`, a timeout on a read).
    pub unavailable: u64,
    /// Of those, saves refused with `NOREPLICAS` by a guarded master.
    pub noreplicas: u64,
    /// Loads refused with `NOREPLICAS` (a touch due on the load is a write).
    pub loads_refused: u64,
    /// Saves refused because the session went back to an older version.
    pub rolled_back: u64,
    /// The slowest load.
    pub slowest_load: Duration,
    /// The slowest save.
    pub slowest_save: Duration,
    /// Requests slower than [`request_bound`].
    pub over_bound: u64,
    /// Acknowledged updates a later read did not show: (value, when acknowledged).
    pub lost: Vec<(u64, Instant)>,
    /// Acknowledged logins whose session was later gone: when each was acknowledged.
    pub sessions_lost: Vec<Instant>,
    /// Saves started after the cut and acknowledged before the heal.
    pub acked_during_cut: Vec<Instant>,
    /// Anything that must not happen (a wrong principal, an unexpected error or outcome).
    pub wrong: Vec<String>,
    /// Sessions used, for the read back.
    used: Vec<Used>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.loads += o.loads;
        self.acked += o.acked;
        self.logins += o.logins;
        self.unknown += o.unknown;
        self.unavailable += o.unavailable;
        self.noreplicas += o.noreplicas;
        self.loads_refused += o.loads_refused;
        self.rolled_back += o.rolled_back;
        self.slowest_load = self.slowest_load.max(o.slowest_load);
        self.slowest_save = self.slowest_save.max(o.slowest_save);
        self.over_bound += o.over_bound;
        self.lost.extend(o.lost);
        self.sessions_lost.extend(o.sessions_lost);
        self.acked_during_cut.extend(o.acked_during_cut);
        self.wrong.extend(o.wrong);
        self.used.extend(o.used);
    }

    /// Requests that failed (unavailable or outcome unknown).
    pub fn failed(&self) -> u64 {
        self.unknown + self.unavailable
    }
}

/// The counter a writer keeps in its session.
fn counter(r: &Record) -> Option<u64> {
    std::str::from_utf8(r.attrs.get("n")?).ok()?.parse().ok()
}

/// A new session logged in as a fresh principal with the counter at 0, on the old master when
/// `on_old` (a cluster places a user's sessions by the user's tag).
async fn new_session(
    s: &RedisStore,
    d: &Deployment,
    name: &str,
    on_old: Option<bool>,
) -> Result<(SessionKey, Principal), BenchError> {
    let old = d.old_slots();
    for attempt in 0..64 {
        let Some((k, p)) = placed(s, &old, &format!("{name}-{attempt}"), on_old) else {
            continue;
        };
        let r = record(Some(&p), &[("n", b"0")]);
        match s.create(&k, &r, Some(&login(&p, 0)), now(), &policy()).await {
            Ok(sesame::CreateOutcome::Created) => return Ok((k, p)),
            // A fresh deployment may take a moment to confirm its first durable writes; try
            // again with another session.
            Err(e) if e.is_unavailable() => tokio::time::sleep(Duration::from_millis(100)).await,
            other => return Err(BenchError::new(format!("creating a session: {other:?}"))),
        }
    }
    Err(BenchError::new("no session created on the wanted master in 64 tries"))
}

/// A fresh principal, and a session key for it, on the old master's slots when `on_old` is
/// `Some(true)`, elsewhere when `Some(false)` (a cluster places a user's sessions by the user's
/// tag; about a third of the slots are node 0's). `None` when 64 tries found no such key.
fn placed(
    s: &RedisStore,
    old: &OldSlots,
    name: &str,
    on_old: Option<bool>,
) -> Option<(SessionKey, Principal)> {
    (0..64).find_map(|attempt| {
        let p = named(&format!("{name}-{}-{attempt}", now()));
        let k = key(p.user().tag());
        let fits = on_old.is_none_or(|want| old.holds(&s.session_key(&k)) == want);
        fits.then_some((k, p))
    })
}

/// Loads its session and saves the counter plus one, again and again until told to stop,
/// logging in again every [`LOGIN_EVERY`] rounds; checks each answer and keeps count.
async fn writer(
    s: RedisStore,
    first: (SessionKey, Principal),
    name: String,
    (old, on_old): (OldSlots, Option<bool>),
    tl: Arc<Timeline>,
    durable: bool,
) -> Tally {
    let pol = policy();
    let mut t = Tally::default();
    let mut cur = Used { key: first.0, principal: first.1, created: None, acked: Vec::new() };
    let mut resumed = false;
    let mut round: u64 = 0;
    // Set when the session is gone: log in again before anything else.
    let mut needs_login = false;
    while !tl.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        round += 1;
        if needs_login || round % LOGIN_EVERY == 0 {
            let Some((k, p)) = placed(&s, &old, &format!("{name}-{round}"), on_old) else {
                t.wrong.push(format!("{name}: no session key on the wanted side in 64 tries"));
                continue;
            };
            let started = Instant::now();
            let r = record(Some(&p), &[("n", b"0")]);
            let created = s.create(&k, &r, Some(&login(&p, 0)), now(), &pol).await;
            t.slowest_save = t.slowest_save.max(started.elapsed());
            t.over_bound += u64::from(started.elapsed() > request_bound(durable));
            match created {
                Ok(sesame::CreateOutcome::Created) => {
                    t.logins += 1;
                    let at = Instant::now();
                    let new =
                        Used { key: k, principal: p, created: Some(at), acked: vec![(0, at)] };
                    let old = std::mem::replace(&mut cur, new);
                    // A session found gone was counted already.
                    if !std::mem::take(&mut needs_login) {
                        t.used.push(old);
                    }
                }
                Ok(other) => t.wrong.push(format!("login answered {other:?}")),
                Err(e) if e.is_outcome_unknown() => t.unknown += 1,
                Err(e) if e.is_unavailable() => t.unavailable += 1,
                Err(e) => t.wrong.push(format!("login: {e}")),
            }
            continue;
        }
        let started = Instant::now();
        let loaded = s.load(&cur.key, now(), &pol).await;
        t.slowest_load = t.slowest_load.max(started.elapsed());
        t.over_bound += u64::from(started.elapsed() > request_bound(false));
        t.loads += 1;
        let live = match loaded {
            Ok(Lookup::Live(l)) => l,
            Ok(Lookup::Missing) if cur.created.is_some() => {
                // A login acknowledged by a master whose writes were then lost: log in again.
                cur.take().lost(&mut t);
                needs_login = true;
                continue;
            }
            Ok(other) => {
                t.wrong.push(format!("{}: the session is gone: {other:?}", cur.principal.name()));
                needs_login = true;
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
        let base = &live.record;
        if base.principal.as_ref() != Some(&cur.principal) {
            t.wrong.push(format!(
                "{} read {:?}",
                cur.principal.name(),
                base.principal.as_ref().map(|q| q.name())
            ));
            continue;
        }
        let Some(seen) = counter(base) else {
            t.wrong.push(format!("{}: no counter in {base:?}", cur.principal.name()));
            continue;
        };
        // Writes acknowledged above what the store shows now were lost.
        let first_lost = cur.acked.partition_point(|(v, _)| *v <= seen);
        t.lost.extend(cur.acked.drain(first_lost..));
        let next = seen.saturating_add(1);
        let started = Instant::now();
        let saved =
            s.save(&cur.key, &live, &set(&[("n", next.to_string().as_bytes())]), now(), &pol).await;
        let done = Instant::now();
        t.slowest_save = t.slowest_save.max(done - started);
        t.over_bound += u64::from(done - started > request_bound(durable));
        match saved {
            Ok(SaveOutcome::Saved(r)) => {
                if counter(&r) != Some(next) || r.principal.as_ref() != Some(&cur.principal) {
                    t.wrong.push(format!("{} saved {next}, the store wrote {r:?}", name));
                }
                t.acked += 1;
                cur.acked.push((next, done));
                if !resumed && tl.healed.get().is_some_and(|h| started > *h) {
                    resumed = true;
                    tl.resumed.fetch_add(1, Ordering::Relaxed);
                }
                if tl.during_cut(started) && tl.during_cut(done) {
                    t.acked_during_cut.push(done);
                }
            }
            Ok(SaveOutcome::Missing) if cur.created.is_some() => {
                // As for a load that finds the session gone.
                cur.take().lost(&mut t);
                needs_login = true;
            }
            Ok(other) => t.wrong.push(format!("{name}: save answered {other:?}")),
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
    t.used.push(cur);
    t
}

/// What one run saw.
pub struct Report {
    /// The writers' counts, after the read back.
    pub tally: Tally,
    /// When the cut was made.
    pub cut: Instant,
    /// From the cut until side B had promoted a replica.
    pub promoted: Duration,
    /// From the cut until the heal.
    pub healed: Duration,
    /// The new master's port.
    pub port: u16,
    /// From the heal until the store used the new master: for Sentinel, its current master;
    /// for a cluster, the first load of a session of node 0's slots that succeeded.
    pub followed: Duration,
    /// From the heal until every writer had a write acknowledged again.
    pub resumed: Duration,
    /// Whether every writer had a write acknowledged after the heal.
    pub all_resumed: bool,
}

/// Runs the scenario once on a fresh deployment.
pub async fn run(opts: Options) -> Result<Report, BenchError> {
    let mut d = Deployment::start(opts.topology).await?;
    if opts.writes == Writes::Guard {
        d.set_guard()?;
    }
    let s = store(&d, opts.writes).await?;
    let durable = matches!(opts.writes, Writes::Durable { .. });
    let cluster = d.is_cluster();
    // On a cluster, half the writers keep their sessions on node 0's slots and half
    // elsewhere, at every login: the cut always strands some and spares others.
    let mut firsts = Vec::new();
    for i in 0..opts.writers {
        let on_old = cluster.then_some(i % 2 == 0);
        firsts.push((new_session(&s, &d, &format!("writer-{i}"), on_old).await?, on_old));
    }
    let probe = new_session(&s, &d, "probe", cluster.then_some(true)).await?;
    let tl = Arc::new(Timeline::default());
    let tasks: Vec<_> = firsts
        .into_iter()
        .enumerate()
        .map(|(i, (first, on_old))| {
            let side = (d.old_slots(), on_old);
            tokio::spawn(writer(s.clone(), first, format!("writer-{i}"), side, tl.clone(), durable))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut = d.cut()?;
    let _ = tl.cut.set(cut);
    let port = tokio::task::block_in_place(|| d.wait_for_promotion());
    let promoted = cut.elapsed();
    let port = match port {
        Ok(p) => p,
        Err(e) => {
            tl.stop.store(true, Ordering::Relaxed);
            d.heal()?;
            return Err(e);
        }
    };
    tokio::time::sleep((cut + opts.cut).saturating_duration_since(Instant::now())).await;
    // From the moment the rules start to go, a write may be acknowledged legitimately.
    let healed = Instant::now();
    let _ = tl.healed.set(healed);
    d.heal()?;
    let until = healed + Duration::from_secs(40);
    let followed = follow(&s, &d, port, &probe.0, until).await;
    while tl.resumed.load(Ordering::Relaxed) < opts.writers && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let resumed = healed.elapsed();
    let all_resumed = tl.resumed.load(Ordering::Relaxed) == opts.writers;
    tl.stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await.map_err(err)?);
    }
    read_back(&d, &mut tally).await?;
    Ok(Report {
        tally,
        cut,
        promoted,
        healed: healed - cut,
        port,
        followed: followed.unwrap_or(Duration::MAX),
        resumed,
        all_resumed,
    })
}

/// Waits (until `until`) for the store to use the new master on `port`; how long that took
/// from the heal.
async fn follow(
    s: &RedisStore,
    d: &Deployment,
    port: u16,
    probe: &SessionKey,
    until: Instant,
) -> Option<Duration> {
    let from = Instant::now();
    let want = Some(format!("127.0.0.1:{port}"));
    while Instant::now() < until {
        let there = if d.is_cluster() {
            matches!(s.load(probe, now(), &policy()).await, Ok(Lookup::Live(_)))
        } else {
            s.current_master() == want
        };
        if there {
            return Some(from.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Reads every session the writers used back through a fresh store: a session gone counts as
/// lost, and acknowledged values above its counter as lost updates. Checks the principals.
async fn read_back(d: &Deployment, t: &mut Tally) -> Result<(), BenchError> {
    let fresh = store(d, Writes::Plain).await?;
    for u in std::mem::take(&mut t.used) {
        let mut tries = 0;
        let loaded = loop {
            match fresh.load(&u.key, now(), &policy()).await {
                Err(e) if e.is_unavailable() && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other.map_err(err)?,
            }
        };
        let r = match loaded {
            Lookup::Live(l) => l.record,
            _ => {
                u.lost(t);
                continue;
            }
        };
        if r.principal.as_ref() != Some(&u.principal) {
            t.wrong.push(format!("{}: read back another principal", u.principal.name()));
        }
        let seen = counter(&r).unwrap_or(0);
        t.lost.extend(u.acked.into_iter().filter(|(v, _)| *v > seen));
    }
    Ok(())
}

/// The header of the Markdown table of [`row`].
pub const HEADER: &str = "| topology | writes | cut s | promoted s | acked | acked updates lost | logins | sessions lost | failed | unknown outcome | rolled back | over the bound | slowest load / save ms | followed s | recovered s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// One row of the table.
pub fn row(opts: &Options, r: &Report) -> String {
    let t = &r.tally;
    let topology = match opts.topology {
        Topology::Sentinel { replicas } => format!("Sentinel, {replicas} replica(s)"),
        Topology::Cluster => "Cluster 3+3".to_owned(),
    };
    let writes = match opts.writes {
        Writes::Plain => "plain".to_owned(),
        Writes::Guard => format!("guard (lag {GUARD_LAG_S} s)"),
        Writes::Durable { replicas } => format!("WAIT {replicas}"),
    };
    let secs = |d: Duration| format!("{:.1}", d.as_secs_f64());
    let recovered =
        if r.all_resumed { secs(r.resumed) } else { format!("not within {}", secs(r.resumed)) };
    let followed = if r.followed == Duration::MAX { "never".to_owned() } else { secs(r.followed) };
    format!(
        "| {topology} | {writes} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {followed} | {recovered} |",
        secs(r.healed),
        secs(r.promoted),
        t.acked,
        t.lost.len(),
        t.logins,
        t.sessions_lost.len(),
        t.failed(),
        t.unknown,
        t.rolled_back,
        t.over_bound,
        t.slowest_load.as_millis(),
        t.slowest_save.as_millis(),
    )
}
