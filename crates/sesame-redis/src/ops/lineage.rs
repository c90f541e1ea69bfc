//! Reading a session key and following a lineage: what every operation starts with.

use std::sync::Arc;

use bytes::Bytes;
use redis::Value;
use sesame::store::touch_due;
use sesame::{Loaded, Policy, Record, SessionKey, StoreError};

use crate::error::unexpected;
use crate::ops::save::{script_call, Reply as SaveReply};
use crate::record::{decode_stored, encode, Pointer, PointerKind, Stored};
use crate::store::RedisStore;

/// The most superseded tokens followed to reach a lineage's head.
pub(crate) const MAX_HOPS: usize = 32;

/// A live session's record as read, with its raw bytes (for compare-and-set) and TTL. Both
/// are shared, so that the near cache hands out what it keeps without copying it.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    pub(crate) raw: Bytes,
    pub(crate) record: Arc<Record>,
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
    /// counts as missing. A record's remaining TTL comes from the idle deadline it carries;
    /// `ttl` (the key's TTL, when read with it) stands in for a record that carries none.
    pub(crate) fn from_raw(
        raw: Option<Vec<u8>>,
        ttl: Option<u64>,
        now: u64,
    ) -> Result<Found, StoreError> {
        let (mut found, carries_deadline) = Found::classify(raw, now)?;
        if let (Found::Record(read), false) = (&mut found, carries_deadline) {
            read.ttl = ttl;
        }
        Ok(found)
    }

    /// Like [`Found::from_raw`] without a TTL: also says whether a record found carries its
    /// idle deadline (`false`: its TTL must be asked for).
    fn classify(raw: Option<Vec<u8>>, now: u64) -> Result<(Found, bool), StoreError> {
        let Some(raw) = raw else { return Ok((Found::Missing, true)) };
        match decode_stored(&raw).map_err(|e| StoreError::Corrupt(format!("session key: {e}")))? {
            Stored::Record(record, deadline) if record.absolute_ms > now => {
                // (The decoder never gives a deadline past the absolute one.)
                let ttl = deadline.map(|d| d.saturating_sub(now));
                let read = Read { raw: Bytes::from(raw), record: Arc::new(record), ttl };
                Ok((Found::Record(read), deadline.is_some()))
            }
            Stored::Record(..) => Ok((Found::Missing, true)),
            Stored::Pointer(pointer) => Ok((Found::Pointer { raw, pointer }, true)),
        }
    }

    /// From a script's `current` reply element; `ttl` as in [`Found::from_raw`].
    pub(crate) fn from_reply(
        v: Option<&Value>,
        ttl: Option<u64>,
        now: u64,
        what: &str,
    ) -> Result<Found, StoreError> {
        match v {
            None | Some(Value::Nil) => Ok(Found::Missing),
            Some(Value::BulkString(b)) => Found::from_raw(Some(b.clone()), ttl, now),
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
    /// Reads a session key with one `GET`: a record carries its idle deadline. (A record
    /// written before records carried it costs a second round trip, for its `PTTL`, until its
    /// next write.)
    pub(crate) async fn read(&self, key: &SessionKey, now: u64) -> Result<Found, StoreError> {
        let k = self.keys.session(key);
        self.read_key(&k, now).await
    }

    async fn read_key(&self, k: &str, now: u64) -> Result<Found, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(k);
        let raw: Option<Vec<u8>> = crate::script::read_one(&self.conn, &get).await?;
        let (mut found, carries_deadline) = Found::classify(raw, now)?;
        if let (Found::Record(read), false) = (&mut found, carries_deadline) {
            let mut pttl = redis::cmd("PTTL");
            pttl.arg(k);
            let pttl: i64 = Box::pin(crate::script::read_one(&self.conn, &pttl)).await?;
            read.ttl = u64::try_from(pttl).ok();
        }
        Ok(found)
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
    /// [`sesame::touch_due`]): the record is written again, unchanged but for the deadline it
    /// carries, with compare-and-set against the bytes read (`save.lua`, which also moves the
    /// index member's score), in one round trip. `None` when the key vanished meanwhile. When
    /// another write came first, the session is used as read, with the deadline it had: that
    /// write, or a later read, makes the touch.
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
        let written = encode(&read.record, Some(deadline));
        let k = self.keys.session(key);
        let index = Some((ttl, &*read.record, key.id()));
        let mut call = script_call(self, &k, &read.raw, &written, index, now);
        // Applied twice, the second finds other bytes and changes nothing.
        call.retry_safe(true);
        // No wait for replicas, even with durability on: the version stays, so a touch lost in
        // a failover only moves the deadline back (see `check_not_rolled_back`).
        let touched = Box::pin(crate::script::run(&self.conn, None, &call)).await;
        self.wrote_keys(&call);
        let reply = match touched {
            // A master that refuses writes for want of replicas (`min-replicas-to-write`) still
            // serves reads: the session is used with its deadline unchanged, and the touch is
            // made by a later read once the replicas are back.
            Err(StoreError::Unavailable { message, .. }) if message.contains("NOREPLICAS") => {
                tracing::debug!(id = %key.id(), "touch refused (NOREPLICAS); deadline kept");
                return Ok(Some(Loaded { record: read.record, idle_deadline_ms: kept }));
            }
            other => other?,
        };
        Ok(match SaveReply::parse(&reply, now)? {
            SaveReply::Saved(_) => Some(Loaded { record: read.record, idle_deadline_ms: deadline }),
            SaveReply::Missing => None,
            // Another write came first. The same session as it now stands (with the deadline
            // that write gave it, so that this request's save expects the right bytes); else
            // the session as read, its deadline unchanged.
            SaveReply::Changed(Found::Record(now_read)) => {
                let left = now_read.record.absolute_ms.saturating_sub(now);
                let idle = now.saturating_add(now_read.ttl.unwrap_or(left).min(left));
                Some(Loaded { record: now_read.record, idle_deadline_ms: idle })
            }
            SaveReply::Changed(_) => Some(Loaded { record: read.record, idle_deadline_ms: kept }),
        })
    }
}

/// Refuses to go on from what a key holds now (`found`, after a compare-and-set conflict)
/// when it is an older state of the session than `read`, the record the write merged into.
/// Every write raises the version, so a genuine later write holds a higher one; the same or a
/// lower version with other bytes comes back only when acknowledged writes were lost (a
/// failover promoted a replica that had not received them). Merging into it would silently
/// build on the older state. (A version saturated at `u64::MAX` tells nothing. A touch
/// rewrites the record with the same version and content, and only its idle deadline moved:
/// the same record under another deadline is no loss.)
pub(crate) fn check_not_rolled_back(read: &Record, found: &Found) -> Result<(), StoreError> {
    match found {
        // The same record under another deadline is a touch, not a lost write.
        Found::Record(now)
            if now.record.version <= read.version
                && read.version < u64::MAX
                && *now.record != *read =>
        {
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
