//! The [`Store`] trait that every backend implements, the data it moves, and the rules every
//! backend applies the same way (delta merging, touch coalescing, index members).
//!
//! Stores see [`SessionKey`]s (tag + digest), never tokens, and attribute values as opaque,
//! already encoded bytes. Every backend must behave the same way; the conformance suite in the
//! test-support crate runs the same checks against each one. The protocol (lineages, grace
//! windows, reuse detection, epochs) is described in `docs/STORAGE.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Policy;
use crate::error::StoreError;
use crate::token::{Principal, SessionKey, UserRef};

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// When the session was created (or logged in), ms since the Unix epoch.
    pub created_ms: u64,
    /// The absolute deadline, ms since the Unix epoch; never extended.
    pub absolute_ms: u64,
    /// The logged-in principal, if any: its name and the keyed reference stores index it by.
    pub principal: Option<Principal>,
    /// When the principal authenticated, ms since the Unix epoch.
    pub auth_ms: Option<u64>,
    /// When the token was last rotated (0: never since creation), ms since the Unix epoch.
    /// The renewal timer counts from here.
    pub rotated_ms: u64,
    /// Incremented by every write (saturating: a hostile `u64::MAX` stays there).
    pub version: u64,
    /// Encoded attribute values by name.
    pub attrs: BTreeMap<String, Vec<u8>>,
    /// The session's random identity while encryption at rest is on (`None` otherwise): drawn
    /// at creation, carried by every save and rotation, and bound into every sealed value (see
    /// [`crate::crypt`]). Stores keep it as they keep the rest of the record.
    pub sid: Option<crate::crypt::Sid>,
}

/// A read-modify-write of one attribute: given the stored encoded value (or `None`), returns
/// the encoded value to store (or `None` to remove it), or an error message.
pub type UpdateFn = Arc<dyn Fn(Option<&[u8]>) -> Result<Option<Vec<u8>>, String> + Send + Sync>;

/// One exact update of an attribute (see `Session::update`).
#[derive(Clone)]
pub struct Update {
    /// The attribute.
    pub name: String,
    /// The value the update was computed from in this request (`None`: absent).
    pub seen: Option<Vec<u8>>,
    /// The value it computed from `seen`.
    pub result: Option<Vec<u8>>,
    /// The function, run again on the stored value when that is no longer `seen`.
    pub apply: UpdateFn,
}

impl fmt::Debug for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Update").field("name", &self.name).finish_non_exhaustive()
    }
}

impl PartialEq for Update {
    fn eq(&self, other: &Update) -> bool {
        self.name == other.name
            && self.seen == other.seen
            && self.result == other.result
            && Arc::ptr_eq(&self.apply, &other.apply)
    }
}

impl Eq for Update {}

impl Record {
    /// Applies a delta in place: sets and removals win as a whole (last writer wins per
    /// attribute); each update keeps its computed result when the stored value is still the
    /// one it saw, and is computed again from the stored value otherwise (exact).
    pub fn apply(&mut self, delta: &Delta) -> Result<(), StoreError> {
        for (name, value) in &delta.set {
            self.attrs.insert(name.clone(), value.clone());
        }
        for name in &delta.remove {
            self.attrs.remove(name);
        }
        for u in &delta.update {
            let stored = self.attrs.get(&u.name).map(Vec::as_slice);
            let next = if stored == u.seen.as_deref() {
                u.result.clone()
            } else {
                (u.apply)(stored)
                    .map_err(|message| StoreError::Update { name: u.name.clone(), message })?
            };
            match next {
                Some(v) => self.attrs.insert(u.name.clone(), v),
                None => self.attrs.remove(&u.name),
            };
        }
        Ok(())
    }

    /// The size this record counts against [`Policy::max_record_bytes`]: the sum of attribute
    /// names and values plus the principal. Every store uses this same measure.
    pub fn counted_bytes(&self) -> usize {
        self.attrs
            .iter()
            .map(|(k, v)| k.len().saturating_add(v.len()))
            .fold(0, usize::saturating_add)
            .saturating_add(self.principal.as_ref().map_or(0, |p| p.name().len()))
    }

    /// Checks the record against the limits of `policy`.
    pub fn check_limits(&self, policy: &Policy) -> Result<(), StoreError> {
        // The sealed principal (encryption at rest) is not an attribute of the app's.
        let sealed_principal = usize::from(self.attrs.contains_key(crate::crypt::PRINCIPAL_SLOT));
        let attributes = self.attrs.len().saturating_sub(sealed_principal);
        if attributes > policy.max_attributes {
            return Err(StoreError::LimitExceeded(format!(
                "{attributes} attributes, at most {} allowed",
                policy.max_attributes
            )));
        }
        let n = self.counted_bytes();
        if n > policy.max_record_bytes {
            return Err(StoreError::LimitExceeded(format!(
                "session would hold {n} bytes, at most {} allowed",
                policy.max_record_bytes
            )));
        }
        Ok(())
    }

    /// The record a write makes from this one: the delta applied, the limits checked, the
    /// version bumped (saturating).
    pub fn next(&self, delta: &Delta, policy: &Policy) -> Result<Record, StoreError> {
        let mut next = self.clone();
        next.apply(delta)?;
        next.check_limits(policy)?;
        next.version = next.version.saturating_add(1);
        Ok(next)
    }

    /// This session's member in its principal's index (see [`index_member`]).
    pub fn index_member(&self, id: &str) -> String {
        index_member(id, self.created_ms, self.auth_ms)
    }
}

/// A principal's index member for a session: `<id>:<created_ms>:<auth_ms>` (auth empty when
/// unknown). Carrying the times in the member lets a list be one read of the index, whatever
/// the number of sessions. Every store builds members with this function.
pub fn index_member(id: &str, created_ms: u64, auth_ms: Option<u64>) -> String {
    match auth_ms {
        Some(a) => format!("{id}:{created_ms}:{a}"),
        None => format!("{id}:{created_ms}:"),
    }
}

/// Parses an index member made by [`index_member`]: `(id, created_ms, auth_ms)`.
pub fn parse_index_member(member: &str) -> Option<(&str, u64, Option<u64>)> {
    let mut parts = member.splitn(3, ':');
    let id = parts.next()?;
    let created = parts.next()?.parse().ok()?;
    let auth = match parts.next()? {
        "" => None,
        a => Some(a.parse().ok()?),
    };
    if id.len() != 22 {
        return None;
    }
    Some((id, created, auth))
}

/// The TTL a write gives a session: the idle timeout, capped by the absolute deadline (0 when
/// that has passed).
pub fn write_ttl(policy: &Policy, absolute_ms: u64, now_ms: u64) -> u64 {
    policy.idle_ms.min(absolute_ms.saturating_sub(now_ms))
}

/// Whether a read should push the idle deadline forward, given the session's remaining TTL
/// (`None`: the key has no TTL, which sesame never writes): only once `touch_after` of the idle
/// window has passed since the last push. Returns the TTL to set.
pub fn touch_due(
    policy: &Policy,
    remaining_ms: Option<u64>,
    absolute_ms: u64,
    now_ms: u64,
) -> Option<u64> {
    let due = match remaining_ms {
        None => true,
        Some(left) => policy.idle_ms.saturating_sub(left) >= policy.touch_after_ms,
    };
    let ttl = write_ttl(policy, absolute_ms, now_ms);
    (due && ttl > 0).then_some(ttl)
}

/// How long a superseded key is kept: a renewed lineage's old tokens for the lineage's whole
/// life (reuse detection), a login's anonymous token for one idle window (so that a logout
/// racing the login still ends what it became). The Redis store keeps them as long.
pub fn pointer_expiry(kind: RotationKind, successor: &Record, now_ms: u64, policy: &Policy) -> u64 {
    match kind {
        RotationKind::Renew { grace_ms } => {
            successor.absolute_ms.max(now_ms.saturating_add(grace_ms))
        }
        RotationKind::Elevate => successor.absolute_ms.min(now_ms.saturating_add(policy.idle_ms)),
    }
}

/// A change to a session's attributes: only what changed travels to the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delta {
    /// Attributes to set (name, encoded value): last writer wins.
    pub set: Vec<(String, Vec<u8>)>,
    /// Attributes to remove.
    pub remove: Vec<String>,
    /// Exact read-modify-writes of single attributes.
    pub update: Vec<Update>,
}

impl Delta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.update.is_empty()
    }
}

/// A session as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The record, shared: a store that keeps records in memory (the [`crate::MemoryStore`],
    /// the Redis store's near cache) hands out the one it holds instead of copying it.
    pub record: Arc<Record>,
    /// The current idle deadline (after any touch made by this load), ms since the Unix epoch.
    pub idle_deadline_ms: u64,
}

impl Loaded {
    /// `record`, just saved at `now` over this load: the idle deadline moves only when a touch
    /// was due, as in the stores' `save`.
    pub fn saved(&self, record: impl Into<Arc<Record>>, now_ms: u64, policy: &Policy) -> Loaded {
        let record = record.into();
        let left = self.idle_deadline_ms.saturating_sub(now_ms);
        match touch_due(policy, Some(left), record.absolute_ms, now_ms) {
            Some(ttl) => Loaded { record, idle_deadline_ms: now_ms.saturating_add(ttl) },
            None => Loaded { record, idle_deadline_ms: self.idle_deadline_ms },
        }
    }

    /// A record as just written at `now`: its idle deadline one write TTL away.
    pub fn written(record: impl Into<Arc<Record>>, now_ms: u64, policy: &Policy) -> Loaded {
        let record = record.into();
        let idle_deadline_ms = now_ms.saturating_add(write_ttl(policy, record.absolute_ms, now_ms));
        Loaded { record, idle_deadline_ms }
    }

    /// When the session expires if nothing touches it again: the earlier of both deadlines.
    pub fn expires_ms(&self) -> u64 {
        self.idle_deadline_ms.min(self.record.absolute_ms)
    }
}

/// What a token's key leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// The token's own live session.
    Live(Loaded),
    /// The token was superseded by a rotation less than its grace window ago: its lineage
    /// continues at `head`, loaded here. `sealed` holds the sealed successor tokens along the
    /// way, first the presented token's successor (see `TokenCodec::open_successor`).
    Successor {
        /// The live session the lineage continues at.
        head: SessionKey,
        /// It, loaded.
        loaded: Loaded,
        /// Each superseded token's successor, sealed for that token's holder, in order.
        sealed: Vec<Vec<u8>>,
    },
    /// No live session: never issued, expired, logged out, revoked, or superseded by a login
    /// that raised its privilege.
    Missing,
    /// The token was superseded longer than its grace window ago and presented again: the
    /// store has revoked its whole lineage.
    Reused,
}

impl Lookup {
    /// The token's own live session, if that is what was found.
    pub fn live(self) -> Option<Loaded> {
        match self {
            Lookup::Live(l) => Some(l),
            _ => None,
        }
    }

    /// Whether the token's own session is live.
    pub fn is_live(&self) -> bool {
        matches!(self, Lookup::Live(_))
    }
}

/// What kind of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationKind {
    /// Same privilege (`cycle_id`, a re-login as the same principal, the renewal timer): the
    /// old token resolves to its successor for `grace_ms`, and presenting it after that revokes
    /// the lineage (reuse detection).
    Renew {
        /// How long the old token resolves to its successor.
        grace_ms: u64,
    },
    /// An anonymous session logs in: the old token is dead at once (it might have been planted
    /// by someone else: session fixation) and its later use is not reuse. The new session may
    /// live under another tag (another Redis Cluster slot).
    Elevate,
}

/// A login being bound by a rotation or a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The principal.
    pub principal: Principal,
    /// When it authenticated, ms since the Unix epoch.
    pub auth_ms: u64,
    /// The principal's revocation epoch when the login began ([`Store::user_epoch`]). The
    /// write is refused with [`RotateOutcome::Revoked`] / [`CreateOutcome::Revoked`] when the
    /// epoch has moved since: the user's sessions were revoked while the login was in flight.
    pub epoch: u64,
}

/// One rotation: the session under `old` continues under `new`, with this request's changes.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    /// The presented (current) key.
    pub old: SessionKey,
    /// The record as this request loaded it (a store may write with compare-and-set against
    /// it and merge again from the stored record when it changed).
    pub base: &'a Record,
    /// The idle deadline `base` was loaded with ([`Loaded::idle_deadline_ms`]), when known: a
    /// store that keeps the deadline inside its record needs it to name the bytes it expects
    /// (without it, the first compare-and-set of such a store misses and costs a round trip).
    pub base_idle_deadline_ms: Option<u64>,
    /// The successor's key (a fresh token's).
    pub new: SessionKey,
    /// The successor token, sealed for the old token's holder (kept with the old key while it
    /// can be resolved; empty for [`RotationKind::Elevate`]).
    pub sealed_successor: Vec<u8>,
    /// This request's changes.
    pub delta: &'a Delta,
    /// A login bound by this rotation (principal, auth time: the absolute deadline restarts).
    pub login: Option<Login>,
    /// What kind.
    pub kind: RotationKind,
}

impl Rotation<'_> {
    /// The successor's record, from the old session's `current` record: the delta applied,
    /// the login bound (creation time and absolute deadline restart), limits checked, the
    /// rotation time set. Every store builds it with this function.
    pub fn successor(
        &self,
        current: &Record,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<Record, StoreError> {
        let mut next = current.next(self.delta, policy)?;
        if let Some(login) = &self.login {
            next.principal = Some(login.principal.clone());
            next.auth_ms = Some(login.auth_ms);
            next.created_ms = now_ms;
            next.absolute_ms = now_ms.saturating_add(policy.absolute_ms);
            next.check_limits(policy)?;
        }
        next.rotated_ms = now_ms;
        Ok(next)
    }
}

/// Result of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotateOutcome {
    /// The successor is written under the new key (this record); the old key is superseded.
    Rotated(Record),
    /// Another request rotated this token first, within its grace window: the lineage
    /// continues at `head` (nothing written; the caller saves its changes there).
    AlreadyRotated {
        /// The live head of the lineage.
        head: SessionKey,
        /// It, loaded.
        loaded: Loaded,
        /// Sealed successor tokens along the way (as in [`Lookup::Successor`]).
        sealed: Vec<Vec<u8>>,
    },
    /// No live session under the old key (ended, expired, superseded past grace or by a
    /// login); nothing written.
    Missing,
    /// The login's epoch moved: the user's sessions were revoked meanwhile; nothing written.
    Revoked,
    /// The new key is taken (a token collision); nothing written. Draw another token.
    Collision,
}

/// Result of a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateOutcome {
    /// Written.
    Created,
    /// The key is taken (a token collision, or a key a logout has closed); nothing written.
    Exists,
    /// The login's epoch moved: the user's sessions were revoked meanwhile; nothing written.
    Revoked,
}

impl CreateOutcome {
    /// Whether the session was written.
    pub fn is_created(self) -> bool {
        self == CreateOutcome::Created
    }
}

/// Result of a save.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Saved; the record as written (shared with whatever the store keeps of it).
    Saved(Arc<Record>),
    /// The session no longer exists (expired, revoked, logged out or rotated meanwhile);
    /// nothing written.
    Missing,
}

/// One entry of a principal's session list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's public id ([`SessionKey::id`]).
    pub id: String,
    /// Creation (or login) time, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it expires if left idle (as of its last recorded touch): the earlier of both
    /// deadlines.
    pub expires_ms: u64,
    /// Authentication time.
    pub auth_ms: Option<u64>,
}

/// A session backend. Every method is atomic with respect to the others for one session and,
/// for index operations, for one principal; the guarantees under concurrency are in
/// `docs/STORAGE.md` and the conformance suite shows them for each backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates the session if its key is free. When the record has a principal, the session
    /// joins that principal's index and the per-user cap of `policy` is applied (the least
    /// recently active sessions are evicted, or the create fails with
    /// [`StoreError::LimitExceeded`] under [`crate::CapPolicy::Refuse`]). With `login`, the
    /// create is refused when the principal's epoch has moved since it was read.
    async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        login: Option<&Login>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<CreateOutcome, StoreError>;

    /// Looks a key up, pushing the idle deadline forward when at least
    /// `policy.touch_after_ms` of the idle window has passed since the last push. A superseded
    /// key resolves to its lineage's head within its grace window; after it, the store revokes
    /// the lineage and answers [`Lookup::Reused`].
    async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<Lookup, StoreError>;

    /// Applies a delta to the session as it is now in the store and bumps the version; like a
    /// load, it pushes the idle deadline only when a touch is due ([`touch_due`]). Refused
    /// whole with [`StoreError::LimitExceeded`] when the result would break the limits of
    /// `policy`. `base` is the session as the caller loaded it: a store may merge on the
    /// client and write with compare-and-set against its record, and decide from its idle
    /// deadline whether a touch is due (a deadline pushed meanwhile by another request only
    /// makes the touch come early, never late). The outcome is the same as merging into the
    /// current record atomically.
    async fn save(
        &self,
        key: &SessionKey,
        base: &Loaded,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<SaveOutcome, StoreError>;

    /// Rotates a session's token (see [`Rotation`]), whole: whatever the interleaving of
    /// concurrent requests presenting the old key, it has at most one live successor.
    async fn rotate(
        &self,
        rotation: &Rotation<'_>,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<RotateOutcome, StoreError>;

    /// Ends the lineage `key` belongs to: its live session (the head, when `key` was
    /// superseded) is deleted and leaves its principal's index; a rotation of it in flight
    /// cannot complete. Returns whether a live session was ended.
    async fn destroy(&self, key: &SessionKey, now_ms: u64) -> Result<bool, StoreError>;

    /// Reads the records of live sessions without touching them (no idle deadline moves): for
    /// listings that show more than the index holds. One entry per key: `None` for a key that
    /// holds no live record (absent, expired, superseded, unreadable).
    async fn peek(
        &self,
        keys: &[SessionKey],
        now_ms: u64,
    ) -> Result<Vec<Option<Record>>, StoreError>;

    /// The principal's revocation epoch: it moves with every [`Store::revoke_all`]. Read when a
    /// login begins (see [`Login::epoch`]).
    async fn user_epoch(&self, user: UserRef) -> Result<u64, StoreError>;

    /// Lists the live sessions of a principal, the most recently active first, at most
    /// `limit` of them. Its cost does not grow with the number of sessions beyond `limit`.
    async fn list_user(
        &self,
        user: UserRef,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError>;

    /// Revokes one session of a principal by id. Returns whether it existed and was theirs.
    async fn revoke(&self, user: UserRef, id: &str, now_ms: u64) -> Result<bool, StoreError>;

    /// Revokes every session of a principal except `keep` (by id), moving the principal's
    /// epoch first so that no login or rotation in flight escapes. Returns how many live
    /// sessions were ended.
    async fn revoke_all(
        &self,
        user: UserRef,
        keep: Option<&str>,
        now_ms: u64,
    ) -> Result<u64, StoreError>;
}
