//! Helpers shared by `redis_store.rs` and `index.rs` that read Redis directly, through the
//! `redis` crate (sesame-testkit, which is std-only, does not have it): a store on one server,
//! a connection, the raw bytes under a key, a sorted set, every key.
// Each test binary that declares this module may use only part of it.
#![allow(dead_code)]

use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

/// A store on `server`.
pub(crate) async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url()).await.unwrap()
}

/// A new connection to `server`.
pub(crate) fn conn(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url()).unwrap().get_connection().unwrap()
}

/// The raw bytes under a Redis key.
pub(crate) fn raw(server: &RedisServer, redis_key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(redis_key).query(&mut conn(server)).unwrap()
}

/// The members of a sorted set with their scores.
pub(crate) fn zrange(server: &RedisServer, index: &str) -> Vec<(String, u64)> {
    redis::cmd("ZRANGE")
        .arg(index)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut conn(server))
        .unwrap()
}

/// Every key of the server.
pub(crate) fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn(server)).unwrap();
    keys.sort();
    keys
}

/// Sends `sig` (`STOP`, `CONT`) to a process this test started, by its pid.
pub(crate) fn signal(pid: u32, sig: &str) {
    let status =
        std::process::Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
    assert!(status.unwrap().success(), "kill -{sig} {pid}");
}

/// With durability on and the replica stopped, a save waits for it in `WAIT`; meanwhile reads
/// of other sessions (and of the waiting one) are answered; once the replica resumes, the save
/// is acknowledged, although it waited longer than the store's response timeout (which must
/// be under 1 s). `shard` names, for the Redis key of the session saved, the master it is
/// written to and that master's replica.
pub(crate) async fn reads_go_on_while_a_write_waits<'a>(
    s: &RedisStore,
    shard: impl FnOnce(&str) -> (&'a RedisServer, &'a RedisServer),
) {
    use sesame::{Delta, SaveOutcome, Store, Tag};
    use sesame_testkit::conformance::{key, policy, record};

    let pol = policy();
    let keys: Vec<_> = (0..4).map(|_| key(Tag::random().unwrap())).collect();
    for k in &keys {
        sesame_testkit::fixtures::create(s, k, &record(None, &[("a", b"1")]), &pol).await;
    }
    let (master, replica) = shard(&s.session_key(&keys[0]));
    let replica_pid = replica.pid().unwrap();
    signal(replica_pid, "STOP");
    let now = sesame::now_ms;
    let base = s.load(&keys[0], now(), &pol).await.unwrap().live().unwrap();
    let writer = {
        let (s, k) = (s.clone(), keys[0]);
        let d = Delta { set: vec![("b".into(), b"2".to_vec())], ..Delta::default() };
        tokio::spawn(async move { s.save(&k, &base, &d, now(), &policy()).await })
    };
    // The save has reached its WAIT when the master shows a client blocked in it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn(master)).unwrap();
        if clients.contains("cmd=wait") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the save never reached WAIT: {clients}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        for k in &keys {
            assert!(s.load(k, now(), &pol).await.unwrap().is_live());
        }
    }
    // Longer than the callers' response timeout (500 ms): a write may wait for its replicas
    // up to the durability timeout.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!writer.is_finished(), "the save should still be waiting for the stopped replica");
    signal(replica_pid, "CONT");
    let saved = writer.await.unwrap().unwrap();
    assert!(matches!(saved, SaveOutcome::Saved(_)), "{saved:?}");
}
