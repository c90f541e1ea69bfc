//! A principal's sessions: the list (one read of the index), "log out everywhere" (`bump_epoch.lua`
//! then `end_many.lua` in bounded batches), and the epoch read when a login begins.

use redis::Value;
use sesame::store::parse_index_member;
use sesame::{Record, SessionInfo, SessionKey, StoreError, UserRef};

use crate::record::{decode_stored, Stored};

use crate::error::{backend, unexpected};
use crate::script::Call;
use crate::store::RedisStore;

/// Sessions ended per script by `revoke_all`: the most keys one script declares.
pub(crate) const REVOKE_BATCH: usize = 100;

/// How long an epoch is kept after it last moved (ms): far longer than a login takes.
const EPOCH_TTL_MS: u64 = 24 * 3600 * 1000;

pub(crate) async fn user_epoch(store: &RedisStore, user: UserRef) -> Result<u64, StoreError> {
    let mut p = redis::pipe();
    p.get(store.keys.epoch(user));
    // Read as bytes: a value that is not UTF-8 is malformed data, not an unreachable store.
    let (raw,): (Option<Vec<u8>>,) = crate::script::read(&store.conn, &p).await?;
    match raw {
        None => Ok(0),
        Some(b) => std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
            StoreError::Corrupt("the user's revocation epoch is not a number".into())
        }),
    }
}

/// The live sessions of a principal, the most recently active first, at most `limit`: one
/// `ZRANGE` of the index, whose members carry what a list shows.
pub(crate) async fn list_user(
    store: &RedisStore,
    user: UserRef,
    now: u64,
    limit: usize,
) -> Result<Vec<SessionInfo>, StoreError> {
    let mut p = redis::pipe();
    p.cmd("ZRANGE")
        .arg(store.keys.index(user))
        .arg("+inf")
        .arg(format!("({now}"))
        .arg("BYSCORE")
        .arg("REV")
        .arg("LIMIT")
        .arg(0)
        .arg(limit)
        .arg("WITHSCORES");
    let (items,): (Vec<(Vec<u8>, f64)>,) = crate::script::read(&store.conn, &p).await?;
    let mut out = Vec::with_capacity(items.len());
    for (member, score) in items {
        let parsed = std::str::from_utf8(&member).ok().and_then(parse_index_member);
        let Some((id, created_ms, auth_ms)) = parsed else {
            tracing::warn!("skipping a malformed member of a user's session index");
            continue;
        };
        // Scores are whole milliseconds, well inside f64's exact range; `as` saturates.
        let expires_ms = if score.is_finite() && score > 0.0 { score as u64 } else { 0 };
        out.push(SessionInfo { id: id.to_string(), created_ms, expires_ms, auth_ms });
    }
    Ok(out)
}

/// Moves the principal's epoch, then ends its indexed sessions (except `keep`) in batches.
pub(crate) async fn revoke_all(
    store: &RedisStore,
    user: UserRef,
    keep: Option<&str>,
) -> Result<u64, StoreError> {
    let mut call = Call::new(&store.scripts.bump_epoch);
    call.key(store.keys.epoch(user)).arg(EPOCH_TTL_MS);
    store.run(&call).await?;
    let index = store.keys.index(user);
    let tag = user.tag();
    let keep_id = keep.unwrap_or("");
    let mut ended = 0u64;
    // Bounded: the cap allows at most 100,000 sessions per user (1,000 batches); a few more
    // rounds cover logins that land while this runs (they are ended too).
    for _ in 0..1_100 {
        let mut p = redis::pipe();
        p.cmd("ZRANGE").arg(&index).arg(0).arg(REVOKE_BATCH);
        // Read as bytes: a member that is not UTF-8 is malformed, and dropped like any other.
        let (members,): (Vec<Vec<u8>>,) = crate::script::read(&store.conn, &p).await?;
        let valid = |m: &[u8]| std::str::from_utf8(m).ok().and_then(parse_index_member).is_some();
        let batch: Vec<(&str, &str)> = members
            .iter()
            .filter_map(|m| {
                let text = std::str::from_utf8(m).ok()?;
                parse_index_member(text).map(|(id, _, _)| (id, text))
            })
            .filter(|(id, _)| *id != keep_id)
            .take(REVOKE_BATCH)
            .collect();
        if batch.is_empty() {
            let malformed: Vec<&Vec<u8>> = members.iter().filter(|m| !valid(m)).collect();
            if !malformed.is_empty() {
                // Not written by sesame; they name no session. Drop them.
                let mut p = redis::pipe();
                p.cmd("ZREM").arg(&index).arg(malformed).ignore();
                crate::script::read::<()>(&store.conn, &p).await?;
            }
            return Ok(ended);
        }
        let mut call = Call::new(&store.scripts.end_many);
        call.key(&index).retry_safe(true);
        for (id, member) in &batch {
            call.key(store.keys.session_id(tag, id)).arg(*member);
        }
        let v = store.run(&call).await?;
        match v {
            Value::Int(n) => ended = ended.saturating_add(u64::try_from(n).unwrap_or(0)),
            _ => return Err(unexpected("revoke_all", &v)),
        }
    }
    Err(backend("the user's sessions kept growing while being revoked; try again"))
}

/// The live records under `keys`, read without touching them: one pipeline of `GET`s (on a
/// Cluster, callers pass the keys of one user, which share a slot). Pointers, absent keys and
/// unreadable values are `None`; so is a record past its absolute deadline.
pub(crate) async fn peek(
    store: &RedisStore,
    keys: &[SessionKey],
    now: u64,
) -> Result<Vec<Option<Record>>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = redis::pipe();
    for k in keys {
        p.get(store.keys.session(k));
    }
    let raw: Vec<Option<Vec<u8>>> = crate::script::read(&store.conn, &p).await?;
    Ok(raw
        .into_iter()
        .map(|bytes| match decode_stored(&bytes?) {
            Ok(Stored::Record(r, _)) if r.absolute_ms > now => Some(r),
            _ => None,
        })
        .collect())
}
