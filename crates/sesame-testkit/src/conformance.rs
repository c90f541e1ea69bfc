//! The store conformance suite: the same checks, run against every [`Store`].
//!
//! Each check is a public async function taking a fresh store. The
//! [`conformance_tests!`](crate::conformance_tests) macro turns all of them into
//! `#[tokio::test]`s for one backend. Checks use random principals and tags, so they never
//! see each other's sessions.
// Test code: a failed expectation must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use sesame::{
    CapPolicy, Delta, Policy, Record, SaveOutcome, SessionKey, Store, StoreError, Tag, Taken,
    TokenCodec,
};

/// A store under test.
pub type DynStore = Arc<dyn Store>;

/// A policy with generous limits and a 60 s idle window.
pub fn policy() -> Policy {
    Policy {
        idle_ms: 60_000,
        absolute_ms: 3_600_000,
        touch_after_ms: 2_000,
        max_record_bytes: 64 * 1024,
        max_attributes: 64,
        max_sessions_per_user: None,
        cap_policy: CapPolicy::EvictOldest,
    }
}

fn now() -> u64 {
    sesame::now_ms()
}

/// A fresh key under `tag`.
pub fn key(tag: Tag) -> SessionKey {
    TokenCodec::default().generate(tag).unwrap().key()
}

/// A principal nobody else uses.
pub fn principal() -> String {
    format!("user-{}", key(Tag::random().unwrap()).id())
}

/// A record created now with the given attributes.
pub fn record(principal: Option<&str>, attrs: &[(&str, &[u8])]) -> Record {
    let t = now();
    Record {
        created_ms: t,
        absolute_ms: t + policy().absolute_ms,
        principal: principal.map(str::to_string),
        auth_ms: principal.map(|_| t),
        version: 1,
        attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
    }
}

/// Saves `d` with the record as stored now as the base (an empty record when absent), the way
/// the session layer does after its load.
pub async fn save(
    store: &DynStore,
    k: &SessionKey,
    d: &Delta,
    now_ms: u64,
    pol: &Policy,
) -> Result<SaveOutcome, StoreError> {
    let base = store.load(k, now_ms, pol).await?.map(|l| l.record).unwrap_or_default();
    store.save(k, &base, d, now_ms, pol).await
}

async fn create_user_session(store: &DynStore, p: &str, pol: &Policy) -> SessionKey {
    let k = key(Tag::for_principal(p));
    assert!(store.create(&k, &record(Some(p), &[]), now(), pol).await.unwrap());
    k
}

/// A created session loads back as written, with an idle deadline one idle window away.
pub async fn create_then_load(store: DynStore) {
    let k = key(Tag::random().unwrap());
    let r = record(None, &[("a", b"\x01\"x\""), ("b", &[0u8, 255, 7])]);
    let t = now();
    assert!(store.create(&k, &r, t, &policy()).await.unwrap());
    let l = store.load(&k, now(), &policy()).await.unwrap().expect("session present");
    assert_eq!(l.record, r);
    assert!(l.idle_deadline_ms >= t + 58_000 && l.idle_deadline_ms <= now() + 60_000);
    assert!(store.load(&key(Tag::random().unwrap()), now(), &policy()).await.unwrap().is_none());
}

/// Creating on a key that is taken writes nothing and reports it.
pub async fn create_is_create_if_absent(store: DynStore) {
    let k = key(Tag::random().unwrap());
    assert!(store.create(&k, &record(None, &[("a", b"1")]), now(), &policy()).await.unwrap());
    assert!(!store.create(&k, &record(None, &[("a", b"2")]), now(), &policy()).await.unwrap());
    let l = store.load(&k, now(), &policy()).await.unwrap().unwrap();
    assert_eq!(l.record.attrs["a"], b"1");
}

/// A save writes only the delta: other attributes stay, removed ones go, version grows.
pub async fn save_merges_delta(store: DynStore) {
    let k = key(Tag::random().unwrap());
    let r = record(None, &[("a", b"1"), ("b", b"2")]);
    store.create(&k, &r, now(), &policy()).await.unwrap();
    let d = Delta {
        set: vec![("c".into(), b"3".to_vec()), ("b".into(), b"22".to_vec())],
        remove: vec!["a".into(), "nope".into()],
        expected_version: None,
    };
    assert_eq!(save(&store, &k, &d, now(), &policy()).await.unwrap(), SaveOutcome::Saved(2));
    let l = store.load(&k, now(), &policy()).await.unwrap().unwrap();
    let names: Vec<&str> = l.record.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(l.record.attrs["b"], b"22");
    assert_eq!(l.record.version, 2);
    // Removing every attribute leaves a valid, empty session.
    let d = Delta { remove: vec!["b".into(), "c".into()], ..Delta::default() };
    assert_eq!(save(&store, &k, &d, now(), &policy()).await.unwrap(), SaveOutcome::Saved(3));
    let l = store.load(&k, now(), &policy()).await.unwrap().unwrap();
    assert!(l.record.attrs.is_empty());
}

/// A save to a session that does not exist writes nothing and says so.
pub async fn save_missing_writes_nothing(store: DynStore) {
    let k = key(Tag::random().unwrap());
    let d = Delta { set: vec![("a".into(), b"1".to_vec())], ..Delta::default() };
    assert_eq!(save(&store, &k, &d, now(), &policy()).await.unwrap(), SaveOutcome::Missing);
    assert!(store.load(&k, now(), &policy()).await.unwrap().is_none());
}

/// Compare-and-set refuses a stale version and writes nothing.
pub async fn save_compare_and_set(store: DynStore) {
    let k = key(Tag::random().unwrap());
    store.create(&k, &record(None, &[("a", b"1")]), now(), &policy()).await.unwrap();
    let stale =
        Delta { set: vec![("a".into(), b"2".to_vec())], remove: vec![], expected_version: Some(9) };
    assert_eq!(save(&store, &k, &stale, now(), &policy()).await.unwrap(), SaveOutcome::Conflict(1));
    let ok = Delta { expected_version: Some(1), ..stale };
    assert_eq!(save(&store, &k, &ok, now(), &policy()).await.unwrap(), SaveOutcome::Saved(2));
    assert_eq!(store.load(&k, now(), &policy()).await.unwrap().unwrap().record.attrs["a"], b"2");
}

/// A save over the size or attribute-count limit is refused whole; nothing partial is written.
pub async fn save_over_limits_is_refused_whole(store: DynStore) {
    let k = key(Tag::random().unwrap());
    store.create(&k, &record(None, &[("a", b"1")]), now(), &policy()).await.unwrap();
    let mut pol = policy();
    pol.max_attributes = 3;
    pol.max_record_bytes = 300;
    let many = Delta {
        set: (0..3).map(|i| (format!("n{i}"), b"x".to_vec())).collect(),
        ..Delta::default()
    };
    let e = save(&store, &k, &many, now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    let big = Delta {
        set: vec![("b".into(), vec![b'y'; 400]), ("a".into(), b"changed".to_vec())],
        ..Delta::default()
    };
    let e = save(&store, &k, &big, now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    let l = store.load(&k, now(), &policy()).await.unwrap().unwrap();
    assert_eq!(l.record.attrs.len(), 1);
    assert_eq!(l.record.attrs["a"], b"1");
    assert_eq!(l.record.version, 1);
}

/// An idle session expires; a read after `touch_after` pushes the idle deadline, an earlier
/// read does not (touches are coalesced).
pub async fn idle_timeout_and_coalesced_touch(store: DynStore) {
    let mut pol = policy();
    pol.idle_ms = 1_500;
    pol.touch_after_ms = 500;
    let k = key(Tag::random().unwrap());
    let t0 = now();
    store.create(&k, &record(None, &[]), t0, &pol).await.unwrap();
    // 300 ms in (less than touch_after): a touch would move the deadline to about t0 + 1800.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = store.load(&k, now(), &pol).await.unwrap().unwrap().idle_deadline_ms;
    assert!(first <= t0 + 1_500 + 150, "an early read must not push the deadline");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pushed = store.load(&k, now(), &pol).await.unwrap().unwrap().idle_deadline_ms;
    assert!(pushed >= t0 + 700 + 1_400, "a read after touch_after pushes the deadline");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // 1.7 s after creation: alive only because of the touch at 0.7 s.
    assert!(store.load(&k, now(), &pol).await.unwrap().is_some());
    let idle = key(Tag::random().unwrap());
    store.create(&idle, &record(None, &[]), now(), &pol).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert!(store.load(&idle, now(), &pol).await.unwrap().is_none(), "idle session expired");
}

/// The absolute deadline ends a session however active it is.
pub async fn absolute_timeout(store: DynStore) {
    let mut pol = policy();
    pol.idle_ms = 5_000;
    pol.touch_after_ms = 100;
    let k = key(Tag::random().unwrap());
    let mut r = record(None, &[]);
    r.absolute_ms = now() + 1_500;
    store.create(&k, &r, now(), &pol).await.unwrap();
    let l = store.load(&k, now(), &pol).await.unwrap().unwrap();
    assert!(l.idle_deadline_ms <= r.absolute_ms, "TTL capped by the absolute deadline");
    let d = Delta { set: vec![("a".into(), b"1".to_vec())], ..Delta::default() };
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(store.load(&k, now(), &pol).await.unwrap().is_some());
        assert!(matches!(save(&store, &k, &d, now(), &pol).await.unwrap(), SaveOutcome::Saved(_)));
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(store.load(&k, now(), &pol).await.unwrap().is_none());
    assert_eq!(save(&store, &k, &d, now(), &pol).await.unwrap(), SaveOutcome::Missing);
}

/// Taking a session returns it and kills the key; destroy reports whether it existed.
pub async fn take_and_destroy(store: DynStore) {
    let p = principal();
    let k = create_user_session(&store, &p, &policy()).await;
    match store.take(&k, now()).await.unwrap() {
        Taken::Taken(r) => assert_eq!(r.principal.as_deref(), Some(p.as_str())),
        other => panic!("expected the record, got {other:?}"),
    }
    assert!(store.load(&k, now(), &policy()).await.unwrap().is_none());
    assert!(store.list_user(&p, now()).await.unwrap().is_empty(), "index entry removed");
    // A retried rotation (the first failed half-way) gets the sealed record again.
    assert!(matches!(store.take(&k, now()).await.unwrap(), Taken::Taken(_)));
    assert!(store.load(&k, now(), &policy()).await.unwrap().is_none(), "still sealed");
    assert!(store.finish_take(&k, false, now()).await.unwrap(), "the sealed record is dropped");
    assert_eq!(store.take(&k, now()).await.unwrap(), Taken::Missing);
    assert!(!store.finish_take(&k, true, now()).await.unwrap(), "nothing left to restore");
    assert!(store.load(&k, now(), &policy()).await.unwrap().is_none());
    // A logout of a sealed session deletes it.
    let k1 = create_user_session(&store, &p, &policy()).await;
    assert!(matches!(store.take(&k1, now()).await.unwrap(), Taken::Taken(_)));
    assert!(store.destroy(&k1).await.unwrap());
    assert!(!store.finish_take(&k1, true, now()).await.unwrap(), "nothing left to restore");
    let k2 = create_user_session(&store, &p, &policy()).await;
    assert!(store.destroy(&k2).await.unwrap());
    assert!(!store.destroy(&k2).await.unwrap());
    assert!(store.list_user(&p, now()).await.unwrap().is_empty());
}

/// A taken (sealed) session is dead until it is restored; restored, it is whole again: same
/// record, back in its principal's index, still counted by the cap.
pub async fn take_then_restore(store: DynStore) {
    let p = principal();
    let pol = policy();
    let k = create_user_session(&store, &p, &pol).await;
    let before = store.load(&k, now(), &pol).await.unwrap().unwrap().record;
    let Taken::Taken(taken) = store.take(&k, now()).await.unwrap() else {
        panic!("expected the record")
    };
    assert_eq!(taken, before);
    assert!(store.load(&k, now(), &pol).await.unwrap().is_none(), "dead while sealed");
    let d = Delta { set: vec![("a".into(), b"1".to_vec())], ..Delta::default() };
    assert_eq!(save(&store, &k, &d, now(), &pol).await.unwrap(), SaveOutcome::Missing);
    assert!(store.list_user(&p, now()).await.unwrap().is_empty());
    assert!(store.revoke_all(&p, None).await.unwrap() == 0, "revocation does not see it");
    assert!(store.finish_take(&k, true, now()).await.unwrap());
    let again = store.load(&k, now(), &pol).await.unwrap().expect("restored");
    assert_eq!(again.record, before);
    let listed = store.list_user(&p, now()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, k.id());
    assert!(!store.finish_take(&k, false, now()).await.unwrap(), "finished once only");
    assert!(store.load(&k, now(), &pol).await.unwrap().is_some(), "a late drop cannot kill it");
    assert_eq!(store.revoke_all(&p, None).await.unwrap(), 1);
}

/// A principal's sessions are listed oldest first, and only theirs.
pub async fn list_user_sessions(store: DynStore) {
    let (p, q) = (principal(), principal());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_user_session(&store, &p, &policy()).await.id());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    create_user_session(&store, &q, &policy()).await;
    let listed: Vec<String> =
        store.list_user(&p, now()).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, ids);
    assert_eq!(store.list_user(&q, now()).await.unwrap().len(), 1);
    assert!(store.list_user(&principal(), now()).await.unwrap().is_empty());
}

/// Revoking one session by id works for its owner only; revoke-all keeps the one asked.
pub async fn revoke_one_and_all(store: DynStore) {
    let (p, q) = (principal(), principal());
    let a = create_user_session(&store, &p, &policy()).await;
    let b = create_user_session(&store, &p, &policy()).await;
    let c = create_user_session(&store, &p, &policy()).await;
    let other = create_user_session(&store, &q, &policy()).await;
    assert!(!store.revoke(&p, &other.id()).await.unwrap(), "not p's session");
    assert!(store.load(&other, now(), &policy()).await.unwrap().is_some());
    assert!(!store.revoke(&p, "AAAAAAAAAAAAAAAAAAAAAA").await.unwrap());
    assert!(store.revoke(&p, &a.id()).await.unwrap());
    assert!(!store.revoke(&p, &a.id()).await.unwrap());
    assert!(store.load(&a, now(), &policy()).await.unwrap().is_none());
    assert_eq!(store.revoke_all(&p, Some(&c.id())).await.unwrap(), 1);
    assert!(store.load(&b, now(), &policy()).await.unwrap().is_none());
    assert!(store.load(&c, now(), &policy()).await.unwrap().is_some());
    assert_eq!(store.revoke_all(&p, None).await.unwrap(), 1);
    assert!(store.load(&c, now(), &policy()).await.unwrap().is_none());
    assert!(store.list_user(&p, now()).await.unwrap().is_empty());
    assert!(store.load(&other, now(), &policy()).await.unwrap().is_some());
}

/// At the per-user cap the oldest session is evicted (default policy).
pub async fn cap_evicts_oldest(store: DynStore) {
    let p = principal();
    let mut pol = policy();
    pol.max_sessions_per_user = Some(2);
    let a = create_user_session(&store, &p, &pol).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = create_user_session(&store, &p, &pol).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = create_user_session(&store, &p, &pol).await;
    assert!(store.load(&a, now(), &pol).await.unwrap().is_none(), "oldest evicted");
    let ids: Vec<String> =
        store.list_user(&p, now()).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, [b.id(), c.id()]);
}

/// The cap stays exact when many logins of one user race: never more live sessions than the cap.
pub async fn cap_is_exact_under_concurrent_logins(store: DynStore) {
    let p = principal();
    let mut pol = policy();
    pol.max_sessions_per_user = Some(3);
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (store, p, pol) = (store.clone(), p.clone(), pol.clone());
        tasks.push(tokio::spawn(async move { create_user_session(&store, &p, &pol).await }));
    }
    let mut keys = Vec::new();
    for t in tasks {
        keys.push(t.await.unwrap());
    }
    assert_eq!(store.list_user(&p, now()).await.unwrap().len(), 3);
    let mut live = 0;
    for k in &keys {
        live += usize::from(store.load(k, now(), &pol).await.unwrap().is_some());
    }
    assert_eq!(live, 3, "exactly the cap survives");
    let mut refuse = pol.clone();
    refuse.cap_policy = CapPolicy::Refuse;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (store, p, refuse) = (store.clone(), principal(), refuse.clone());
        tasks.push(tokio::spawn(async move {
            let k = key(Tag::for_principal(&p));
            store.create(&k, &record(Some(&p), &[]), now(), &refuse).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap(), "distinct users never hit each other's cap");
    }
}

/// Under the refuse policy a login past the cap fails and writes nothing.
pub async fn cap_refuses(store: DynStore) {
    let p = principal();
    let mut pol = policy();
    pol.max_sessions_per_user = Some(2);
    pol.cap_policy = CapPolicy::Refuse;
    create_user_session(&store, &p, &pol).await;
    create_user_session(&store, &p, &pol).await;
    let k = key(Tag::for_principal(&p));
    let e = store.create(&k, &record(Some(&p), &[]), now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    assert!(store.load(&k, now(), &pol).await.unwrap().is_none());
    assert_eq!(store.list_user(&p, now()).await.unwrap().len(), 2);
}

/// Expired sessions leave the index: the list and the cap count only live sessions.
pub async fn index_forgets_expired_sessions(store: DynStore) {
    let p = principal();
    let mut short = policy();
    short.idle_ms = 400;
    short.touch_after_ms = 100;
    short.max_sessions_per_user = Some(2);
    create_user_session(&store, &p, &short).await;
    create_user_session(&store, &p, &short).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.list_user(&p, now()).await.unwrap().is_empty());
    let mut pol = short.clone();
    pol.idle_ms = 60_000;
    pol.cap_policy = CapPolicy::Refuse;
    // Two dead sessions must not count against a cap of two.
    create_user_session(&store, &p, &pol).await;
    create_user_session(&store, &p, &pol).await;
    assert_eq!(store.list_user(&p, now()).await.unwrap().len(), 2);
}

/// Concurrent saves of different attributes of one session all persist, even when every
/// save starts from the same, soon stale, loaded record.
pub async fn concurrent_saves_all_persist(store: DynStore) {
    let k = key(Tag::random().unwrap());
    store.create(&k, &record(None, &[("keep", b"1")]), now(), &policy()).await.unwrap();
    let base = store.load(&k, now(), &policy()).await.unwrap().unwrap().record;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, base) = (store.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let d = Delta { set: vec![(format!("a{i}"), vec![i as u8])], ..Delta::default() };
            store.save(&k, &base, &d, now(), &policy()).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), SaveOutcome::Saved(_)));
    }
    let l = store.load(&k, now(), &policy()).await.unwrap().unwrap();
    assert_eq!(l.record.attrs.len(), 41);
    assert_eq!(l.record.version, 41);
}

/// Runs every check in turn, each on a fresh store from `make` (for example a new client
/// with its own key prefix on one shared Redis Cluster, which is too slow to start per check).
/// Prints each check's name to stderr first, so a failure names its check.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = DynStore>,
{
    macro_rules! each {
        ($($name:ident),* $(,)?) => {
            $(
                eprintln!("conformance check: {}", stringify!($name));
                $name(make().await).await;
            )*
        };
    }
    // The same list as `conformance_tests!`.
    each!(
        create_then_load,
        create_is_create_if_absent,
        save_merges_delta,
        save_missing_writes_nothing,
        save_compare_and_set,
        save_over_limits_is_refused_whole,
        idle_timeout_and_coalesced_touch,
        absolute_timeout,
        take_and_destroy,
        take_then_restore,
        list_user_sessions,
        revoke_one_and_all,
        cap_evicts_oldest,
        cap_refuses,
        cap_is_exact_under_concurrent_logins,
        index_forgets_expired_sessions,
        concurrent_saves_all_persist,
    );
}

/// Generates one `#[tokio::test]` per conformance check. `$make` is an async closure
/// returning `(DynStore, guard)`; the guard (for example the Redis server) lives until the
/// test ends.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            create_then_load, create_is_create_if_absent, save_merges_delta,
            save_missing_writes_nothing, save_compare_and_set, save_over_limits_is_refused_whole,
            idle_timeout_and_coalesced_touch, absolute_timeout, take_and_destroy, take_then_restore,
            list_user_sessions, revoke_one_and_all, cap_evicts_oldest, cap_refuses,
            cap_is_exact_under_concurrent_logins,
            index_forgets_expired_sessions, concurrent_saves_all_persist);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _guard) = ($make)().await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
}
