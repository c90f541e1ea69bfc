//! Redis-specific behaviour of the store, on real spawned redis-server processes: hostile
//! bytes, what Redis holds (digests only, index keys that do not outlive their sessions),
//! authentication and TLS.
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

// A principal's index key expires with the last absolute deadline of its sessions and is
// deleted when its last session is revoked or taken: index keys never pile up.
#[tokio::test]
async fn index_keys_do_not_outlive_sessions() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let who = principal();
    let k = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    let mut r = record(Some(&who), &[]);
    r.absolute_ms = sesame::now_ms() + 1_500;
    s.create(&k, &r, sesame::now_ms(), &policy()).await.unwrap();
    let index = s.index_key(&who);
    let pttl: i64 = server.cli(&["PTTL", &index]).unwrap().parse().unwrap();
    assert!(pttl > 0 && pttl <= 1_500, "index TTL follows the absolute deadline: {pttl}");
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert_eq!(server.cli(&["EXISTS", &index]).unwrap(), "0");
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "0", "nothing left behind");
    let k2 = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    s.create(&k2, &record(Some(&who), &[]), sesame::now_ms(), &policy()).await.unwrap();
    assert_eq!(s.revoke_all(&who, None).await.unwrap(), 1);
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "0", "revoke-all leaves no index key");
    let k3 = TokenCodec::default().generate(Tag::for_principal(&who)).unwrap().key();
    s.create(&k3, &record(Some(&who), &[]), sesame::now_ms(), &policy()).await.unwrap();
    assert!(s.destroy(&k3).await.unwrap());
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "0", "logout leaves no index key");
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
