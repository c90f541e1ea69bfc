//! The store conformance suite against the in-memory store: one test per check, and the whole
//! list once more through `run_all` (as the replicated Redis topologies run it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::collections::BTreeSet;
use std::sync::Arc;

use sesame::MemoryStore;
use sesame_testkit::conformance::{self, DynStore};

async fn make() -> (DynStore, ()) {
    (Arc::new(MemoryStore::new()), ())
}

sesame_testkit::conformance_tests!(make);

// run_all runs every check of the one list (each name once), each on a fresh store, and all
// of them pass on one shared store too (checks never see each other's sessions).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_on_one_shared_store() {
    let names: BTreeSet<&str> = conformance::CHECKS.iter().map(|c| c.0).collect();
    assert_eq!(names.len(), conformance::CHECKS.len(), "check names are unique");
    let shared: DynStore = Arc::new(MemoryStore::new());
    conformance::run_all(|| {
        let store = shared.clone();
        async move { store }
    })
    .await;
}

// The in-memory store hands out the record it keeps: two loads, and the save between them,
// share one record rather than copying it (docs/BENCHMARKS.md, "The record shared").
#[tokio::test]
async fn loads_share_the_kept_record() {
    use sesame::{SaveOutcome, Store, Tag};
    use sesame_testkit::conformance::{base_of, key, policy, record, set};
    use sesame_testkit::fixtures::{create, live, now};
    let store = MemoryStore::new();
    let (k, pol) = (key(Tag::random().unwrap()), policy());
    create(&store, &k, &record(None, &[("a", b"1")]), &pol).await;
    let first = live(store.load(&k, now(), &pol).await.unwrap());
    let second = live(store.load(&k, now(), &pol).await.unwrap());
    assert!(Arc::ptr_eq(&first.record, &second.record), "the second load copied the record");
    let saved = store.save(&k, &base_of(&first.record), &set(&[("a", b"2")]), now(), &pol).await;
    let SaveOutcome::Saved(written) = saved.unwrap() else { panic!("not saved") };
    let third = live(store.load(&k, now(), &pol).await.unwrap());
    assert!(Arc::ptr_eq(&written, &third.record), "the load after a save copied the record");
    assert_eq!(third.record.attrs.get("a").map(Vec::as_slice), Some(&b"2"[..]));
    assert!(!Arc::ptr_eq(&first.record, &third.record), "a save wrote over a shared record");
    assert_eq!(first.record.attrs.get("a").map(Vec::as_slice), Some(&b"1"[..]));
}
