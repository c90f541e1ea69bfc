//! # sesame-redis — the Redis store of sesame
//!
//! ## Layout
//!
//! - [`store`]: [`RedisStore`] and its builder; every write is one Lua script called by SHA
//!   (reloaded on `NOSCRIPT`), optionally followed by `WAIT` in the same pipeline
//!   ([`RedisStoreBuilder::durability`]).
//! - `url`: store URLs — `redis://`, `redis+sentinel://`, `redis+cluster://` (and their TLS
//!   forms).
//! - `conn`: one connection type over the three topologies: a self-reconnecting connection to
//!   one server, a Sentinel-followed master (`sentinel`), or the async cluster connection.
//! - `sentinel`: finds the master through the sentinels, confirms it with `ROLE`, and looks
//!   again on connection errors, `READONLY` and `+switch-master`.
//! - `checks`: start-up checks of version, `maxmemory-policy` and persistence.
//! - `record`: the stored form of a session, one MessagePack array per key (see
//!   `docs/STORAGE.md` for the format and why it beat a hash per session).
//! - loads are one pipelined round trip of plain `GET` + `PTTL` (plus `PEXPIRE` of the
//!   session and its index when the idle deadline is due for a push); no script on the read
//!   path.
//! - `lua/`: the scripts — `save` (compare-and-set of the record the client merged its delta
//!   into; retried from the current record when another save came first), `create`
//!   (create-if-absent + per-user index + cap), `take` (seal for a rotation, or delete for a
//!   logout), `finish` (drop or restore a sealed session), `list` and `revoke` (per-user
//!   index).
//!
//! Keys: `<prefix>:{<tag>}:s:<id>` for a session, `<prefix>:{<tag>}:x:<id>` for a session
//! sealed during a rotation, `<prefix>:{<tag>}:u:<principal>` for a principal's index (a
//! sorted set of ids scored by absolute deadline, living as long as its longest-lived
//! session). A logged-in session's tag is its principal's, so a user's sessions and index
//! share one Redis Cluster slot.
#![forbid(unsafe_code)]

mod checks;
mod conn;
mod record;
mod sentinel;
pub mod store;
mod url;

pub use checks::ServerReport;
pub use store::{Durability, RedisStore, RedisStoreBuilder};
