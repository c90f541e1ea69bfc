//! Saving a delta (`save.lua`): merged on the client into the record as read, written with
//! compare-and-set, merged again from the stored record when another write came first. Like a
//! load, a save pushes the idle deadline only when a touch is due ([`sesame::store::touch_due`]). A save
//! that meets a token superseded within its grace window goes on at the lineage's head.

use redis::Value;
use sesame::store::write_ttl;
use sesame::{Delta, Policy, Record, SaveOutcome, SessionKey, StoreError};

use crate::error::{backend, unexpected};
use crate::ops::lineage::{check_not_rolled_back, code, Follow, Found, Read, Resolved};
use crate::record;
use crate::script::Call;
use crate::store::RedisStore;

/// Most attempts of one save under contention: each conflict means another write landed
/// first, so N concurrent writers need at most N.
pub(crate) const MAX_SAVE_ATTEMPTS: usize = 128;

/// What `save.lua` answered.
enum Reply {
    /// Saved; the key's time to live now (ms), when the reply says.
    Saved(Option<u64>),
    Missing,
    /// The key no longer holds the bytes the client merged into: here is what it holds.
    Changed(Found),
}

impl Reply {
    fn parse(v: &Value, now: u64) -> Result<Reply, StoreError> {
        Ok(match code(v, "save")? {
            (1, rest) => Reply::Saved(match rest.first() {
                Some(Value::Int(ttl)) => u64::try_from(*ttl).ok(),
                _ => None,
            }),
            (0, _) => Reply::Missing,
            (2, rest) => Reply::Changed(Found::from_reply(rest.first(), now, "save")?),
            _ => return Err(unexpected("save", v)),
        })
    }
}

pub(crate) async fn save(
    store: &RedisStore,
    key: &SessionKey,
    base: &Record,
    delta: &Delta,
    now: u64,
    policy: &Policy,
) -> Result<SaveOutcome, StoreError> {
    let mut target = *key;
    let mut expected = record::encode(base);
    let mut current = base.clone();
    for _ in 0..MAX_SAVE_ATTEMPTS {
        if current.absolute_ms <= now {
            return Ok(SaveOutcome::Missing);
        }
        let next = current.next(delta, policy)?;
        let ttl = write_ttl(policy, next.absolute_ms, now);
        let mut call = Call::new(&store.scripts.save);
        let session_key = store.keys.session(&target);
        call.key(session_key.as_str());
        if let Some(p) = &next.principal {
            call.key(store.keys.index(p.user()));
        }
        let written = record::encode(&next);
        call.arg(expected.as_slice())
            .arg(written.as_slice())
            .arg(ttl)
            .arg(next.index_member(&target.id()))
            .arg(now.saturating_add(ttl))
            .arg(policy.idle_ms)
            .arg(policy.touch_after_ms);
        // Sets and removals give the same record when applied twice; exact updates do not, so
        // a save carrying one is not sent again after a broken connection.
        call.retry_safe(delta.update.is_empty());
        let ticket = store.near_ticket();
        let reply = store.run_unmarked(&call).await.and_then(|v| Reply::parse(&v, now));
        match (&reply, ticket) {
            (Ok(Reply::Saved(Some(ttl))), Some(ticket)) => {
                // The near cache keeps what was written (the index, if any, is dropped).
                for k in call.keys().iter().skip(1) {
                    store.wrote(&String::from_utf8_lossy(k));
                }
                let read = Read { raw: written, record: next.clone(), ttl: Some(*ttl) };
                store.wrote_own(&session_key, read, ticket, now);
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
            found => match store.resolve_from(&target, found, now, Follow::Request).await? {
                Resolved::Head(head, read, _) => {
                    target = head;
                    read
                }
                _ => return Ok(SaveOutcome::Missing),
            },
        };
        expected = read.raw;
        current = read.record;
    }
    Err(backend(&format!(
        "save still conflicting after {MAX_SAVE_ATTEMPTS} attempts: too many concurrent writers on one session"
    )))
}
