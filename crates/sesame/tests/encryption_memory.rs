//! Encryption at rest on the in-memory store: the checks of `sesame_testkit::encryption`, each
//! on a fresh store, and all of them on one shared store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::sync::Arc;

use sesame::MemoryStore;
use sesame_testkit::conformance::DynStore;
use sesame_testkit::encryption as enc;

fn store() -> DynStore {
    Arc::new(MemoryStore::new())
}

#[tokio::test]
async fn store_holds_only_sealed_values() {
    enc::store_holds_only_sealed_values(store()).await;
}

#[tokio::test]
async fn copied_values_do_not_open() {
    enc::copied_values_do_not_open(store()).await;
}

#[tokio::test]
async fn rotations_and_updates_keep_working() {
    enc::rotations_and_updates_keep_working(store()).await;
}

#[tokio::test]
async fn key_rotation() {
    enc::key_rotation(store()).await;
}

#[tokio::test]
async fn switching_encryption_starts_new_sessions() {
    enc::switching_encryption_starts_new_sessions(store()).await;
}

#[tokio::test]
async fn sealed_principal_is_not_an_attribute() {
    enc::sealed_principal_is_not_an_attribute(store()).await;
}
