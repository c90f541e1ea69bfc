//! The store conformance suite against the Redis store with its near cache on (reads served
//! from memory, writes over the tracking connection): every guarantee the suite checks holds
//! with the cache as without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::sync::Arc;

use sesame_redis::{NearCacheConfig, RedisStore};
use sesame_testkit::conformance::DynStore;
use sesame_testkit::RedisServer;

async fn make() -> (DynStore, RedisServer) {
    let server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .near_cache(NearCacheConfig::default())
        .connect()
        .await
        .unwrap();
    assert!(store.near_cache_stats().unwrap().live);
    (Arc::new(store), server)
}

sesame_testkit::conformance_tests!(make);
