//! The store on Valkey: the whole conformance suite on a real Valkey server (standalone and a
//! 3-master/3-replica cluster), with saves through Valkey's own compare-and-set
//! (`SET … IFEQ … KEEPTTL`, Valkey 8.1 and later) instead of the save script; the exact
//! commands of each kind of save; no lost update between two app instances; and the fall-back
//! to the script when the server turns out not to know `IFEQ`.
//!
//! The Valkey server is the one `SESAME_VALKEY_SERVER` names (`scripts/test.sh` fetches
//! Valkey 9.1 and sets it), else `valkey-server` from `PATH`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sesame::{Delta, Lookup, Policy, SaveOutcome, SessionKey, Store, Tag};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{self, key, policy, record, DynStore};
use sesame_testkit::fixtures::now;
use sesame_testkit::{
    Cluster, ClusterOptions, Flavor, RedisOptions, RedisServer, SentinelGroup, SentinelOptions,
};

fn valkey() -> RedisServer {
    RedisServer::start_with(RedisOptions { flavor: Flavor::Valkey, ..RedisOptions::default() })
        .unwrap_or_else(|e| panic!("cannot start Valkey: {e}"))
}

async fn make() -> (DynStore, RedisServer) {
    let server = valkey();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    assert!(store.uses_native_compare_and_set(), "Valkey 8.1+ saves natively");
    (Arc::new(store), server)
}

sesame_testkit::conformance_tests!(make);

/// Commands the server ran while `f` ran, by name (the measuring commands left out).
async fn commands<Fut: std::future::Future<Output = T>, T>(
    server: &RedisServer,
    f: impl FnOnce() -> Fut,
) -> (BTreeMap<String, u64>, T) {
    server.reset_stats().unwrap();
    let out = f().await;
    let mut stats = server.info_commandstats().unwrap();
    stats.retain(|name, _| !name.starts_with("config") && name != "info");
    (stats, out)
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(n, c)| (n.to_string(), c)).collect()
}

async fn live(store: &RedisStore, k: &SessionKey, pol: &Policy) -> sesame::Loaded {
    match store.load(k, now(), pol).await.unwrap() {
        Lookup::Live(l) => l,
        other => panic!("not live: {other:?}"),
    }
}

/// A new anonymous session on `store`, and its first load (the base of a save).
async fn new_session(store: &RedisStore, pol: &Policy) -> (SessionKey, sesame::Loaded) {
    let k = key(Tag::random().unwrap());
    store.create(&k, &record(None, &[]), None, now(), pol).await.unwrap();
    (k, live(store, &k, pol).await)
}

fn set_n(n: u64) -> Delta {
    Delta { set: vec![("n".into(), n.to_be_bytes().to_vec())], ..Delta::default() }
}

// A save that is not due a touch is one `SET … IFEQ`; one that meets another write first runs
// the script to learn what is stored, and merges; one due a touch is the script (it also moves
// the index). On Redis 7 the same save is the script.
#[tokio::test]
async fn each_kind_of_save_sends_its_commands() {
    let server = valkey();
    let s = RedisStore::connect(&server.url()).await.unwrap();
    let pol = policy();
    let (k, base) = new_session(&s, &pol).await;

    let (cmds, out) =
        commands(&server, || async { s.save(&k, &base, &set_n(1), now(), &pol).await }).await;
    assert!(matches!(out.unwrap(), SaveOutcome::Saved(_)));
    assert_eq!(cmds, counts(&[("set", 1)]), "a plain save is one native compare-and-set");

    // The same stale base again: the native write does not apply, the script finds the record
    // changed, and the save merges into it and writes natively.
    let (cmds, out) =
        commands(&server, || async { s.save(&k, &base, &set_n(2), now(), &pol).await }).await;
    let SaveOutcome::Saved(r) = out.unwrap() else { panic!("not saved") };
    assert_eq!(r.version, 3, "merged on top of the first save");
    assert_eq!(cmds, counts(&[("set", 2), ("evalsha", 1), ("get", 1), ("pttl", 1)]));

    // Past the touch interval: the script, which also sets the TTL.
    let later = now() + pol.touch_after_ms + 1;
    let fresh = live(&s, &k, &pol).await;
    let (cmds, out) =
        commands(&server, || async { s.save(&k, &fresh, &set_n(3), later, &pol).await }).await;
    assert!(matches!(out.unwrap(), SaveOutcome::Saved(_)));
    assert_eq!(cmds, counts(&[("evalsha", 1), ("get", 1), ("set", 1)]));

    // A session that is gone: nothing written.
    s.destroy(&k, now()).await.unwrap();
    let (cmds, out) =
        commands(&server, || async { s.save(&k, &fresh, &set_n(4), now(), &pol).await }).await;
    assert!(matches!(out.unwrap(), SaveOutcome::Missing));
    assert_eq!(cmds, counts(&[("set", 1), ("evalsha", 1), ("get", 1)]));
    assert!(raw_get(&server, &s, &k).is_empty(), "nothing created");

    let redis = RedisServer::start();
    let r = RedisStore::connect(&redis.url()).await.unwrap();
    assert!(!r.uses_native_compare_and_set(), "Redis 7 has no SET IFEQ");
    let (k, base) = new_session(&r, &pol).await;
    let (cmds, out) =
        commands(&redis, || async { r.save(&k, &base, &set_n(1), now(), &pol).await }).await;
    assert!(matches!(out.unwrap(), SaveOutcome::Saved(_)));
    assert_eq!(cmds, counts(&[("evalsha", 1), ("get", 1), ("set", 1)]));
}

fn raw_get(server: &RedisServer, s: &RedisStore, k: &SessionKey) -> String {
    server.cli(&["GET", &s.session_key(k)]).unwrap()
}

// Two app instances, each with 20 concurrent requests that loaded the same record, append to
// one attribute, 5 rounds: every append is there exactly once, and every set of another
// attribute too. The native compare-and-set refuses every stale write, as the script does.
#[tokio::test]
async fn two_instances_lose_no_update_under_the_native_compare_and_set() {
    let server = valkey();
    let instances = [
        RedisStore::connect(&server.url()).await.unwrap(),
        RedisStore::connect(&server.url()).await.unwrap(),
    ];
    let pol = policy();
    for round in 0..5u64 {
        let k = key(Tag::random().unwrap());
        let empty = sesame::value::encode(&Vec::<u64>::new(), usize::MAX).unwrap();
        instances[0]
            .create(&k, &record(None, &[("list", &empty)]), None, now(), &pol)
            .await
            .unwrap();
        let base = live(&instances[0], &k, &pol).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(40));
        let mut tasks = Vec::new();
        for i in 0..40u64 {
            let s = instances[(i % 2) as usize].clone();
            let (base, barrier, pol) = (base.clone(), barrier.clone(), pol.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let d = Delta {
                    set: vec![(format!("a{i}"), vec![1])],
                    update: vec![conformance::append(
                        "list",
                        base.record.attrs.get("list").cloned(),
                        round * 100 + i,
                    )],
                    ..Delta::default()
                };
                s.save(&k, &base, &d, now(), &pol).await.unwrap()
            }));
        }
        let mut versions = BTreeSet::new();
        for t in tasks {
            let SaveOutcome::Saved(r) = t.await.unwrap() else { panic!("not saved") };
            assert!(versions.insert(r.version), "every write has its own version");
        }
        let got = live(&instances[1], &k, &pol).await.record;
        let mut list: Vec<u64> = sesame::value::decode(&got.attrs["list"]).unwrap();
        list.sort_unstable();
        assert_eq!(list, (0..40).map(|i| round * 100 + i).collect::<Vec<_>>(), "round {round}");
        assert_eq!(got.attrs.len(), 41, "every set kept");
        assert_eq!(got.version, 41);
    }
}

// A store that connected to Valkey and then meets a server without `SET … IFEQ` (here Redis 7
// started in its place on the same port) falls back to the script at the first save: that
// save gets its true answer (the session is gone with the old server's memory), and later
// saves work.
#[tokio::test]
async fn a_server_without_ifeq_turns_the_native_save_off() {
    let mut server = valkey();
    let s = RedisStore::connect(&server.url()).await.unwrap();
    assert!(s.uses_native_compare_and_set());
    let pol = policy();
    let (k, base) = new_session(&s, &pol).await;
    let logs = sesame_testkit::logs::Captured::default();
    let _guard = logs.install(tracing::Level::WARN);
    server.start_again_as(Flavor::Redis).unwrap();
    // The first command after the switch may meet the dropped connection; reads are retried.
    let mut first = s.save(&k, &base, &set_n(1), now(), &pol).await;
    if first.is_err() {
        first = s.save(&k, &base, &set_n(1), now(), &pol).await;
    }
    assert!(matches!(first, Ok(SaveOutcome::Missing)), "{first:?}");
    assert!(!s.uses_native_compare_and_set(), "turned off by the syntax error");
    let warned = logs.text().matches("refused SET … IFEQ").count();
    assert_eq!(warned, 1, "one warning: {}", logs.text());
    let (k, base) = new_session(&s, &pol).await;
    let (cmds, out) =
        commands(&server, || async { s.save(&k, &base, &set_n(2), now(), &pol).await }).await;
    assert!(matches!(out, Ok(SaveOutcome::Saved(_))), "{out:?}");
    assert_eq!(cmds, counts(&[("evalsha", 1), ("get", 1), ("set", 1)]));
    assert_eq!(logs.text().matches("refused SET … IFEQ").count(), 1, "warned once only");
}

// The conformance suite on a Valkey cluster (3 masters, 3 replicas): every master saves
// natively.
#[tokio::test]
async fn conformance_on_a_valkey_cluster() {
    let cluster =
        Cluster::start_with(ClusterOptions { flavor: Flavor::Valkey, ..Default::default() })
            .unwrap_or_else(|e| panic!("cannot start a Valkey cluster: {e}"));
    let url = cluster.url();
    let probe = RedisStore::connect(&url).await.unwrap();
    assert!(probe.uses_native_compare_and_set(), "every master is Valkey 9.1");
    conformance::run_all(|| {
        let url = url.clone();
        async move { Arc::new(RedisStore::connect(&url).await.unwrap()) as DynStore }
    })
    .await;
    // The native saves did run on the masters.
    let sets: u64 = cluster
        .nodes()
        .iter()
        .filter_map(|n| n.info_commandstats().ok())
        .filter_map(|s| s.get("set").copied())
        .sum();
    assert!(sets > 0, "no SET reached the masters");
}

// The conformance suite on a Valkey Sentinel group (a master, two replicas, three Valkey
// sentinels); then a switchover, after which a session written before it saves natively on the
// new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_and_a_switchover_on_a_valkey_sentinel_group() {
    let group = tokio::task::spawn_blocking(|| {
        SentinelGroup::start_with(SentinelOptions {
            flavor: Flavor::Valkey,
            replicas: 2,
            ..SentinelOptions::default()
        })
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot start a Valkey Sentinel group: {e}"));
    let url = group.url();
    let s = RedisStore::connect(&url).await.unwrap();
    assert!(s.uses_native_compare_and_set());
    conformance::run_all(|| {
        let url = url.clone();
        async move { Arc::new(RedisStore::connect(&url).await.unwrap()) as DynStore }
    })
    .await;

    let pol = policy();
    let k = key(Tag::random().unwrap());
    s.create(&k, &record(None, &[]), None, now(), &pol).await.unwrap();
    let first = group.current_master_port().unwrap();
    let master = group.data_nodes().iter().find(|n| n.port() == first).unwrap();
    master.cli(&["WAIT", "2", "5000"]).unwrap();
    group.sentinel_cli(0, &["SENTINEL", "FAILOVER", group.master_name()]).unwrap();
    let second = tokio::task::block_in_place(|| {
        group.wait_for_failover(first, std::time::Duration::from_secs(30)).unwrap()
    });
    let new_master = group.data_nodes().iter().find(|n| n.port() == second).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let saved = loop {
        let attempt = async {
            let base = match s.load(&k, now(), &pol).await? {
                Lookup::Live(l) => l,
                other => panic!("the session did not survive the switchover: {other:?}"),
            };
            new_master.reset_stats().unwrap();
            s.save(&k, &base, &set_n(7), now(), &pol).await
        };
        match attempt.await {
            Ok(out) => break out,
            Err(sesame::StoreError::Unavailable { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no save after the switchover: {e}"),
        }
    };
    assert!(matches!(saved, SaveOutcome::Saved(_)), "{saved:?}");
    let stats = new_master.info_commandstats().unwrap();
    assert_eq!(stats.get("set"), Some(&1), "a native save on the new master: {stats:?}");
    assert_eq!(stats.get("evalsha"), None, "{stats:?}");
    assert!(s.uses_native_compare_and_set());
}

// After Valkey restarts (with AOF), the first native save of each of two instances (sent on a
// connection the restart broke, then once more on the fresh one: a delta of sets is safe to
// send twice) succeeds, and nothing is lost.
#[tokio::test]
async fn first_native_save_after_a_restart_succeeds() {
    let mut server = RedisServer::start_with(RedisOptions {
        flavor: Flavor::Valkey,
        appendonly: true,
        ..RedisOptions::default()
    })
    .unwrap();
    let instances = [
        RedisStore::connect(&server.url()).await.unwrap(),
        RedisStore::connect(&server.url()).await.unwrap(),
    ];
    let pol = policy();
    let mut keys = Vec::new();
    let mut bases = Vec::new();
    for s in &instances {
        let (k, base) = new_session(s, &pol).await;
        bases.push(base);
        keys.push(k);
    }
    server.stop();
    server.start_again().unwrap();
    for (i, s) in instances.iter().enumerate() {
        let out = s.save(&keys[i], &bases[i], &set_n(5), now(), &pol).await;
        assert!(matches!(out, Ok(SaveOutcome::Saved(_))), "first save on instance {i}: {out:?}");
        assert!(s.uses_native_compare_and_set());
    }
    for (i, k) in keys.iter().enumerate() {
        let got = live(&instances[1 - i], k, &pol).await.record;
        assert_eq!(got.attrs["n"], 5u64.to_be_bytes().to_vec(), "instance {i}'s save is there");
        assert_eq!(got.version, 2);
    }
}

/// The store conformance suite with the near cache on, on Valkey (its `CLIENT TRACKING`
/// broadcast invalidations and the native saves together).
mod near_cache {
    use super::*;

    async fn make() -> (DynStore, RedisServer) {
        let server = valkey();
        let store = RedisStore::builder(server.url())
            .near_cache(sesame_redis::NearCacheConfig::default())
            .connect()
            .await
            .unwrap();
        assert!(store.near_cache_stats().unwrap().live && store.uses_native_compare_and_set());
        (Arc::new(store), server)
    }

    sesame_testkit::conformance_tests!(make);
}

// With the durability option, a native save travels with its `WAIT` too: acknowledged once the
// replica has it (a lost race included: the script's answer waits as well); with the replica
// gone, the save fails as unavailable, its outcome unknown.
#[tokio::test]
async fn native_saves_wait_for_replicas_or_fail() {
    let master = valkey();
    let mut replica = RedisServer::start_with(RedisOptions {
        flavor: Flavor::Valkey,
        extra_args: vec!["--replicaof".into(), "127.0.0.1".into(), master.port().to_string()],
        ..RedisOptions::default()
    })
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while master.cli(&["WAIT", "1", "200"]).unwrap() != "1" {
        assert!(std::time::Instant::now() < deadline, "replica never synced: {}", replica.log());
    }
    let s = RedisStore::builder(master.url())
        .durability(1, std::time::Duration::from_millis(1000))
        .connect()
        .await
        .unwrap();
    assert!(s.uses_native_compare_and_set());
    let pol = policy();
    let (k, base) = new_session(&s, &pol).await;
    let (cmds, out) =
        commands(&master, || async { s.save(&k, &base, &set_n(1), now(), &pol).await }).await;
    assert!(matches!(out, Ok(SaveOutcome::Saved(_))), "{out:?}");
    assert_eq!((cmds.get("set"), cmds.get("evalsha")), (Some(&1), None), "{cmds:?}");
    assert_eq!(cmds.get("wait"), Some(&1), "{cmds:?}");
    let on_replica = replica.cli(&["GET", &s.session_key(&k)]).unwrap();
    assert_eq!(on_replica, master.cli(&["GET", &s.session_key(&k)]).unwrap(), "replicated");
    // A stale base: native SET + WAIT, the script + WAIT, native SET + WAIT.
    let (cmds, out) =
        commands(&master, || async { s.save(&k, &base, &set_n(2), now(), &pol).await }).await;
    assert!(matches!(out, Ok(SaveOutcome::Saved(_))), "{out:?}");
    assert_eq!(
        (cmds.get("set"), cmds.get("evalsha"), cmds.get("wait")),
        (Some(&2), Some(&1), Some(&3))
    );

    replica.stop();
    let base = live(&s, &k, &pol).await;
    let e = s.save(&k, &base, &set_n(3), now(), &pol).await.unwrap_err();
    assert!(
        matches!(&e, sesame::StoreError::Unavailable { message, .. }
            if message.contains("not confirmed by 1 replica") && message.contains("outcome unknown")),
        "{e}"
    );
}
