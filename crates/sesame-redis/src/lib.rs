//! # sesame-redis — the Redis store of sesame
//!
//! ## Layout
//!
//! - [`RedisStore`] (`store`) and [`RedisStoreBuilder`] (`builder`): options, connecting per
//!   topology.
//! - `conn`: one connection type over the three topologies: a self-reconnecting connection to
//!   one server, a Sentinel-followed master (`sentinel`), or the async cluster connection.
//! - `keys`: every key name (session, index, epoch) in one place.
//! - `record`: the stored forms: a session record (one MessagePack array) or the pointer a
//!   rotation leaves for a superseded token.
//! - `script`: the script registry and runner (`EVALSHA`, reload on `NOSCRIPT`, `WAIT` for
//!   durability, one resend after a broken connection where that is safe); `lua/lib.lua`
//!   holds the helpers every script shares.
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
mod ops;
mod record;
mod script;
mod sentinel;
mod store;
mod url;

pub use builder::RedisStoreBuilder;
pub use checks::ServerReport;
pub use script::Durability;
pub use store::RedisStore;
