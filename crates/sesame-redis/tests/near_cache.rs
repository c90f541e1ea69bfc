//! The near cache on real Redis, standalone, Sentinel and Cluster (and on Valkey), with two store instances ("A" and
//! "B", each with its own connections and listeners) as two app instances would have:
//! reads served from the cache, a revocation or a write on A reaching B within a bounded
//! wait, a write on A then a read on B from the same client seeing the write, own writes
//! seen at once, a killed tracking connection never leaving a stale entry in use, and reads
//! racing a revocation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sesame::{SessionConfig, SessionManager, TokenAction};
use sesame_redis::{NearCacheConfig, RedisStore};
use sesame_testkit::{Cluster, Flavor, RedisOptions, RedisServer, SentinelGroup};

/// How long another instance may keep serving a changed session (far above what is
/// measured, see docs/BENCHMARKS.md: the test must not depend on the machine's speed).
const BOUND: Duration = Duration::from_secs(1);
/// The same, where reads race the revocation: readers go on for [`RACE_WINDOW`] after it, so
/// that the test fails if invalidations stop arriving (the cache's entries live up to 5 s).
const RACE_BOUND: Duration = Duration::from_millis(400);
const RACE_WINDOW: Duration = Duration::from_millis(700);

async fn cached(url: &str) -> RedisStore {
    let store =
        RedisStore::builder(url).near_cache(NearCacheConfig::default()).connect().await.unwrap();
    assert!(store.near_cache_stats().unwrap().live, "tracking is on once connect returns");
    store
}

fn manager(store: &RedisStore) -> SessionManager {
    let config = SessionConfig::builder().insecure_development_secret().build().unwrap();
    SessionManager::new(Arc::new(store.clone()), config)
}

fn token(a: TokenAction) -> String {
    match a {
        TokenAction::Set { token, .. } => token.expose(),
        other => panic!("expected a token, got {other:?}"),
    }
}

async fn login(m: &SessionManager, who: &str, n: u64) -> String {
    let s = m.open(None);
    s.login(who).await.unwrap();
    s.insert("n", &n).await.unwrap();
    token(s.commit().await.unwrap())
}

/// `n` as a fresh request on `m` sees it (`None`: no session).
async fn read_n(m: &SessionManager, t: &str) -> Option<u64> {
    let s = m.open(Some(t));
    if !s.exists().await.unwrap() {
        return None;
    }
    let n = s.get::<u64>("n").await.unwrap();
    s.commit().await.unwrap();
    n
}

/// Waits until `m` reads `want` for `t`; returns how long it took, or fails past [`BOUND`].
async fn until_read(m: &SessionManager, t: &str, want: Option<u64>) -> Duration {
    let start = Instant::now();
    loop {
        if read_n(m, t).await == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < BOUND, "still not {want:?} after {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Reads from the cache, revocation and writes across instances, own writes at once.
async fn across_instances(url: &str) {
    let (a, b) = (cached(url).await, cached(url).await);
    let (ma, mb) = (manager(&a), manager(&b));
    let t = login(&ma, "alice", 1).await;

    // B reads it twice: the second read is a hit (no round trip).
    assert_eq!(read_n(&mb, &t).await, Some(1));
    let hits = b.near_cache_stats().unwrap().hits;
    assert_eq!(read_n(&mb, &t).await, Some(1));
    assert_eq!(b.near_cache_stats().unwrap().hits, hits + 1);

    // A write on A, then at once a read on B: B sees it as soon as Redis's invalidation has
    // reached it. Here, with no network between the write's reply and the read (one thread
    // runs both instances), a read can come microseconds before the invalidation; it must
    // converge within the bound. (Across two processes over HTTP: crates/sesame-cli/tests/serve.rs.)
    let (mut early, mut waited) = (0, Duration::ZERO);
    for i in 2..200u64 {
        let s = ma.open(Some(&t));
        s.insert("n", &i).await.unwrap();
        s.commit().await.unwrap();
        if read_n(&mb, &t).await != Some(i) {
            early += 1;
            waited = waited.max(until_read(&mb, &t, Some(i)).await);
        }
    }
    eprintln!("reads on B right after a write on A that came before its invalidation: {early} of 198 (converged within {waited:?})");

    // Own writes at once: B caches, B writes, B reads its own write with no wait.
    assert_eq!(read_n(&mb, &t).await, Some(199));
    let s = mb.open(Some(&t));
    s.insert("n", &500u64).await.unwrap();
    s.commit().await.unwrap();
    assert_eq!(read_n(&mb, &t).await, Some(500));

    // A revocation on A: B rejects the token within the bound; A at once.
    assert_eq!(read_n(&ma, &t).await, Some(500));
    let id = ma.open(Some(&t)).id().await.unwrap().unwrap();
    assert!(ma.revoke_session("alice", &id).await.unwrap());
    assert_eq!(read_n(&ma, &t).await, None, "the revoking instance at once");
    let took = until_read(&mb, &t, None).await;
    eprintln!("revocation reached the other instance in {took:?}");

    // A logout on B and a rotation on A, both seen by the other at once or within the bound.
    let t = login(&ma, "bob", 7).await;
    assert_eq!(read_n(&mb, &t).await, Some(7));
    let s = ma.open(Some(&t));
    s.cycle_id().await.unwrap();
    let rotated = token(s.commit().await.unwrap());
    assert_eq!(read_n(&mb, &rotated).await, Some(7));
    let s = mb.open(Some(&rotated));
    s.logout().await.unwrap();
    s.commit().await.unwrap();
    assert_eq!(read_n(&mb, &rotated).await, None);
    until_read(&ma, &rotated, None).await;
    until_read(&ma, &t, None).await;
}

#[tokio::test]
async fn across_instances_standalone() {
    let server = RedisServer::start();
    across_instances(&server.url()).await;
}

#[tokio::test]
async fn across_instances_sentinel() {
    let group = tokio::task::spawn_blocking(SentinelGroup::start).await.unwrap().unwrap();
    across_instances(&group.url()).await;
}

#[tokio::test]
async fn across_instances_cluster() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap().unwrap();
    across_instances(&cluster.url()).await;
    let nodes: Vec<&RedisServer> = cluster.nodes().iter().collect();
    own_saves(&cluster.url(), &nodes).await;
}

// The same on Valkey 9.1 (its tracking, its invalidations, and saves through its own
// compare-and-set): across instances, a killed listener, own saves staying cached.
#[tokio::test]
async fn on_valkey() {
    let server =
        RedisServer::start_with(RedisOptions { flavor: Flavor::Valkey, ..RedisOptions::default() })
            .unwrap_or_else(|e| panic!("cannot start Valkey: {e}"));
    across_instances(&server.url()).await;
    killed_listener(&server.url(), &[&server]).await;
    own_saves(&server.url(), &[&server]).await;
}

/// Kills every tracking connection on `node`; returns how many.
fn kill_tracking(node: &RedisServer) -> usize {
    let list = node.cli(&["CLIENT", "LIST"]).unwrap();
    let mut killed = 0;
    for line in list.lines() {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name).map(str::to_string))
                .unwrap_or_default()
        };
        if field("flags=").contains('t') {
            node.cli(&["CLIENT", "KILL", "ID", &field("id=")]).unwrap();
            killed += 1;
        }
    }
    killed
}

/// After `CLIENT KILL` of the tracking connections, no stale entry is served: writes made
/// while B had no listener are seen, and the cache is used again once tracking is back.
async fn killed_listener(url: &str, nodes: &[&RedisServer]) {
    let (a, b) = (cached(url).await, cached(url).await);
    let (ma, mb) = (manager(&a), manager(&b));
    let t = login(&ma, "carol", 1).await;
    for round in 0..5u64 {
        assert_eq!(read_n(&mb, &t).await, Some(round * 10 + 1));
        let flushes = b.near_cache_stats().unwrap().flushes;
        let killed: usize = nodes.iter().map(|n| kill_tracking(n)).sum();
        assert!(killed >= 2, "both instances' listeners were found (round {round}): {killed}");
        let s = ma.open(Some(&t));
        s.insert("n", &(round * 10 + 5)).await.unwrap();
        s.commit().await.unwrap();
        // The write above sent B no invalidation (its listener was gone): B must not serve
        // its entry from before. The disconnection emptied and switched off its cache.
        assert_eq!(read_n(&mb, &t).await, Some(round * 10 + 5), "round {round}");
        assert!(b.near_cache_stats().unwrap().flushes > flushes, "B flushed on the disconnect");
        // Tracking comes back by itself, and with it the hits.
        let start = Instant::now();
        while !(a.near_cache_stats().unwrap().live && b.near_cache_stats().unwrap().live) {
            assert!(start.elapsed() < Duration::from_secs(10), "tracking did not come back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let s = ma.open(Some(&t));
        s.insert("n", &(round * 10 + 11)).await.unwrap();
        s.commit().await.unwrap();
        until_read(&mb, &t, Some(round * 10 + 11)).await;
        let hits = b.near_cache_stats().unwrap().hits;
        assert_eq!(read_n(&mb, &t).await, Some(round * 10 + 11));
        assert_eq!(
            b.near_cache_stats().unwrap().hits,
            hits + 1,
            "hits again after tracking is back"
        );
    }
}

#[tokio::test]
async fn killed_listener_standalone() {
    let server = RedisServer::start();
    killed_listener(&server.url(), &[&server]).await;
}

#[tokio::test]
async fn killed_listener_cluster() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap().unwrap();
    let masters = cluster.masters().unwrap();
    let nodes: Vec<&RedisServer> = masters.iter().map(|&i| &cluster.nodes()[i]).collect();
    killed_listener(&cluster.url(), &nodes).await;
}

// A request that reads and saves its session (the benchmark's `/me`) needs one round trip
// once the session is cached: the save's record is kept, so the next request's read is a
// hit, with no GET sent; a save on another instance still reaches it.
#[tokio::test]
async fn own_saves_stay_cached() {
    let server = RedisServer::start();
    own_saves(&server.url(), &[&server]).await;
}

/// [`own_saves_stay_cached`] on the deployment at `url` whose data nodes are `nodes`.
async fn own_saves(url: &str, nodes: &[&RedisServer]) {
    let (a, b) = (cached(url).await, cached(url).await);
    let (ma, mb) = (manager(&a), manager(&b));
    let t = login(&ma, "erin", 1).await;
    assert_eq!(read_n(&ma, &t).await, Some(1));
    // GETs sent as commands, on every node: each save's script runs one GET of its own,
    // counted alike (replicas run neither).
    let gets = || -> u64 {
        let mut total = 0;
        for node in nodes {
            let stats = node.cli(&["INFO", "commandstats"]).unwrap();
            let calls = |name: &str| {
                stats
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
                    .and_then(|l| l.split(',').next())
                    .map_or(0, |n| n.parse::<u64>().unwrap())
            };
            total += calls("get") - calls("evalsha");
        }
        total
    };
    let (hits, before) = (a.near_cache_stats().unwrap().hits, gets());
    for i in 2..52u64 {
        let s = ma.open(Some(&t));
        let n = s.get::<u64>("n").await.unwrap().unwrap();
        assert_eq!(n, i - 1, "each request sees the save before it");
        s.insert("n", &i).await.unwrap();
        s.commit().await.unwrap();
        // The own invalidation has had time to arrive before the next request.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The first read may come before the login's own invalidation; after that, hits only.
    let (hits, reads) = (a.near_cache_stats().unwrap().hits - hits, gets() - before);
    eprintln!("50 read-and-save requests: {hits} cache hits, {reads} GETs sent");
    assert!(hits >= 49 && reads <= 1, "{hits} hits, {reads} GETs");
    // Another instance's save still reaches A.
    let s = mb.open(Some(&t));
    s.insert("n", &1000u64).await.unwrap();
    s.commit().await.unwrap();
    until_read(&ma, &t, Some(1000)).await;
}

/// Lets `tasks` (each listing when its requests started and whether they found the session)
/// run for [`RACE_WINDOW`] after a revocation that returned at `revoked`, stops them, and
/// checks that none that started [`RACE_BOUND`] after it found the session; returns how many
/// that started after it did.
async fn late_finds(
    mut tasks: tokio::task::JoinSet<Vec<(Instant, bool)>>,
    stop: &std::sync::atomic::AtomicBool,
    revoked: Instant,
) -> usize {
    tokio::time::sleep(RACE_WINDOW).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut late = 0;
    while let Some(seen) = tasks.join_next().await {
        for (started, live) in seen.unwrap() {
            if live && started > revoked {
                late += 1;
                let after = started - revoked;
                assert!(
                    after < RACE_BOUND,
                    "a request {after:?} after the revocation found the session"
                );
            }
        }
    }
    late
}

// Read-and-save requests on A (its saves kept in its cache) racing "log out everywhere" on B,
// many rounds: the revocation also changes the user's index, so it drops A's entry even when
// Redis folds it into the same announcement as A's own save. No request that starts after
// the revocation returned plus the bound finds the session.
#[tokio::test]
async fn own_saves_racing_a_revocation_of_the_user() {
    let server = RedisServer::start();
    let (a, b) = (cached(&server.url()).await, cached(&server.url()).await);
    let (ma, mb) = (manager(&a), manager(&b));
    let mut late = 0;
    for round in 0..10 {
        // Two sessions of the user, one writer each (concurrent saves of one session would
        // keep each other out of the cache).
        let tokens = [login(&ma, "frank", round).await, login(&ma, "frank", round).await];
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writers = tokio::task::JoinSet::new();
        for t in tokens {
            let (ma, stop) = (ma.clone(), stop.clone());
            writers.spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    let s = ma.open(Some(&t));
                    let live = s.exists().await.unwrap();
                    if live {
                        let n = s.get::<u64>("n").await.unwrap().unwrap_or(0);
                        s.insert("n", &(n + 1)).await.unwrap();
                        // A save racing the revocation may find the session gone (401).
                        let _ = s.commit().await;
                    }
                    seen.push((started, live));
                    tokio::task::yield_now().await;
                }
                seen
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(mb.revoke_user("frank").await.unwrap(), 2);
        late += late_finds(writers, &stop, Instant::now()).await;
    }
    eprintln!(
        "requests that started after the revocation returned and still found the session: {late}"
    );
    assert!(a.near_cache_stats().unwrap().hits > 0);
}

// Reads on B racing a revocation on A, many rounds: no read that starts after the
// revocation returned plus the bound finds the session, and every read finds it or not
// (never an error); B's cache is in use throughout.
#[tokio::test]
async fn reads_racing_a_revocation() {
    let server = RedisServer::start();
    let (a, b) = (cached(&server.url()).await, cached(&server.url()).await);
    let (ma, mb) = (manager(&a), manager(&b));
    let mut late = 0;
    for round in 0..10 {
        let t = login(&ma, "dave", round).await;
        assert_eq!(read_n(&mb, &t).await, Some(round));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (mb, t, stop) = (mb.clone(), t.clone(), stop.clone());
            readers.spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    seen.push((started, read_n(&mb, &t).await.is_some()));
                    tokio::task::yield_now().await;
                }
                seen
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let id = ma.open(Some(&t)).id().await.unwrap().unwrap();
        assert!(ma.revoke_session("dave", &id).await.unwrap());
        late += late_finds(readers, &stop, Instant::now()).await;
    }
    eprintln!("reads that started after a revocation returned and still found the session: {late}");
    assert!(b.near_cache_stats().unwrap().hits > 0);
}

// What the own-save rule of the near cache rests on (`near.rs`, "Own saves"), checked on the
// Redis in use: in broadcast mode, the keys changed in one turn of Redis's event loop (here a
// script, and a transaction) are announced in one message, each key once, and changes made in
// later turns in later messages.
#[tokio::test]
async fn broadcast_announces_one_turn_in_one_message() {
    use redis::AsyncCommands;
    let server = RedisServer::start();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listen = redis::Client::open(format!("{}?protocol=resp3", server.url())).unwrap();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut listener = listen.get_multiplexed_async_connection_with_config(&config).await.unwrap();
    let () = redis::cmd("CLIENT")
        .arg(&["TRACKING", "ON", "BCAST", "PREFIX", "t:"])
        .query_async(&mut listener)
        .await
        .unwrap();
    let mut writer = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let next = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>| {
        let info = rx.try_recv().expect("an announcement");
        assert_eq!(info.kind, redis::PushKind::Invalidate);
        let mut keys: Vec<String> = match info.data.as_slice() {
            [redis::Value::Array(items)] => {
                items.iter().map(|v| redis::from_redis_value(v.clone()).unwrap()).collect()
            }
            other => panic!("{other:?}"),
        };
        keys.sort();
        keys
    };
    let settle = || tokio::time::sleep(Duration::from_millis(200));

    // A script: a session key written twice and the user's index, in one turn.
    let script = "redis.call('SET', KEYS[1], 'a') redis.call('ZADD', KEYS[2], 1, 'm') \
                  redis.call('SET', KEYS[1], 'b') return 1";
    let _: i64 = redis::cmd("EVAL")
        .arg(&[script, "2", "t:{u}:s:1", "t:{u}:u:1"])
        .query_async(&mut writer)
        .await
        .unwrap();
    settle().await;
    assert_eq!(next(&mut rx), ["t:{u}:s:1", "t:{u}:u:1"]);
    assert!(rx.try_recv().is_err(), "one message for the turn");

    // A transaction: one turn as well.
    let mut p = redis::pipe();
    p.atomic().set("t:{u}:s:2", "x").del("t:{u}:s:1").set("t:{u}:s:2", "y");
    let () = p.query_async::<()>(&mut writer).await.unwrap();
    settle().await;
    assert_eq!(next(&mut rx), ["t:{u}:s:1", "t:{u}:s:2"]);
    assert!(rx.try_recv().is_err(), "one message for the turn");

    // Two turns: two messages, in order.
    let () = writer.set("t:{u}:s:1", "c").await.unwrap();
    let () = writer.set("t:{u}:s:2", "d").await.unwrap();
    settle().await;
    assert_eq!(next(&mut rx), ["t:{u}:s:1"]);
    assert_eq!(next(&mut rx), ["t:{u}:s:2"]);
}
