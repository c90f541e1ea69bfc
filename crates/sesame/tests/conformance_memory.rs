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
