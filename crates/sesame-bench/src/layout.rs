//! One interface over every layout, so every measurement runs the same client code.

use std::fmt;

use sesame::{
    CreateOutcome, Delta, Loaded, Policy, Record, SaveOutcome, SessionKey, Store, ValueFormat,
};
use sesame_redis::RedisStore;

use crate::hash::HashStore;
use crate::{BenchError, BenchResult};

/// A way of storing a session in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    /// One string per session holding a MessagePack array (as built): reads are one `GET`,
    /// saves a compare-and-set script; attribute values in JSON.
    Compact,
    /// The same store and record, attribute values in MessagePack (with field names).
    CompactMsgpack,
    /// One hash per session, one field per attribute (the Spring Session way), attribute
    /// values in JSON.
    Hash,
}

impl Layout {
    /// Every layout, compact first.
    pub const ALL: [Layout; 3] = [Layout::Compact, Layout::CompactMsgpack, Layout::Hash];

    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Compact => "compact",
            Layout::CompactMsgpack => "compact-msgpack",
            Layout::Hash => "hash",
        }
    }

    /// How the layout serializes attribute values.
    pub fn value_format(self) -> ValueFormat {
        match self {
            Layout::Compact | Layout::Hash => ValueFormat::Json,
            Layout::CompactMsgpack => ValueFormat::MessagePack,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connected client of one layout.
#[derive(Debug, Clone)]
pub enum Client {
    /// The real store (JSON values).
    Compact(RedisStore),
    /// The real store again, given MessagePack values.
    CompactMsgpack(RedisStore),
    /// The hash layout.
    Hash(HashStore),
}

impl Client {
    /// Connects a client of `layout` to `url` (scripts preloaded).
    pub async fn connect(layout: Layout, url: &str) -> BenchResult<Client> {
        Ok(match layout {
            Layout::Compact => Client::Compact(RedisStore::connect(url).await?),
            Layout::CompactMsgpack => Client::CompactMsgpack(RedisStore::connect(url).await?),
            Layout::Hash => Client::Hash(HashStore::connect(url).await?),
        })
    }

    /// The layout of this client.
    pub fn layout(&self) -> Layout {
        match self {
            Client::Compact(_) => Layout::Compact,
            Client::CompactMsgpack(_) => Layout::CompactMsgpack,
            Client::Hash(_) => Layout::Hash,
        }
    }

    /// The Redis key of a session.
    pub fn session_key(&self, key: &SessionKey) -> String {
        match self {
            Client::Compact(s) | Client::CompactMsgpack(s) => s.session_key(key),
            Client::Hash(s) => s.session_key(key),
        }
    }

    /// Extra keys the layout writes for a session besides its own key: the compact store's
    /// per-user index of a logged-in session. The hash layout keeps no index.
    pub fn side_keys(&self, record: &Record) -> Vec<String> {
        match (self, &record.principal) {
            (Client::Compact(s) | Client::CompactMsgpack(s), Some(p)) => {
                vec![s.index_key(p.user())]
            }
            _ => Vec::new(),
        }
    }

    /// Creates a session; fails when the key is taken.
    pub async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        now_ms: u64,
        policy: &Policy,
    ) -> BenchResult<()> {
        match self {
            Client::Compact(s) | Client::CompactMsgpack(s) => {
                match s.create(key, record, None, now_ms, policy).await? {
                    CreateOutcome::Created => Ok(()),
                    CreateOutcome::Exists => Err(BenchError::new("session key already taken")),
                    other => Err(BenchError::new(format!("unexpected create outcome {other:?}"))),
                }
            }
            Client::Hash(s) => s.create(key, record, now_ms, policy).await,
        }
    }

    /// Loads a session (with the coalesced touch); `None` when it is not the token's own live
    /// session (absent, or superseded by a rotation).
    pub async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> BenchResult<Option<Loaded>> {
        match self {
            Client::Compact(s) | Client::CompactMsgpack(s) => {
                Ok(s.load(key, now_ms, policy).await?.live())
            }
            // The hash layout's save does not use its base; its deadline is never read.
            Client::Hash(s) => Ok(s
                .load(key, now_ms, policy)
                .await?
                .map(|record| Loaded::written(record, now_ms, policy))),
        }
    }

    /// Saves a delta onto `base` (the session as loaded); the new version, or `None` when the
    /// session is missing.
    pub async fn save(
        &self,
        key: &SessionKey,
        base: &Loaded,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> BenchResult<Option<u64>> {
        match self {
            Client::Compact(s) | Client::CompactMsgpack(s) => {
                match s.save(key, base, delta, now_ms, policy).await? {
                    SaveOutcome::Saved(r) => Ok(Some(r.version)),
                    SaveOutcome::Missing => Ok(None),
                    other => Err(BenchError::new(format!("unexpected save outcome {other:?}"))),
                }
            }
            Client::Hash(s) => s.save(key, delta, now_ms, policy).await,
        }
    }
}
