//! [`RedisStore`]: the [`sesame::Store`] implementation on one multiplexed, self-reconnecting
//! connection (to one server, the master of a Sentinel group, or a Redis Cluster). The
//! operations themselves are in `ops/`, one module each.

use std::sync::Arc;

use sesame::{SessionKey, StoreError};

use crate::builder::RedisStoreBuilder;
use crate::checks::ServerReport;
use crate::conn::Conn;
use crate::keys::Keys;
use crate::near::{Near, NearCacheStats, Ticket};
use crate::ops::lineage::Read;
use crate::script::{Call, Durability, Scripts};

/// Sessions in Redis. Clone it freely: clones share the one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conn: Conn,
    pub(crate) keys: Keys,
    pub(crate) scripts: Arc<Scripts>,
    pub(crate) durability: Option<Durability>,
    /// The near cache, when configured.
    pub(crate) near: Option<Arc<Near>>,
    /// Whether a save not due a touch is the server's own compare-and-set (`SET … IFEQ`)
    /// rather than the save script: on when the server (every master of a cluster) is Valkey 8.1 or later at connect, off
    /// for good once a server refuses the option (a failover to an older one).
    pub(crate) native_cas: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.keys.prefix()).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A builder for `url`: `redis://[user:password@]host:port[/db]` (or `rediss://` for
    /// TLS) for one server, `redis+sentinel://[user:password@]host:port,host:port/<master>`
    /// for a Sentinel group, `redis+cluster://[user:password@]host:port,host:port` for a
    /// Redis Cluster (`rediss+sentinel://`, `rediss+cluster://` with TLS). Credentials are the
    /// data nodes'.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url.into())
    }

    /// Connects to `url` with the defaults.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::builder(url).connect().await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The Redis key of a session.
    pub fn session_key(&self, key: &SessionKey) -> String {
        self.keys.session(key)
    }

    /// The Redis key of a principal's index.
    pub fn index_key(&self, user: sesame::UserRef) -> String {
        self.keys.index(user)
    }

    /// The Redis key of a principal's revocation epoch.
    pub fn epoch_key(&self, user: sesame::UserRef) -> String {
        self.keys.epoch(user)
    }

    /// Loads every script into the server's script cache, so the first calls need no
    /// `NOSCRIPT` retry. (After a server restart, calls reload scripts by themselves.)
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        crate::script::load_all(&self.conn, &self.scripts).await
    }

    /// Reads the server's version, eviction policy and persistence settings (what the
    /// connection's user may read), as a report with warnings for settings that can lose or
    /// evict live sessions. On a cluster, one node answers.
    pub async fn server_report(&self) -> ServerReport {
        crate::checks::report(&mut self.conn.clone()).await
    }

    /// Whether saves use the server's own compare-and-set (`SET … IFEQ`, Valkey 8.1 and later)
    /// when no touch is due, instead of the save script. Decided at connect from `INFO server`
    /// ([`ServerReport::native_compare_and_set`]); turned off for good if a server later
    /// refuses the option.
    pub fn uses_native_compare_and_set(&self) -> bool {
        self.native_cas.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops using the native compare-and-set: a server refused `SET … IFEQ`.
    pub(crate) fn native_cas_refused(&self) {
        if self.native_cas.swap(false, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "the server refused SET … IFEQ (an older server after a failover?): saves use the script from now on"
            );
        }
    }

    /// The near cache's counters (`None` when the store has no near cache; see
    /// [`RedisStoreBuilder::near_cache`]).
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.near.as_ref().map(|n| n.stats())
    }

    /// Runs a write script; whatever came of it, the near cache forgets the keys it names
    /// (a write whose reply was lost may still have changed them).
    pub(crate) async fn run(&self, call: &Call<'_>) -> Result<redis::Value, StoreError> {
        let result = self.run_unmarked(call).await;
        self.wrote_keys(call);
        result
    }

    /// Runs a write script and leaves the near cache alone: the caller tells it what changed
    /// ([`RedisStore::wrote_keys`], [`RedisStore::wrote_own`]).
    pub(crate) async fn run_unmarked(&self, call: &Call<'_>) -> Result<redis::Value, StoreError> {
        crate::script::run(&self.conn, self.durability, call).await
    }

    /// The near cache forgets every key `call` names.
    pub(crate) fn wrote_keys(&self, call: &Call<'_>) {
        if let Some(near) = &self.near {
            for k in call.keys() {
                near.changed(&String::from_utf8_lossy(k));
            }
        }
    }

    /// A ticket of the near cache for a write about to be sent (`None` without a cache, or
    /// while it is not in use).
    pub(crate) fn near_ticket(&self) -> Option<Ticket> {
        self.near.as_ref().and_then(|n| n.ticket())
    }

    /// This store saved `read` under `key` (see the near cache's "Own saves").
    pub(crate) fn wrote_own(&self, key: &str, read: Read, ticket: Ticket, now: u64) {
        if let Some(near) = &self.near {
            near.put_own(key, read, ticket, now);
        }
    }

    /// The near cache forgets `key` (this store just changed it).
    pub(crate) fn wrote(&self, key: &str) {
        if let Some(near) = &self.near {
            near.changed(key);
        }
    }

    /// The address of the Redis master in use, for a Sentinel-followed store (`None` for the
    /// other topologies, or while no master is known).
    pub fn current_master(&self) -> Option<String> {
        match &self.conn {
            Conn::Sentinel(s) => s.current_master(),
            _ => None,
        }
    }
}
