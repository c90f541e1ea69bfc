//! Rotating a token. Inside one slot (a renewal, a re-login, `cycle_id`) it is one script
//! (`rotate.lua`). A login from an anonymous session moves the session to its user's slot, which
//! on Redis Cluster no script can span; it is three single-slot steps, each a compare-and-swap
//! (`swap.lua`) or the create:
//!
//! 1. **claim**: the old key's record becomes a `Moving` pointer naming the successor, only if
//!    it is still the record read. From here, requests presenting the old token find no
//!    session, and a second login with it finds the claim and starts clean.
//! 2. **create** the successor in the user's slot (epoch, cap, index), refused after the
//!    claim's deadline.
//! 3. **settle**: the claim becomes an `Elevate` pointer; or, when the create was refused for
//!    sure (cap, epoch, a taken key), the record is **restored**. When the create's outcome is
//!    unknown (the store failed), neither: the claim stays and lapses, because restoring could
//!    leave two live sessions with one session's data.
//!
//! A logout that meets a claim cancels it (`Ended`) and closes or ends the successor's key,
//! so the login's settle fails and the session it wrote, if any, is ended.

use std::sync::Arc;

use sesame::store::{pointer_expiry, write_ttl};
use sesame::{
    CreateOutcome, Loaded, Policy, Principal, Record, RotateOutcome, Rotation, RotationKind,
    StoreError,
};

use crate::error::{backend, unexpected};
use crate::ops::create::{create, Created, Options};
use crate::ops::lineage::{check_not_rolled_back, code, Follow, Found, Read, Resolved};
use crate::record::{encode, encode_pointer, Pointer, PointerKind};
use crate::script::Call;
use crate::store::RedisStore;

/// How long a claim (step 1 of a login into another slot) holds before it lapses.
pub(crate) const CLAIM_MS: u64 = 30_000;

/// Most attempts when the old session keeps changing under concurrent saves.
const MAX_ATTEMPTS: usize = 128;

enum Step {
    Done(RotateOutcome),
    Changed(Found),
}

pub(crate) async fn rotate(
    store: &RedisStore,
    rot: &Rotation<'_>,
    now: u64,
    policy: &Policy,
) -> Result<RotateOutcome, StoreError> {
    let mut found = match rot.base_idle_deadline_ms {
        // The bytes as stored if nothing changed since the load: the record with its deadline.
        Some(deadline) => {
            let raw = encode(rot.base, Some(deadline));
            Found::Record(Read { raw: raw.into(), record: Arc::new(rot.base.clone()), ttl: None })
        }
        // Without it, the stored bytes are unknown: read them first (one round trip), and go
        // on from them as from a conflict.
        None => {
            let found = store.read(&rot.old, now).await?;
            check_not_rolled_back(rot.base, &found)?;
            found
        }
    };
    for _ in 0..MAX_ATTEMPTS {
        let read = match found {
            Found::Record(read) => read,
            other => return superseded(store, rot, other, now, policy).await,
        };
        let next = rot.successor(&read.record, now, policy)?;
        let in_slot = matches!(rot.kind, RotationKind::Renew { .. })
            && rot.new.tag() == rot.old.tag()
            && next.principal.as_ref().map(Principal::user)
                == read.record.principal.as_ref().map(Principal::user);
        let step = if in_slot {
            in_one_slot(store, rot, &read, &next, now, policy).await?
        } else {
            across_slots(store, rot, &read, &next, now, policy).await?
        };
        match step {
            Step::Done(outcome) => return Ok(outcome),
            Step::Changed(f) => {
                check_not_rolled_back(&read.record, &f)?;
                found = f;
            }
        }
    }
    Err(backend("rotation still conflicting with concurrent writes; try again"))
}

/// The old key no longer holds the record: another request rotated it (within its grace window:
/// the lineage goes on at its head), or it ended.
async fn superseded(
    store: &RedisStore,
    rot: &Rotation<'_>,
    found: Found,
    now: u64,
    policy: &Policy,
) -> Result<RotateOutcome, StoreError> {
    match store.resolve_from(&rot.old, found, now, Follow::Request).await? {
        Resolved::Head(head, read, sealed) => {
            let left = read.record.absolute_ms.saturating_sub(now);
            let idle = now.saturating_add(read.ttl.unwrap_or(policy.idle_ms).min(left));
            let loaded = Loaded { record: read.record, idle_deadline_ms: idle };
            Ok(RotateOutcome::AlreadyRotated { head, loaded, sealed })
        }
        Resolved::PastGrace => {
            crate::ops::end::end_lineage(store, &rot.old, now).await?;
            Ok(RotateOutcome::Missing)
        }
        _ => Ok(RotateOutcome::Missing),
    }
}

fn pointer(rot: &Rotation<'_>, kind: PointerKind, until_ms: u64) -> Vec<u8> {
    let sealed = if kind == PointerKind::Renew { rot.sealed_successor.clone() } else { Vec::new() };
    encode_pointer(&Pointer { kind, until_ms, successor: rot.new, sealed })
}

fn final_pointer(rot: &Rotation<'_>, next: &Record, now: u64, policy: &Policy) -> (Vec<u8>, u64) {
    let ttl = pointer_expiry(rot.kind, next, now, policy).saturating_sub(now).max(1);
    let bytes = match rot.kind {
        RotationKind::Renew { grace_ms } => {
            pointer(rot, PointerKind::Renew, now.saturating_add(grace_ms))
        }
        _ => pointer(rot, PointerKind::Elevate, now),
    };
    (bytes, ttl)
}

async fn in_one_slot(
    store: &RedisStore,
    rot: &Rotation<'_>,
    read: &Read,
    next: &Record,
    now: u64,
    policy: &Policy,
) -> Result<Step, StoreError> {
    let ttl = write_ttl(policy, next.absolute_ms, now);
    let (pointer, pointer_ttl) = final_pointer(rot, next, now, policy);
    let mut call = Call::new(&store.scripts.rotate);
    call.key(store.keys.session(&rot.old)).key(store.keys.session(&rot.new)).retry_safe(true);
    if let Some(p) = &next.principal {
        call.key(store.keys.index(p.user())).key(store.keys.epoch(p.user()));
    }
    call.arg(&read.raw[..])
        .arg(encode(next, Some(now.saturating_add(ttl))))
        .arg(ttl)
        .arg(pointer)
        .arg(pointer_ttl)
        .arg(read.record.index_member(&rot.old.id()))
        .arg(next.index_member(&rot.new.id()))
        .arg(now.saturating_add(ttl))
        .arg(rot.login.as_ref().map(|l| l.epoch.to_string()).unwrap_or_default());
    Ok(match Reply::parse(&store.run(&call).await?, now)? {
        Reply::Rotated => Step::Done(RotateOutcome::Rotated(next.clone())),
        Reply::NewKeyTaken => Step::Done(RotateOutcome::Collision),
        Reply::EpochMoved => Step::Done(RotateOutcome::Revoked),
        Reply::Changed(found) => Step::Changed(found),
    })
}

/// What `rotate.lua` answered.
enum Reply {
    Rotated,
    NewKeyTaken,
    EpochMoved,
    /// The old key no longer holds the record read: here is what it holds.
    Changed(Found),
}

impl Reply {
    fn parse(v: &redis::Value, now: u64) -> Result<Reply, StoreError> {
        Ok(match code(v, "rotate")? {
            (1, _) => Reply::Rotated,
            (0, _) => Reply::NewKeyTaken,
            (-3, _) => Reply::EpochMoved,
            (2, rest) => Reply::Changed(Found::from_reply(rest.first(), None, now, "rotate")?),
            _ => return Err(unexpected("rotate", v)),
        })
    }
}

/// Compare-and-swap of one key (`swap.lua`): `Ok(None)` when swapped, else what is there.
pub(crate) async fn swap(
    store: &RedisStore,
    key: &str,
    expected: &[u8],
    replacement: &[u8],
    ttl: u64,
    now: u64,
) -> Result<Option<Found>, StoreError> {
    let mut call = Call::new(&store.scripts.swap);
    call.key(key).arg(expected).arg(replacement).arg(ttl.max(1)).retry_safe(true);
    let v = store.run(&call).await?;
    match code(&v, "swap")? {
        (1, _) => Ok(None),
        (0, rest) => Ok(Some(Found::from_reply(rest.first(), None, now, "swap")?)),
        _ => Err(unexpected("swap", &v)),
    }
}

async fn across_slots(
    store: &RedisStore,
    rot: &Rotation<'_>,
    read: &Read,
    next: &Record,
    now: u64,
    policy: &Policy,
) -> Result<Step, StoreError> {
    let old = store.keys.session(&rot.old);
    // 1. Claim.
    let claim_until = now.saturating_add(CLAIM_MS);
    let moving = pointer(rot, PointerKind::Moving, claim_until);
    let claim_ttl = read.ttl.unwrap_or(CLAIM_MS).min(CLAIM_MS);
    if let Some(found) = swap(store, &old, &read.raw, &moving, claim_ttl, now).await? {
        return Ok(Step::Changed(found));
    }
    // 2. Create. A failure whose outcome is unknown leaves the claim in place (see above).
    let options = Options { deadline_ms: Some(claim_until) };
    let created = create(store, &rot.new, next, rot.login.as_ref(), now, policy, options).await;
    let restore_ttl = write_ttl(policy, read.record.absolute_ms, now);
    let refused = match created {
        Ok(Created::Outcome(CreateOutcome::Created)) => None,
        Ok(Created::Outcome(CreateOutcome::Revoked)) => Some(Ok(RotateOutcome::Revoked)),
        // The key is taken (a collision, or closed by a logout of the old session).
        Ok(Created::Outcome(_)) => Some(Ok(RotateOutcome::Collision)),
        Ok(Created::Lapsed) => return Ok(Step::Done(RotateOutcome::Missing)),
        Err(e @ StoreError::LimitExceeded(_)) => Some(Err(e)),
        Err(e) => return Err(e),
    };
    if let Some(result) = refused {
        // 3b. Restore: nothing was created, so the old session may live again — unless a
        // logout cancelled the claim meanwhile.
        if swap(store, &old, &moving, &read.raw, restore_ttl, now).await?.is_some() {
            return Ok(Step::Done(RotateOutcome::Missing));
        }
        return result.map(Step::Done);
    }
    // 3a. Settle.
    let (settled, settled_ttl) = final_pointer(rot, next, now, policy);
    match swap(store, &old, &moving, &settled, settled_ttl, now).await? {
        None => Ok(Step::Done(RotateOutcome::Rotated(next.clone()))),
        // A logout cancelled the claim: it ends (or has ended) what was created.
        Some(_) => Ok(Step::Done(RotateOutcome::Missing)),
    }
}
