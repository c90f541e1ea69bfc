//! The store conformance suite against the in-memory store.
use std::sync::Arc;

use sesame::MemoryStore;
use sesame_testkit::conformance::DynStore;

async fn make() -> (DynStore, ()) {
    (Arc::new(MemoryStore::new()), ())
}

sesame_testkit::conformance_tests!(make);
