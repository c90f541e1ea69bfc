//! The store conformance suite: the same checks, run against every [`Store`].
//!
//! Each check is a public async function taking a fresh store. The list of checks is written
//! once, inside [`conformance_tests!`](crate::conformance_tests); that macro turns it into one
//! `#[tokio::test]` per check for one backend, and the same list builds [`CHECKS`], which
//! [`run_all`] runs in turn. A check added to the list runs on every store.
//!
//! Checks use random principals and tags, so they never see each other's sessions (they run in
//! parallel against one Redis). Every check asserts exact outcomes: a store that breaks the
//! protocol fails it.
// Test code: a failed expectation must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sesame::store::UpdateFn;
use sesame::{
    value, CapPolicy, CreateOutcome, Delta, Loaded, Login, Lookup, Policy, Record, RotateOutcome,
    Rotation, RotationKind, SaveOutcome, SessionKey, SessionToken, Store, StoreError, Tag,
    TokenCodec, Update,
};
use tokio::sync::Barrier;

/// A store under test.
pub type DynStore = Arc<dyn Store>;

/// A running check: the future of one check function.
pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One conformance check: its name and its function.
pub type Check = (&'static str, fn(DynStore) -> CheckFuture);

macro_rules! check_table {
    (; $($name:ident),* $(,)?) => {
        /// Every conformance check, by name, in the order [`run_all`] runs them (the list
        /// of [`conformance_tests!`](crate::conformance_tests)).
        pub const CHECKS: &[Check] = &[
            $((stringify!($name), |store: DynStore| -> CheckFuture { Box::pin($name(store)) }),)*
        ];
    };
}

crate::conformance_tests!(@list (check_table));

/// A policy with generous limits, a 60 s idle window, a cap of 64 sessions per user and a 1 s
/// grace window.
pub fn policy() -> Policy {
    Policy {
        idle_ms: 60_000,
        absolute_ms: 3_600_000,
        touch_after_ms: 2_000,
        max_record_bytes: 64 * 1024,
        max_attributes: 64,
        max_sessions_per_user: 64,
        cap_policy: CapPolicy::EvictOldest,
        grace_ms: 1_000,
        renew_after_ms: None,
    }
}

fn now() -> u64 {
    sesame::now_ms()
}

fn codec() -> TokenCodec {
    TokenCodec::default()
}

/// A fresh token under `tag`.
pub fn token(tag: Tag) -> SessionToken {
    codec().generate(tag).unwrap()
}

/// A fresh key under `tag`.
pub fn key(tag: Tag) -> SessionKey {
    token(tag).key()
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
        rotated_ms: 0,
        version: 1,
        attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
    }
}

/// Saves `d` with the record as stored now as the base (the lineage's head when `k` was
/// superseded within its grace window, an empty record when absent), the way the session layer
/// does after its load.
pub async fn save(
    store: &DynStore,
    k: &SessionKey,
    d: &Delta,
    now_ms: u64,
    pol: &Policy,
) -> Result<SaveOutcome, StoreError> {
    let base = match store.load(k, now_ms, pol).await? {
        Lookup::Live(l) | Lookup::Successor { loaded: l, .. } => l.record,
        _ => Record::default(),
    };
    store.save(k, &base, d, now_ms, pol).await
}

/// A login of `principal` at the given epoch, authenticated now.
pub fn login(principal: &str, epoch: u64) -> Login {
    Login { principal: principal.to_string(), auth_ms: now(), epoch }
}

/// A same-privilege rotation of `old` to `new` (the successor sealed for `old`'s holder).
pub fn renew<'a>(
    old: &SessionToken,
    new: &SessionToken,
    base: &'a Record,
    delta: &'a Delta,
    grace_ms: u64,
) -> Rotation<'a> {
    Rotation {
        old: old.key(),
        base,
        new: new.key(),
        sealed_successor: codec().seal_successor(old, new),
        delta,
        login: None,
        kind: RotationKind::Renew { grace_ms },
    }
}

/// An anonymous session under `old` logging in as `login`'s principal under `new`.
pub fn elevate<'a>(
    old: &SessionKey,
    new: &SessionKey,
    base: &'a Record,
    delta: &'a Delta,
    login: Login,
) -> Rotation<'a> {
    Rotation {
        old: *old,
        base,
        new: *new,
        sealed_successor: Vec::new(),
        delta,
        login: Some(login),
        kind: RotationKind::Elevate,
    }
}

/// A delta setting the given attributes.
pub fn set(attrs: &[(&str, &[u8])]) -> Delta {
    Delta {
        set: attrs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
        ..Delta::default()
    }
}

/// An encoded list of numbers.
fn list(v: &[u64]) -> Vec<u8> {
    value::encode(v, usize::MAX).unwrap()
}

fn decode_list(b: &[u8]) -> Vec<u64> {
    value::decode(b).unwrap()
}

/// An exact update of `name` appending `n` to the list stored there, computed from `seen`.
pub fn append(name: &str, seen: Option<Vec<u8>>, n: u64) -> Update {
    let apply: UpdateFn = Arc::new(move |stored: Option<&[u8]>| {
        let mut v: Vec<u64> = match stored {
            Some(b) => value::decode(b)?,
            None => Vec::new(),
        };
        v.push(n);
        value::encode(&v, usize::MAX).map(Some)
    });
    let result = apply(seen.as_deref()).unwrap();
    Update { name: name.to_string(), seen, result, apply }
}

/// The session under `k`, which must be its own live session.
async fn expect_live(store: &DynStore, k: &SessionKey, pol: &Policy) -> Loaded {
    match store.load(k, now(), pol).await.unwrap() {
        Lookup::Live(l) => l,
        other => panic!("expected a live session under {k:?}, got {other:?}"),
    }
}

async fn expect_missing(store: &DynStore, k: &SessionKey, pol: &Policy) {
    let got = store.load(k, now(), pol).await.unwrap();
    assert_eq!(got, Lookup::Missing, "expected no session under {k:?}");
}

fn saved(outcome: SaveOutcome) -> Record {
    match outcome {
        SaveOutcome::Saved(r) => r,
        other => panic!("expected Saved, got {other:?}"),
    }
}

fn rotated(outcome: RotateOutcome) -> Record {
    match outcome {
        RotateOutcome::Rotated(r) => r,
        other => panic!("expected Rotated, got {other:?}"),
    }
}

async fn listed_ids(store: &DynStore, p: &str, limit: usize) -> Vec<String> {
    store.list_user(p, now(), limit).await.unwrap().into_iter().map(|s| s.id).collect()
}

/// Opens a chain of sealed successors from `old`.
fn open_chain(old: &SessionToken, sealed: &[Vec<u8>]) -> Option<SessionToken> {
    let mut t = old.clone();
    for s in sealed {
        t = codec().open_successor(&t, s)?;
    }
    Some(t)
}

async fn create_user_session_token(store: &DynStore, p: &str, pol: &Policy) -> SessionToken {
    let t = token(Tag::for_principal(p));
    let out = store.create(&t.key(), &record(Some(p), &[]), None, now(), pol).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    t
}

async fn create_user_session(store: &DynStore, p: &str, pol: &Policy) -> SessionKey {
    create_user_session_token(store, p, pol).await.key()
}

async fn create_anonymous(store: &DynStore, attrs: &[(&str, &[u8])]) -> SessionToken {
    let t = token(Tag::random().unwrap());
    let out = store.create(&t.key(), &record(None, attrs), None, now(), &policy()).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    t
}

// ------------------------------------------------------------------------------------------
// Records, saves, limits, timeouts
// ------------------------------------------------------------------------------------------

/// A created session loads back as written, with an idle deadline one idle window away.
pub async fn create_then_load(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    let r = record(None, &[("a", b"\x01\"x\""), ("b", &[0u8, 255, 7])]);
    let t = now();
    assert_eq!(store.create(&k, &r, None, t, &pol).await.unwrap(), CreateOutcome::Created);
    let l = expect_live(&store, &k, &pol).await;
    assert_eq!(l.record, r);
    assert!(l.idle_deadline_ms >= t + 58_000 && l.idle_deadline_ms <= now() + 60_000);
    expect_missing(&store, &key(Tag::random().unwrap()), &pol).await;
}

/// Creating on a key that is taken writes nothing and reports it.
pub async fn create_is_create_if_absent(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    let first = store.create(&k, &record(None, &[("a", b"1")]), None, now(), &pol).await.unwrap();
    assert_eq!(first, CreateOutcome::Created);
    let again = store.create(&k, &record(None, &[("a", b"2")]), None, now(), &pol).await.unwrap();
    assert_eq!(again, CreateOutcome::Exists);
    let l = expect_live(&store, &k, &pol).await;
    assert_eq!(l.record.attrs["a"], b"1");
    assert_eq!(l.record.version, 1);
}

/// A save writes only the delta: other attributes stay, removed ones go, version grows, and
/// the outcome carries the record as written.
pub async fn save_merges_delta(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    let r = record(None, &[("a", b"1"), ("b", b"2")]);
    store.create(&k, &r, None, now(), &pol).await.unwrap();
    let d = Delta {
        set: vec![("c".into(), b"3".to_vec()), ("b".into(), b"22".to_vec())],
        remove: vec!["a".into(), "nope".into()],
        ..Delta::default()
    };
    let written = saved(save(&store, &k, &d, now(), &pol).await.unwrap());
    assert_eq!(written.version, 2);
    let l = expect_live(&store, &k, &pol).await;
    assert_eq!(l.record, written);
    let names: Vec<&str> = l.record.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(l.record.attrs["b"], b"22");
    assert_eq!((l.record.created_ms, l.record.absolute_ms), (r.created_ms, r.absolute_ms));
    // Removing every attribute leaves a valid, empty session.
    let d = Delta { remove: vec!["b".into(), "c".into()], ..Delta::default() };
    let written = saved(save(&store, &k, &d, now(), &pol).await.unwrap());
    assert_eq!(written.version, 3);
    let l = expect_live(&store, &k, &pol).await;
    assert!(l.record.attrs.is_empty());
    assert_eq!(l.record.version, 3);
}

/// A save to a session that does not exist writes nothing and says so.
pub async fn save_missing_writes_nothing(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    let d = set(&[("a", b"1")]);
    assert_eq!(save(&store, &k, &d, now(), &pol).await.unwrap(), SaveOutcome::Missing);
    expect_missing(&store, &k, &pol).await;
}

/// A save over the size or attribute-count limit is refused whole; nothing partial is written.
pub async fn save_over_limits_is_refused_whole(store: DynStore) {
    let k = key(Tag::random().unwrap());
    store.create(&k, &record(None, &[("a", b"1")]), None, now(), &policy()).await.unwrap();
    let mut pol = policy();
    pol.max_attributes = 3;
    pol.max_record_bytes = 300;
    let many = Delta {
        set: (0..3).map(|i| (format!("n{i}"), b"x".to_vec())).collect(),
        ..Delta::default()
    };
    let e = save(&store, &k, &many, now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    let big = set(&[("b", &[b'y'; 400]), ("a", b"changed")]);
    let e = save(&store, &k, &big, now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    let l = expect_live(&store, &k, &policy()).await;
    assert_eq!(l.record.attrs.len(), 1);
    assert_eq!(l.record.attrs["a"], b"1");
    assert_eq!(l.record.version, 1);
}

/// An update keeps its computed result when the stored value is the one it saw (its function
/// is not run again), and one whose function fails on a changed value refuses the whole save.
pub async fn update_failure_writes_nothing(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    let five = value::encode(&5u64, usize::MAX).unwrap();
    store.create(&k, &record(None, &[("n", &five)]), None, now(), &pol).await.unwrap();
    let base = expect_live(&store, &k, &pol).await.record;
    let failing: UpdateFn = Arc::new(|_: Option<&[u8]>| Err("boom".to_string()));
    let six = value::encode(&6u64, usize::MAX).unwrap();
    // Seen is current: the result is kept as computed, the failing function never runs.
    let fresh = Update {
        name: "n".into(),
        seen: Some(five.clone()),
        result: Some(six.clone()),
        apply: failing.clone(),
    };
    let d = Delta { update: vec![fresh], ..Delta::default() };
    let written = saved(store.save(&k, &base, &d, now(), &pol).await.unwrap());
    assert_eq!(written.attrs["n"], six);
    assert_eq!(written.version, 2);
    // Seen is stale: the function runs on the stored value, fails, and nothing is written
    // (not even the delta's set).
    let stale = Update { name: "n".into(), seen: Some(five), result: None, apply: failing };
    let d = Delta {
        set: vec![("other".into(), b"1".to_vec())],
        update: vec![stale],
        ..Delta::default()
    };
    let e = store.save(&k, &base, &d, now(), &pol).await.unwrap_err();
    assert!(matches!(&e, StoreError::Update { name, .. } if name == "n"), "{e}");
    let l = expect_live(&store, &k, &pol).await;
    assert_eq!(l.record, written);
}

/// An idle session expires; a read after `touch_after` pushes the idle deadline, an earlier
/// read does not (touches are coalesced).
pub async fn idle_timeout_and_coalesced_touch(store: DynStore) {
    let mut pol = policy();
    pol.idle_ms = 1_500;
    pol.touch_after_ms = 500;
    pol.grace_ms = 500;
    let k = key(Tag::random().unwrap());
    let t0 = now();
    store.create(&k, &record(None, &[]), None, t0, &pol).await.unwrap();
    // 300 ms in (less than touch_after): a touch would move the deadline to about t0 + 1800.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = expect_live(&store, &k, &pol).await.idle_deadline_ms;
    assert!(first <= t0 + 1_500 + 150, "an early read must not push the deadline");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pushed = expect_live(&store, &k, &pol).await.idle_deadline_ms;
    assert!(pushed >= t0 + 700 + 1_400, "a read after touch_after pushes the deadline");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // 1.7 s after creation: alive only because of the touch at 0.7 s.
    expect_live(&store, &k, &pol).await;
    let idle = key(Tag::random().unwrap());
    store.create(&idle, &record(None, &[]), None, now(), &pol).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    expect_missing(&store, &idle, &pol).await;
}

/// The absolute deadline ends a session however active it is.
pub async fn absolute_timeout(store: DynStore) {
    let mut pol = policy();
    pol.idle_ms = 5_000;
    pol.touch_after_ms = 100;
    let k = key(Tag::random().unwrap());
    let mut r = record(None, &[]);
    r.absolute_ms = now() + 1_500;
    store.create(&k, &r, None, now(), &pol).await.unwrap();
    let l = expect_live(&store, &k, &pol).await;
    assert!(l.idle_deadline_ms <= r.absolute_ms, "TTL capped by the absolute deadline");
    let d = set(&[("a", b"1")]);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        expect_live(&store, &k, &pol).await;
        assert!(matches!(save(&store, &k, &d, now(), &pol).await.unwrap(), SaveOutcome::Saved(_)));
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    expect_missing(&store, &k, &pol).await;
    assert_eq!(save(&store, &k, &d, now(), &pol).await.unwrap(), SaveOutcome::Missing);
}

/// A record whose version is `u64::MAX` saves and rotates without overflowing: the version
/// stays `u64::MAX`.
pub async fn version_saturates(store: DynStore) {
    let pol = policy();
    let old = token(Tag::random().unwrap());
    let mut r = record(None, &[("a", b"1")]);
    r.version = u64::MAX;
    let out = store.create(&old.key(), &r, None, now(), &pol).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    let written = saved(save(&store, &old.key(), &set(&[("b", b"2")]), now(), &pol).await.unwrap());
    assert_eq!(written.version, u64::MAX);
    assert_eq!(written.attrs["b"], b"2");
    let l = expect_live(&store, &old.key(), &pol).await;
    assert_eq!(l.record.version, u64::MAX);
    let new = token(old.tag());
    let d = set(&[("c", b"3")]);
    let rec =
        rotated(store.rotate(&renew(&old, &new, &l.record, &d, 1_000), now(), &pol).await.unwrap());
    assert_eq!(rec.version, u64::MAX);
    assert_eq!(expect_live(&store, &new.key(), &pol).await.record.version, u64::MAX);
}

/// Concurrent saves of different attributes of one session all persist, even when every
/// save starts from the same, soon stale, loaded record.
pub async fn concurrent_saves_all_persist(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    store.create(&k, &record(None, &[("keep", b"1")]), None, now(), &pol).await.unwrap();
    let base = expect_live(&store, &k, &pol).await.record;
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let (store, base) = (store.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let d = Delta { set: vec![(format!("a{i}"), vec![i])], ..Delta::default() };
            store.save(&k, &base, &d, now(), &policy()).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), SaveOutcome::Saved(_)));
    }
    let l = expect_live(&store, &k, &pol).await;
    assert_eq!(l.record.attrs.len(), 41);
    assert_eq!(l.record.version, 41);
}

/// Concurrent exact updates of one attribute are never lost: 50 requests that all loaded the
/// same record each append their number to one list, and all 50 numbers are there.
pub async fn concurrent_exact_updates(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    store.create(&k, &record(None, &[("list", &list(&[]))]), None, now(), &pol).await.unwrap();
    let barrier = Arc::new(Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let pol = policy();
            let base = expect_live(&store, &k, &pol).await.record;
            // Every request loads before any saves: all but the first see a stale value.
            barrier.wait().await;
            let d = Delta {
                update: vec![append("list", base.attrs.get("list").cloned(), i)],
                ..Delta::default()
            };
            saved(store.save(&k, &base, &d, now(), &pol).await.unwrap())
        }));
    }
    let mut versions = BTreeSet::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert!(
            decode_list(&r.attrs["list"]).contains(&(i as u64)),
            "the write holds its own update"
        );
        assert!(versions.insert(r.version), "every write has its own version");
    }
    assert_eq!(versions, (2..=51).collect::<BTreeSet<u64>>());
    let l = expect_live(&store, &k, &pol).await;
    let mut got = decode_list(&l.record.attrs["list"]);
    assert_eq!(got.len(), 50, "no update applied twice: {got:?}");
    got.sort_unstable();
    assert_eq!(got, (0..50).collect::<Vec<u64>>());
    assert_eq!(l.record.version, 51);
}

/// Sets and exact updates of the same attribute from concurrent writers: each update is exact
/// (computed on the value stored just before it), each set overwrites whole (last writer wins),
/// so the final value is the last set followed by exactly the updates written after it, in
/// write (version) order. Within one delta, sets apply before updates, so an update of an
/// attribute the same delta sets is computed on the set value.
pub async fn set_and_update_same_attribute(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    store.create(&k, &record(None, &[("log", &list(&[]))]), None, now(), &pol).await.unwrap();
    let base = expect_live(&store, &k, &pol).await.record;
    let barrier = Arc::new(Barrier::new(30));
    let mut tasks = Vec::new();
    for i in 0..30u64 {
        let (store, barrier, base) = (store.clone(), barrier.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            // Writers 0..25 append their number; writers 25..30 set the list to [1000 + i].
            let is_set = i >= 25;
            let d = if is_set {
                Delta { set: vec![("log".into(), list(&[1000 + i]))], ..Delta::default() }
            } else {
                Delta {
                    update: vec![append("log", base.attrs.get("log").cloned(), i)],
                    ..Delta::default()
                }
            };
            barrier.wait().await;
            (i, is_set, saved(store.save(&k, &base, &d, now(), &policy()).await.unwrap()))
        }));
    }
    let mut writes = Vec::new();
    for t in tasks {
        let (i, is_set, r) = t.await.unwrap();
        let got = decode_list(&r.attrs["log"]);
        if is_set {
            assert_eq!(got, [1000 + i], "a set writes its value whole");
        } else {
            assert_eq!(got.last(), Some(&i), "an update is computed on the value it overwrites");
        }
        writes.push((r.version, i, is_set));
    }
    writes.sort_unstable();
    let versions: Vec<u64> = writes.iter().map(|w| w.0).collect();
    assert_eq!(versions, (2..=31).collect::<Vec<u64>>(), "every write has its own version");
    let last_set = writes.iter().rposition(|w| w.2).unwrap();
    let mut expected = vec![1000 + writes[last_set].1];
    expected.extend(writes[last_set + 1..].iter().map(|w| w.1));
    let l = expect_live(&store, &k, &pol).await;
    assert_eq!(decode_list(&l.record.attrs["log"]), expected);
    // One delta setting and updating the same attribute: the set applies first, the update
    // then runs again on the set value (it no longer matches what the update saw).
    let seen = l.record.attrs.get("log").cloned();
    let d = Delta {
        set: vec![("log".into(), list(&[7]))],
        update: vec![append("log", seen, 8)],
        ..Delta::default()
    };
    let r = saved(store.save(&k, &l.record, &d, now(), &pol).await.unwrap());
    assert_eq!(decode_list(&r.attrs["log"]), [7, 8]);
}

// ------------------------------------------------------------------------------------------
// Rotation, grace windows, reuse detection, logout
// ------------------------------------------------------------------------------------------

/// A rotation builds the successor from the record as stored now, not from the caller's
/// (possibly stale) base: a save that landed between the load and the rotation is kept.
pub async fn rotate_merges_into_current_record(store: DynStore) {
    let pol = policy();
    let old = create_anonymous(&store, &[("a", b"1")]).await;
    let base = expect_live(&store, &old.key(), &pol).await.record;
    saved(store.save(&old.key(), &base, &set(&[("x", b"1")]), now(), &pol).await.unwrap());
    let new = token(old.tag());
    let d = set(&[("y", b"2")]);
    let t = now();
    let rec =
        rotated(store.rotate(&renew(&old, &new, &base, &d, 1_000), now(), &pol).await.unwrap());
    let names: Vec<&str> = rec.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "x", "y"]);
    assert_eq!(rec.version, 3);
    assert!(rec.rotated_ms >= t && rec.rotated_ms <= now(), "rotation time recorded");
    assert_eq!(
        (rec.created_ms, rec.absolute_ms),
        (base.created_ms, base.absolute_ms),
        "no login: deadlines kept"
    );
    assert_eq!(expect_live(&store, &new.key(), &pol).await.record, rec);
}

/// A rotation to a key that is taken (a token collision) writes nothing.
pub async fn rotate_collision_writes_nothing(store: DynStore) {
    let pol = policy();
    let a = create_anonymous(&store, &[("who", b"a")]).await;
    let b = create_anonymous(&store, &[("who", b"b")]).await;
    let base = expect_live(&store, &a.key(), &pol).await.record;
    let d = set(&[("who", b"c")]);
    let out = store.rotate(&renew(&a, &b, &base, &d, 1_000), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Collision);
    assert_eq!(expect_live(&store, &a.key(), &pol).await.record, base);
    let lb = expect_live(&store, &b.key(), &pol).await.record;
    assert_eq!((lb.attrs["who"].as_slice(), lb.version), (&b"b"[..], 1));
}

/// Concurrent same-privilege rotations of one token leave exactly one live successor: one
/// `Rotated`, every other `AlreadyRotated` naming that same head (and writing nothing).
pub async fn concurrent_rotations_have_one_successor(store: DynStore) {
    const N: usize = 16;
    let pol = policy();
    let p = principal();
    let old = create_user_session_token(&store, &p, &pol).await;
    let base = expect_live(&store, &old.key(), &pol).await.record;
    let barrier = Arc::new(Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let (store, barrier, base, old) =
            (store.clone(), barrier.clone(), base.clone(), old.clone());
        tasks.push(tokio::spawn(async move {
            let new = token(old.tag());
            let d = set(&[(&format!("r{i}"), &[i as u8])]);
            barrier.wait().await;
            let out =
                store.rotate(&renew(&old, &new, &base, &d, 1_000), now(), &policy()).await.unwrap();
            (i, new, out)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winners: Vec<&(usize, SessionToken, RotateOutcome)> =
        results.iter().filter(|r| matches!(r.2, RotateOutcome::Rotated(_))).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one rotation wins: {:?}",
        results.iter().map(|r| &r.2).collect::<Vec<_>>()
    );
    let (wi, winner, _) = winners[0];
    for (_, _, out) in &results {
        match out {
            RotateOutcome::Rotated(_) => {}
            RotateOutcome::AlreadyRotated { head, loaded, sealed } => {
                assert_eq!(head, &winner.key());
                assert!(loaded.record.attrs.contains_key(&format!("r{wi}")));
                assert_eq!(
                    open_chain(&old, sealed).as_ref(),
                    Some(winner),
                    "sealed opens to the head's token"
                );
            }
            other => panic!("expected Rotated or AlreadyRotated, got {other:?}"),
        }
    }
    let mut live = Vec::new();
    for (i, new, _) in &results {
        match store.load(&new.key(), now(), &pol).await.unwrap() {
            Lookup::Live(l) => live.push((*i, l)),
            Lookup::Missing => {}
            other => panic!("a losing key must be Missing, got {other:?}"),
        }
    }
    assert_eq!(live.len(), 1, "exactly one new key is live");
    assert_eq!(live[0].0, *wi);
    let names: Vec<String> = live[0].1.record.attrs.keys().cloned().collect();
    assert_eq!(names, [format!("r{wi}")], "the losers wrote nothing");
    assert_eq!(listed_ids(&store, &p, 64).await, [winner.key().id()]);
}

/// Within its grace window a superseded token resolves to its successor: the sealed successor
/// opens to the head's token (along a chain of rotations too), a save through it lands on the
/// head, and the principal's index holds the head only.
pub async fn grace_window_resolves_to_successor(store: DynStore) {
    let pol = policy();
    let p = principal();
    let old = token(Tag::for_principal(&p));
    let out = store
        .create(&old.key(), &record(Some(&p), &[("a", b"1")]), None, now(), &pol)
        .await
        .unwrap();
    assert_eq!(out, CreateOutcome::Created);
    let base = expect_live(&store, &old.key(), &pol).await.record;
    let new = token(old.tag());
    let d = set(&[("b", b"2")]);
    let rec =
        rotated(store.rotate(&renew(&old, &new, &base, &d, 1_000), now(), &pol).await.unwrap());
    match store.load(&old.key(), now(), &pol).await.unwrap() {
        Lookup::Successor { head, loaded, sealed } => {
            assert_eq!(head, new.key());
            assert_eq!(loaded.record, rec);
            assert_eq!(sealed.len(), 1);
            assert_eq!(codec().open_successor(&old, &sealed[0]), Some(new.clone()));
        }
        other => panic!("expected Successor, got {other:?}"),
    }
    assert_eq!(expect_live(&store, &new.key(), &pol).await.record, rec);
    // A save through the old token within grace is applied to the head.
    let written =
        saved(store.save(&old.key(), &base, &set(&[("c", b"3")]), now(), &pol).await.unwrap());
    assert_eq!(written.version, rec.version + 1);
    let head = expect_live(&store, &new.key(), &pol).await.record;
    assert_eq!(head, written);
    let names: Vec<&str> = head.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(listed_ids(&store, &p, 64).await, [new.key().id()]);
    // A second rotation: the first token still reaches the head through both hops.
    let newer = token(old.tag());
    let d = Delta::default();
    rotated(store.rotate(&renew(&new, &newer, &head, &d, 1_000), now(), &pol).await.unwrap());
    match store.load(&old.key(), now(), &pol).await.unwrap() {
        Lookup::Successor { head, sealed, .. } => {
            assert_eq!(head, newer.key());
            assert_eq!(sealed.len(), 2);
            assert_eq!(open_chain(&old, &sealed), Some(newer.clone()));
        }
        other => panic!("expected Successor, got {other:?}"),
    }
    assert_eq!(listed_ids(&store, &p, 64).await, [newer.key().id()]);
}

/// A superseded token presented after its grace window is reuse: the load answers `Reused`
/// and the whole lineage is revoked (the head is gone); saves and rotations through it write
/// nothing.
pub async fn reuse_after_grace_revokes_lineage(store: DynStore) {
    let pol = policy();
    let p = principal();
    let d = Delta::default();
    // Two lineages of one user, each rotated once with a 300 ms grace window.
    let mut lineages = Vec::new();
    for _ in 0..2 {
        let old = create_user_session_token(&store, &p, &pol).await;
        let base = expect_live(&store, &old.key(), &pol).await.record;
        let new = token(old.tag());
        rotated(store.rotate(&renew(&old, &new, &base, &d, 300), now(), &pol).await.unwrap());
        expect_live(&store, &new.key(), &pol).await;
        lineages.push((old, base, new));
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    // The first: a load through its old token is reuse, and revokes it.
    let (old, _, new) = &lineages[0];
    assert_eq!(store.load(&old.key(), now(), &pol).await.unwrap(), Lookup::Reused);
    expect_missing(&store, &new.key(), &pol).await;
    let out = save(&store, &new.key(), &set(&[("x", b"1")]), now(), &pol).await.unwrap();
    assert_eq!(out, SaveOutcome::Missing);
    assert_eq!(
        listed_ids(&store, &p, 64).await,
        [lineages[1].2.key().id()],
        "the head left the index"
    );
    // The second: a save or a rotation through its old token writes nothing; a load then is
    // reuse all the same.
    let (old, base, new) = &lineages[1];
    let out = store.save(&old.key(), base, &set(&[("x", b"1")]), now(), &pol).await.unwrap();
    assert_eq!(out, SaveOutcome::Missing, "a save through a token past grace writes nothing");
    let third = token(old.tag());
    let out = store.rotate(&renew(old, &third, base, &d, 300), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Missing, "a rotation of a token past grace writes nothing");
    expect_missing(&store, &third.key(), &pol).await;
    assert_eq!(store.load(&old.key(), now(), &pol).await.unwrap(), Lookup::Reused);
    expect_missing(&store, &new.key(), &pol).await;
    assert!(listed_ids(&store, &p, 64).await.is_empty());
}

/// An anonymous session logging in (Elevate): the successor carries the data and the login
/// (deadlines restart) and joins the principal's index; the old token is dead at once and is
/// never reuse; a second rotation of it finds nothing.
pub async fn elevate_kills_old_token_at_once(store: DynStore) {
    let pol = policy();
    let p = principal();
    let anon = create_anonymous(&store, &[("cart", b"[1]")]).await;
    let base = expect_live(&store, &anon.key(), &pol).await.record;
    let epoch = store.user_epoch(&p).await.unwrap();
    let new = key(Tag::for_principal(&p));
    let l = login(&p, epoch);
    let d = set(&[("step", b"2")]);
    let t = now();
    let rec = rotated(
        store.rotate(&elevate(&anon.key(), &new, &base, &d, l.clone()), now(), &pol).await.unwrap(),
    );
    assert_eq!(rec.principal.as_deref(), Some(p.as_str()));
    assert_eq!(rec.auth_ms, Some(l.auth_ms));
    assert!(rec.created_ms >= t && rec.created_ms <= now(), "creation time restarts at login");
    assert_eq!(rec.absolute_ms, rec.created_ms + pol.absolute_ms);
    let names: Vec<&str> = rec.attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["cart", "step"]);
    assert_eq!(expect_live(&store, &new, &pol).await.record, rec);
    expect_missing(&store, &anon.key(), &pol).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    expect_missing(&store, &anon.key(), &pol).await;
    let again = key(Tag::for_principal(&p));
    let out = store
        .rotate(&elevate(&anon.key(), &again, &base, &d, login(&p, epoch)), now(), &pol)
        .await
        .unwrap();
    assert_eq!(out, RotateOutcome::Missing);
    expect_missing(&store, &again, &pol).await;
    let renewed = token(anon.tag());
    let out = store.rotate(&renew(&anon, &renewed, &base, &d, 1_000), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Missing);
    expect_missing(&store, &renewed.key(), &pol).await;
    assert_eq!(
        store.save(&anon.key(), &base, &d, now(), &pol).await.unwrap(),
        SaveOutcome::Missing
    );
    assert_eq!(listed_ids(&store, &p, 64).await, [new.id()]);
    expect_live(&store, &new, &pol).await;
}

/// A login (Elevate) ends the chain of superseded tokens for requests: an anonymous token
/// renewed before the login and presented within its grace window reaches no session (a load,
/// a save or a rotation through it neither sees nor touches the logged-in session), as the
/// elevated token itself does not: either may have been planted (session fixation).
pub async fn elevate_ends_the_chain(store: DynStore) {
    let pol = policy();
    let p = principal();
    let t0 = create_anonymous(&store, &[("cart", b"1")]).await;
    let base = expect_live(&store, &t0.key(), &pol).await.record;
    let t1 = token(t0.tag());
    let d = Delta::default();
    rotated(store.rotate(&renew(&t0, &t1, &base, &d, 1_000), now(), &pol).await.unwrap());
    let base1 = expect_live(&store, &t1.key(), &pol).await.record;
    let epoch = store.user_epoch(&p).await.unwrap();
    let t2 = key(Tag::for_principal(&p));
    let l = login(&p, epoch);
    let head =
        rotated(store.rotate(&elevate(&t1.key(), &t2, &base1, &d, l), now(), &pol).await.unwrap());
    assert_eq!(
        store.load(&t0.key(), now(), &pol).await.unwrap(),
        Lookup::Missing,
        "load through t0"
    );
    let out = store.save(&t0.key(), &base, &set(&[("x", b"1")]), now(), &pol).await.unwrap();
    assert_eq!(out, SaveOutcome::Missing, "save through t0");
    let t3 = token(t0.tag());
    let out = store.rotate(&renew(&t0, &t3, &base, &d, 1_000), now(), &pol).await.unwrap();
    assert_eq!(out, RotateOutcome::Missing, "rotation of t0");
    expect_missing(&store, &t3.key(), &pol).await;
    assert_eq!(expect_live(&store, &t2, &pol).await.record, head);
}

/// Destroy reports whether a live session was ended and removes it from its index.
pub async fn destroy_ends_session(store: DynStore) {
    let pol = policy();
    let p = principal();
    let k = create_user_session(&store, &p, &pol).await;
    let other = create_user_session(&store, &p, &pol).await;
    assert!(store.destroy(&k, now()).await.unwrap());
    expect_missing(&store, &k, &pol).await;
    assert!(!store.destroy(&k, now()).await.unwrap());
    assert_eq!(
        save(&store, &k, &set(&[("a", b"1")]), now(), &pol).await.unwrap(),
        SaveOutcome::Missing
    );
    assert_eq!(listed_ids(&store, &p, 64).await, [other.id()]);
    assert!(!store.destroy(&key(Tag::random().unwrap()), now()).await.unwrap());
}

/// Destroying a superseded token (within grace) ends its lineage: the head is deleted.
pub async fn destroy_superseded_ends_head(store: DynStore) {
    let pol = policy();
    let p = principal();
    let old = create_user_session_token(&store, &p, &pol).await;
    let base = expect_live(&store, &old.key(), &pol).await.record;
    let new = token(old.tag());
    let d = Delta::default();
    rotated(store.rotate(&renew(&old, &new, &base, &d, 1_000), now(), &pol).await.unwrap());
    assert!(store.destroy(&old.key(), now()).await.unwrap());
    expect_missing(&store, &new.key(), &pol).await;
    expect_missing(&store, &old.key(), &pol).await;
    assert!(listed_ids(&store, &p, 64).await.is_empty());
    assert!(!store.destroy(&old.key(), now()).await.unwrap());
    assert!(!store.destroy(&new.key(), now()).await.unwrap());
}

/// A logout racing concurrent rotations of the same token ends the lineage whoever wins:
/// destroy reports a live session ended, and afterwards no new key holds a live session.
pub async fn destroy_races_rotations(store: DynStore) {
    const N: usize = 16;
    let pol = policy();
    for round in 0..8 {
        let p = principal();
        let old = create_user_session_token(&store, &p, &pol).await;
        let base = expect_live(&store, &old.key(), &pol).await.record;
        let barrier = Arc::new(Barrier::new(N + 1));
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (store, barrier, base, old) =
                (store.clone(), barrier.clone(), base.clone(), old.clone());
            tasks.push(tokio::spawn(async move {
                let new = token(old.tag());
                let d = set(&[("r", b"1")]);
                barrier.wait().await;
                let out = store
                    .rotate(&renew(&old, &new, &base, &d, 1_000), now(), &policy())
                    .await
                    .unwrap();
                assert!(
                    matches!(
                        out,
                        RotateOutcome::Rotated(_)
                            | RotateOutcome::AlreadyRotated { .. }
                            | RotateOutcome::Missing
                    ),
                    "{out:?}"
                );
                new
            }));
        }
        let destroy = {
            let (store, barrier, k) = (store.clone(), barrier.clone(), old.key());
            tokio::spawn(async move {
                barrier.wait().await;
                store.destroy(&k, now()).await.unwrap()
            })
        };
        let mut news = Vec::new();
        for t in tasks {
            news.push(t.await.unwrap());
        }
        assert!(destroy.await.unwrap(), "round {round}: a live session was ended");
        for new in &news {
            let got = store.load(&new.key(), now(), &pol).await.unwrap();
            assert_eq!(got, Lookup::Missing, "round {round}: a rotation outlived the logout");
        }
        expect_missing(&store, &old.key(), &pol).await;
        assert!(listed_ids(&store, &p, 64).await.is_empty(), "round {round}");
    }
}

// ------------------------------------------------------------------------------------------
// Principals: lists, revocation, epochs, the cap
// ------------------------------------------------------------------------------------------

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
    let listed = store.list_user(&p, now(), 64).await.unwrap();
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

/// A list returns at most `limit` sessions, the most recently active first (a save is
/// activity: it moves an older session to the front).
pub async fn list_limit_most_recent_first(store: DynStore) {
    let pol = policy();
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
    assert!(!store.revoke(&p, &other.id(), now()).await.unwrap(), "not p's session");
    expect_live(&store, &other, &pol).await;
    assert!(!store.revoke(&p, "AAAAAAAAAAAAAAAAAAAAAA", now()).await.unwrap());
    assert!(store.revoke(&p, &a.id(), now()).await.unwrap());
    assert!(!store.revoke(&p, &a.id(), now()).await.unwrap());
    expect_missing(&store, &a, &pol).await;
    assert_eq!(store.revoke_all(&p, Some(&c.id()), now()).await.unwrap(), 1);
    expect_missing(&store, &b, &pol).await;
    expect_live(&store, &c, &pol).await;
    assert_eq!(store.revoke_all(&p, None, now()).await.unwrap(), 1);
    expect_missing(&store, &c, &pol).await;
    assert!(listed_ids(&store, &p, 64).await.is_empty());
    expect_live(&store, &other, &pol).await;
}

/// A login whose epoch is stale (the user's sessions were revoked after it began) is refused
/// by create and by rotate, and writes nothing; with the current epoch it goes through.
pub async fn stale_epoch_login_is_refused(store: DynStore) {
    let pol = policy();
    let p = principal();
    let e0 = store.user_epoch(&p).await.unwrap();
    let k1 = key(Tag::for_principal(&p));
    let out =
        store.create(&k1, &record(Some(&p), &[]), Some(&login(&p, e0)), now(), &pol).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    assert_eq!(store.revoke_all(&p, None, now()).await.unwrap(), 1);
    let e1 = store.user_epoch(&p).await.unwrap();
    assert_ne!(e1, e0, "revoke_all moves the epoch");
    expect_missing(&store, &k1, &pol).await;
    // create
    let k2 = key(Tag::for_principal(&p));
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
    let new = key(Tag::for_principal(&p));
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
    let t2 = token(Tag::for_principal(&p));
    let base2 = expect_live(&store, &k2, &pol).await.record;
    let relogin = |epoch| Rotation {
        old: k2,
        base: &base2,
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
    assert_eq!(rec.principal.as_deref(), Some(p.as_str()));
    assert_eq!(listed_ids(&store, &p, 64).await, [t2.key().id()]);
}

/// A revoke-all racing logins that began before it leaves no session of the user alive: each
/// create lands before it (and is ended by it) or is refused as revoked.
pub async fn revoke_all_races_logins(store: DynStore) {
    const N: usize = 20;
    let pol = policy();
    for round in 0..5 {
        let p = principal();
        let epoch = store.user_epoch(&p).await.unwrap();
        let barrier = Arc::new(Barrier::new(N + 1));
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (store, barrier, p) = (store.clone(), barrier.clone(), p.clone());
            tasks.push(tokio::spawn(async move {
                let k = key(Tag::for_principal(&p));
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
                store.revoke_all(&p, None, now()).await.unwrap()
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
    // a is older but was active after b was created.
    saved(save(&store, &a, &set(&[("x", b"1")]), now(), &pol).await.unwrap());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let c = create_user_session(&store, &p, &pol).await;
    expect_missing(&store, &b, &pol).await;
    expect_live(&store, &a, &pol).await;
    assert_eq!(listed_ids(&store, &p, 64).await, [c.id(), a.id()]);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let anon = create_anonymous(&store, &[]).await;
    let base = expect_live(&store, &anon.key(), &pol).await.record;
    let new = key(Tag::for_principal(&p));
    let epoch = store.user_epoch(&p).await.unwrap();
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
            let k = key(Tag::for_principal(&p));
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
    let k = key(Tag::for_principal(&p));
    let e = store.create(&k, &record(Some(&p), &[]), None, now(), &pol).await.unwrap_err();
    assert!(matches!(e, StoreError::LimitExceeded(_)), "{e}");
    expect_missing(&store, &k, &pol).await;
    assert_eq!(listed_ids(&store, &p, 64).await.len(), 2);
    let anon = create_anonymous(&store, &[("cart", b"1")]).await;
    let base = expect_live(&store, &anon.key(), &pol).await.record;
    let new = key(Tag::for_principal(&p));
    let epoch = store.user_epoch(&p).await.unwrap();
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

/// Runs every check of [`CHECKS`] in turn, each on a fresh store from `make` (for example a
/// new client with its own key prefix on one shared Redis Cluster, which is too slow to start
/// per check). Prints each check's name to stderr first, so a failure names its check.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = DynStore>,
{
    for (name, check) in CHECKS {
        eprintln!("conformance check: {name}");
        check(make().await).await;
    }
}

/// Generates one `#[tokio::test]` (multi-threaded runtime) per conformance check. `$make` is
/// an async function or closure returning `(DynStore, guard)`; the guard (for example the
/// Redis server) lives until the test ends.
///
/// This macro holds the one list of checks: [`conformance::CHECKS`](crate::conformance::CHECKS)
/// and [`conformance::run_all`](crate::conformance::run_all) are built from it too.
#[macro_export]
macro_rules! conformance_tests {
    // The list of checks, written once: calls `$cb! { $args ; check, check, ... }`.
    (@list ($($cb:tt)*) $($args:tt)*) => {
        $($cb)*! { $($args)* ;
            create_then_load,
            create_is_create_if_absent,
            save_merges_delta,
            save_missing_writes_nothing,
            save_over_limits_is_refused_whole,
            update_failure_writes_nothing,
            idle_timeout_and_coalesced_touch,
            absolute_timeout,
            version_saturates,
            concurrent_saves_all_persist,
            concurrent_exact_updates,
            set_and_update_same_attribute,
            rotate_merges_into_current_record,
            rotate_collision_writes_nothing,
            concurrent_rotations_have_one_successor,
            grace_window_resolves_to_successor,
            reuse_after_grace_revokes_lineage,
            elevate_kills_old_token_at_once,
            elevate_ends_the_chain,
            destroy_ends_session,
            destroy_superseded_ends_head,
            destroy_races_rotations,
            list_user_sessions,
            list_limit_most_recent_first,
            revoke_one_and_all,
            stale_epoch_login_is_refused,
            revoke_all_races_logins,
            cap_evicts_least_recently_active,
            cap_is_exact_under_concurrent_logins,
            cap_refuses,
            index_forgets_expired_sessions,
        }
    };
    (@each $make:expr ; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _guard) = ($make)().await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
    ($make:expr) => {
        $crate::conformance_tests!(@list ($crate::conformance_tests) @each $make);
    };
}
