//! Small fixtures shared by test files: the clock, a create that must succeed, a lookup that
//! must be live, a byte search, and the pointers the Redis store leaves under superseded keys.
//!
//! Tokens, keys, records, deltas, logins and rotations come from [`crate::conformance`]:
//! [`token`](crate::conformance::token), [`key`](crate::conformance::key),
//! [`record`](crate::conformance::record), [`set`](crate::conformance::set),
//! [`login`](crate::conformance::login), [`renew`](crate::conformance::renew) and
//! [`elevate`](crate::conformance::elevate).
// Test code: a failed expectation must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic)]

use sesame::{CreateOutcome, Loaded, Lookup, Policy, Record, SessionKey, Store};

/// How long a principal's index outlives the latest idle deadline of its sessions in the Redis
/// store (`INDEX_MARGIN_MS` in its `lua/lib.lua`): deadlines come from the app's clock, expiry
/// from Redis's.
pub const INDEX_MARGIN_MS: i64 = 60_000;

/// Now, in milliseconds since the Unix epoch (the clock the session layer uses).
pub fn now() -> u64 {
    sesame::now_ms()
}

/// Creates `r` under `k` (no login, now) and asserts that it was created.
pub async fn create<S: Store + ?Sized>(store: &S, k: &SessionKey, r: &Record, pol: &Policy) {
    assert_eq!(store.create(k, r, None, now(), pol).await.unwrap(), CreateOutcome::Created);
}

/// The token's own live session: panics on any other lookup.
pub fn live(l: Lookup) -> Loaded {
    match l {
        Lookup::Live(l) => l,
        other => panic!("expected the token's own live session, got {other:?}"),
    }
}

/// Whether `needle` (not empty) occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a Redis session key holds the pointer a rotation leaves (they start with `P`, which
/// no record starts with).
pub fn is_pointer(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'P')
}

/// A pointer as the Redis store writes it (its `record.rs`): `P`, `kind` (`R` renewal, `E`
/// login into another slot, `M` such a login under way, `X` ended), `until_ms` big-endian, the
/// successor's tag (hex) and id, and no sealed successor. Kept here to plant hostile values
/// and states that only a process dying mid-login can leave.
pub fn pointer_bytes(kind: u8, until_ms: u64, successor: &SessionKey) -> Vec<u8> {
    let mut out = vec![b'P', kind];
    out.extend_from_slice(&until_ms.to_be_bytes());
    out.extend_from_slice(successor.tag().to_hex().as_bytes());
    out.extend_from_slice(successor.id().as_bytes());
    out
}
