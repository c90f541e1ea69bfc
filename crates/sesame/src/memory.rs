//! The in-memory store: the embedded default, with the same semantics and expiry as the Redis
//! store. Sessions live in this process only, so it serves one instance (or several instances
//! inside one process, as `sesame demo` does).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::config::{CapPolicy, Policy};
use crate::error::StoreError;
use crate::store::{Delta, Loaded, Record, SaveOutcome, SessionInfo, Store, Taken};
use crate::token::{SessionKey, Tag};

#[derive(Debug)]
struct Entry {
    record: Record,
    idle_deadline_ms: u64,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.idle_deadline_ms > now && self.record.absolute_ms > now
    }
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<SessionKey, Entry>,
    /// Sessions sealed by a take, waiting for `finish_take`.
    sealed: HashMap<SessionKey, Entry>,
    /// principal → (session id → absolute deadline)
    users: HashMap<String, BTreeMap<String, u64>>,
    writes_since_sweep: usize,
}

/// In-process session store. Expired sessions are dropped when met and by a sweep that runs
/// every few thousand writes, so memory stays bounded by the live sessions.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Number of sessions held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner.lock().sessions.len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn get_live(&mut self, key: &SessionKey, now: u64) -> Option<&mut Entry> {
        let live = self.sessions.get(key).map(|e| e.live(now));
        match live {
            Some(true) => self.sessions.get_mut(key),
            Some(false) => {
                self.remove(key);
                None
            }
            None => None,
        }
    }

    fn remove(&mut self, key: &SessionKey) -> Option<Record> {
        let entry = self.sessions.remove(key)?;
        if let Some(p) = &entry.record.principal {
            if let Some(ids) = self.users.get_mut(p) {
                ids.remove(&key.id());
                if ids.is_empty() {
                    self.users.remove(p);
                }
            }
        }
        Some(entry.record)
    }

    /// Drops index members whose session is gone; returns the live ids by age.
    fn prune_user(&mut self, principal: &str, now: u64) -> Vec<(u64, String)> {
        let tag = Tag::for_principal(principal);
        let ids: Vec<String> = match self.users.get(principal) {
            Some(ids) => ids.keys().cloned().collect(),
            None => return Vec::new(),
        };
        let mut live = Vec::new();
        for id in ids {
            let key = SessionKey::from_parts(tag, &id);
            let alive = match key {
                Some(k) => self.get_live(&k, now).map(|e| e.record.created_ms),
                None => None,
            };
            match alive {
                Some(created) => live.push((created, id)),
                None => {
                    if let Some(m) = self.users.get_mut(principal) {
                        m.remove(&id);
                    }
                }
            }
        }
        if self.users.get(principal).is_some_and(BTreeMap::is_empty) {
            self.users.remove(principal);
        }
        live.sort();
        live
    }

    fn sweep(&mut self, now: u64) {
        let dead: Vec<SessionKey> =
            self.sessions.iter().filter(|(_, e)| !e.live(now)).map(|(k, _)| *k).collect();
        for k in dead {
            self.remove(&k);
        }
        self.sealed.retain(|_, e| e.live(now));
        self.writes_since_sweep = 0;
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        g.writes_since_sweep += 1;
        if g.writes_since_sweep >= 4096 {
            g.sweep(now_ms);
        }
        if g.get_live(key, now_ms).is_some() {
            return Ok(false);
        }
        if let Some(p) = &record.principal {
            let live = g.prune_user(p, now_ms);
            if let Some(max) = policy.max_sessions_per_user {
                let max = max as usize;
                if live.len() >= max {
                    if policy.cap_policy == CapPolicy::Refuse {
                        return Err(StoreError::LimitExceeded(format!(
                            "the user already has {} sessions, at most {max} allowed",
                            live.len()
                        )));
                    }
                    let tag = Tag::for_principal(p);
                    for (_, id) in live.iter().take(live.len() + 1 - max) {
                        if let Some(k) = SessionKey::from_parts(tag, id) {
                            g.remove(&k);
                        }
                    }
                }
            }
            g.users.entry(p.clone()).or_default().insert(key.id(), record.absolute_ms);
        }
        let idle_deadline_ms = (now_ms + policy.idle_ms).min(record.absolute_ms);
        g.sessions.insert(*key, Entry { record: record.clone(), idle_deadline_ms });
        Ok(true)
    }

    async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<Option<Loaded>, StoreError> {
        let mut g = self.inner.lock();
        let Some(e) = g.get_live(key, now_ms) else {
            return Ok(None);
        };
        let since_touch = policy.idle_ms.saturating_sub(e.idle_deadline_ms.saturating_sub(now_ms));
        if since_touch >= policy.touch_after_ms {
            e.idle_deadline_ms = (now_ms + policy.idle_ms).min(e.record.absolute_ms);
        }
        Ok(Some(Loaded { record: e.record.clone(), idle_deadline_ms: e.idle_deadline_ms }))
    }

    async fn save(
        &self,
        key: &SessionKey,
        _base: &Record,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<SaveOutcome, StoreError> {
        let mut g = self.inner.lock();
        g.writes_since_sweep += 1;
        let Some(e) = g.get_live(key, now_ms) else {
            return Ok(SaveOutcome::Missing);
        };
        if let Some(v) = delta.expected_version {
            if v != e.record.version {
                return Ok(SaveOutcome::Conflict(e.record.version));
            }
        }
        let mut next = e.record.clone();
        next.apply(delta);
        next.check_limits(policy)?;
        next.version += 1;
        let version = next.version;
        e.idle_deadline_ms = (now_ms + policy.idle_ms).min(next.absolute_ms);
        e.record = next;
        Ok(SaveOutcome::Saved(version))
    }

    async fn destroy(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        let sealed = g.sealed.remove(key).is_some();
        Ok(g.remove(key).is_some() || sealed)
    }

    async fn take(&self, key: &SessionKey, now_ms: u64) -> Result<Taken, StoreError> {
        let mut g = self.inner.lock();
        let Some(idle_deadline_ms) = g.get_live(key, now_ms).map(|e| e.idle_deadline_ms) else {
            // A rotation that failed half-way left it sealed: hand it over again.
            return Ok(match g.sealed.get(key) {
                Some(e) if e.live(now_ms) => Taken::Taken(e.record.clone()),
                _ => Taken::Missing,
            });
        };
        let Some(record) = g.remove(key) else { return Ok(Taken::Missing) };
        g.sealed.insert(*key, Entry { record: record.clone(), idle_deadline_ms });
        Ok(Taken::Taken(record))
    }

    async fn finish_take(
        &self,
        key: &SessionKey,
        restore: bool,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        g.sealed.retain(|_, e| e.live(now_ms));
        let Some(entry) = g.sealed.remove(key) else { return Ok(false) };
        if restore && !g.sessions.contains_key(key) {
            if let Some(p) = &entry.record.principal {
                g.users.entry(p.clone()).or_default().insert(key.id(), entry.record.absolute_ms);
            }
            g.sessions.insert(*key, entry);
        }
        Ok(true)
    }

    async fn list_user(
        &self,
        principal: &str,
        now_ms: u64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let mut g = self.inner.lock();
        let tag = Tag::for_principal(principal);
        let live = g.prune_user(principal, now_ms);
        let mut out = Vec::with_capacity(live.len());
        for (_, id) in live {
            if let Some(e) = SessionKey::from_parts(tag, &id).and_then(|k| g.sessions.get(&k)) {
                out.push(SessionInfo {
                    id,
                    created_ms: e.record.created_ms,
                    expires_ms: e.idle_deadline_ms.min(e.record.absolute_ms),
                    auth_ms: e.record.auth_ms,
                });
            }
        }
        Ok(out)
    }

    async fn revoke(&self, principal: &str, id: &str) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        let listed = g.users.get(principal).is_some_and(|m| m.contains_key(id));
        if !listed {
            return Ok(false);
        }
        let now = crate::manager::now_ms();
        let Some(key) = SessionKey::from_parts(Tag::for_principal(principal), id) else {
            return Ok(false);
        };
        let live = g.sessions.get(&key).is_some_and(|e| e.live(now));
        Ok(g.remove(&key).is_some() && live)
    }

    async fn revoke_all(&self, principal: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        let now = crate::manager::now_ms();
        let mut g = self.inner.lock();
        let tag = Tag::for_principal(principal);
        let ids: Vec<String> = match g.users.get(principal) {
            Some(m) => m.keys().filter(|id| Some(id.as_str()) != keep).cloned().collect(),
            None => return Ok(0),
        };
        let mut n = 0;
        for id in ids {
            if let Some(k) = SessionKey::from_parts(tag, &id) {
                let live = g.sessions.get(&k).is_some_and(|e| e.live(now));
                if g.remove(&k).is_some() && live {
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}
