//! Redis-specific behaviour of the store, on real spawned redis-server processes: hostile
//! bytes, what Redis holds (digests only, index keys that expire with the idle deadlines of
//! their sessions and do not outlive them), authentication and TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sesame::{Delta, Store, StoreError, Tag, TokenCodec};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{policy, principal, record};
use sesame_testkit::{RedisOptions, RedisServer};

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url()).await.unwrap()
}

// Hostile bytes under a session key give a clear "malformed" error on load and save, never a
// panic, and a save does not overwrite them.
#[tokio::test]
async fn hostile_bytes_in_redis_are_an_error() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let p = policy();
    let hostile: [&[u8]; 6] = [
        b"",
        b"not msgpack at all",
        &[0x96, 0x01],
        &[0x96, 1, 2, 3, 0xc0, 0xc0, 0xdf, 0xff, 0xff, 0xff, 0xff],
        &[0x96, 0xa1, b'x', 2, 3, 0xc0, 0xc0, 0x80],
        &[0x96, 1, 2, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0x80],
    ];
    for bytes in hostile {
        let k = TokenCodec::default().generate(Tag::random().unwrap()).unwrap().key();
        let redis_key = s.session_key(&k);
        let mut conn = redis::Client::open(server.url()).unwrap();
        let _: () = redis::cmd("SET")
            .arg(&redis_key)
            .arg(bytes)
            .arg("PX")
            .arg(60_000)
            .query(&mut conn)
            .unwrap();
        match s.load(&k, sesame::now_ms(), &p).await {
            Err(StoreError::Corrupt(_)) => {}
            // A record whose absolute deadline lies in the past is simply absent.
            Ok(None) => {}
            other => panic!("load of {bytes:?}: {other:?}"),
        }
        let d = Delta { set: vec![("a".into(), b"1".to_vec())], ..Delta::default() };
        // The caller's idea of the record differs from the stored bytes, so the store reads
        // what is there, and must refuse it.
        let r = s.save(&k, &record(None, &[]), &d, sesame::now_ms(), &p).await;
        assert!(
            r.is_err() || matches!(r, Ok(sesame::SaveOutcome::Missing)),
            "save over {bytes:?}: {r:?}"
        );
        let after: Option<Vec<u8>> = redis::cmd("GET").arg(&redis_key).query(&mut conn).unwrap();
        if let Some(after) = after {
            assert_eq!(after, bytes, "hostile value left as it was");
        }
    }
}

// Redis holds digests only: after SCAN and a dump of every key, no token (nor its random
// part) is found anywhere.
#[tokio::test]
async fn redis_never_holds_a_token() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let codec = TokenCodec::default();
    let mut tokens = Vec::new();
    for i in 0..20 {
        let who = principal();
        let tag = if i % 2 == 0 { Tag::for_principal(&who) } else { Tag::random().unwrap() };
        let t = codec.generate(tag).unwrap();
        let r = record((i % 2 == 0).then_some(who.as_str()), &[("a", b"\x01\"v\"")]);
        assert!(s.create(&t.key(), &r, sesame::now_ms(), &policy()).await.unwrap());
        tokens.push(t.expose());
    }
    let keys = server.cli(&["--scan"]).unwrap();
    let mut dump = keys.clone();
    for k in keys.lines() {
        let kind = server.cli(&["TYPE", k]).unwrap();
        let content = match kind.as_str() {
            "string" => server.cli(&["GET", k]).unwrap(),
            "zset" => server.cli(&["ZRANGE", k, "0", "-1", "WITHSCORES"]).unwrap(),
            other => panic!("unexpected key type {other} for {k}"),
        };
        dump.push_str(&content);
    }
    assert_eq!(keys.lines().count(), 30, "20 sessions + 10 user indexes: {keys}");
    for t in &tokens {
        assert!(!dump.contains(t.as_str()), "token found in Redis");
        assert!(!dump.contains(&t[8..48]), "token's random part found in Redis");
    }
}

/// PTTL of each key, read in one pipeline (one server instant, so they compare exactly).
fn pttls(server: &RedisServer, keys: &[&str]) -> Vec<i64> {
    let mut conn = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let mut p = redis::pipe();
    for k in keys {
        p.cmd("PTTL").arg(*k);
    }
    p.query(&mut conn).unwrap()
}

/// Waits (up to 1 s) for the server's active expiry to reclaim every expired key.
async fn wait_for_empty_db(server: &RedisServer) -> String {
    let mut size = String::new();
    for _ in 0..20 {
        size = server.cli(&["DBSIZE"]).unwrap();
        if size == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    size
}

// A principal's index key expires with the idle deadline of its sessions (not their absolute
// deadline), capped like theirs by the absolute one, and is deleted when its last session is
// revoked or taken: index keys never pile up.
#[tokio::test]
async fn index_keys_do_not_outlive_sessions() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let who = principal();
    let index = s.index_key(&who);
    // Idle 60 s, absolute 1 h: the index follows the idle TTL.
    let k0 = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    s.create(&k0, &record(Some(&who), &[]), sesame::now_ms(), &policy()).await.unwrap();
    let [session, idx] = pttls(&server, &[&s.session_key(&k0), &index])[..] else { panic!() };
    assert!(session > 0 && session <= policy().idle_ms as i64, "session TTL: {session}");
    assert!(idx >= session && idx <= session + 50, "index TTL follows the idle TTL: {idx}");
    assert_eq!(s.revoke_all(&who, None).await.unwrap(), 1);
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "0", "revoke-all leaves no index key");
    // An absolute deadline 1.5 s away caps both TTLs.
    let k = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    let mut r = record(Some(&who), &[]);
    r.absolute_ms = sesame::now_ms() + 1_500;
    s.create(&k, &r, sesame::now_ms(), &policy()).await.unwrap();
    let [session, idx] = pttls(&server, &[&s.session_key(&k), &index])[..] else { panic!() };
    assert!(session > 0 && session <= 1_500, "session TTL capped: {session}");
    assert!(idx > 0 && idx <= session + 50, "index TTL capped like the session's: {idx}");
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert_eq!(server.cli(&["EXISTS", &index]).unwrap(), "0");
    assert_eq!(wait_for_empty_db(&server).await, "0", "nothing left behind");
    let k2 = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    s.create(&k2, &record(Some(&who), &[]), sesame::now_ms(), &policy()).await.unwrap();
    assert_eq!(s.revoke_all(&who, None).await.unwrap(), 1);
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "0", "revoke-all leaves no index key");
    let k3 = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    s.create(&k3, &record(Some(&who), &[]), sesame::now_ms(), &policy()).await.unwrap();
    assert!(s.destroy(&k3).await.unwrap());
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "0", "logout leaves no index key");
}

// Sessions that die by their idle timeout (the usual death, long before the absolute
// deadline) take their index key with them, even when one of them was touched later than the
// others: once all are expired, nothing is left in Redis.
#[tokio::test]
async fn index_key_expires_with_idle_sessions() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = sesame::Policy { idle_ms: 1_200, touch_after_ms: 200, ..policy() };
    let who = principal();
    let index = s.index_key(&who);
    let mut keys = Vec::new();
    for _ in 0..3 {
        let k = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
        assert!(s.create(&k, &record(Some(&who), &[]), sesame::now_ms(), &pol).await.unwrap());
        keys.push(k);
    }
    let idx = pttls(&server, &[&index])[0];
    assert!(idx > 0 && idx <= 1_200, "index TTL is the idle TTL, not the absolute: {idx}");
    // The last session is used once more 400 ms in: it now outlives the others, and the index
    // with it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.load(&keys[2], sesame::now_ms(), &pol).await.unwrap().is_some());
    let [last, idx] = pttls(&server, &[&s.session_key(&keys[2]), &index])[..] else { panic!() };
    assert!(last > 1_000, "touched: {last}");
    assert!(idx >= last && idx <= last + 50, "index follows the latest idle deadline: {idx}");
    // 1.3 s after creation: the untouched sessions are gone, the touched one and the index not.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(s.load(&keys[0], sesame::now_ms(), &pol).await.unwrap().is_none());
    assert_eq!(server.cli(&["EXISTS", &index]).unwrap(), "1", "a member is still alive");
    assert_eq!(s.list_user(&who, sesame::now_ms()).await.unwrap().len(), 1);
    // Past the touched session's idle deadline: everything is gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(s.load(&keys[2], sesame::now_ms(), &pol).await.unwrap().is_none());
    assert_eq!(server.cli(&["EXISTS", &index]).unwrap(), "0", "the index died with them");
    assert_eq!(wait_for_empty_db(&server).await, "0", "nothing left behind");
}

// A touch (a load once touch_after has passed) and a save push the session's idle deadline
// and the index's TTL with it; neither ever shortens the index below another member's TTL.
#[tokio::test]
async fn touch_and_save_extend_the_index_ttl() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = sesame::Policy { idle_ms: 1_500, touch_after_ms: 200, ..policy() };
    let who = principal();
    let index = s.index_key(&who);
    let k = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    let session = s.session_key(&k);
    assert!(s.create(&k, &record(Some(&who), &[]), sesame::now_ms(), &pol).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idx = pttls(&server, &[&index])[0];
    assert!(idx > 0 && idx <= 1_050, "the index TTL runs down: {idx}");
    // The touch.
    let loaded = s.load(&k, sesame::now_ms(), &pol).await.unwrap().unwrap();
    let [ttl, idx] = pttls(&server, &[&session, &index])[..] else { panic!() };
    assert!(ttl > 1_300, "the touch pushed the session: {ttl}");
    assert!(idx >= ttl && idx <= ttl + 50, "and the index with it: {idx}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The save.
    let d = Delta { set: vec![("a".into(), b"1".to_vec())], ..Delta::default() };
    let saved = s.save(&k, &loaded.record, &d, sesame::now_ms(), &pol).await.unwrap();
    assert_eq!(saved, sesame::SaveOutcome::Saved(2));
    let [ttl, idx] = pttls(&server, &[&session, &index])[..] else { panic!() };
    assert!(ttl > 1_300, "the save reset the session's TTL: {ttl}");
    assert!(idx >= ttl && idx <= ttl + 50, "and pushed the index's: {idx}");
    // A second session whose absolute deadline is near: its touch and save get short TTLs,
    // which must not cut the index below the first session's.
    let k2 = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    let mut r2 = record(Some(&who), &[]);
    r2.absolute_ms = sesame::now_ms() + 900;
    assert!(s.create(&k2, &r2, sesame::now_ms(), &pol).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let l2 = s.load(&k2, sesame::now_ms(), &pol).await.unwrap().unwrap();
    let saved = s.save(&k2, &l2.record, &d, sesame::now_ms(), &pol).await.unwrap();
    assert_eq!(saved, sesame::SaveOutcome::Saved(2));
    let [first, second, idx] = pttls(&server, &[&session, &s.session_key(&k2), &index])[..] else {
        panic!()
    };
    assert!(second > 0 && second <= 600, "capped by its absolute deadline: {second}");
    assert!(idx >= first && idx >= second, "never below a member's TTL: {idx} {first}");
    assert!(idx <= first + 50, "{idx}");
}

// Restoring a sealed session (a failed rotation) puts it back into its principal's index,
// which gets a TTL at least the session's remaining one: the index take.lua deleted comes
// back with a TTL, never as a key that lives forever.
#[tokio::test]
async fn restore_gives_the_index_a_ttl() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let who = principal();
    let index = s.index_key(&who);
    let k = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    assert!(s.create(&k, &record(Some(&who), &[]), sesame::now_ms(), &policy()).await.unwrap());
    assert!(matches!(s.take(&k, sesame::now_ms()).await.unwrap(), sesame::Taken::Taken(_)));
    assert_eq!(server.cli(&["EXISTS", &index]).unwrap(), "0", "the only member was taken");
    assert!(s.finish_take(&k, true, sesame::now_ms()).await.unwrap());
    let [ttl, idx] = pttls(&server, &[&s.session_key(&k), &index])[..] else { panic!() };
    assert!(ttl > 0 && ttl <= policy().idle_ms as i64, "{ttl}");
    assert!(idx >= ttl && idx <= ttl + 50, "the restored index expires with it: {idx}");
    assert_eq!(s.list_user(&who, sesame::now_ms()).await.unwrap().len(), 1);
    // A sealed record without a TTL (not one sesame wrote): the index is bounded by the
    // record's absolute deadline instead.
    let who2 = principal();
    let k2 = TokenCodec::default().generate(Tag::for_principal(&who2)).unwrap().key();
    let r2 = record(Some(&who2), &[]);
    assert!(s.create(&k2, &r2, sesame::now_ms(), &policy()).await.unwrap());
    assert!(matches!(s.take(&k2, sesame::now_ms()).await.unwrap(), sesame::Taken::Taken(_)));
    let sealed = s.session_key(&k2).replacen(":s:", ":x:", 1);
    assert_eq!(server.cli(&["PERSIST", &sealed]).unwrap(), "1");
    assert!(s.finish_take(&k2, true, sesame::now_ms()).await.unwrap());
    let idx = pttls(&server, &[&s.index_key(&who2)])[0];
    let left = r2.absolute_ms as i64 - sesame::now_ms() as i64;
    assert!(idx > left - 1_000 && idx <= left + 50, "index bounded by the absolute: {idx}");
}

// A user and password in the URL are used (ACL user and requirepass); a wrong password is a
// clear start-up error.
#[tokio::test]
async fn password_and_acl_user() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("pw-default".into()),
        acl_user: Some(("app".into(), "pw-app".into())),
        ..Default::default()
    })
    .unwrap();
    let s = RedisStore::connect(&server.url()).await.unwrap();
    let k = TokenCodec::default().generate(Tag::random().unwrap()).unwrap().key();
    assert!(s.create(&k, &record(None, &[]), sesame::now_ms(), &policy()).await.unwrap());
    let url = format!("redis://:pw-default@127.0.0.1:{}", server.port());
    let s2 = RedisStore::connect(&url).await.unwrap();
    assert!(s2.load(&k, sesame::now_ms(), &policy()).await.unwrap().is_some());
    let bad = format!("redis://app:wrong@127.0.0.1:{}", server.port());
    let e = RedisStore::connect(&bad).await.unwrap_err();
    assert!(!e.to_string().contains("wrong"), "no password in the message: {e}");
}

// rediss:// with the server's CA works end to end.
#[tokio::test]
async fn tls() {
    let server = RedisServer::start_with(RedisOptions { tls: true, ..Default::default() }).unwrap();
    assert!(server.url().starts_with("rediss://"));
    let s = RedisStore::builder(server.url())
        .ca_cert_pem(server.ca_cert_pem().unwrap().into_bytes())
        .connect()
        .await
        .unwrap();
    let k = TokenCodec::default().generate(Tag::random().unwrap()).unwrap().key();
    assert!(s
        .create(&k, &record(None, &[("a", b"1")]), sesame::now_ms(), &policy())
        .await
        .unwrap());
    let l = s.load(&k, sesame::now_ms(), &policy()).await.unwrap().unwrap();
    assert_eq!(l.record.attrs["a"], b"1");
}

// After the server forgets its scripts (SCRIPT FLUSH, as after a restart), every operation
// reloads its script by itself and succeeds.
#[tokio::test]
async fn scripts_reload_after_noscript() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let who = principal();
    let k = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    assert!(s.create(&k, &record(Some(&who), &[]), sesame::now_ms(), &policy()).await.unwrap());
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    assert!(s.load(&k, sesame::now_ms(), &policy()).await.unwrap().is_some());
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    let dyn_store: sesame_testkit::conformance::DynStore = std::sync::Arc::new(s.clone());
    let d = Delta { set: vec![("a".into(), b"1".to_vec())], ..Delta::default() };
    assert!(matches!(
        sesame_testkit::conformance::save(&dyn_store, &k, &d, sesame::now_ms(), &policy())
            .await
            .unwrap(),
        sesame::SaveOutcome::Saved(2)
    ));
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(s.list_user(&who, sesame::now_ms()).await.unwrap().len(), 1);
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(s.revoke_all(&who, None).await.unwrap(), 1);
    let stats = server.info_commandstats().unwrap();
    assert!(stats.get("script|load").copied().unwrap_or(0) >= 5, "{stats:?}");
}

// On a Redis Cluster, the touch (a pipeline of two PEXPIREs) and the save (a script with the
// index as a second key) of logged-in sessions reach one node each: the session and its
// index share a slot. Principals spread over every master.
#[tokio::test]
async fn touch_and_save_on_a_cluster() {
    let cluster =
        tokio::task::spawn_blocking(sesame_testkit::Cluster::start).await.unwrap().unwrap();
    let s = RedisStore::connect(&cluster.url()).await.unwrap();
    let pol = sesame::Policy { idle_ms: 1_500, touch_after_ms: 100, ..policy() };
    let mut sessions = Vec::new();
    for _ in 0..12 {
        let who = principal();
        let k = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
        assert!(s.create(&k, &record(Some(&who), &[]), sesame::now_ms(), &pol).await.unwrap());
        sessions.push((who, k));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = Delta { set: vec![("a".into(), b"1".to_vec())], ..Delta::default() };
    for (who, k) in &sessions {
        let l = s.load(k, sesame::now_ms(), &pol).await.unwrap().unwrap();
        assert!(l.idle_deadline_ms >= sesame::now_ms() + 1_400, "touched");
        let node = &cluster.nodes()
            [cluster.master_for_slot(cluster.keyslot(&s.index_key(who)).unwrap()).unwrap()];
        let idx = pttls(node, &[&s.index_key(who)])[0];
        assert!(idx > 1_300, "the touch pushed the index: {idx}");
        let saved = s.save(k, &l.record, &d, sesame::now_ms(), &pol).await.unwrap();
        assert_eq!(saved, sesame::SaveOutcome::Saved(2));
        assert_eq!(s.list_user(who, sesame::now_ms()).await.unwrap().len(), 1);
    }
}

// Logging out or revoking the session with the latest deadline shortens the index's TTL to
// that of the longest-lived remaining session: the index never outlives its sessions, also
// after removals.
#[tokio::test]
async fn removals_shorten_the_index_ttl() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let who = principal();
    let short = sesame::Policy { idle_ms: 3_000, touch_after_ms: 100, ..policy() };
    let long = sesame::Policy { idle_ms: 600_000, ..policy() };
    let index = s.index_key(&who);
    let pttl =
        |server: &RedisServer| -> i64 { server.cli(&["PTTL", &index]).unwrap().parse().unwrap() };
    let ks = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    s.create(&ks, &record(Some(&who), &[]), sesame::now_ms(), &short).await.unwrap();
    for how in ["logout", "revoke"] {
        let kl = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
        s.create(&kl, &record(Some(&who), &[]), sesame::now_ms(), &long).await.unwrap();
        assert!(pttl(&server) > 500_000, "{how}: the long session sets the index TTL");
        if how == "logout" {
            assert!(s.destroy(&kl).await.unwrap());
        } else {
            assert!(s.revoke(&who, &kl.id()).await.unwrap());
        }
        let left = pttl(&server);
        assert!(left > 0 && left <= 3_000, "{how}: index TTL follows the short session: {left}");
    }
    assert!(s.destroy(&ks).await.unwrap());
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "0");
}
