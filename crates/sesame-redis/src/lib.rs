//! # sesame-redis — the Redis store of sesame
//!
//! ## Layout
//!
//! - [`store`]: [`RedisStore`] and its builder — one multiplexed connection that reconnects
//!   by itself; every write is one Lua script called by SHA (reloaded on `NOSCRIPT`).
//! - `record`: the stored form of a session, one MessagePack array per key (see
//!   `docs/STORAGE.md` for the format and why it beat a hash per session).
//! - loads are one pipelined round trip of plain `GET` + `PTTL` (plus `PEXPIRE` when the
//!   idle deadline is due for a push); no script on the read path.
//! - `lua/`: the scripts — `save` (compare-and-set of the record the client merged its delta
//!   into; retried from the current record when another save came first), `create`
//!   (create-if-absent + per-user index + cap), `take` (remove for rotation or logout), `list`
//!   and `revoke` (per-user index).
//!
//! Keys: `<prefix>:{<tag>}:s:<id>` for a session, `<prefix>:{<tag>}:u:<principal>` for a
//! principal's index (a sorted set of ids scored by absolute deadline). A logged-in session's
//! tag is its principal's, so a user's sessions and index share one Redis Cluster slot.
#![forbid(unsafe_code)]

mod checks;
mod conn;
mod record;
mod sentinel;
pub mod store;
mod url;

pub use checks::ServerReport;
pub use store::{Durability, RedisStore, RedisStoreBuilder};
