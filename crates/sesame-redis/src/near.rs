//! The near cache: recently read session records kept in this process, so that a request
//! whose session was read moments ago needs no round trip to Redis. Redis keeps it correct:
//! every master sends this process an invalidation for each key under the store's prefix
//! that anyone changes (`CLIENT TRACKING ON BCAST PREFIX`, over RESP3), and the entry goes.
//!
//! The rules that make it safe:
//! - **Only while every master is tracked.** A listener connection per master carries the
//!   invalidations. Until all of them have tracking on, and from the moment any of them fails
//!   (a disconnect, a `PING` not answered within the response timeout, a changed set of
//!   masters), the cache is emptied and bypassed. Redis forgets tracking on reconnect, so a
//!   reconnected listener turns it on again before the cache is used.
//! - **No stale insert.** A read records a ticket (the cache's epoch and change counter)
//!   before it asks Redis; its result is kept only when no invalidation or own write of that
//!   key, and no flush, happened since. The reply of a read that ran before a write can
//!   arrive after that write's invalidation; the ticket catches it.
//! - **Own writes at once.** Every write of this store drops the keys it changed (all keys,
//!   for a logout or a revocation of a user) as soon as Redis answered.
//! - **Bounded.** Entries live at most `max_age` (bounding staleness should invalidations
//!   ever be lost without the connection noticing), and at most `max_entries` are held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};

use crate::conn::Conn;
use crate::ops::lineage::Read;
use crate::url::NodeUrl;

/// How often each listener is checked with `PING`, and a lost one retried.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// The most keys remembered as changed while reads are in flight; beyond it every read in
/// flight is refused its insert (the memory stays bounded).
const MAX_CHANGED: usize = 65_536;

/// Settings of the near cache (see [`crate::RedisStoreBuilder::near_cache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearCacheConfig {
    /// The most sessions held (default 10,000).
    pub max_entries: usize,
    /// The longest an entry is served without asking Redis (default 5 s). Invalidations keep
    /// entries correct well within it; it bounds the damage should they ever stop silently.
    pub max_age: Duration,
}

impl Default for NearCacheConfig {
    fn default() -> NearCacheConfig {
        NearCacheConfig { max_entries: 10_000, max_age: Duration::from_secs(5) }
    }
}

/// Counters of the near cache (see [`crate::RedisStore::near_cache_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to Redis while the cache was in use.
    pub misses: u64,
    /// Reads that went to Redis because the cache was not in use (tracking not on).
    pub bypassed: u64,
    /// Keys dropped because Redis said another writer changed them.
    pub invalidations: u64,
    /// Times the whole cache was emptied (a listener lost or back, a flush from Redis, a
    /// revocation of a user).
    pub flushes: u64,
    /// Whether every master is tracked now (the cache is in use).
    pub live: bool,
    /// Entries held now.
    pub entries: u64,
}

/// A read's claim to insert its result: valid if nothing changed since it was taken.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    seq: u64,
}

struct Entry {
    read: Read,
    /// When the key's TTL ends (ms since the epoch), as of the read.
    deadline_ms: Option<u64>,
    /// When it was read.
    at_ms: u64,
}

#[derive(Default)]
struct State {
    live: bool,
    epoch: u64,
    seq: u64,
    /// Reads with a ticket below this may not insert (the change map was cleared).
    floor: u64,
    changed: HashMap<String, u64>,
    entries: HashMap<String, Entry>,
}

impl State {
    fn flush(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.entries.clear();
        self.changed.clear();
        self.floor = self.seq;
    }

    fn change(&mut self, key: &str) {
        self.seq = self.seq.wrapping_add(1);
        self.entries.remove(key);
        if self.changed.len() >= MAX_CHANGED {
            self.changed.clear();
            self.floor = self.seq;
        }
        self.changed.insert(key.to_string(), self.seq);
    }
}

/// The cache of one store (shared by its clones).
pub(crate) struct Near {
    config: NearCacheConfig,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

impl Near {
    pub(crate) fn new(config: NearCacheConfig) -> Near {
        Near {
            config,
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// The cached read of `key` at `now` (its TTL as of now), if it may be served; otherwise
    /// a ticket for the read that must go to Redis (`None`: do not cache it).
    pub(crate) fn get(&self, key: &str, now: u64) -> Result<Read, Option<Ticket>> {
        let mut st = self.state.lock();
        if !st.live {
            self.bypassed.fetch_add(1, Ordering::Relaxed);
            return Err(None);
        }
        let max_age = u64::try_from(self.config.max_age.as_millis()).unwrap_or(u64::MAX);
        let fresh = st.entries.get(key).and_then(|e| {
            let young = now.saturating_sub(e.at_ms) < max_age;
            let alive = e.deadline_ms.is_none_or(|d| d > now) && e.read.record.absolute_ms > now;
            (young && alive).then(|| {
                let mut read = e.read.clone();
                read.ttl = e.deadline_ms.map(|d| d.saturating_sub(now));
                read
            })
        });
        match fresh {
            Some(read) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(read)
            }
            None => {
                st.entries.remove(key);
                self.misses.fetch_add(1, Ordering::Relaxed);
                Err(Some(Ticket { epoch: st.epoch, seq: st.seq }))
            }
        }
    }

    /// Keeps what a read found at `now`, unless something changed since its ticket.
    pub(crate) fn put(&self, key: &str, read: &Read, ticket: Ticket, now: u64) {
        let mut st = self.state.lock();
        let unchanged = st.live
            && st.epoch == ticket.epoch
            && ticket.seq >= st.floor
            && st.changed.get(key).is_none_or(|&s| s <= ticket.seq);
        if !unchanged || self.config.max_entries == 0 {
            return;
        }
        if st.entries.len() >= self.config.max_entries && !st.entries.contains_key(key) {
            // Bounded: make room by dropping an arbitrary entry.
            if let Some(victim) = st.entries.keys().next().cloned() {
                st.entries.remove(&victim);
            }
        }
        let deadline_ms = read.ttl.map(|t| now.saturating_add(t));
        st.entries.insert(key.to_string(), Entry { read: read.clone(), deadline_ms, at_ms: now });
    }

    /// This store changed `key` (or Redis said someone did): drop it.
    pub(crate) fn changed(&self, key: &str) {
        self.state.lock().change(key);
    }

    /// This store changed keys it cannot name cheaply: drop everything.
    pub(crate) fn changed_all(&self) {
        self.state.lock().flush();
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Every master is tracked (`true`), or tracking was lost (`false`); either way, what was
    /// cached is dropped.
    fn set_live(&self, live: bool) {
        let mut st = self.state.lock();
        if st.live != live || live {
            st.flush();
            self.flushes.fetch_add(1, Ordering::Relaxed);
        }
        st.live = live;
    }

    fn is_live(&self) -> bool {
        self.state.lock().live
    }

    pub(crate) fn stats(&self) -> NearCacheStats {
        let (live, entries) = {
            let st = self.state.lock();
            (st.live, st.entries.len() as u64)
        };
        NearCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            live,
            entries,
        }
    }

    /// Applies one push message from a listener, in the order its connection received it.
    fn push(&self, info: &PushInfo) {
        match info.kind {
            PushKind::Invalidate => {
                let mut keys = Vec::new();
                let mut all = info.data.is_empty();
                for v in &info.data {
                    match v {
                        // The "flush everything" message: `invalidate` with a null.
                        Value::Nil => all = true,
                        Value::Array(items) => keys.extend(items.iter().filter_map(key_of)),
                        other => match key_of(other) {
                            Some(k) => keys.push(k),
                            None => all = true,
                        },
                    }
                }
                if all {
                    self.changed_all();
                } else {
                    let mut st = self.state.lock();
                    for k in &keys {
                        st.change(k);
                    }
                    self.invalidations.fetch_add(keys.len() as u64, Ordering::Relaxed);
                }
            }
            PushKind::Disconnection => self.set_live(false),
            _ => {}
        }
    }
}

/// A key named in an invalidation message.
fn key_of(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Hands a listener's push messages to the cache as its reader task receives them, so that
/// an invalidation is applied before any reply the same connection receives after it.
struct Sink(Weak<Near>);

impl AsyncPushSender for Sink {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match self.0.upgrade() {
            Some(near) => {
                near.push(&info);
                Ok(())
            }
            None => Err(SendError),
        }
    }
}

/// Where the masters are, for the listeners.
pub(crate) enum Masters {
    /// One server, by its URL.
    Single(String),
    /// A cluster's masters, as its nodes announce them.
    Cluster(Conn, NodeUrl),
    /// The master a Sentinel-followed store uses now.
    Sentinel(Conn, NodeUrl),
}

impl Masters {
    /// The URLs of every master now (sorted); an error when they cannot be told.
    async fn urls(&self) -> Result<Vec<String>, String> {
        let mut urls = match self {
            Masters::Single(url) => vec![url.clone()],
            Masters::Sentinel(conn, node) => match conn {
                Conn::Sentinel(s) => match s.current_master() {
                    Some(addr) => vec![node.at(&addr)],
                    None => return Err("no master known".into()),
                },
                _ => return Err("not a Sentinel store".into()),
            },
            Masters::Cluster(conn, node) => {
                let mut c = conn.clone();
                let slots: Value = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
                cluster_masters(&slots)?.iter().map(|a| node.at(a)).collect()
            }
        };
        urls.sort();
        urls.dedup();
        Ok(urls)
    }
}

/// The `host:port` of every master in a `CLUSTER SLOTS` reply.
fn cluster_masters(v: &Value) -> Result<Vec<String>, String> {
    let bad = || "unexpected CLUSTER SLOTS reply".to_string();
    let Value::Array(ranges) = v else { return Err(bad()) };
    let mut out = Vec::new();
    for r in ranges {
        let Value::Array(parts) = r else { return Err(bad()) };
        let Some(Value::Array(master)) = parts.get(2) else { return Err(bad()) };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => return Err(bad()),
        };
        let Some(Value::Int(port)) = master.get(1) else { return Err(bad()) };
        out.push(format!("{host}:{port}"));
    }
    if out.is_empty() {
        return Err("the cluster serves no slots".into());
    }
    Ok(out)
}

/// `url` asking for RESP3, which carries invalidations on the connection that tracks.
fn resp3(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}protocol=resp3")
}

/// What the listeners need to connect.
pub(crate) struct Listen {
    pub(crate) masters: Masters,
    pub(crate) prefix: String,
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
}

/// Opens a tracking listener on the master at `url`.
async fn listener(
    near: &Arc<Near>,
    l: &Listen,
    url: &str,
) -> Result<MultiplexedConnection, String> {
    let client =
        crate::conn::client(&resp3(url), l.ca_pem.as_deref()).map_err(|e| e.to_string())?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(l.connect_timeout))
        .set_response_timeout(Some(l.response_timeout))
        .set_push_sender(Sink(Arc::downgrade(near)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(format!("{}:", l.prefix))
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Keeps a listener on every master while the store lives, and the cache live only while
/// all of them are tracking.
pub(crate) async fn supervise(near: Weak<Near>, l: Listen) {
    let mut quiet_until_failure = false;
    loop {
        let Some(cache) = near.upgrade() else { return };
        let urls = l.masters.urls().await;
        let mut conns = Vec::new();
        let mut failure = urls.as_ref().err().cloned();
        for url in urls.as_deref().unwrap_or_default() {
            match listener(&cache, &l, url).await {
                Ok(c) => conns.push(c),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let (None, Ok(urls)) = (&failure, &urls) {
            cache.set_live(true);
            quiet_until_failure = false;
            tracing::debug!(masters = urls.len(), "near cache: tracking on every master");
            drop(cache);
            let reason = watch(&near, &l, &mut conns, urls).await;
            if let Some(c) = near.upgrade() {
                c.set_live(false);
                tracing::info!(%reason, "near cache bypassed until tracking is back");
            }
        } else {
            cache.set_live(false);
            drop(cache);
            if !quiet_until_failure {
                tracing::warn!(
                    error = failure.as_deref().unwrap_or("?"),
                    "near cache: cannot track the masters; bypassed"
                );
                quiet_until_failure = true;
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Checks the listeners until one fails or the masters change; says why.
async fn watch(
    near: &Weak<Near>,
    l: &Listen,
    conns: &mut [MultiplexedConnection],
    urls: &[String],
) -> String {
    let mut round: u32 = 0;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(cache) = near.upgrade() else { return "store dropped".into() };
        if !cache.is_live() {
            return "a listener disconnected".into();
        }
        drop(cache);
        for c in conns.iter_mut() {
            let cmd = redis::cmd("PING");
            match tokio::time::timeout(l.response_timeout, cmd.query_async::<Value>(c)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("a listener failed: {e}"),
                Err(_) => return "a listener did not answer PING in time".into(),
            }
        }
        round = round.wrapping_add(1);
        // The Sentinel store's master is known without a round trip: check it every time;
        // a cluster's masters cost a `CLUSTER SLOTS`: once a second.
        let due = match l.masters {
            Masters::Single(_) => false,
            Masters::Sentinel(..) => true,
            Masters::Cluster(..) => round % 4 == 0,
        };
        if due {
            match l.masters.urls().await {
                Ok(now) if now == urls => {}
                Ok(_) => return "the masters changed".into(),
                Err(e) => return format!("cannot tell the masters: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sesame::Record;

    fn read(v: u64) -> Read {
        let record = Record { version: v, absolute_ms: u64::MAX, ..Record::default() };
        Read { raw: vec![u8::try_from(v).unwrap()], record, ttl: Some(60_000) }
    }

    fn live() -> Near {
        let n = Near::new(NearCacheConfig { max_entries: 2, max_age: Duration::from_secs(5) });
        n.set_live(true);
        n
    }

    // A read whose key changed after its ticket was taken is not kept; one from after is.
    #[test]
    fn tickets_refuse_stale_inserts() {
        let n = live();
        let t = n.get("k", 0).err().flatten().unwrap();
        n.changed("k");
        n.put("k", &read(1), t, 0);
        assert!(n.get("k", 1).is_err(), "the read predates the change");
        let t = n.get("k", 1).err().flatten().unwrap();
        n.changed("other");
        n.put("k", &read(2), t, 1);
        assert_eq!(n.get("k", 2).unwrap().record.version, 2);
        assert_eq!(n.get("k", 2).unwrap().ttl, Some(59_999), "the TTL counts down");
    }

    // Several keys in one message, the null flush, a disconnection, the bounds.
    #[test]
    fn push_messages_and_bounds() {
        let n = live();
        for k in ["a", "b"] {
            let t = n.get(k, 0).err().flatten().unwrap();
            n.put(k, &read(1), t, 0);
        }
        let keys =
            Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::BulkString(b"b".to_vec())]);
        n.push(&PushInfo { kind: PushKind::Invalidate, data: vec![keys] });
        assert!(n.get("a", 1).is_err() && n.get("b", 1).is_err());
        assert_eq!(n.stats().invalidations, 2);

        let t = n.get("a", 1).err().flatten().unwrap();
        n.put("a", &read(1), t, 1);
        n.push(&PushInfo { kind: PushKind::Invalidate, data: vec![Value::Nil] });
        assert!(n.get("a", 2).is_err(), "a null invalidation flushes everything");

        let t = n.get("a", 2).err().flatten().unwrap();
        n.push(&PushInfo { kind: PushKind::Disconnection, data: vec![] });
        n.put("a", &read(1), t, 2);
        assert!(n.get("a", 3).is_err_and(|t| t.is_none()), "bypassed while not tracking");
        n.set_live(true);
        n.put("a", &read(1), t, 3);
        assert!(n.get("a", 3).is_err(), "a ticket from before the reconnect is void");

        // At most two entries; none older than max_age; none past its TTL.
        for (i, k) in ["x", "y", "z"].iter().enumerate() {
            let t = n.get(k, 10).err().flatten().unwrap();
            n.put(k, &read(i as u64), t, 10);
        }
        assert_eq!(n.stats().entries, 2);
        let t = n.get("w", 10).err().flatten().unwrap();
        n.put("w", &read(9), t, 10);
        let kept = ["x", "y", "z", "w"].iter().filter(|k| n.get(k, 10).is_ok()).count();
        assert_eq!(kept, 2);
        assert!(n.get("w", 10 + 5_000).is_err(), "older than max_age");
        let t = n.get("v", 0).err().flatten().unwrap();
        n.put("v", &Read { ttl: Some(5), ..read(1) }, t, 0);
        assert!(n.get("v", 5).is_err(), "past its TTL");
    }
}
