//! The durability option (WAIT), the start-up checks, restarts with persistence, and
//! logins (rotations into the user's slot) on Redis, also when they fail half way, on real
//! spawned redis-server processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use sesame::{
    CapPolicy, CreateOutcome, Delta, Login, Lookup, RotateOutcome, SessionConfig, SessionManager,
    Store, StoreError, Tag, TokenAction,
};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{
    elevate, key as key_for, login, policy, principal, record, renew, token,
};
use sesame_testkit::fixtures::{contains, create, now};
use sesame_testkit::{RedisOptions, RedisServer};

/// The raw bytes under a Redis key (empty when absent).
fn value(server: &RedisServer, redis_key: &str) -> Vec<u8> {
    let mut conn = redis::Client::open(server.url()).unwrap();
    let v: Option<Vec<u8>> = redis::cmd("GET").arg(redis_key).query(&mut conn).unwrap();
    v.unwrap_or_default()
}

/// A master that syncs replicas without a disk round (fast, for replicas that come and go).
fn diskless() -> RedisOptions {
    RedisOptions {
        extra_args: vec![
            "--repl-diskless-sync".into(),
            "yes".into(),
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ],
        ..RedisOptions::default()
    }
}

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

/// A master with a synced replica, and a store on the master that acknowledges a write only
/// once the replica confirms it within `wait`.
async fn durable(wait: Duration) -> (RedisServer, RedisServer, RedisStore) {
    let master = RedisServer::start_with(diskless()).unwrap();
    let replica = replica_of(&master);
    let store = RedisStore::builder(master.url()).durability(1, wait).connect().await.unwrap();
    (master, replica, store)
}

// With durability on, a write is acknowledged only once a replica has it; with the replica
// gone, every kind of write fails as unavailable (503), naming the reason and saying that its
// outcome is unknown, instead of succeeding silently.
#[tokio::test]
async fn writes_wait_for_replicas_or_fail() {
    let (master, mut replica, s) = durable(Duration::from_millis(1000)).await;
    let p = principal();
    let pol = policy();
    let t = token(p.user().tag());
    let k = t.key();
    create(&s, &k, &record(Some(&p), &[("a", b"1")]), &pol).await;
    // Acknowledged means the replica has it.
    let key = s.session_key(&k);
    assert_eq!(replica.cli(&["EXISTS", &key]).unwrap(), "1");

    replica.stop();
    let base = s.load(&k, now(), &pol).await.unwrap().live().unwrap();
    let d = Delta { set: vec![("b".into(), b"2".to_vec())], ..Delta::default() };
    let e = s.save(&k, &base, &d, now(), &pol).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Unavailable { message, .. } if message.contains("not confirmed by 1 replica") && message.contains("outcome unknown")),
        "{e}"
    );
    let k2 = key_for(Tag::random().unwrap());
    let e = s.create(&k2, &record(None, &[]), None, now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    let next = token(p.user().tag());
    let e = s.rotate(&renew(&t, &next, &base.record, &d, 1_000), now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    assert!(matches!(s.destroy(&k, now()).await.unwrap_err(), StoreError::Unavailable { .. }));
    let e = s.revoke_all(p.user(), None, now()).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    // Reads need no replica.
    assert!(s.list_user(p.user(), now(), 64).await.is_ok());
    assert!(s.user_epoch(p.user()).await.is_ok());

    // Without the option the same writes succeed on the master alone.
    let plain = RedisStore::connect(&master.url()).await.unwrap();
    create(&plain, &key_for(Tag::random().unwrap()), &record(None, &[]), &pol).await;

    // The replica comes back: writes are acknowledged again.
    replica.start_again().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let k4 = key_for(Tag::random().unwrap());
        match s.create(&k4, &record(None, &[]), None, now(), &pol).await {
            Ok(created) => {
                assert_eq!(created, CreateOutcome::Created);
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

// A write's WAIT runs on a connection of its own: while it waits for a stopped replica, reads
// of other sessions (and of its own) are answered, and the write completes once the replica
// resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_not_held_up_by_a_waiting_write() {
    let master = RedisServer::start_with(diskless()).unwrap();
    let replica = replica_of(&master);
    let s = RedisStore::builder(master.url())
        .durability(1, Duration::from_secs(30))
        .response_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    common::reads_go_on_while_a_write_waits(&s, |_| (&master, &replica)).await;
}

// A login into the user's slot whose first step (the claim on the anonymous session) reached
// the master but whose store then failed (here: the claim not confirmed by the missing
// replica) leaves no live session: the old token is dead, the claim expires by itself within
// 30 s, a retried login with the old token finds nothing to take over, and a logout cancels
// the claim and closes the key the login was creating.
#[tokio::test]
async fn login_failing_after_its_claim_leaves_no_live_session() {
    let (master, mut replica, s) = durable(Duration::from_millis(500)).await;
    let plain = RedisStore::connect(&master.url()).await.unwrap();
    let pol = policy();
    let who = principal();
    let anon = key_for(Tag::random().unwrap());
    let r = record(None, &[("cart", b"tea")]);
    create(&plain, &anon, &r, &pol).await;
    assert_eq!(master.cli(&["WAIT", "1", "10000"]).unwrap(), "1", "the replica has it");
    replica.stop();
    let new = key_for(who.user().tag());
    let d = Delta::default();
    let e = s.rotate(&elevate(&anon, &new, &r, &d, login(&who, 0)), now(), &pol).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Unavailable { message, .. } if message.contains("not confirmed")),
        "{e}"
    );
    // The claim is on the master; nothing else was written.
    let old = s.session_key(&anon);
    let claim: Vec<u8> =
        redis::cmd("GET").arg(&old).query(&mut redis::Client::open(master.url()).unwrap()).unwrap();
    assert_eq!(claim.first(), Some(&b'P'), "the old key holds the claim");
    let ttl: i64 = master.cli(&["PTTL", &old]).unwrap().parse().unwrap();
    assert!(ttl > 0 && ttl <= 30_000, "the claim expires by itself: {ttl}");
    assert_eq!(master.cli(&["EXISTS", &s.session_key(&new)]).unwrap(), "0");
    assert_eq!(master.cli(&["EXISTS", &s.index_key(who.user())]).unwrap(), "0");
    // The old token is dead, and a second login with it takes nothing over.
    assert_eq!(plain.load(&anon, now(), &pol).await.unwrap(), Lookup::Missing);
    let retry = key_for(who.user().tag());
    let out =
        plain.rotate(&elevate(&anon, &retry, &r, &d, login(&who, 0)), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Missing);
    assert_eq!(master.cli(&["EXISTS", &s.session_key(&retry)]).unwrap(), "0");
    // A logout with the old token cancels the claim: the key the login was creating can no
    // longer be created.
    plain.destroy(&anon, now()).await.unwrap();
    assert_eq!(plain.load(&anon, now(), &pol).await.unwrap(), Lookup::Missing);
    let login = Login { principal: who.clone(), auth_ms: now(), epoch: 0 };
    let late = plain.create(&new, &record(Some(&who), &[]), Some(&login), now(), &pol).await;
    assert_eq!(late.unwrap(), CreateOutcome::Exists, "the successor's key is closed");
    assert!(plain.list_user(who.user(), now(), 64).await.unwrap().is_empty());
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
    let manager = SessionManager::new(
        Arc::new(s.clone()),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
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

// A login rotates the session into the user's hash tag: the old token is dead from the
// start (its key left as a pointer that holds no data and expires within the idle window), and
// when the new session cannot be written (refused at the per-user cap) the old one is put back
// whole; no claim is left behind either way.
#[tokio::test]
async fn login_on_redis_points_or_restores() {
    let server = RedisServer::start();
    let s = RedisStore::connect(&server.url()).await.unwrap();
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .max_sessions_per_user(1)
        .cap_policy(CapPolicy::Refuse)
        .build()
        .unwrap();
    let idle = config.policy().idle_ms as i64;
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
    let mut keys: Vec<String> =
        server.cli(&["KEYS", "*"]).unwrap().lines().map(String::from).collect();
    keys.sort();
    let mut expected = vec![
        s.session_key(&anon_token.key()),
        s.session_key(&user_token.key()),
        s.index_key(sesame_testkit::conformance::named("zoe").user()),
    ];
    expected.sort();
    assert_eq!(keys, expected, "the session, the index and the old token's pointer only");
    let pointer = value(&server, &s.session_key(&anon_token.key()));
    assert_eq!(pointer.first(), Some(&b'P'), "the old key holds a pointer");
    assert!(!contains(&pointer, b"tea"), "and no session data");
    let ttl: i64 =
        server.cli(&["PTTL", &s.session_key(&anon_token.key())]).unwrap().parse().unwrap();
    assert!(ttl > 0 && ttl <= idle, "the pointer expires within the idle window: {ttl}");

    // A second anonymous session logs in as zoe: refused at the cap, so it is put back.
    let anon2 = manager.open(None);
    anon2.insert("cart", &vec!["milk"]).await.unwrap();
    let TokenAction::Set { token: t2, .. } = anon2.commit().await.unwrap() else { panic!() };
    let again = manager.open(Some(&t2.expose()));
    again.login("zoe").await.unwrap();
    assert!(again.commit().await.is_err(), "refused at the cap");
    let back = manager.open(Some(&t2.expose()));
    assert_eq!(back.get::<Vec<String>>("cart").await.unwrap(), Some(vec!["milk".to_string()]));
    let restored = value(&server, &s.session_key(&t2.key()));
    assert_ne!(restored.first(), Some(&b'P'), "a record again, no claim left behind");
    let ttl: i64 = server.cli(&["PTTL", &s.session_key(&t2.key())]).unwrap().parse().unwrap();
    assert!(ttl > 0 && ttl <= idle, "{ttl}");
    assert_eq!(server.cli(&["DBSIZE"]).unwrap(), "4");
    let zoe = manager.open(Some(&user_token.expose()));
    assert_eq!(zoe.principal().await.unwrap().as_deref(), Some("zoe"));
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
    let k = key_for(p.user().tag());
    create(&s, &k, &record(Some(&p), &[]), &policy()).await;
    assert_eq!(s.list_user(p.user(), now(), 64).await.unwrap().len(), 1);
}

// A login whose write its replica does not confirm in time fails with "outcome unknown", and
// its session, which does exist on the master, is ended at once: it does not count against
// the user's cap (one session, refuse beyond it), so the user's next login, once the replica
// is back, is not refused.
#[tokio::test]
async fn a_failed_login_leaves_no_session_against_the_cap() {
    let (master, mut replica, s) = durable(Duration::from_millis(300)).await;
    let plain = RedisStore::connect(&master.url()).await.unwrap();
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .max_sessions_per_user(1)
        .cap_policy(CapPolicy::Refuse)
        .build()
        .unwrap();
    let m = SessionManager::new(Arc::new(s), config.clone());
    replica.stop();
    let session = m.open(None);
    session.login("ivy").await.unwrap();
    let e = session.commit().await.unwrap_err();
    assert!(matches!(&e, sesame::Error::Store(s) if s.is_outcome_unknown()), "{e}");
    let user = config.naming().user("ivy");
    assert!(plain.list_user(user, now(), 64).await.unwrap().is_empty(), "the orphan was ended");

    replica.start_again().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let session = m.open(None);
        session.login("ivy").await.unwrap();
        match session.commit().await {
            Ok(a) => {
                assert!(matches!(a, TokenAction::Set { .. }));
                break;
            }
            Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the login after the outage failed: {e}"),
        }
    }
    assert_eq!(plain.list_user(user, now(), 64).await.unwrap().len(), 1);
}
