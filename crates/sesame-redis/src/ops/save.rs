//! Saving a delta (`save.lua`): merged on the client into the record as read, written with
//! compare-and-set, merged again from the stored record when another write came first. On
//! Valkey 8.1 and later a save not due a touch is the server's own compare-and-set
//! (`SET … IFEQ … KEEPTTL`), and the script runs only when that did not write. Like a
//! load, a save pushes the idle deadline only when a touch is due ([`sesame::store::touch_due`]),
//! decided here from the idle deadline the caller loaded, so that the script need not ask for
//! the key's TTL. A save that meets a token superseded within its grace window goes on at the
//! lineage's head.

use std::sync::Arc;

use bytes::Bytes;
use redis::Value;
use sesame::store::{touch_due, write_ttl};
use sesame::{Delta, Loaded, Policy, Record, SaveOutcome, SessionKey, StoreError};

use crate::error::{backend, is_syntax_error, unexpected};
use crate::ops::lineage::{check_not_rolled_back, code, Follow, Found, Read, Resolved};
use crate::record;
use crate::script::Call;
use crate::store::RedisStore;

/// Most attempts of one save under contention: each conflict means another write landed
/// first, so N concurrent writers need at most N.
pub(crate) const MAX_SAVE_ATTEMPTS: usize = 128;

/// What `save.lua` answered.
pub(crate) enum Reply {
    /// Saved; the key's new time to live (ms), or `None` when it kept its TTL.
    Saved(Option<u64>),
    Missing,
    /// The key no longer holds the bytes the client merged into: here is what it holds.
    Changed(Found),
}

impl Reply {
    pub(crate) fn parse(v: &Value, now: u64) -> Result<Reply, StoreError> {
        Ok(match code(v, "save")? {
            (1, rest) => Reply::Saved(match rest.first() {
                Some(Value::Int(ttl)) => u64::try_from(*ttl).ok(),
                _ => None,
            }),
            (0, _) => Reply::Missing,
            (2, rest) => {
                // The key's TTL as the script found it (-1: none, which sesame never writes),
                // for a record that carries no idle deadline.
                let ttl = match rest.get(1) {
                    Some(Value::Int(ttl)) => u64::try_from(*ttl).ok(),
                    _ => None,
                };
                Reply::Changed(Found::from_reply(rest.first(), ttl, now, "save")?)
            }
            _ => return Err(unexpected("save", v)),
        })
    }
}

/// The call of `save.lua` for writing `written` over `expected` under `session_key`; with
/// `index` (a touch is due: the new TTL, the record, the session's id), the script also sets
/// the TTL and moves the principal's index.
pub(crate) fn script_call<'a>(
    store: &'a RedisStore,
    session_key: &str,
    expected: &[u8],
    written: &[u8],
    index: Option<(u64, &Record, String)>,
    now: u64,
) -> Call<'a> {
    let mut call = Call::new(&store.scripts.save);
    call.key(session_key).arg(expected).arg(written);
    if let Some((ttl, next, id)) = index {
        if let Some(p) = &next.principal {
            call.key(store.keys.index(p.user()));
        }
        call.arg(ttl).arg(next.index_member(&id)).arg(now.saturating_add(ttl));
    }
    call
}

/// The TTL a save of `next` at `now` sets, or `None` when the key keeps its own: set when a
/// touch is due by the idle deadline as loaded (`None`: the key had no TTL), or when that
/// deadline lies further than the session may now live.
fn new_ttl(policy: &Policy, deadline: Option<u64>, next: &Record, now: u64) -> Option<u64> {
    let left = deadline.map(|d| d.saturating_sub(now));
    let ttl = write_ttl(policy, next.absolute_ms, now);
    touch_due(policy, left, next.absolute_ms, now)
        .or_else(|| left.filter(|&l| l > ttl && ttl > 0).map(|_| ttl))
}

pub(crate) async fn save(
    store: &RedisStore,
    key: &SessionKey,
    base: &Loaded,
    delta: &Delta,
    now: u64,
    policy: &Policy,
) -> Result<SaveOutcome, StoreError> {
    let mut target = *key;
    // The bytes as stored, if nothing changed since the load: the record with its deadline.
    let mut expected = record::encode(&base.record, Some(base.idle_deadline_ms));
    // Shared with the load until a conflict brings another state of the record.
    let mut current = Arc::clone(&base.record);
    let mut deadline = Some(base.idle_deadline_ms);
    for _ in 0..MAX_SAVE_ATTEMPTS {
        if current.absolute_ms <= now {
            return Ok(SaveOutcome::Missing);
        }
        let next = Arc::new(current.next(delta, policy)?);
        let touch = new_ttl(policy, deadline, &next, now);
        // The deadline the key has after this write, carried in the record.
        let written = record::encode(&next, touch.map(|ttl| now.saturating_add(ttl)).or(deadline));
        let ticket = store.near_ticket();
        // The session key lives in the call only (not beside it across the await below), which
        // keeps this future within the allocator's thread cache.
        let mut call = {
            let session_key = store.keys.session(&target);
            if touch.is_none() && store.uses_native_compare_and_set() {
                // The server's own compare-and-set; when it did not write (the key is missing
                // or holds something else), the script runs next and says which, and what.
                let mut c = Call::set_if_equal();
                c.key(session_key.as_str()).arg(expected.as_slice()).arg(written.as_slice());
                c
            } else {
                let index = touch.map(|ttl| (ttl, &*next, target.id()));
                script_call(store, &session_key, &expected, &written, index, now)
            }
        };
        // Sets and removals give the same record when applied twice; exact updates do not, so
        // a save carrying one is not sent again after a broken connection.
        call.retry_safe(delta.update.is_empty());
        // One await point for both calls keeps this future small too.
        let reply = loop {
            let result = store.run_unmarked(&call).await;
            if !call.is_native() {
                break result.and_then(|v| Reply::parse(&v, now));
            }
            match result {
                Ok(Value::Okay) => break Ok(Reply::Saved(None)),
                Ok(Value::Nil) => {}
                Ok(other) => break Err(unexpected("save", &other)),
                Err(e) if is_syntax_error(&e) => store.native_cas_refused(),
                Err(e) => break Err(e),
            }
            let session_key = String::from_utf8_lossy(call.session_key()).into_owned();
            call = script_call(store, &session_key, &expected, &written, None, now);
            call.retry_safe(delta.update.is_empty());
        };
        match (&reply, ticket) {
            (Ok(Reply::Saved(ttl)), Some(ticket)) => {
                // The near cache keeps what was written (the index, if any, is dropped). A
                // kept TTL is the loaded deadline's: the key lives at least that long.
                for k in call.keys().iter().skip(1) {
                    store.wrote(&String::from_utf8_lossy(k));
                }
                let ttl = ttl.or_else(|| deadline.map(|d| d.saturating_sub(now)));
                let read = Read { raw: Bytes::from(written), record: Arc::clone(&next), ttl };
                store.wrote_own(&String::from_utf8_lossy(call.session_key()), read, ticket, now);
            }
            _ => store.wrote_keys(&call),
        }
        let found = match reply? {
            Reply::Saved(_) => return Ok(SaveOutcome::Saved(next)),
            Reply::Missing => return Ok(SaveOutcome::Missing),
            Reply::Changed(found) => found,
        };
        check_not_rolled_back(&current, &found)?;
        let read = match found {
            Found::Record(read) => read,
            found => {
                match Box::pin(store.resolve_from(&target, found, now, Follow::Request)).await? {
                    Resolved::Head(head, read, _) => {
                        target = head;
                        read
                    }
                    _ => return Ok(SaveOutcome::Missing),
                }
            }
        };
        // (A copy, on a conflict only: a save's own bytes stay a plain vector.)
        expected = read.raw.to_vec();
        current = read.record;
        deadline = read.ttl.map(|t| now.saturating_add(t));
    }
    Err(backend(&format!(
        "save still conflicting after {MAX_SAVE_ATTEMPTS} attempts: too many concurrent writers on one session"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let mut p = sesame::SessionConfig::builder()
            .insecure_development_secret()
            .build()
            .map(|c| c.policy().clone())
            .unwrap_or_else(|e| panic!("{e}"));
        p.idle_ms = 1_800_000;
        p.touch_after_ms = 60_000;
        p
    }

    fn record(absolute_ms: u64) -> Record {
        Record { absolute_ms, ..Record::default() }
    }

    // A save writes a TTL only when the loaded deadline says a touch is due, the key had none,
    // or the deadline lies past what the session may still live.
    #[test]
    fn the_ttl_a_save_sets() {
        let (p, now) = (policy(), 10_000_000);
        let far = record(now + 86_400_000);
        assert_eq!(new_ttl(&p, Some(now + 1_800_000), &far, now), None, "just touched");
        assert_eq!(new_ttl(&p, Some(now + 1_740_001), &far, now), None, "touched 59 s ago");
        assert_eq!(new_ttl(&p, Some(now + 1_740_000), &far, now), Some(1_800_000), "60 s ago");
        assert_eq!(new_ttl(&p, Some(now - 5), &far, now), Some(1_800_000), "deadline passed");
        assert_eq!(new_ttl(&p, None, &far, now), Some(1_800_000), "no TTL");
        // Near its absolute deadline, a session's TTL is capped, and the idle rule counts from a
        // full idle window: its saves write the capped TTL.
        let near = record(now + 600_000);
        assert_eq!(new_ttl(&p, Some(now + 600_000), &near, now), Some(600_000), "capped");
        // A deadline further than a write may now give (the idle timeout was shortened since).
        let r = new_ttl(&p, Some(now + 2_000_000), &far, now);
        assert_eq!(r, Some(1_800_000), "past the idle window");
    }

    // A deadline that moved on since the load (another request's touch) can make a save touch
    // early, never skip a touch that the later deadline would have called for.
    #[test]
    fn a_later_deadline_never_asks_for_a_touch_an_earlier_one_skips() {
        let (p, now) = (policy(), 10_000_000);
        let r = record(now + 86_400_000);
        for loaded in (0..=1_800_000).step_by(7_919) {
            if new_ttl(&p, Some(now + loaded), &r, now).is_none() {
                for later in (loaded..=1_800_000).step_by(3_001) {
                    assert_eq!(new_ttl(&p, Some(now + later), &r, now), None, "{loaded} {later}");
                }
            }
        }
    }
}
