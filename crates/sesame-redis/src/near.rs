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
//!   for a logout or a revocation of a user) as soon as Redis answered. A save is the
//!   exception: the record it wrote is kept, so that the next request of the session needs no
//!   read (see "Own saves" below).
//!
//! ## Own saves
//!
//! In broadcast mode Redis announces every change, this store's own saves included, and
//! cannot be told to leave out the changes made by a client's scripts. So when a save is
//! answered, the cache counts the announcements of its key that arrived since the save was
//! sent (a ticket taken before sending), and keeps the record the save wrote:
//!
//! - none arrived: kept with a mark saying its own announcement is still to come; the mark
//!   lets the next announcement of the key pass, and any later one drops the entry;
//! - one arrived (the usual case: Redis sends its announcements before the write's answer):
//!   kept without a mark, so the next announcement drops it;
//! - two or more, a change of the key by this store (another of its saves), or of the user's
//!   index or epoch: not kept.
//!
//! This is exact because of how Redis announces changes:
//!
//! - it gathers the keys changed during one turn of its event loop and sends them, each key
//!   once, in one message, before the next turn; and messages arrive in order;
//! - a change of the key before the save, in another turn, leaves the value as it was (the
//!   save compares it byte for byte): a touch, which can only make the entry go early;
//! - a change after the save, in another turn, is announced after the save's own
//!   announcement, so it finds the entry unmarked, or is the second one counted;
//! - a change of the same key in the same turn, after the save, is folded into the save's own
//!   message. Every script that changes a session key compares it with what its caller read,
//!   which no caller can have read within that turn, except the revocation of all of a user's
//!   sessions, which also changes the user's index. So a message naming a user's index or
//!   epoch key drops every entry of that user's hash tag it names, marked or not, and an own
//!   save finding one since its ticket is not kept.
//!
//! Keys changed by something other than sesame (a `DEL` by an operator) in the same turn as a
//! save are not covered; `max_age` bounds what that could leave.
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
    /// Whether this store wrote it and the invalidation of that write is still to come.
    own: bool,
}

#[derive(Default)]
struct State {
    live: bool,
    epoch: u64,
    seq: u64,
    /// Reads with a ticket below this may not insert (the change maps were cleared).
    floor: u64,
    /// Every change of a key, this store's own and Redis's announcements: the last's number.
    changed: HashMap<String, u64>,
    /// Changes this store made itself: the last's number.
    local: HashMap<String, u64>,
    /// Announcements from Redis, by key: the numbers of the last two.
    heard: HashMap<String, (u64, u64)>,
    /// Announcements naming a user's index or epoch, by hash tag: the last's number.
    heard_users: HashMap<String, u64>,
    entries: HashMap<String, Entry>,
}

impl State {
    /// Whether nothing changed `key` (and no flush happened) since `ticket`.
    fn valid(&self, key: &str, ticket: Ticket) -> bool {
        self.live
            && self.epoch == ticket.epoch
            && ticket.seq >= self.floor
            && self.changed.get(key).is_none_or(|&s| s <= ticket.seq)
    }

    /// How an own save of `key` may be kept, given `ticket`, taken before it was sent (see
    /// "Own saves"): `Some(true)` marked, as its own announcement is still to come;
    /// `Some(false)` unmarked, as exactly one announcement of the key arrived since the ticket
    /// (its own, or one from before the save, the own one then still to come and drop it);
    /// `None` not at all (more announcements, a change of the user, a change by this store,
    /// a flush).
    fn own_save(&self, key: &str, ticket: Ticket) -> Option<bool> {
        let t = ticket.seq;
        let (tag, _) = tag_kind(key)?;
        let fresh = self.live && self.epoch == ticket.epoch && t >= self.floor;
        let quiet = self.local.get(key).is_none_or(|&s| s <= t)
            && self.heard_users.get(tag).is_none_or(|&s| s <= t);
        if !fresh || !quiet {
            return None;
        }
        match self.heard.get(key) {
            None => Some(true),
            Some(&(_, prev)) if prev > t => None,
            Some(&(last, _)) => Some(last <= t),
        }
    }

    /// Redis announced that `key` changed: the entry goes, unless it is this store's own
    /// save waiting for this very announcement and `key`'s user was not changed in the same
    /// turn (`user_tags`).
    fn invalidate(&mut self, key: &str, user_tags: &[&str]) {
        let own_save = match self.entries.get_mut(key) {
            Some(e) if e.own && tag_kind(key).is_some_and(|(t, _)| !user_tags.contains(&t)) => {
                e.own = false;
                true
            }
            _ => false,
        };
        if own_save {
            self.seq = self.seq.wrapping_add(1);
            self.remember(key);
        } else {
            self.change(key);
        }
        let seq = self.seq;
        self.bound();
        match self.heard.get_mut(key) {
            Some(h) => *h = (seq, h.0),
            None => {
                self.heard.insert(key.to_string(), (seq, 0));
            }
        }
    }

    /// Redis announced a change of the index or epoch of the user with hash tag `tag`.
    fn user_changed(&mut self, tag: &str) {
        self.seq = self.seq.wrapping_add(1);
        self.bound();
        set(&mut self.heard_users, tag, self.seq);
    }

    /// This store changed `key` itself.
    fn change_local(&mut self, key: &str) {
        self.change(key);
        self.bound();
        set(&mut self.local, key, self.seq);
    }

    fn flush(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.entries.clear();
        self.clear_changes();
    }

    fn clear_changes(&mut self) {
        self.changed.clear();
        self.local.clear();
        self.heard.clear();
        self.heard_users.clear();
        self.floor = self.seq;
    }

    /// Keeps the change maps bounded: when one is full, all are cleared, and tickets from
    /// before are void.
    fn bound(&mut self) {
        let full = [self.changed.len(), self.local.len(), self.heard.len(), self.heard_users.len()]
            .into_iter()
            .any(|n| n >= MAX_CHANGED);
        if full {
            self.clear_changes();
        }
    }

    fn change(&mut self, key: &str) {
        self.seq = self.seq.wrapping_add(1);
        self.entries.remove(key);
        self.remember(key);
    }

    /// Reads in flight of `key` may not insert.
    fn remember(&mut self, key: &str) {
        self.bound();
        set(&mut self.changed, key, self.seq);
    }
}

/// Sets `key` to `seq`, allocating the key only when it is new (the same sessions come back
/// again and again).
fn set(map: &mut HashMap<String, u64>, key: &str, seq: u64) {
    match map.get_mut(key) {
        Some(s) => *s = seq,
        None => {
            map.insert(key.to_string(), seq);
        }
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
        if st.valid(key, ticket) {
            self.insert(&mut st, key, read.clone(), now, false);
        }
    }

    /// A ticket for a write about to be sent (`None` while the cache is not in use).
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        let st = self.state.lock();
        st.live.then_some(Ticket { epoch: st.epoch, seq: st.seq })
    }

    /// This store saved `read` under `key` at `now`, with `ticket` taken before the save was
    /// sent: keeps it, marked as waiting for its own invalidation, unless an invalidation of
    /// the key already arrived since the ticket (then the key is dropped; see "Own saves").
    pub(crate) fn put_own(&self, key: &str, read: Read, ticket: Ticket, now: u64) {
        let mut st = self.state.lock();
        let keep = st.own_save(key, ticket);
        // Reads in flight from before the save may not insert what they found, nor may other
        // saves of this store sent before this one was answered.
        st.change_local(key);
        if let Some(marked) = keep {
            self.insert(&mut st, key, read, now, marked);
        }
    }

    fn insert(&self, st: &mut State, key: &str, read: Read, now: u64, own: bool) {
        if self.config.max_entries == 0 {
            return;
        }
        if st.entries.len() >= self.config.max_entries && !st.entries.contains_key(key) {
            // Bounded: make room by dropping an arbitrary entry.
            if let Some(victim) = st.entries.keys().next().cloned() {
                st.entries.remove(&victim);
            }
        }
        let deadline_ms = read.ttl.map(|t| now.saturating_add(t));
        st.entries.insert(key.to_string(), Entry { read, deadline_ms, at_ms: now, own });
    }

    /// This store changed `key` (or Redis said someone did): drop it.
    pub(crate) fn changed(&self, key: &str) {
        self.state.lock().change_local(key);
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
                    // Hash tags of the users whose index or epoch changed in this turn.
                    let user_tags: Vec<&str> = keys
                        .iter()
                        .filter_map(|k| tag_kind(k))
                        .filter(|(_, kind)| *kind != b's')
                        .map(|(tag, _)| tag)
                        .collect();
                    let mut st = self.state.lock();
                    for tag in &user_tags {
                        st.user_changed(tag);
                    }
                    for k in &keys {
                        st.invalidate(k, &user_tags);
                    }
                    self.invalidations.fetch_add(keys.len() as u64, Ordering::Relaxed);
                }
            }
            PushKind::Disconnection => self.set_live(false),
            _ => {}
        }
    }
}

/// The hash tag and the kind letter of a store key, `<prefix>:{<tag>}:<kind>:<id>`
/// (`s` session, `u` index, `e` epoch); `None` for any other key.
fn tag_kind(key: &str) -> Option<(&str, u8)> {
    let (head, _id) = key.rsplit_once(':')?;
    let (head, kind) = head.rsplit_once(':')?;
    let &[kind] = kind.as_bytes() else { return None };
    let (_, tag) = head.strip_suffix('}')?.rsplit_once('{')?;
    Some((tag, kind))
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
        Read {
            raw: vec![u8::try_from(v).unwrap()].into(),
            record: record.into(),
            ttl: Some(60_000),
        }
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

    fn invalidate(n: &Near, keys: &[&str]) {
        let keys = keys.iter().map(|k| Value::BulkString(k.as_bytes().to_vec())).collect();
        n.push(&PushInfo { kind: PushKind::Invalidate, data: vec![Value::Array(keys)] });
    }

    const S: &str = "p:{0a0b0c0d}:s:session";

    // A hit hands out what the cache keeps (record and bytes), not a copy of it.
    #[test]
    fn hits_share_what_is_kept() {
        let n = live();
        let t = n.get("k", 0).err().flatten().unwrap();
        let kept = read(7);
        n.put("k", &kept, t, 0);
        let (a, b) = (n.get("k", 1).unwrap(), n.get("k", 2).unwrap());
        assert!(Arc::ptr_eq(&a.record, &kept.record) && Arc::ptr_eq(&a.record, &b.record));
        assert_eq!(a.raw.as_ptr(), kept.raw.as_ptr(), "the bytes were copied");
        assert_eq!(b.raw.as_ptr(), kept.raw.as_ptr(), "the bytes were copied");
        assert_eq!((a.ttl, b.ttl), (Some(59_999), Some(59_998)), "each hit has its own TTL");
    }

    // An own save is kept through its own invalidation and dropped by the next one; one whose
    // key was announced between its ticket and its answer is not kept.
    #[test]
    fn own_saves_survive_their_own_invalidation_only() {
        let n = live();
        let t = n.ticket().unwrap();
        n.put_own(S, read(1), t, 0);
        assert_eq!(n.get(S, 1).unwrap().record.version, 1);
        invalidate(&n, &[S]);
        assert_eq!(n.get(S, 1).unwrap().record.version, 1, "its own invalidation");
        invalidate(&n, &[S]);
        assert!(n.get(S, 1).is_err(), "a later change");

        // Its own announcement came before its answer (Redis sends it first): kept, unmarked.
        let t = n.ticket().unwrap();
        invalidate(&n, &[S]);
        n.put_own(S, read(2), t, 2);
        assert_eq!(n.get(S, 2).unwrap().record.version, 2);
        invalidate(&n, &[S]);
        assert!(n.get(S, 2).is_err(), "unmarked: the next announcement drops it");
        // Two announcements since the ticket (one came after the save): not kept.
        let t = n.ticket().unwrap();
        invalidate(&n, &[S]);
        invalidate(&n, &[S]);
        n.put_own(S, read(2), t, 2);
        assert!(n.get(S, 2).is_err(), "another change after the save");
        // A change of the key by this store since the ticket (another save): not kept.
        let t = n.ticket().unwrap();
        n.changed(S);
        n.put_own(S, read(2), t, 2);
        assert!(n.get(S, 2).is_err(), "another own write");
        // The user's index announced since the ticket: not kept.
        let t = n.ticket().unwrap();
        invalidate(&n, &["p:{0a0b0c0d}:u:user", S]);
        n.put_own(S, read(2), t, 2);
        assert!(n.get(S, 2).is_err(), "the user changed");
        // A read in flight from before an own save may not insert what it found.
        let r = n.get(S, 2).err().flatten().unwrap();
        let t = n.ticket().unwrap();
        n.put_own(S, read(3), t, 2);
        n.put(S, &read(2), r, 2);
        assert_eq!(n.get(S, 2).unwrap().record.version, 3);
        // Not in use: no ticket.
        n.set_live(false);
        assert!(n.ticket().is_none());
    }

    // A message that also names the user's index or epoch (the revocation of all of a user's
    // sessions, folded into the same turn as the save) drops the own save; another user's
    // index does not.
    #[test]
    fn own_saves_go_with_their_users_index() {
        let n = live();
        for (other, kept) in [
            ("p:{0a0b0c0d}:u:user", false),
            ("p:{0a0b0c0d}:e:user", false),
            ("p:{99999999}:u:user", true),
            ("p:{0a0b0c0d}:s:another", true),
        ] {
            let t = n.ticket().unwrap();
            n.put_own(S, read(1), t, 0);
            invalidate(&n, &[other, S]);
            assert_eq!(n.get(S, 1).is_ok(), kept, "{other}");
            n.changed(S);
        }
        assert_eq!(tag_kind(S), Some(("0a0b0c0d", b's')));
        assert_eq!(tag_kind("a:b:{x}:u:1"), Some(("x", b'u')));
        for other in ["a", "p:{x}:uu:1", "p:x:s:1", "p:{x}s:1"] {
            assert_eq!(tag_kind(other), None, "{other}");
        }
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
