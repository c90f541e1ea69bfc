//! The durability option (WAIT), the start-up checks, restarts with persistence, and
//! rotations on Redis, on real spawned redis-server processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use sesame::{
    CapPolicy, Delta, SessionConfig, SessionManager, Store, StoreError, Tag, Taken, TokenAction,
    TokenCodec,
};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{policy, principal, record};
use sesame_testkit::{RedisOptions, RedisServer};

fn replica_of(master: &RedisServer) -> RedisServer {
    let replica = RedisServer::start_with(RedisOptions {
        extra_args: vec!["--replicaof".into(), "127.0.0.1".into(), master.port().to_string()],
        ..RedisOptions::default()
    })
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !replica.cli(&["INFO", "replication"]).unwrap().contains("master_link_status:up") {
        assert!(std::time::Instant::now() < deadline, "replica never synced: {}", replica.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The link is up; make sure the replica also acknowledges before the test starts.
    assert_eq!(master.cli(&["WAIT", "1", "10000"]).unwrap(), "1", "{}", replica.log());
    replica
}

// With durability on, a write is acknowledged only once a replica has it; with the replica
// gone, every kind of write fails as unavailable (503), naming the reason, instead of
// succeeding silently.
#[tokio::test]
async fn writes_wait_for_replicas_or_fail() {
    let master = RedisServer::start_with(RedisOptions {
        extra_args: vec![
            "--repl-diskless-sync".into(),
            "yes".into(),
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ],
        ..RedisOptions::default()
    })
    .unwrap();
    let mut replica = replica_of(&master);
    let s = RedisStore::builder(master.url())
        .durability(1, Duration::from_millis(1000))
        .connect()
        .await
        .unwrap();
    let p = principal();
    let pol = policy();
    let k = TokenCodec::default().generate(Tag::for_principal(&p)).unwrap().key();
    assert!(s.create(&k, &record(Some(&p), &[("a", b"1")]), sesame::now_ms(), &pol).await.unwrap());
    // Acknowledged means the replica has it.
    let key = s.session_key(&k);
    assert_eq!(replica.cli(&["EXISTS", &key]).unwrap(), "1");

    replica.stop();
    let base = s.load(&k, sesame::now_ms(), &pol).await.unwrap().unwrap().record;
    let d = Delta { set: vec![("b".into(), b"2".to_vec())], ..Delta::default() };
    let e = s.save(&k, &base, &d, sesame::now_ms(), &pol).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Unavailable { message, .. } if message.contains("not confirmed by 1 replica")),
        "{e}"
    );
    let k2 = TokenCodec::default().generate(Tag::random().unwrap()).unwrap().key();
    let e = s.create(&k2, &record(None, &[]), sesame::now_ms(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    assert!(matches!(s.destroy(&k).await.unwrap_err(), StoreError::Unavailable { .. }));
    assert!(matches!(s.revoke_all(&p, None).await.unwrap_err(), StoreError::Unavailable { .. }));
    // Reads need no replica.
    assert!(s.list_user(&p, sesame::now_ms()).await.is_ok());

    // Without the option the same writes succeed on the master alone.
    let plain = RedisStore::connect(&master.url()).await.unwrap();
    let k3 = TokenCodec::default().generate(Tag::random().unwrap()).unwrap().key();
    assert!(plain.create(&k3, &record(None, &[]), sesame::now_ms(), &pol).await.unwrap());

    // The replica comes back: writes are acknowledged again.
    replica.start_again().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let k4 = TokenCodec::default().generate(Tag::random().unwrap()).unwrap().key();
        match s.create(&k4, &record(None, &[]), sesame::now_ms(), &pol).await {
            Ok(created) => {
                assert!(created);
                break;
            }
            Err(StoreError::Unavailable { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("writes not acknowledged after the replica returned: {e}"),
        }
    }
    assert!(RedisStore::builder(master.url())
        .durability(0, Duration::from_secs(1))
        .connect()
        .await
        .is_err());
}

// The start-up checks read the settings and explain those that endanger sessions.
#[tokio::test]
async fn start_up_checks_warn_about_eviction_and_persistence() {
    let risky = RedisServer::start_with(RedisOptions {
        extra_args: vec![
            "--maxmemory-policy".into(),
            "allkeys-lru".into(),
            "--save".into(),
            "".into(),
        ],
        ..RedisOptions::default()
    })
    .unwrap();
    let r = RedisStore::connect(&risky.url()).await.unwrap().server_report().await;
    assert_eq!(r.maxmemory_policy.as_deref(), Some("allkeys-lru"));
    assert_eq!(r.aof_enabled, Some(false));
    assert!(r.version.as_deref().is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit())));
    assert!(
        r.warnings.iter().any(|w| w.contains("allkeys-lru") && w.contains("evicts")),
        "{:?}",
        r.warnings
    );
    assert!(r.warnings.iter().any(|w| w.contains("persistence is off")), "{:?}", r.warnings);

    let safe =
        RedisServer::start_with(RedisOptions { appendonly: true, ..RedisOptions::default() })
            .unwrap();
    let r = RedisStore::connect(&safe.url()).await.unwrap().server_report().await;
    assert_eq!(r.maxmemory_policy.as_deref(), Some("noeviction"));
    assert_eq!(r.aof_enabled, Some(true));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

// A Redis with `appendonly yes` is restarted: sessions, their data and the per-user index
// survive, and the store reconnects by itself.
#[tokio::test]
async fn sessions_survive_an_appendonly_restart() {
    let mut server =
        RedisServer::start_with(RedisOptions { appendonly: true, ..RedisOptions::default() })
            .unwrap();
    let s = RedisStore::connect(&server.url()).await.unwrap();
    let manager = SessionManager::new(Arc::new(s.clone()), SessionConfig::default());
    let mut tokens = Vec::new();
    for i in 0..20 {
        let session = manager.open(None);
        session.insert("n", &i).await.unwrap();
        session.login(&format!("user{}", i % 4)).await.unwrap();
        match session.commit().await.unwrap() {
            TokenAction::Set { token, .. } => tokens.push(token),
            other => panic!("{other:?}"),
        }
    }
    server.stop();
    server.start_again().unwrap();
    for (i, t) in tokens.iter().enumerate() {
        let mut tries = 0;
        let session = loop {
            let session = manager.open(Some(&t.expose()));
            match session.get::<i32>("n").await {
                Ok(v) => break (session, v),
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("store did not come back: {e}"),
            }
        };
        assert_eq!(session.1, Some(i as i32));
        assert_eq!(
            session.0.principal().await.unwrap().as_deref(),
            Some(format!("user{}", i % 4).as_str())
        );
    }
    assert_eq!(manager.list_user("user1").await.unwrap().len(), 5);
}

// A login rotates the session into the user's hash tag: the old key is dead from the start,
// and when the new session cannot be written (refused at the per-user cap) the old one is put
// back whole; nothing is left under a sealed key.
#[tokio::test]
async fn rotation_on_redis_seals_then_drops_or_restores() {
    let server = RedisServer::start();
    let s = RedisStore::connect(&server.url()).await.unwrap();
    let config = SessionConfig::builder()
        .max_sessions_per_user(1)
        .cap_policy(CapPolicy::Refuse)
        .build()
        .unwrap();
    let manager = SessionManager::new(Arc::new(s.clone()), config);
    let anon = manager.open(None);
    anon.insert("cart", &vec!["tea"]).await.unwrap();
    let TokenAction::Set { token: anon_token, .. } = anon.commit().await.unwrap() else { panic!() };
    let login = manager.open(Some(&anon_token.expose()));
    login.login("zoe").await.unwrap();
    let TokenAction::Set { token: user_token, .. } = login.commit().await.unwrap() else {
        panic!()
    };
    let old = manager.open(Some(&anon_token.expose()));
    assert_eq!(old.principal().await.unwrap(), None);
    assert_eq!(old.get::<Vec<String>>("cart").await.unwrap(), None, "the old token is dead");
    let keys = server.cli(&["KEYS", "*"]).unwrap();
    assert_eq!(keys.lines().count(), 2, "the session and the index only: {keys}");
    assert!(!keys.contains(":x:"), "no sealed key left: {keys}");

    // A second anonymous session logs in as zoe: refused at the cap, so it is put back.
    let anon2 = manager.open(None);
    anon2.insert("cart", &vec!["milk"]).await.unwrap();
    let TokenAction::Set { token: t2, .. } = anon2.commit().await.unwrap() else { panic!() };
    let again = manager.open(Some(&t2.expose()));
    again.login("zoe").await.unwrap();
    assert!(again.commit().await.is_err(), "refused at the cap");
    let back = manager.open(Some(&t2.expose()));
    assert_eq!(back.get::<Vec<String>>("cart").await.unwrap(), Some(vec!["milk".to_string()]));
    assert!(!server.cli(&["KEYS", "*"]).unwrap().contains(":x:"));
    let zoe = manager.open(Some(&user_token.expose()));
    assert_eq!(zoe.principal().await.unwrap().as_deref(), Some("zoe"));

    // A taken session left unfinished (the process died) is never valid again.
    let k = t2.key();
    assert!(matches!(s.take(&k, sesame::now_ms()).await.unwrap(), Taken::Taken(_)));
    assert!(manager.open(Some(&t2.expose())).get::<Vec<String>>("cart").await.unwrap().is_none());
    let sealed = server.cli(&["KEYS", "*:x:*"]).unwrap();
    let ttl: i64 = server.cli(&["PTTL", sealed.trim()]).unwrap().parse().unwrap();
    assert!(ttl > 0, "a sealed record expires by itself");
}

// A user that may not read the configuration (no @admin, no @dangerous: no CONFIG, no INFO)
// still connects and works; the report just leaves those fields empty.
#[tokio::test]
async fn start_up_checks_skip_what_the_user_may_not_read() {
    let server = RedisServer::start_with(RedisOptions {
        extra_args: vec![
            "--user".into(),
            "app".into(),
            "on".into(),
            ">app-pw".into(),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
            "-@admin".into(),
            "-@dangerous".into(),
        ],
        ..RedisOptions::default()
    })
    .unwrap();
    let url = format!("redis://app:app-pw@127.0.0.1:{}", server.port());
    let s = RedisStore::connect(&url).await.unwrap();
    let r = s.server_report().await;
    assert_eq!(r.maxmemory_policy, None);
    assert_eq!(r.version, None);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let p = principal();
    let k = TokenCodec::default().generate(Tag::for_principal(&p)).unwrap().key();
    assert!(s.create(&k, &record(Some(&p), &[]), sesame::now_ms(), &policy()).await.unwrap());
    assert_eq!(s.list_user(&p, sesame::now_ms()).await.unwrap().len(), 1);
}
