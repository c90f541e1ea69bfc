//! The store conformance suite against the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::sync::Arc;

use sesame::MemoryStore;
use sesame_testkit::conformance::DynStore;

async fn make() -> (DynStore, ()) {
    (Arc::new(MemoryStore::new()), ())
}

sesame_testkit::conformance_tests!(make);
