//! Checks of a principal's sessions: the per-user index and its lists, revocation (one, all,
//! racing logins), the revocation epoch, and the per-user cap.

use std::sync::Arc;
use std::time::Duration;

use sesame::{
    CapPolicy, CreateOutcome, Delta, Lookup, RotateOutcome, Rotation, RotationKind, StoreError,
};
use tokio::sync::Barrier;

use super::{
    create_anonymous, create_user_session, elevate, expect_live, expect_missing, key, listed_ids,
    login, now, policy, principal, record, rotated, save, saved, set, token, DynStore,
};

/// A principal's sessions are listed most recently active first, and only theirs.
pub async fn list_user_sessions(store: DynStore) {
    let pol = policy();
    let (p, q) = (principal(), principal());
    let mut ids = Vec::new();
    let t = now();
    for _ in 0..3 {
        ids.push(create_user_session(&store, &p, &pol).await.id());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    create_user_session(&store, &q, &pol).await;
    let listed = store.list_user(p.user(), now(), 64).await.unwrap();
    ids.reverse();
    assert_eq!(listed.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), ids);
    for s in &listed {
        assert!(s.created_ms >= t && s.created_ms <= now());
        assert_eq!(s.auth_ms, Some(s.created_ms));
        assert!(s.expires_ms >= t + 59_000 && s.expires_ms <= now() + 60_000, "{s:?}");
    }
    assert_eq!(listed_ids(&store, &q, 64).await.len(), 1);
    assert!(listed_ids(&store, &principal(), 64).await.is_empty());
}

/// A list returns at most `limit` sessions, the most recently active first (a save once
/// `touch_after` has passed is activity: it moves an older session to the front).
pub async fn list_limit_most_recent_first(store: DynStore) {
    let pol = super::Policy { touch_after_ms: 5, ..policy() };
    let p = principal();
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(create_user_session(&store, &p, &pol).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (a, b, c) = (keys[0], keys[1], keys[2]);
    saved(save(&store, &a, &set(&[("x", b"1")]), now(), &pol).await.unwrap());
    assert_eq!(listed_ids(&store, &p, 64).await, [a.id(), c.id(), b.id()]);
    assert_eq!(listed_ids(&store, &p, 3).await, [a.id(), c.id(), b.id()]);
    assert_eq!(listed_ids(&store, &p, 2).await, [a.id(), c.id()]);
    assert_eq!(listed_ids(&store, &p, 1).await, [a.id()]);
    assert!(listed_ids(&store, &p, 0).await.is_empty(), "a limit of 0 lists nothing");
}

/// Revoking one session by id works for its owner only; revoke-all keeps the one asked.
pub async fn revoke_one_and_all(store: DynStore) {
    let pol = policy();
    let (p, q) = (principal(), principal());
    let a = create_user_session(&store, &p, &pol).await;
    let b = create_user_session(&store, &p, &pol).await;
    let c = create_user_session(&store, &p, &pol).await;
    let other = create_user_session(&store, &q, &pol).await;
    assert!(!store.revoke(p.user(), &other.id(), now()).await.unwrap(), "not p's session");
    expect_live(&store, &other, &pol).await;
    assert!(!store.revoke(p.user(), "AAAAAAAAAAAAAAAAAAAAAA", now()).await.unwrap());
    assert!(store.revoke(p.user(), &a.id(), now()).await.unwrap());
    assert!(!store.revoke(p.user(), &a.id(), now()).await.unwrap());
    expect_missing(&store, &a, &pol).await;
    assert_eq!(store.revoke_all(p.user(), Some(&c.id()), now()).await.unwrap(), 1);
    expect_missing(&store, &b, &pol).await;
    expect_live(&store, &c, &pol).await;
    assert_eq!(store.revoke_all(p.user(), None, now()).await.unwrap(), 1);
    expect_missing(&store, &c, &pol).await;
    assert!(listed_ids(&store, &p, 64).await.is_empty());
    expect_live(&store, &other, &pol).await;
}

/// A login whose epoch is stale (the user's sessions were revoked after it began) is refused
/// by create and by rotate, and writes nothing; with the current epoch it goes through.
pub async fn stale_epoch_login_is_refused(store: DynStore) {
    let pol = policy();
    let p = principal();
    let e0 = store.user_epoch(p.user()).await.unwrap();
    let k1 = key(p.user().tag());
    let out =
        store.create(&k1, &record(Some(&p), &[]), Some(&login(&p, e0)), now(), &pol).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    assert_eq!(store.revoke_all(p.user(), None, now()).await.unwrap(), 1);
    let e1 = store.user_epoch(p.user()).await.unwrap();
    assert_ne!(e1, e0, "revoke_all moves the epoch");
    expect_missing(&store, &k1, &pol).await;
    // create
    let k2 = key(p.user().tag());
    let out =
        store.create(&k2, &record(Some(&p), &[]), Some(&login(&p, e0)), now(), &pol).await.unwrap();
    assert_eq!(out, CreateOutcome::Revoked);
    expect_missing(&store, &k2, &pol).await;
    assert!(listed_ids(&store, &p, 64).await.is_empty());
    let out =
        store.create(&k2, &record(Some(&p), &[]), Some(&login(&p, e1)), now(), &pol).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    // rotate: an anonymous session logging in
    let anon = create_anonymous(&store, &[("cart", b"1")]).await;
    let base = expect_live(&store, &anon.key(), &pol).await.record;
    let new = key(p.user().tag());
    let d = set(&[("x", b"1")]);
    let out = store
        .rotate(&elevate(&anon.key(), &new, &base, &d, login(&p, e0)), now(), &pol)
        .await
        .unwrap();
    assert_eq!(out, RotateOutcome::Revoked);
    expect_missing(&store, &new, &pol).await;
    assert_eq!(
        expect_live(&store, &anon.key(), &pol).await.record,
        base,
        "the old session is untouched"
    );
    // rotate: a re-login of the same principal
    let t2 = token(p.user().tag());
    let base2 = expect_live(&store, &k2, &pol).await.record;
    let relogin = |epoch| Rotation {
        old: k2,
        base: &base2,
        base_idle_deadline_ms: None,
        new: t2.key(),
        sealed_successor: Vec::new(),
        delta: &d,
        login: Some(login(&p, epoch)),
        kind: RotationKind::Renew { grace_ms: 1_000 },
    };
    assert_eq!(store.rotate(&relogin(e0), now(), &pol).await.unwrap(), RotateOutcome::Revoked);
    expect_missing(&store, &t2.key(), &pol).await;
    assert_eq!(expect_live(&store, &k2, &pol).await.record, base2);
    assert_eq!(listed_ids(&store, &p, 64).await, [k2.id()]);
    let rec = rotated(store.rotate(&relogin(e1), now(), &pol).await.unwrap());
    assert_eq!(rec.principal.as_ref(), Some(&p));
    assert_eq!(listed_ids(&store, &p, 64).await, [t2.key().id()]);
}

/// A revoke-all racing logins that began before it leaves no session of the user alive: each
/// create lands before it (and is ended by it) or is refused as revoked.
pub async fn revoke_all_races_logins(store: DynStore) {
    const N: usize = 20;
    let pol = policy();
    for round in 0..5 {
        let p = principal();
        let epoch = store.user_epoch(p.user()).await.unwrap();
        let barrier = Arc::new(Barrier::new(N + 1));
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (store, barrier, p) = (store.clone(), barrier.clone(), p.clone());
            tasks.push(tokio::spawn(async move {
                let k = key(p.user().tag());
                let l = login(&p, epoch);
                barrier.wait().await;
                (
                    k,
                    store
                        .create(&k, &record(Some(&p), &[]), Some(&l), now(), &policy())
                        .await
                        .unwrap(),
                )
            }));
        }
        let revoke = {
            let (store, barrier, p) = (store.clone(), barrier.clone(), p.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.revoke_all(p.user(), None, now()).await.unwrap()
            })
        };
        let mut created = 0;
        let mut keys = Vec::new();
        for t in tasks {
            let (k, out) = t.await.unwrap();
            match out {
                CreateOutcome::Created => created += 1,
                CreateOutcome::Revoked => {}
                other => panic!("round {round}: unexpected {other:?}"),
            }
            keys.push(k);
        }
        let ended = revoke.await.unwrap();
        assert_eq!(
            ended, created,
            "round {round}: revoke_all ended exactly the logins that landed first"
        );
        assert!(listed_ids(&store, &p, 64).await.is_empty(), "round {round}");
        for k in &keys {
            expect_missing(&store, k, &pol).await;
        }
    }
}

/// At the per-user cap the least recently active session is evicted (default policy), by a
/// create and by an anonymous session logging in alike.
pub async fn cap_evicts_least_recently_active(store: DynStore) {
    let p = principal();
    let mut pol = policy();
    pol.max_sessions_per_user = 2;
    let a = create_user_session(&store, &p, &pol).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let b = create_user_session(&store, &p, &pol).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    // a is older but was active after b was created (a save counts as activity once
    // touch_after has passed since the last push).
    let busy = super::Policy { touch_after_ms: 5, ..pol.clone() };
    saved(save(&store, &a, &set(&[("x", b"1")]), now(), &busy).await.unwrap());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let c = create_user_session(&store, &p, &pol).await;
    expect_missing(&store, &b, &pol).await;
    expect_live(&store, &a, &pol).await;
    assert_eq!(listed_ids(&store, &p, 64).await, [c.id(), a.id()]);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let anon = create_anonymous(&store, &[]).await;
    let base = expect_live(&store, &anon.key(), &pol).await.record;
    let new = key(p.user().tag());
    let epoch = store.user_epoch(p.user()).await.unwrap();
    let d = Delta::default();
    rotated(
        store
            .rotate(&elevate(&anon.key(), &new, &base, &d, login(&p, epoch)), now(), &pol)
            .await
            .unwrap(),
    );
    expect_missing(&store, &a, &pol).await;
    assert_eq!(listed_ids(&store, &p, 64).await, [new.id(), c.id()]);
}

/// The cap stays exact when many logins of one user race: never more live sessions than the cap.
pub async fn cap_is_exact_under_concurrent_logins(store: DynStore) {
    let p = principal();
    let mut pol = policy();
    pol.max_sessions_per_user = 3;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (store, p, pol) = (store.clone(), p.clone(), pol.clone());
        tasks.push(tokio::spawn(async move { create_user_session(&store, &p, &pol).await }));
    }
    let mut keys = Vec::new();
    for t in tasks {
        keys.push(t.await.unwrap());
    }
    assert_eq!(listed_ids(&store, &p, 64).await.len(), 3);
    let mut live = 0;
    for k in &keys {
        match store.load(k, now(), &pol).await.unwrap() {
            Lookup::Live(_) => live += 1,
            Lookup::Missing => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(live, 3, "exactly the cap survives");
    let mut refuse = pol.clone();
    refuse.cap_policy = CapPolicy::Refuse;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (store, p, refuse) = (store.clone(), principal(), refuse.clone());
        tasks.push(tokio::spawn(async move {
            let k = key(p.user().tag());
            store.create(&k, &record(Some(&p), &[]), None, now(), &refuse).await
        }));
    }
    for t in tasks {
        let out = t.await.unwrap().unwrap();
        assert_eq!(out, CreateOutcome::Created, "distinct users never hit each other's cap");
    }
}

/// Under the refuse policy a login past the cap (a create or an anonymous session logging in)
/// fails and writes nothing.
pub async fn cap_refuses(store: DynStore) {
    let p = principal();
    let mut pol = policy();
    pol.max_sessions_per_user = 2;
    pol.cap_policy = CapPolicy::Refuse;
    create_user_session(&store, &p, &pol).await;
    create_user_session(&store, &p, &pol).await;
    let k = key(p.user().tag());
    let e = store.create(&k, &record(Some(&p), &[]), None, now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    expect_missing(&store, &k, &pol).await;
    assert_eq!(listed_ids(&store, &p, 64).await.len(), 2);
    let anon = create_anonymous(&store, &[("cart", b"1")]).await;
    let base = expect_live(&store, &anon.key(), &pol).await.record;
    let new = key(p.user().tag());
    let epoch = store.user_epoch(p.user()).await.unwrap();
    let d = set(&[("x", b"1")]);
    let e = store
        .rotate(&elevate(&anon.key(), &new, &base, &d, login(&p, epoch)), now(), &pol)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    expect_missing(&store, &new, &pol).await;
    assert_eq!(
        expect_live(&store, &anon.key(), &pol).await.record,
        base,
        "the anonymous session is untouched"
    );
    assert_eq!(listed_ids(&store, &p, 64).await.len(), 2);
}

/// Expired sessions leave the index: the list and the cap count only live sessions.
pub async fn index_forgets_expired_sessions(store: DynStore) {
    let p = principal();
    let mut short = policy();
    short.idle_ms = 400;
    short.touch_after_ms = 100;
    short.grace_ms = 100;
    short.max_sessions_per_user = 2;
    create_user_session(&store, &p, &short).await;
    create_user_session(&store, &p, &short).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(listed_ids(&store, &p, 64).await.is_empty());
    let mut pol = short.clone();
    pol.idle_ms = 60_000;
    pol.cap_policy = CapPolicy::Refuse;
    // Two dead sessions must not count against a cap of two.
    create_user_session(&store, &p, &pol).await;
    create_user_session(&store, &p, &pol).await;
    assert_eq!(listed_ids(&store, &p, 64).await.len(), 2);
}

/// `peek` returns the live records of the keys it is given, in order, `None` for a superseded,
/// ended or unknown key, and moves no deadline (a load past `touch_after` would).
pub async fn peek_reads_without_touching(store: DynStore) {
    let pol = super::Policy { touch_after_ms: 1, ..policy() };
    let p = principal();
    let a = create_user_session(&store, &p, &pol).await;
    let b = create_user_session(&store, &p, &pol).await;
    let gone = create_user_session(&store, &p, &pol).await;
    assert!(store.destroy(&gone, now()).await.unwrap());
    let before = store.list_user(p.user(), now(), 64).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let unknown = key(p.user().tag());
    let got = store.peek(&[b, unknown, a, gone], now()).await.unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].as_ref().map(|r| r.principal.clone()), Some(Some(p.clone())));
    assert!(got[1].is_none() && got[3].is_none());
    assert!(got[2].is_some());
    assert_eq!(store.list_user(p.user(), now(), 64).await.unwrap(), before, "nothing touched");
    assert!(store.peek(&[], now()).await.unwrap().is_empty());
}
