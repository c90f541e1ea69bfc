//! The Redis store's own protocol on real spawned redis-server processes: reconnection after a
//! restart, per-user work that does not grow with the user's sessions, and a logout that meets
//! a login under way between slots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use sesame::{
    CapPolicy, CreateOutcome, Login, Lookup, Policy, Principal, Record, RotateOutcome, Rotation,
    RotationKind, SessionKey, Store, Tag,
};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{key, named};
use sesame_testkit::fixtures::{now, pointer_bytes};
use sesame_testkit::{RedisOptions, RedisServer};

fn policy(cap: u32) -> Policy {
    Policy {
        idle_ms: 600_000,
        absolute_ms: 3_600_000,
        touch_after_ms: 60_000,
        max_record_bytes: 64 * 1024,
        max_attributes: 64,
        max_sessions_per_user: cap,
        cap_policy: CapPolicy::EvictOldest,
        grace_ms: 2_000,
        renew_after_ms: None,
    }
}

fn record(principal: Option<&Principal>) -> Record {
    let t = now();
    let mut attrs = BTreeMap::new();
    attrs.insert("cart".to_string(), b"\x01[\"apple\"]".to_vec());
    Record {
        created_ms: t,
        absolute_ms: t + 3_600_000,
        principal: principal.cloned(),
        auth_ms: principal.map(|_| t),
        version: 1,
        attrs,
        ..Record::default()
    }
}

async fn connect(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url()).await.unwrap()
}

async fn user_session(s: &RedisStore, p: &Principal, pol: &Policy) -> SessionKey {
    let k = key(p.user().tag());
    let out = s.create(&k, &record(Some(p)), None, now(), pol).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    k
}

/// Commands Redis ran (inside scripts too) while `f` ran, by name.
async fn commands<F, Fut, T>(server: &RedisServer, f: F) -> (BTreeMap<String, u64>, T)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    server.reset_stats().unwrap();
    let out = f().await;
    let mut stats = server.info_commandstats().unwrap();
    stats.retain(|name, _| !name.starts_with("config") && name != "info");
    (stats, out)
}

// After Redis restarts (with AOF), the first read and the first write on every app instance
// succeed, and no session is lost.
#[tokio::test]
async fn first_request_after_a_restart_succeeds_on_every_instance() {
    let mut server =
        RedisServer::start_with(RedisOptions { appendonly: true, ..RedisOptions::default() })
            .unwrap();
    let instances = [connect(&server).await, connect(&server).await];
    let pol = policy(64);
    let mut keys = Vec::new();
    for _ in 0..10 {
        let k = key(Tag::random().unwrap());
        assert!(instances[0]
            .create(&k, &record(None), None, now(), &pol)
            .await
            .unwrap()
            .is_created());
        keys.push(k);
    }
    // Both connections are in use before the restart.
    for s in &instances {
        assert!(s.load(&keys[0], now(), &pol).await.unwrap().is_live());
    }
    server.stop();
    server.start_again().unwrap();
    for (i, s) in instances.iter().enumerate() {
        let loaded = s.load(&keys[i], now(), &pol).await;
        assert!(matches!(loaded, Ok(Lookup::Live(_))), "first read on instance {i}: {loaded:?}");
    }
    server.stop();
    server.start_again().unwrap();
    for (i, s) in instances.iter().enumerate() {
        let base = record(None);
        let d = sesame::Delta { set: vec![("n".into(), b"\x011".to_vec())], ..Default::default() };
        let current = s.load(&keys[i + 2], now(), &pol).await;
        let base = match current {
            Ok(Lookup::Live(l)) => l,
            other => {
                panic!("first read after the second restart, instance {i}: {other:?} {base:?}")
            }
        };
        let saved = s.save(&keys[i + 2], &base, &d, now(), &pol).await;
        assert!(matches!(saved, Ok(sesame::SaveOutcome::Saved(_))), "write on {i}: {saved:?}");
    }
    for k in &keys {
        assert!(instances[1].load(k, now(), &pol).await.unwrap().is_live(), "no session lost");
    }
}

// Login, logout and list of a user cost the same Redis commands whether the user has 1 or 100
// sessions, with 10,000 other sessions in Redis; at the cap the only extra work of a login is
// evicting the least recently active session (ZRANGE in the script, DEL, ZREM).
#[tokio::test]
async fn per_user_work_does_not_grow_with_the_users_sessions() {
    let server = RedisServer::start();
    let s = Arc::new(connect(&server).await);
    let cap = 128u32;
    let pol = policy(cap);
    // 10,000 sessions of other users, written concurrently.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        let pol = pol.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1250 {
                let p = named(&format!("other-{t}-{}", i % 50));
                user_session(&s, &p, &pol).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut costs = Vec::new();
    for n in [1usize, 100, cap as usize] {
        let p = named(&format!("user-with-{n}-{}", key(Tag::random().unwrap()).id()));
        let mut keys = Vec::new();
        for _ in 0..n {
            keys.push(user_session(&s, &p, &pol).await);
        }
        let (login, _) = commands(&server, || user_session(&s, &p, &pol)).await;
        let (logout, ended) = commands(&server, || s.destroy(&keys[n - 1], now())).await;
        assert!(ended.unwrap());
        let (list, listed) = commands(&server, || s.list_user(p.user(), now(), 50)).await;
        assert_eq!(listed.unwrap().len(), n.min(50));
        costs.push((n, login, logout, list));
    }
    let (_, login1, logout1, list1) = &costs[0];
    for (n, login, logout, list) in &costs[1..] {
        assert_eq!(logout, logout1, "logout at {n} sessions");
        assert_eq!(list, list1, "list at {n} sessions");
        if *n < cap as usize {
            assert_eq!(login, login1, "login at {n} sessions");
        } else {
            let mut expected = login1.clone();
            for extra in ["zrange", "del", "zrem"] {
                *expected.entry(extra.to_string()).or_insert(0) += 1;
            }
            assert_eq!(login, &expected, "login at the cap");
        }
    }
}

// A logout that meets a login under way into another slot (claimed, successor not yet written)
// cancels it and closes the successor's key: the login can no longer create it.
#[tokio::test]
async fn logout_cancels_a_login_under_way_between_slots() {
    let server = RedisServer::start();
    let s = connect(&server).await;
    let pol = policy(64);
    let old = key(Tag::random().unwrap());
    let p = named(&format!("u-{}", old.id()));
    let new = key(p.user().tag());
    let mut conn = redis::Client::open(server.url()).unwrap();
    let _: () = redis::cmd("SET")
        .arg(s.session_key(&old))
        .arg(pointer_bytes(b'M', now() + 30_000, &new))
        .arg("PX")
        .arg(30_000)
        .query(&mut conn)
        .unwrap();
    assert!(matches!(s.load(&old, now(), &pol).await.unwrap(), Lookup::Missing));
    assert!(s.destroy(&old, now()).await.unwrap(), "the claimed session is ended");
    let created = s.create(&new, &record(Some(&p)), None, now(), &pol).await.unwrap();
    assert_eq!(created, CreateOutcome::Exists, "the successor's key is closed");
    assert!(s.list_user(p.user(), now(), 10).await.unwrap().is_empty());
}

// Logins from one anonymous session into its user's slot (three steps) racing a logout of that
// session, for many rounds: at most one login carries the data, and once the logout has
// answered true no session carrying the data is live.
#[tokio::test]
async fn logout_racing_logins_between_slots() {
    let server = RedisServer::start();
    let s = Arc::new(connect(&server).await);
    let pol = policy(64);
    for round in 0..60 {
        let old = key(Tag::random().unwrap());
        let anon = record(None);
        assert!(s.create(&old, &anon, None, now(), &pol).await.unwrap().is_created());
        let p = named(&format!("racer-{round}-{}", old.id()));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (s, pol, anon, p) = (s.clone(), pol.clone(), anon.clone(), p.clone());
            tasks.push(tokio::spawn(async move {
                let new = key(p.user().tag());
                let delta = sesame::Delta::default();
                let login = Login { principal: p.clone(), auth_ms: now(), epoch: 0 };
                let rot = Rotation {
                    old,
                    base: &anon,
                    base_idle_deadline_ms: None,
                    new,
                    sealed_successor: Vec::new(),
                    delta: &delta,
                    login: Some(login),
                    kind: RotationKind::Elevate,
                };
                (new, s.rotate(&rot, now(), &pol).await.unwrap())
            }));
        }
        let logout = {
            let s = s.clone();
            tokio::spawn(async move { s.destroy(&old, now()).await.unwrap() })
        };
        let mut rotated = Vec::new();
        for t in tasks {
            let (new, out) = t.await.unwrap();
            if matches!(out, RotateOutcome::Rotated(_)) {
                rotated.push(new);
            }
        }
        let ended = logout.await.unwrap();
        assert!(rotated.len() <= 1, "round {round}: one login carries the data, not {rotated:?}");
        if ended {
            for k in &rotated {
                let l = s.load(k, now(), &pol).await.unwrap();
                assert!(!l.is_live(), "round {round}: a session outlived the logout");
            }
        }
        let listed = s.list_user(p.user(), now(), 10).await.unwrap();
        let live = listed.len();
        assert!(live <= 1, "round {round}: {live} sessions listed");
        if ended {
            assert_eq!(live, 0, "round {round}: listed after the logout");
        }
    }
}

// Revoke-all ends more sessions than one batch declares (250 > 100), in batches, keeping the
// one asked for; afterwards none of the others loads and the index lists only the kept one.
#[tokio::test]
async fn revoke_all_ends_sessions_in_batches() {
    let server = RedisServer::start();
    let s = connect(&server).await;
    let pol = policy(1000);
    let p = named(&format!("many-{}", key(Tag::random().unwrap()).id()));
    let mut keys = Vec::new();
    for _ in 0..250 {
        keys.push(user_session(&s, &p, &pol).await);
    }
    let keep = keys[17];
    let keep_id = keep.id();
    let (stats, ended) = commands(&server, || s.revoke_all(p.user(), Some(&keep_id), now())).await;
    assert_eq!(ended.unwrap(), 249);
    assert!(stats.get("evalsha").copied().unwrap_or(0) >= 4, "one epoch move and three batches");
    for k in &keys {
        assert_eq!(s.load(k, now(), &pol).await.unwrap().is_live(), *k == keep);
    }
    let listed = s.list_user(p.user(), now(), 1000).await.unwrap();
    assert_eq!(listed.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), [keep.id()]);
}
