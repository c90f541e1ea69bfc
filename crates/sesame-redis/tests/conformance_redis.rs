//! The store conformance suite against the Redis store on a real, freshly spawned redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::sync::Arc;

use sesame_redis::RedisStore;
use sesame_testkit::conformance::DynStore;
use sesame_testkit::RedisServer;

async fn make() -> (DynStore, RedisServer) {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    (Arc::new(store), server)
}

sesame_testkit::conformance_tests!(make);
