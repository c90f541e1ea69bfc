//! Helpers shared by `redis_store.rs` and `index.rs` that read Redis directly, through the
//! `redis` crate (sesame-testkit, which is std-only, does not have it): a store on one server,
//! a connection, the raw bytes under a key, a sorted set, every key.
// Each test binary that declares this module may use only part of it.
#![allow(dead_code)]

use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

/// A store on `server`.
pub(crate) async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url()).await.unwrap()
}

/// A new connection to `server`.
pub(crate) fn conn(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url()).unwrap().get_connection().unwrap()
}

/// The raw bytes under a Redis key.
pub(crate) fn raw(server: &RedisServer, redis_key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(redis_key).query(&mut conn(server)).unwrap()
}

/// The members of a sorted set with their scores.
pub(crate) fn zrange(server: &RedisServer, index: &str) -> Vec<(String, u64)> {
    redis::cmd("ZRANGE")
        .arg(index)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut conn(server))
        .unwrap()
}

/// Every key of the server.
pub(crate) fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn(server)).unwrap();
    keys.sort();
    keys
}
