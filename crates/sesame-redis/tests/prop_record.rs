//! Property tests of what a Redis session key holds: a session record (one MessagePack array)
//! or the pointer a rotation leaves for a superseded token.
//!
//! Arbitrary and damaged bytes give an error, never a panic; every record and pointer the
//! store can write decodes back to itself. No Redis server is needed: the codec is pure.
//!
//! Case counts stay moderate so the suite stays fast; `PROPTEST_CASES` raises them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use sesame::{Principal, Record, SessionKey, Tag, UserRef};
use sesame_redis::fuzzing::{decode_stored, encode_pointer, encode_record, StoredForm};

/// The configuration caps the absolute timeout at a year; the decoder allows a day more.
const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

/// `n` cases, or `PROPTEST_CASES` when set.
fn cases(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// 16 bytes as the 22 base64url characters of a session id.
fn id_of(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::new();
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(char::from(ALPHABET[((bits >> n) & 63) as usize]));
        }
    }
    // 128 bits = 21 characters and 2 bits left over, padded with zero bits.
    out.push(char::from(ALPHABET[((bits << (6 - n)) & 63) as usize]));
    out
}

fn session_key() -> impl Strategy<Value = SessionKey> {
    (any::<[u8; 4]>(), any::<[u8; 16]>()).prop_map(|(tag, digest)| {
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        SessionKey::from_parts(Tag::from_hex(&hex).unwrap(), &id_of(digest)).unwrap()
    })
}

/// Any record the store can hold: deadlines at most a year apart, any principal, any
/// attribute names and value bytes.
fn record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        0..=YEAR_MS,
        proptest::option::of((any::<String>(), any::<[u8; 20]>())),
        // The authentication time: anywhere, or (as a login writes it) just before creation.
        proptest::option::of(prop_oneof![any::<u64>().prop_map(Err), (0..100_000u64).prop_map(Ok)]),
        // The last rotation's time: anywhere, or (as a rotation writes it) after creation.
        prop_oneof![any::<u64>().prop_map(Err), (0..10_000_000u64).prop_map(Ok)],
        any::<u64>(),
        btree_map(any::<String>(), vec(any::<u8>(), 0..300), 0..12),
        proptest::option::of(any::<[u8; 16]>()),
    )
        .prop_map(|(created_ms, life, principal, auth_ms, rotated_ms, version, attrs, sid)| {
            let created_ms = created_ms.min(u64::MAX - YEAR_MS);
            let principal = principal.map(|(name, user)| {
                Principal::from_parts(name, UserRef::from_bytes(&user).unwrap())
            });
            // Ok: relative to creation; Err: any time.
            let rotated_ms = match rotated_ms {
                Ok(on) => created_ms + on,
                Err(at) => at,
            };
            let auth_ms = auth_ms.map(|a| match a {
                Ok(back) => created_ms.saturating_sub(back),
                Err(at) => at,
            });
            Record {
                created_ms,
                absolute_ms: created_ms + life,
                principal,
                auth_ms,
                rotated_ms,
                version,
                attrs,
                sid,
            }
        })
}

fn pointer_kind() -> impl Strategy<Value = u8> {
    prop_oneof![Just(b'R'), Just(b'E'), Just(b'M'), Just(b'X')]
}

/// Bytes shaped like what a session key holds, then anything: a record's array header, a
/// pointer's mark and kind, or nothing in particular.
fn stored_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(vec![]),
        Just(vec![0x96]),
        Just(vec![0x97]),
        Just(vec![0xdc, 0x00, 0x07]),
        pointer_kind().prop_map(|k| vec![b'P', k]),
        any::<u8>().prop_map(|k| vec![b'P', k]),
    ];
    (prefix, vec(any::<u8>(), 0..200)).prop_map(|(mut p, rest)| {
        p.extend(rest);
        p
    })
}

proptest! {
    #![proptest_config(cases(2048))]

    // Arbitrary bytes give an error or a value, never a panic; anything that decodes is a
    // record with possible deadlines or a pointer of a known kind.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop_oneof![stored_bytes(), vec(any::<u8>(), 0..64)]) {
        match decode_stored(&bytes) {
            Ok(StoredForm::Record(r)) => {
                prop_assert!(r.created_ms <= r.absolute_ms);
                prop_assert!(r.absolute_ms - r.created_ms <= YEAR_MS + 24 * 3600 * 1000);
            }
            Ok(StoredForm::Pointer(kind, ..)) => prop_assert!(b"REMX".contains(&kind)),
            Err(_) => {}
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    // Every record the store can write decodes back to itself, and is never taken for a
    // pointer.
    #[test]
    fn records_round_trip(r in record()) {
        let bytes = encode_record(&r);
        prop_assert_ne!(bytes[0], b'P');
        prop_assert_eq!(decode_stored(&bytes), Ok(StoredForm::Record(r)));
    }

    // Every pointer decodes back to itself, whatever it seals.
    #[test]
    fn pointers_round_trip(
        kind in pointer_kind(),
        until_ms in any::<u64>(),
        successor in session_key(),
        sealed in vec(any::<u8>(), 0..100),
    ) {
        let bytes = encode_pointer(kind, until_ms, successor, &sealed).unwrap();
        prop_assert_eq!(
            decode_stored(&bytes),
            Ok(StoredForm::Pointer(kind, until_ms, successor, sealed))
        );
    }

    // Every truncation of a record is refused; every single-byte change, insertion or
    // deletion gives an error or a value, never a panic.
    #[test]
    fn damaged_records_never_panic(
        r in record(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = encode_record(&r);
        let cut = cut.index(bytes.len());
        prop_assert!(decode_stored(&bytes[..cut]).is_err(), "truncated at {cut} of {}", bytes.len());
        let i = pos.index(bytes.len());
        let mut changed = bytes.clone();
        changed[i] = byte;
        let _ = decode_stored(&changed);
        let mut inserted = bytes.clone();
        inserted.insert(i, byte);
        let _ = decode_stored(&inserted);
        let mut removed = bytes.clone();
        removed.remove(i);
        let _ = decode_stored(&removed);
    }

    // A pointer cut inside its fixed head is refused; a damaged one never panics.
    #[test]
    fn damaged_pointers_never_panic(
        kind in pointer_kind(),
        successor in session_key(),
        sealed in vec(any::<u8>(), 0..60),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in 1usize..40,
    ) {
        let bytes = encode_pointer(kind, 1_763_683_205_000, successor, &sealed).unwrap();
        prop_assert!(decode_stored(&bytes[..cut]).is_err());
        let mut changed = bytes.clone();
        changed[pos.index(bytes.len())] = byte;
        let _ = decode_stored(&changed);
    }

    // Records whose deadlines are impossible (absolute before creation, or more than a year
    // and a day after it) are refused.
    #[test]
    fn impossible_deadlines_are_refused(
        r in record(),
        back in 1u64..u64::MAX,
        far in (YEAR_MS + 24 * 3600 * 1000 + 1)..u64::MAX,
    ) {
        let mut before = r.clone();
        before.absolute_ms = before.created_ms.saturating_sub(back);
        if before.absolute_ms < before.created_ms {
            prop_assert!(decode_stored(&encode_record(&before)).is_err());
        }
        let mut after = r;
        after.absolute_ms = after.created_ms.saturating_add(far);
        if after.absolute_ms - after.created_ms == far {
            prop_assert!(decode_stored(&encode_record(&after)).is_err());
        }
    }
}

// The attribute map as Redis's cmsgpack re-encodes an empty table (an empty array), and
// absent fields as nil, decode like the store's own form.
#[test]
fn lua_forms_decode_like_the_stores() {
    let own =
        encode_record(&Record { version: 1, created_ms: 2, absolute_ms: 3, ..Record::default() });
    let lua = [0x96, 0x01, 0x02, 0x03, 0xc0, 0xc0, 0x90];
    let (Ok(StoredForm::Record(a)), Ok(StoredForm::Record(b))) =
        (decode_stored(&own), decode_stored(&lua))
    else {
        panic!("both forms decode");
    };
    assert_eq!(
        (a.version, a.created_ms, a.absolute_ms, a.attrs),
        (b.version, b.created_ms, b.absolute_ms, BTreeMap::new())
    );
}
