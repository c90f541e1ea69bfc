//! Loading a session: one round trip of plain `GET` + `PTTL` (no script on the read path),
//! plus the coalesced touch when it is due. A token superseded within its grace window
//! resolves to its lineage's head; presented after it, its lineage is revoked.

use sesame::{Lookup, Policy, SessionKey, StoreError};

use crate::ops::lineage::{Follow, Found, Resolved};
use crate::store::RedisStore;

pub(crate) async fn load(
    store: &RedisStore,
    key: &SessionKey,
    now: u64,
    policy: &Policy,
) -> Result<Lookup, StoreError> {
    // A live record (the usual case) needs no following: the lineage walk, and the ending of
    // a lineage presented past its grace, are boxed so that this future stays small.
    let resolved = match store.read_cached(key, now).await? {
        Found::Record(read) => Resolved::Own(read),
        found => Box::pin(store.resolve_from(key, found, now, Follow::Request)).await?,
    };
    Ok(match resolved {
        Resolved::Own(read) => match store.touch(key, read, now, policy).await? {
            Some(loaded) => Lookup::Live(loaded),
            None => Lookup::Missing,
        },
        Resolved::Head(head, read, sealed) => match store.touch(&head, read, now, policy).await? {
            Some(loaded) => Lookup::Successor { head, loaded, sealed },
            None => Lookup::Missing,
        },
        Resolved::PastGrace => {
            Box::pin(crate::ops::end::end_lineage(store, key, now)).await?;
            Lookup::Reused
        }
        Resolved::Claimed { .. } | Resolved::Missing => Lookup::Missing,
    })
}
