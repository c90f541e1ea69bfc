//! The [`Store`] trait that every backend implements, and the data it moves.
//!
//! Stores see [`SessionKey`]s (tag + digest), never tokens, and attribute values as opaque,
//! already encoded bytes. Every backend must behave the same way; the conformance suite in the
//! test-support crate runs the same checks against each one.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::config::Policy;
use crate::error::StoreError;
use crate::token::SessionKey;

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// When the session was created (or logged in), ms since the Unix epoch.
    pub created_ms: u64,
    /// The absolute deadline, ms since the Unix epoch; never extended.
    pub absolute_ms: u64,
    /// The logged-in principal, if any.
    pub principal: Option<String>,
    /// When the principal authenticated, ms since the Unix epoch.
    pub auth_ms: Option<u64>,
    /// Incremented by every save.
    pub version: u64,
    /// Encoded attribute values by name.
    pub attrs: BTreeMap<String, Vec<u8>>,
}

impl Record {
    /// Applies a delta in place.
    pub fn apply(&mut self, delta: &Delta) {
        for (name, value) in &delta.set {
            self.attrs.insert(name.clone(), value.clone());
        }
        for name in &delta.remove {
            self.attrs.remove(name);
        }
    }

    /// The size this record counts against [`Policy::max_record_bytes`]: the sum of attribute
    /// names and values plus the principal. Every store uses this same measure.
    pub fn counted_bytes(&self) -> usize {
        self.attrs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + self.principal.as_ref().map_or(0, String::len)
    }

    /// Checks the record against the limits of `policy`.
    pub fn check_limits(&self, policy: &Policy) -> Result<(), StoreError> {
        if self.attrs.len() > policy.max_attributes {
            return Err(StoreError::LimitExceeded(format!(
                "{} attributes, at most {} allowed",
                self.attrs.len(),
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
}

/// A change to a session's attributes: only what changed travels to the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delta {
    /// Attributes to set (name, encoded value).
    pub set: Vec<(String, Vec<u8>)>,
    /// Attributes to remove.
    pub remove: Vec<String>,
    /// When set, the save is refused with [`SaveOutcome::Conflict`] unless the stored version
    /// equals this one (compare-and-set mode).
    pub expected_version: Option<u64>,
}

impl Delta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// A session as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The record.
    pub record: Record,
    /// The current idle deadline (after any touch made by this load), ms since the Unix epoch.
    pub idle_deadline_ms: u64,
}

impl Loaded {
    /// When the session expires if nothing touches it again: the earlier of both deadlines.
    pub fn expires_ms(&self) -> u64 {
        self.idle_deadline_ms.min(self.record.absolute_ms)
    }
}

/// Result of a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Saved; the new version.
    Saved(u64),
    /// The session no longer exists (expired, revoked or logged out meanwhile); nothing written.
    Missing,
    /// Compare-and-set failed; the stored version.
    Conflict(u64),
}

/// Result of taking a session out of the store for a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Taken {
    /// The session was sealed (dead under its key, out of its principal's index); here is
    /// its record.
    Taken(Record),
    /// It did not exist.
    Missing,
}

/// One entry of a principal's session list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's public id ([`SessionKey::id`]).
    pub id: String,
    /// Creation (or login) time, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it expires if left idle: the earlier of both deadlines.
    pub expires_ms: u64,
    /// Authentication time.
    pub auth_ms: Option<u64>,
}

/// A session backend. All methods are atomic with respect to each other for one session and,
/// for index operations, for one principal.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates the session if no session has this key. Returns `false` (writing nothing) when
    /// one exists. When the record has a principal, the session is added to that principal's
    /// index and the per-user cap of `policy` is applied (which may fail with
    /// [`StoreError::LimitExceeded`] under [`crate::CapPolicy::Refuse`]).
    async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<bool, StoreError>;

    /// Loads a session, pushing its idle deadline forward when at least
    /// `policy.touch_after_ms` of the idle window has passed since the last push. Expired
    /// sessions are absent.
    async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<Option<Loaded>, StoreError>;

    /// Applies a delta (changed and removed attributes only) to the session as it is now in
    /// the store, bumps the version and the idle deadline. Refused whole with
    /// [`StoreError::LimitExceeded`] when the result would break the limits of `policy`.
    ///
    /// `base` is the record as the caller loaded it. A store may merge the delta into it on
    /// the client and write with compare-and-set, re-reading and merging again when another
    /// save came first; the outcome must be the same as merging into the current record
    /// atomically: concurrent saves of different attributes all persist.
    async fn save(
        &self,
        key: &SessionKey,
        base: &Record,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<SaveOutcome, StoreError>;

    /// Deletes a session and removes it from its principal's index. Returns whether it existed.
    async fn destroy(&self, key: &SessionKey) -> Result<bool, StoreError>;

    /// Seals a session for a rotation and returns its record. From this call on the old key
    /// is dead: loads find nothing, saves find nothing, it leaves its principal's index. The
    /// store keeps the sealed record until [`Store::finish_take`]: the caller writes the new
    /// session with [`Store::create`] first, then drops the sealed one, or puts it back when
    /// the new one could not be written. A sealed record nobody finishes (the process died
    /// in between) expires by its idle deadline and is never valid again under its key; a
    /// later `take` of the same key (only the old token's holder can ask for it: a retried
    /// login) hands the sealed record over again, so a rotation that failed half-way loses
    /// no data. [`Store::destroy`] deletes a sealed record too.
    async fn take(&self, key: &SessionKey, now_ms: u64) -> Result<Taken, StoreError>;

    /// Ends a [`Store::take`]: drops the sealed record, or with `restore` makes it live again
    /// under its old key (deadlines unchanged, back in its principal's index, no cap applied).
    /// Returns whether a sealed record was found.
    async fn finish_take(
        &self,
        key: &SessionKey,
        restore: bool,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Lists the live sessions of a principal, oldest first. Index entries of sessions that
    /// expired are pruned on the way.
    async fn list_user(&self, principal: &str, now_ms: u64)
        -> Result<Vec<SessionInfo>, StoreError>;

    /// Revokes one session of a principal by id. Returns whether it existed and was theirs.
    async fn revoke(&self, principal: &str, id: &str) -> Result<bool, StoreError>;

    /// Revokes every session of a principal except `keep` (by id). Returns how many.
    async fn revoke_all(&self, principal: &str, keep: Option<&str>) -> Result<u64, StoreError>;
}
