//! # sesame-redis — the Redis store of sesame
//!
//! ## Quick start
//!
//! Connect, and give the store to a [`sesame::SessionManager`]; then hand the manager to
//! `sesame-axum`'s `SessionLayer` or `sesame-actix`'s `SessionMiddleware`. Every instance of
//! the app that connects to the same Redis, with the same secret, shares the sessions.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sesame::{SessionConfig, SessionManager};
//! use sesame_redis::RedisStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = sesame_testkit::RedisServer::start();
//! # let url = server.url();
//! // url: "redis://127.0.0.1:6379", "redis+sentinel://s1:26379,s2:26379/mymaster",
//! // "redis+cluster://n1:7000,n2:7000", ...
//! let store = RedisStore::builder(&url)
//!     .response_timeout(Duration::from_secs(1)) // a request waits at most this, then 503
//!     .connect()
//!     .await?;
//! let config = SessionConfig::builder()
//!     .token_secret("32 or more random bytes, the same on every instance")
//!     .build()?;
//! let manager = SessionManager::new(Arc::new(store), config);
//!
//! let session = manager.open(None);
//! session.insert("theme", "dark").await?;
//! session.commit().await?; // the session is in Redis now
//! # assert_eq!(server.cli(&["DBSIZE"])?, "1");
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! - [`RedisStore`] (`store`) and [`RedisStoreBuilder`] (`builder`): options, connecting per
//!   topology.
//! - `conn`: one connection type over the three topologies: a self-reconnecting connection to
//!   one server, a Sentinel-followed master (`sentinel`), or the async cluster connection.
//! - `pool`: dedicated connections for writes that wait for replicas (durability on), so that
//!   a `WAIT` never holds up other requests on the shared connection.
//! - `keys`: every key name (session, index, epoch) in one place.
//! - `record`: the stored forms: a session record (one MessagePack array) or the pointer a
//!   rotation leaves for a superseded token.
//! - `script`: the script registry and runner (`EVALSHA`, reload on `NOSCRIPT`, `WAIT` for
//!   durability, one resend after a broken connection where that is safe); `lua/lib.lua`
//!   holds the helpers the scripts share (each script is sent with those it names).
//! - `ops/`: one module per operation, its Lua script beside it — `load`, `save`, `create`,
//!   `rotate` (one slot, or three single-slot steps for a login into another slot), `end`
//!   (logout, reuse, revoke one), `users` (list, revoke all, epoch), and `lineage` (reading a
//!   key and following superseded tokens).
//! - `error`: classifying Redis errors (unavailable / configuration / corrupt).
//! - `checks`: start-up checks of version, `maxmemory-policy` and persistence.
//! - [`admin`]: for operators' tools (the `sesame` command): every master of the deployment,
//!   `SCAN`, session keys read as metadata (never values or tokens), server settings, keyspace
//!   notifications.
//! - `url`: store URLs — `redis://`, `redis+sentinel://`, `redis+cluster://` (and TLS forms).
//!
//! The protocol and the reasons behind it are in `docs/STORAGE.md`.
#![forbid(unsafe_code)]

pub mod admin;
mod builder;
mod checks;
mod conn;
mod error;
mod keys;
mod near;
pub(crate) mod ops;
mod pool;
mod record;
mod script;
mod sentinel;
mod store;
mod url;

pub use builder::RedisStoreBuilder;
pub use checks::ServerReport;
pub use near::{NearCacheConfig, NearCacheStats};
pub use script::Durability;
pub use store::RedisStore;

/// Entry points into the private record and pointer codec, for property tests and fuzz
/// targets. Not part of the API: it may change or go away in any release.
#[doc(hidden)]
pub mod fuzzing {
    use sesame::{Record, SessionKey};

    use crate::record::{self, Pointer, PointerKind, Stored};

    /// What a session key holds, with a pointer's kind as its byte (`R`, `E`, `M`, `X`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum StoredForm {
        /// A session record.
        Record(Record),
        /// A pointer: kind byte, `until_ms`, successor, sealed successor.
        Pointer(u8, u64, SessionKey, Vec<u8>),
    }

    /// Encodes a record as stored under a session key, without the optional idle deadline (the
    /// decoder drops it too, so the two round-trip).
    pub fn encode_record(r: &Record) -> Vec<u8> {
        record::encode(r, None)
    }

    /// Encodes a pointer; `None` for an unknown kind byte.
    pub fn encode_pointer(
        kind: u8,
        until_ms: u64,
        successor: SessionKey,
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        let kind = match kind {
            b'R' => PointerKind::Renew,
            b'E' => PointerKind::Elevate,
            b'M' => PointerKind::Moving,
            b'X' => PointerKind::Ended,
            _ => return None,
        };
        let p = Pointer { kind, until_ms, successor, sealed: sealed.to_vec() };
        Some(record::encode_pointer(&p))
    }

    /// Decodes whatever a session key holds.
    pub fn decode_stored(bytes: &[u8]) -> Result<StoredForm, String> {
        Ok(match record::decode_stored(bytes)? {
            Stored::Record(r, _) => StoredForm::Record(r),
            Stored::Pointer(p) => {
                let kind = match p.kind {
                    PointerKind::Renew => b'R',
                    PointerKind::Elevate => b'E',
                    PointerKind::Moving => b'M',
                    PointerKind::Ended => b'X',
                };
                StoredForm::Pointer(kind, p.until_ms, p.successor, p.sealed)
            }
        })
    }
}
