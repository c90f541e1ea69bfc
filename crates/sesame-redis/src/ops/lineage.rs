//! Reading a session key and following a lineage: what every operation starts with.

use redis::Value;
use sesame::store::touch_due;
use sesame::{Loaded, Policy, Record, SessionKey, StoreError};

use crate::error::unexpected;
use crate::record::{decode_stored, Pointer, PointerKind, Stored};
use crate::store::RedisStore;

/// The most superseded tokens followed to reach a lineage's head.
pub(crate) const MAX_HOPS: usize = 32;

/// How long the index outlives its latest member's idle deadline (`INDEX_MARGIN_MS` in
/// `lua/lib.lua`).
pub(crate) const INDEX_MARGIN_MS: u64 = 60_000;

/// A live session's record as read, with its raw bytes (for compare-and-set) and TTL.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    pub(crate) raw: Vec<u8>,
    pub(crate) record: Record,
    /// Remaining TTL in ms (`None`: the key has no TTL).
    pub(crate) ttl: Option<u64>,
}

/// What a session key holds.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    Record(Read),
    Pointer { raw: Vec<u8>, pointer: Pointer },
    Missing,
}

impl Found {
    /// Classifies a value (`None`: absent) read at `now`; a record past its absolute deadline
    /// counts as missing.
    pub(crate) fn from_raw(
        raw: Option<Vec<u8>>,
        ttl: Option<u64>,
        now: u64,
    ) -> Result<Found, StoreError> {
        let Some(raw) = raw else { return Ok(Found::Missing) };
        match decode_stored(&raw).map_err(|e| StoreError::Corrupt(format!("session key: {e}")))? {
            Stored::Record(record) if record.absolute_ms > now => {
                Ok(Found::Record(Read { raw, record, ttl }))
            }
            Stored::Record(_) => Ok(Found::Missing),
            Stored::Pointer(pointer) => Ok(Found::Pointer { raw, pointer }),
        }
    }

    /// From a script's `current` reply element.
    pub(crate) fn from_reply(v: Option<&Value>, now: u64, what: &str) -> Result<Found, StoreError> {
        match v {
            None | Some(Value::Nil) => Ok(Found::Missing),
            Some(Value::BulkString(b)) => Found::from_raw(Some(b.clone()), None, now),
            Some(other) => Err(unexpected(what, other)),
        }
    }
}

/// Where a key leads.
#[derive(Debug)]
pub(crate) enum Resolved {
    /// The key's own live session.
    Own(Read),
    /// The lineage's head (the key was superseded), with the sealed successors on the way.
    Head(SessionKey, Read, Vec<Vec<u8>>),
    /// A renewed token presented after its grace window.
    PastGrace,
    /// A login into another slot is under way from `at` (its pointer as stored).
    Claimed { at: SessionKey, raw: Vec<u8>, pointer: Pointer },
    /// Nothing live.
    Missing,
}

/// How far to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// As a request presenting the token: a renewed token within its grace window only.
    Request,
    /// The whole lineage, as a logout does: every kind of pointer.
    Lineage,
}

impl RedisStore {
    /// Reads a session key and its TTL in one round trip.
    pub(crate) async fn read(&self, key: &SessionKey, now: u64) -> Result<Found, StoreError> {
        let k = self.keys.session(key);
        self.read_key(&k, now).await
    }

    async fn read_key(&self, k: &str, now: u64) -> Result<Found, StoreError> {
        let mut p = redis::pipe();
        p.get(k).pttl(k);
        let (raw, pttl): (Option<Vec<u8>>, i64) = crate::script::read(&self.conn, &p).await?;
        Found::from_raw(raw, u64::try_from(pttl).ok(), now)
    }

    /// Like [`RedisStore::read`], answered by the near cache when it holds the key (a live
    /// record only; superseded and missing keys always go to Redis). The write paths read
    /// with [`RedisStore::read`].
    pub(crate) async fn read_cached(
        &self,
        key: &SessionKey,
        now: u64,
    ) -> Result<Found, StoreError> {
        let Some(near) = &self.near else { return self.read(key, now).await };
        let k = self.keys.session(key);
        let ticket = match near.get(&k, now) {
            Ok(read) => return Ok(Found::Record(read)),
            Err(ticket) => ticket,
        };
        let found = self.read_key(&k, now).await?;
        if let (Some(t), Found::Record(read)) = (ticket, &found) {
            near.put(&k, read, t, now);
        }
        Ok(found)
    }

    /// Follows `key`'s lineage from what was `found` there.
    pub(crate) async fn resolve_from(
        &self,
        key: &SessionKey,
        found: Found,
        now: u64,
        follow: Follow,
    ) -> Result<Resolved, StoreError> {
        let mut at = *key;
        let mut found = found;
        let mut sealed = Vec::new();
        for hop in 0..=MAX_HOPS {
            match found {
                Found::Record(read) if hop == 0 => return Ok(Resolved::Own(read)),
                Found::Record(read) => return Ok(Resolved::Head(at, read, sealed)),
                Found::Missing => return Ok(Resolved::Missing),
                Found::Pointer { raw, pointer } => {
                    match (pointer.kind, follow) {
                        (PointerKind::Renew, Follow::Request)
                            if hop == 0 && pointer.until_ms <= now =>
                        {
                            return Ok(Resolved::PastGrace)
                        }
                        (PointerKind::Renew, _) | (PointerKind::Elevate, Follow::Lineage) => {}
                        (PointerKind::Moving, Follow::Lineage) => {
                            return Ok(Resolved::Claimed { at, raw, pointer })
                        }
                        _ => return Ok(Resolved::Missing),
                    }
                    sealed.push(pointer.sealed);
                    at = pointer.successor;
                    found = Box::pin(self.read(&at, now)).await?;
                }
            }
        }
        tracing::warn!(id = %key.id(), "a session lineage is longer than {MAX_HOPS} rotations; treated as ended");
        Ok(Resolved::Missing)
    }

    /// Pushes a loaded session's idle deadline forward when it is due (see
    /// [`sesame::touch_due`]), with its index member's score, in one round trip. `None` when
    /// the key vanished meanwhile.
    pub(crate) async fn touch(
        &self,
        key: &SessionKey,
        read: Read,
        now: u64,
        policy: &Policy,
    ) -> Result<Option<Loaded>, StoreError> {
        let absolute = read.record.absolute_ms;
        let left = absolute.saturating_sub(now);
        // The deadline as it stands, when no touch is made.
        let kept = now.saturating_add(read.ttl.unwrap_or(left).min(left));
        let Some(ttl) = touch_due(policy, read.ttl, absolute, now) else {
            return Ok(Some(Loaded { record: read.record, idle_deadline_ms: kept }));
        };
        let deadline = now.saturating_add(ttl);
        let k = self.keys.session(key);
        let mut p = redis::pipe();
        p.cmd("PEXPIRE").arg(&k).arg(ttl);
        if let Some(principal) = &read.record.principal {
            let index = self.keys.index(principal.user());
            let member = read.record.index_member(&key.id());
            // Same hash tag: one cluster node takes the whole pipeline. Only ever later (GT).
            p.cmd("ZADD").arg(&index).arg("XX").arg("GT").arg(deadline).arg(member).ignore();
            p.cmd("PEXPIREAT")
                .arg(&index)
                .arg(deadline.saturating_add(INDEX_MARGIN_MS))
                .arg("GT")
                .ignore();
        }
        let touched = Box::pin(crate::script::read(&self.conn, &p)).await;
        self.wrote(&k);
        let (set,): (i64,) = match touched {
            // A master that refuses writes for want of replicas (`min-replicas-to-write`) still
            // serves reads: the session is used with its deadline unchanged, and the touch is
            // made by a later read once the replicas are back.
            Err(StoreError::Unavailable { message, .. }) if message.contains("NOREPLICAS") => {
                tracing::debug!(id = %key.id(), "touch refused (NOREPLICAS); deadline kept");
                return Ok(Some(Loaded { record: read.record, idle_deadline_ms: kept }));
            }
            other => other?,
        };
        Ok((set == 1).then_some(Loaded { record: read.record, idle_deadline_ms: deadline }))
    }
}

/// Refuses to go on from what a key holds now (`found`, after a compare-and-set conflict)
/// when it is an older state of the session than `read`, the record the write merged into.
/// Every write raises the version, so a genuine later write holds a higher one; the same or a
/// lower version with other bytes comes back only when acknowledged writes were lost (a
/// failover promoted a replica that had not received them). Merging into it would silently
/// build on the older state. (A version saturated at `u64::MAX` tells nothing.)
pub(crate) fn check_not_rolled_back(read: &Record, found: &Found) -> Result<(), StoreError> {
    match found {
        Found::Record(now) if now.record.version <= read.version && read.version < u64::MAX => {
            Err(StoreError::RolledBack {
                message: format!(
                    "version {} stored, version {} read before",
                    now.record.version, read.version
                ),
            })
        }
        _ => Ok(()),
    }
}

/// A script's reply `{code, extra...}`: the code and the reply's elements after it.
pub(crate) fn code(v: &Value, what: &str) -> Result<(i64, Vec<Value>), StoreError> {
    match v {
        Value::Array(items) => match items.split_first() {
            Some((Value::Int(c), rest)) => Ok((*c, rest.to_vec())),
            _ => Err(unexpected(what, v)),
        },
        _ => Err(unexpected(what, v)),
    }
}
