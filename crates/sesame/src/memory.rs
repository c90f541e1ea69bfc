//! The in-memory store: the embedded default, with the same semantics and expiry as the Redis
//! store. Sessions live in this process only, so it serves one instance (or several instances
//! inside one process, as `sesame demo` does). Every operation runs under one lock, so each is
//! atomic; the interleavings that matter are those of whole requests (load, handler, commit),
//! and the conformance suite runs them against this store as against Redis.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::config::{CapPolicy, Policy};
use crate::error::StoreError;
use crate::store::{
    pointer_expiry, touch_due, write_ttl, CreateOutcome, Delta, Loaded, Login, Lookup, Record,
    RotateOutcome, Rotation, RotationKind, SaveOutcome, SessionInfo, Store,
};
use crate::token::{Principal, SessionKey, UserRef};

/// How long a principal's revocation epoch is kept after it last moved.
const EPOCH_KEPT_MS: u64 = 24 * 3600 * 1000;

/// The most superseded tokens followed to reach a lineage's head.
pub const MAX_LINEAGE_HOPS: usize = 32;

#[derive(Debug, Clone)]
struct Entry {
    record: Arc<Record>,
    idle_deadline_ms: u64,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.idle_deadline_ms > now && self.record.absolute_ms > now
    }
}

/// What a superseded key keeps: where its lineage went.
#[derive(Debug, Clone)]
struct Pointer {
    successor: SessionKey,
    sealed: Vec<u8>,
    grace_until_ms: u64,
    detect_reuse: bool,
    expires_ms: u64,
}

#[derive(Debug, Clone)]
enum Slot {
    Live(Entry),
    Superseded(Pointer),
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<SessionKey, Slot>,
    /// principal → ids of its sessions
    users: HashMap<UserRef, BTreeMap<String, ()>>,
    /// principal → (revocation epoch, when it last moved), kept for a day like the Redis
    /// store's epochs: far longer than a login takes.
    epochs: HashMap<UserRef, (u64, u64)>,
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

    /// Number of live sessions held, expired ones not yet swept included (superseded tokens
    /// kept for their grace window and reuse detection are not counted).
    pub fn len(&self) -> usize {
        self.inner.lock().slots.values().filter(|s| matches!(s, Slot::Live(_))).count()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a key's lineage leads.
enum Resolved {
    /// Its own live session.
    Own,
    /// Superseded within grace (or not checked): the head, and the sealed successors on the way.
    Head(SessionKey, Vec<Vec<u8>>),
    /// Superseded after its grace window, with reuse detection.
    PastGrace,
    /// Nothing live.
    Missing,
}

impl Inner {
    fn live_entry(&mut self, key: &SessionKey, now: u64) -> Option<&mut Entry> {
        let dead = match self.slots.get(key) {
            Some(Slot::Live(e)) => !e.live(now),
            Some(Slot::Superseded(p)) => p.expires_ms <= now,
            None => return None,
        };
        if dead {
            self.remove(key);
            return None;
        }
        match self.slots.get_mut(key) {
            Some(Slot::Live(e)) => Some(e),
            _ => None,
        }
    }

    /// Follows a key's lineage. `check_grace`: a superseded key past its grace window (with
    /// reuse detection) is [`Resolved::PastGrace`]; otherwise it is followed all the same.
    fn resolve(&mut self, key: &SessionKey, now: u64, check_grace: bool) -> Resolved {
        let mut at = *key;
        let mut sealed = Vec::new();
        for hop in 0..=MAX_LINEAGE_HOPS {
            if self.live_entry(&at, now).is_some() {
                return if hop == 0 { Resolved::Own } else { Resolved::Head(at, sealed) };
            }
            let Some(Slot::Superseded(p)) = self.slots.get(&at) else { return Resolved::Missing };
            // A request never follows a login's pointer (the old token may have been planted),
            // on any hop; only the presented token's own grace window counts.
            if check_grace && !p.detect_reuse {
                return Resolved::Missing;
            }
            if hop == 0 && check_grace && p.grace_until_ms <= now {
                return Resolved::PastGrace;
            }
            sealed.push(p.sealed.clone());
            at = p.successor;
        }
        Resolved::Missing
    }

    fn remove(&mut self, key: &SessionKey) -> Option<Arc<Record>> {
        let Some(Slot::Live(entry)) = self.slots.remove(key) else { return None };
        if let Some(p) = entry.record.principal.as_ref().map(Principal::user) {
            if let Some(ids) = self.users.get_mut(&p) {
                ids.remove(&key.id());
                if ids.is_empty() {
                    self.users.remove(&p);
                }
            }
        }
        Some(entry.record)
    }

    /// Ends whatever lineage `key` leads to; returns whether a live session was ended.
    fn end_lineage(&mut self, key: &SessionKey, now: u64) -> bool {
        match self.resolve(key, now, false) {
            Resolved::Own => self.remove(key).is_some(),
            Resolved::Head(head, _) => self.remove(&head).is_some(),
            _ => false,
        }
    }

    /// The live sessions of a principal: (idle deadline, id, entry), pruning the dead.
    fn user_sessions(&mut self, user: UserRef, now: u64) -> Vec<(u64, String, Entry)> {
        let tag = user.tag();
        let ids: Vec<String> = match self.users.get(&user) {
            Some(ids) => ids.keys().cloned().collect(),
            None => return Vec::new(),
        };
        let mut live = Vec::new();
        for id in ids {
            let entry = SessionKey::from_parts(tag, &id)
                .and_then(|k| self.live_entry(&k, now).map(|e| e.clone()));
            match entry {
                Some(e) => live.push((e.idle_deadline_ms, id, e)),
                None => {
                    if let Some(m) = self.users.get_mut(&user) {
                        m.remove(&id);
                    }
                }
            }
        }
        if self.users.get(&user).is_some_and(BTreeMap::is_empty) {
            self.users.remove(&user);
        }
        live.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        live
    }

    fn epoch(&self, user: UserRef) -> u64 {
        self.epochs.get(&user).map_or(0, |e| e.0)
    }

    fn login_current(&self, login: Option<&Login>) -> bool {
        login.is_none_or(|l| self.epoch(l.principal.user()) == l.epoch)
    }

    /// Makes room for one more session of `principal` under the cap: evicts the least
    /// recently active sessions, or refuses.
    fn make_room(&mut self, user: UserRef, now: u64, policy: &Policy) -> Result<(), StoreError> {
        let live = self.user_sessions(user, now);
        let max = policy.max_sessions_per_user as usize;
        if live.len() < max {
            return Ok(());
        }
        if policy.cap_policy == CapPolicy::Refuse {
            return Err(StoreError::LimitExceeded(format!(
                "the user already has {} sessions, at most {max} allowed",
                live.len()
            )));
        }
        let tag = user.tag();
        for (_, id, _) in live.iter().take(live.len() + 1 - max) {
            if let Some(k) = SessionKey::from_parts(tag, id) {
                self.remove(&k);
            }
        }
        Ok(())
    }

    fn insert_live(&mut self, key: SessionKey, record: Arc<Record>, now: u64, policy: &Policy) {
        if let Some(p) = &record.principal {
            self.users.entry(p.user()).or_default().insert(key.id(), ());
        }
        let idle_deadline_ms = now.saturating_add(write_ttl(policy, record.absolute_ms, now));
        self.slots.insert(key, Slot::Live(Entry { record, idle_deadline_ms }));
    }

    fn loaded(&mut self, key: &SessionKey, now: u64, policy: &Policy) -> Option<Loaded> {
        let e = self.live_entry(key, now)?;
        let left = e.idle_deadline_ms.saturating_sub(now);
        if let Some(ttl) = touch_due(policy, Some(left), e.record.absolute_ms, now) {
            e.idle_deadline_ms = now.saturating_add(ttl);
        }
        Some(Loaded { record: e.record.clone(), idle_deadline_ms: e.idle_deadline_ms })
    }

    fn sweep(&mut self, now: u64) {
        let dead: Vec<SessionKey> = self
            .slots
            .iter()
            .filter(|(_, s)| match s {
                Slot::Live(e) => !e.live(now),
                Slot::Superseded(p) => p.expires_ms <= now,
            })
            .map(|(k, _)| *k)
            .collect();
        for k in dead {
            if self.remove(&k).is_none() {
                self.slots.remove(&k);
            }
        }
        self.epochs.retain(|_, e| now.saturating_sub(e.1) < EPOCH_KEPT_MS);
        self.writes_since_sweep = 0;
    }

    fn wrote(&mut self, now: u64) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= 4096 {
            self.sweep(now);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        login: Option<&Login>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<CreateOutcome, StoreError> {
        let mut g = self.inner.lock();
        g.wrote(now_ms);
        if write_ttl(policy, record.absolute_ms, now_ms) == 0 {
            return Err(StoreError::backend(
                "refusing to create a session that is already expired",
            ));
        }
        if g.live_entry(key, now_ms).is_some() || g.slots.contains_key(key) {
            return Ok(CreateOutcome::Exists);
        }
        if !g.login_current(login) {
            return Ok(CreateOutcome::Revoked);
        }
        if let Some(p) = &record.principal {
            g.make_room(p.user(), now_ms, policy)?;
        }
        g.insert_live(*key, Arc::new(record.clone()), now_ms, policy);
        Ok(CreateOutcome::Created)
    }

    async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<Lookup, StoreError> {
        let mut g = self.inner.lock();
        Ok(match g.resolve(key, now_ms, true) {
            Resolved::Own => match g.loaded(key, now_ms, policy) {
                Some(l) => Lookup::Live(l),
                None => Lookup::Missing,
            },
            Resolved::Head(head, sealed) => match g.loaded(&head, now_ms, policy) {
                Some(loaded) => Lookup::Successor { head, loaded, sealed },
                None => Lookup::Missing,
            },
            Resolved::PastGrace => {
                g.end_lineage(key, now_ms);
                Lookup::Reused
            }
            Resolved::Missing => Lookup::Missing,
        })
    }

    async fn save(
        &self,
        key: &SessionKey,
        _base: &Loaded,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<SaveOutcome, StoreError> {
        let mut g = self.inner.lock();
        g.wrote(now_ms);
        // A rotation by a parallel request within the grace window: the changes go to the
        // lineage's head, as they would have gone to the session it continues.
        let target = match g.resolve(key, now_ms, true) {
            Resolved::Own => *key,
            Resolved::Head(head, _) => head,
            _ => return Ok(SaveOutcome::Missing),
        };
        let Some(e) = g.live_entry(&target, now_ms) else { return Ok(SaveOutcome::Missing) };
        let next = e.record.next(delta, policy)?;
        let left = e.idle_deadline_ms.saturating_sub(now_ms);
        if let Some(ttl) = touch_due(policy, Some(left), next.absolute_ms, now_ms) {
            e.idle_deadline_ms = now_ms.saturating_add(ttl);
        }
        let next = Arc::new(next);
        e.record = Arc::clone(&next);
        Ok(SaveOutcome::Saved(next))
    }

    async fn rotate(
        &self,
        rot: &Rotation<'_>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<RotateOutcome, StoreError> {
        let mut g = self.inner.lock();
        g.wrote(now_ms);
        match g.resolve(&rot.old, now_ms, true) {
            Resolved::Own => {}
            Resolved::Head(head, sealed) => {
                return Ok(match g.loaded(&head, now_ms, policy) {
                    Some(loaded) => RotateOutcome::AlreadyRotated { head, loaded, sealed },
                    None => RotateOutcome::Missing,
                })
            }
            Resolved::PastGrace => {
                g.end_lineage(&rot.old, now_ms);
                return Ok(RotateOutcome::Missing);
            }
            Resolved::Missing => return Ok(RotateOutcome::Missing),
        }
        if g.slots.contains_key(&rot.new) {
            return Ok(RotateOutcome::Collision);
        }
        if !g.login_current(rot.login.as_ref()) {
            return Ok(RotateOutcome::Revoked);
        }
        let Some(current) = g.live_entry(&rot.old, now_ms).map(|e| e.record.clone()) else {
            return Ok(RotateOutcome::Missing);
        };
        let next = rot.successor(&current, now_ms, policy)?;
        let user = |r: &Record| r.principal.as_ref().map(Principal::user);
        let joins_index = user(&next).is_some() && user(&next) != user(&current);
        if joins_index {
            if let Some(p) = user(&next) {
                g.make_room(p, now_ms, policy)?;
            }
        }
        let (grace_until_ms, detect_reuse) = match rot.kind {
            RotationKind::Renew { grace_ms } => (now_ms.saturating_add(grace_ms), true),
            RotationKind::Elevate => (now_ms, false),
        };
        g.remove(&rot.old);
        g.insert_live(rot.new, Arc::new(next.clone()), now_ms, policy);
        let pointer = Pointer {
            successor: rot.new,
            sealed: rot.sealed_successor.clone(),
            grace_until_ms,
            detect_reuse,
            expires_ms: pointer_expiry(rot.kind, &next, now_ms, policy),
        };
        g.slots.insert(rot.old, Slot::Superseded(pointer));
        Ok(RotateOutcome::Rotated(next))
    }

    async fn destroy(&self, key: &SessionKey, now_ms: u64) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        Ok(g.end_lineage(key, now_ms))
    }

    async fn peek(
        &self,
        keys: &[SessionKey],
        now_ms: u64,
    ) -> Result<Vec<Option<Record>>, StoreError> {
        let mut g = self.inner.lock();
        Ok(keys.iter().map(|k| g.live_entry(k, now_ms).map(|e| Record::clone(&e.record))).collect())
    }

    async fn user_epoch(&self, user: UserRef) -> Result<u64, StoreError> {
        Ok(self.inner.lock().epoch(user))
    }

    async fn list_user(
        &self,
        user: UserRef,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let mut g = self.inner.lock();
        let live = g.user_sessions(user, now_ms);
        Ok(live
            .into_iter()
            .rev()
            .take(limit)
            .map(|(idle, id, e)| SessionInfo {
                id,
                created_ms: e.record.created_ms,
                expires_ms: idle.min(e.record.absolute_ms),
                auth_ms: e.record.auth_ms,
            })
            .collect())
    }

    async fn revoke(&self, user: UserRef, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        if !g.users.get(&user).is_some_and(|m| m.contains_key(id)) {
            return Ok(false);
        }
        let Some(key) = SessionKey::from_parts(user.tag(), id) else {
            return Ok(false);
        };
        let live = g.live_entry(&key, now_ms).is_some();
        Ok(g.remove(&key).is_some() && live)
    }

    async fn revoke_all(
        &self,
        user: UserRef,
        keep: Option<&str>,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let mut g = self.inner.lock();
        let epoch = g.epochs.entry(user).or_insert((0, now_ms));
        *epoch = (epoch.0.saturating_add(1), now_ms);
        let tag = user.tag();
        let mut n = 0;
        for (_, id, _) in g.user_sessions(user, now_ms) {
            if Some(id.as_str()) == keep {
                continue;
            }
            if let Some(k) = SessionKey::from_parts(tag, &id) {
                if g.remove(&k).is_some() {
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}
