//! Checks of single sessions: create and load, saves and their limits, exact updates, idle and
//! absolute timeouts, concurrent writers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sesame::store::UpdateFn;
use sesame::{value, CreateOutcome, Delta, SaveOutcome, StoreError, Tag, Update};
use tokio::sync::Barrier;

use super::{
    append, base_of, decode_list, expect_live, expect_missing, key, list, now, policy, record,
    renew, rotated, save, saved, set, token, DynStore,
};

/// A created session loads back as written, with an idle deadline one idle window away.
pub async fn create_then_load(store: DynStore) {
    let pol = policy();
    let k = key(Tag::random().unwrap());
    let r = record(None, &[("a", b"\x01\"x\""), ("b", &[0u8, 255, 7])]);
    let t = now();
    assert_eq!(store.create(&k, &r, None, t, &pol).await.unwrap(), CreateOutcome::Created);
    let l = expect_live(&store, &k, &pol).await;
    assert_eq!(*l.record, r);
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
    assert_eq!(*l.record, written);
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
    let written = saved(store.save(&k, &base_of(&base), &d, now(), &pol).await.unwrap());
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
    let e = store.save(&k, &base_of(&base), &d, now(), &pol).await.unwrap_err();
    assert!(matches!(&e, StoreError::Update { name, .. } if name == "n"), "{e}");
    let l = expect_live(&store, &k, &pol).await;
    assert_eq!(*l.record, written);
}

/// A policy with a 1.5 s idle timeout whose deadline moves once 0.5 s of it has passed.
fn short_idle() -> super::Policy {
    super::Policy { idle_ms: 1_500, touch_after_ms: 500, grace_ms: 500, ..policy() }
}

/// An idle session expires; a read after `touch_after` pushes the idle deadline, an earlier
/// read does not (touches are coalesced).
pub async fn idle_timeout_and_coalesced_touch(store: DynStore) {
    let pol = short_idle();
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

/// A save moves the idle deadline like a read does: not before `touch_after` has passed since
/// the last push (the record keeps its TTL), and fully after it.
pub async fn save_touches_like_a_read(store: DynStore) {
    let pol = short_idle();
    let k = key(Tag::random().unwrap());
    let t0 = now();
    store.create(&k, &record(None, &[]), None, t0, &pol).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let early = saved(save(&store, &k, &set(&[("a", b"1")]), now(), &pol).await.unwrap());
    assert_eq!(early.attrs["a"], b"1");
    let kept = expect_live(&store, &k, &pol).await.idle_deadline_ms;
    assert!(kept <= t0 + 1_500 + 150, "a save before touch_after keeps the deadline ({kept})");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let t1 = now();
    saved(save(&store, &k, &set(&[("a", b"2")]), t1, &pol).await.unwrap());
    let pushed = expect_live(&store, &k, &pol).await.idle_deadline_ms;
    assert!(pushed >= t1 + 1_400, "a save after touch_after pushes the deadline ({pushed})");
    // A session saved only early in its first window expires at the deadline its creation
    // set, and keeps the saved value until then.
    let early_only = key(Tag::random().unwrap());
    let t2 = now();
    store.create(&early_only, &record(None, &[]), None, t2, &pol).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    saved(save(&store, &early_only, &set(&[("b", b"1")]), now(), &pol).await.unwrap());
    assert_eq!(expect_live(&store, &early_only, &pol).await.record.attrs["b"], b"1");
    tokio::time::sleep(Duration::from_millis(1_700u64.saturating_sub(now() - t2))).await;
    expect_missing(&store, &early_only, &pol).await;
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
            store.save(&k, &base_of(&base), &d, now(), &policy()).await.unwrap()
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
            saved(store.save(&k, &base_of(&base), &d, now(), &pol).await.unwrap())
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
            (i, is_set, saved(store.save(&k, &base_of(&base), &d, now(), &policy()).await.unwrap()))
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
    let r = saved(store.save(&k, &l, &d, now(), &pol).await.unwrap());
    assert_eq!(decode_list(&r.attrs["log"]), [7, 8]);
}
