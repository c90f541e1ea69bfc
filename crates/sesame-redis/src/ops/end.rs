//! Ending sessions: a logout or a reuse ends a whole lineage (`end.lua`, and `swap.lua` to
//! cancel a login under way); revoking one session by id.

use sesame::{Principal, SessionKey, StoreError, UserRef};

use crate::error::{backend, unexpected};
use crate::ops::lineage::{code, Follow, Found, Read, Resolved};
use crate::ops::rotate::{swap, CLAIM_MS};
use crate::record::{encode_pointer, Pointer, PointerKind};
use crate::script::Call;
use crate::store::RedisStore;

const MAX_ATTEMPTS: usize = 64;

/// Ends the session `key` leads to, following its lineage: its live head is deleted; a login
/// under way from it is cancelled and the key it was creating closed (or the session it
/// created ended). Returns whether a live session was ended.
pub(crate) async fn end_lineage(
    store: &RedisStore,
    key: &SessionKey,
    now: u64,
) -> Result<bool, StoreError> {
    let mut target = *key;
    // Set once a claim was cancelled: its successor's key must not come to life after us.
    let mut closing = false;
    for _ in 0..MAX_ATTEMPTS {
        let found = store.read(&target, now).await?;
        if closing {
            if let Found::Missing = found {
                let tomb = encode_pointer(&Pointer {
                    kind: PointerKind::Ended,
                    until_ms: now,
                    successor: target,
                    sealed: Vec::new(),
                });
                let k = store.keys.session(&target);
                match swap(store, &k, b"", &tomb, CLAIM_MS.saturating_mul(2), now).await? {
                    None => return Ok(true),
                    Some(_) => continue,
                }
            }
        }
        match store.resolve_from(&target, found, now, Follow::Lineage).await? {
            Resolved::Own(read) => match end_one(store, &target, &read).await? {
                Some(ended) => return Ok(ended || closing),
                None => continue,
            },
            Resolved::Head(head, read, _) => match end_one(store, &head, &read).await? {
                Some(ended) => return Ok(ended || closing),
                None => continue,
            },
            Resolved::Claimed { at, raw, pointer } => {
                let ended = encode_pointer(&Pointer {
                    kind: PointerKind::Ended,
                    until_ms: now,
                    successor: pointer.successor,
                    sealed: Vec::new(),
                });
                let k = store.keys.session(&at);
                if swap(store, &k, &raw, &ended, CLAIM_MS.saturating_mul(2), now).await?.is_none() {
                    target = pointer.successor;
                    closing = true;
                }
            }
            Resolved::PastGrace | Resolved::Missing => return Ok(closing),
        }
    }
    Err(backend("a session lineage kept changing while being ended; try again"))
}

/// Deletes one live session (and its index member) if its key still holds `read`. `None`
/// when it changed meanwhile.
async fn end_one(
    store: &RedisStore,
    key: &SessionKey,
    read: &Read,
) -> Result<Option<bool>, StoreError> {
    let mut call = Call::new(&store.scripts.end);
    call.key(store.keys.session(key)).retry_safe(true);
    if let Some(p) = &read.record.principal {
        call.key(store.keys.index(p.user()));
    }
    call.arg(&read.raw[..]).arg(read.record.index_member(&key.id()));
    let v = store.run(&call).await?;
    Ok(match EndReply::parse(&v)? {
        EndReply::Ended => Some(true),
        EndReply::Gone => Some(false),
        EndReply::Changed => None,
    })
}

/// What `end.lua` answered.
enum EndReply {
    Ended,
    Gone,
    /// The key no longer holds the record read (a save or a rotation came first).
    Changed,
}

impl EndReply {
    fn parse(v: &redis::Value) -> Result<EndReply, StoreError> {
        Ok(match code(v, "end")? {
            (1, _) => EndReply::Ended,
            (0, _) => EndReply::Gone,
            (2, _) => EndReply::Changed,
            _ => return Err(unexpected("end", v)),
        })
    }
}

/// Revokes one session of `user` by id.
pub(crate) async fn revoke(
    store: &RedisStore,
    user: UserRef,
    id: &str,
    now: u64,
) -> Result<bool, StoreError> {
    let Some(key) = SessionKey::from_parts(user.tag(), id) else {
        return Ok(false);
    };
    for _ in 0..MAX_ATTEMPTS {
        let read = match store.read(&key, now).await? {
            Found::Record(read)
                if read.record.principal.as_ref().map(Principal::user) == Some(user) =>
            {
                read
            }
            _ => return Ok(false),
        };
        if let Some(ended) = end_one(store, &key, &read).await? {
            return Ok(ended);
        }
    }
    Err(backend("a session kept changing while being revoked; try again"))
}
