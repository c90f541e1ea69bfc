//! Property tests of the core's decoders: session tokens and attribute values.
//!
//! - Token parsing: arbitrary strings are refused without a panic, generated tokens round-trip,
//!   and any single change to a valid token is refused.
//! - Value decoding (header byte, JSON / MessagePack, LZ4): arbitrary bytes give an error or a
//!   value, never a panic; the decoder itself never allocates more than `MAX_VALUE_BYTES`
//!   (measured by a counting global allocator with a limit); encode then decode gives back any
//!   JSON value, in both formats, compressed or not.
//!
//! Case counts stay moderate so the suite stays fast; `PROPTEST_CASES` raises them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::System;
use std::sync::{Mutex, MutexGuard};

use cap::Cap;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde::de::IgnoredAny;
use serde_json::{Map, Number, Value};
use sesame::value::{decode, encode_as, MAX_VALUE_BYTES};
use sesame::{InvalidToken, Naming, Tag, TokenCodec, TokenSecret, ValueFormat, TOKEN_LEN};

/// Every allocation of this test binary goes through a counter; a limit can be set on it.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// The allocator's limit is global: the tests of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the value decoder may hold at once beyond its input: the decompressed buffer (at most
/// `MAX_VALUE_BYTES`) plus a little for error messages and bookkeeping.
const DECODER_BUDGET: usize = MAX_VALUE_BYTES + (256 << 10);

/// Runs `f` with allocations capped at what is allocated now plus `budget`. Going over makes
/// the allocation fail, which aborts this test binary with "memory allocation of N bytes
/// failed": the test fails loudly rather than passing on a machine with enough memory.
fn within<T>(budget: usize, f: impl FnOnce() -> T) -> T {
    let base = ALLOCATOR.allocated();
    ALLOCATOR.set_limit(base.saturating_add(budget)).unwrap();
    let out = f();
    ALLOCATOR.set_limit(usize::MAX).unwrap();
    out
}

/// `n` cases, or `PROPTEST_CASES` when set.
fn cases(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn codecs() -> [TokenCodec; 2] {
    [
        TokenCodec::insecure_development(),
        TokenCodec::new(vec![TokenSecret::new(vec![7u8; 32]).unwrap()]).unwrap(),
    ]
}

proptest! {
    #![proptest_config(cases(512))]

    // Any string at all (any length, any characters) is refused, without a panic.
    #[test]
    fn token_parse_refuses_arbitrary_strings(
        text in prop_oneof![any::<String>(), vec(any::<char>(), 0..5000).prop_map(String::from_iter)]
    ) {
        let _g = serial();
        for codec in codecs() {
            prop_assert!(codec.parse(&text).is_err());
        }
    }

    // Strings of exactly 68 characters, from the token alphabet or near it, are refused: by
    // their alphabet or by their check value.
    #[test]
    fn token_parse_refuses_well_shaped_strings(
        text in prop_oneof![
            "[A-Za-z0-9_-]{68}",
            "[A-Za-z0-9_+/=-]{68}",
            proptest::string::string_regex(".{68}").unwrap(),
        ]
    ) {
        let _g = serial();
        for codec in codecs() {
            match codec.parse(&text) {
                Err(InvalidToken::Check | InvalidToken::Alphabet) => {}
                Err(InvalidToken::Length(n)) => prop_assert_ne!(n, TOKEN_LEN),
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
                Ok(_) => prop_assert!(false, "a made-up token was accepted"),
            }
        }
    }

    // Arbitrary bytes, read as text the way a header would be, are refused.
    #[test]
    fn token_parse_refuses_arbitrary_bytes(bytes in vec(any::<u8>(), 0..200)) {
        let _g = serial();
        let text = String::from_utf8_lossy(&bytes);
        for codec in codecs() {
            prop_assert!(codec.parse(&text).is_err());
        }
    }

    // A generated token, under any tag, parses back to itself (same key, same id), and only
    // under the codec that made it.
    #[test]
    fn generated_tokens_round_trip(principal in any::<String>(), tag_bytes in any::<[u8; 4]>()) {
        let _g = serial();
        let [plain, keyed] = codecs();
        let hex: String = tag_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let named = Naming::from_secret(&TokenSecret::new(vec![7u8; 32]).unwrap()).user(&principal);
        for tag in [named.tag(), Tag::from_hex(&hex).unwrap()] {
            let token = keyed.generate(tag).unwrap();
            let text = token.expose();
            prop_assert_eq!(text.len(), TOKEN_LEN);
            let back = keyed.parse(&text).unwrap();
            prop_assert_eq!(back.key(), token.key());
            prop_assert_eq!(back.tag(), tag);
            prop_assert_eq!(back.expose(), text.clone());
            prop_assert_eq!(plain.parse(&text), Err(InvalidToken::Check));
        }
    }

    // Any change of one byte of a valid token (to any other ASCII byte) is refused, and so is
    // any change of one character to a character outside ASCII.
    #[test]
    fn single_changes_are_refused(pos in 0..TOKEN_LEN, byte in 0u8..128, ch in any::<char>()) {
        let _g = serial();
        for codec in codecs() {
            let text = codec.generate(Tag::random().unwrap()).unwrap().expose();
            let mut bytes = text.clone().into_bytes();
            if bytes[pos] != byte {
                bytes[pos] = byte;
                let changed = String::from_utf8(bytes).unwrap();
                prop_assert!(codec.parse(&changed).is_err(), "changed at {pos} to {byte:#04x}");
            }
            if !ch.is_ascii() {
                let mut changed = text.clone();
                changed.replace_range(pos..pos + 1, ch.encode_utf8(&mut [0; 4]));
                prop_assert!(codec.parse(&changed).is_err());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

const JSON: u8 = 0x01;
const MSGPACK: u8 = 0x02;
const LZ4: u8 = 0x10;

/// Bytes as they could be stored for a value: a header byte (mostly a known one), then
/// anything; for the compressed kinds, a length prefix (small, near the limit, or huge), then
/// anything.
fn stored_value_bytes() -> impl Strategy<Value = Vec<u8>> {
    let header =
        prop_oneof![Just(JSON), Just(MSGPACK), Just(JSON | LZ4), Just(MSGPACK | LZ4), any::<u8>()];
    let claim = prop_oneof![
        0u32..4096,
        Just(MAX_VALUE_BYTES as u32),
        Just(MAX_VALUE_BYTES as u32 + 1),
        Just(u32::MAX),
        any::<u32>(),
    ];
    (header, claim, vec(any::<u8>(), 0..300)).prop_map(|(h, n, body)| {
        let mut out = vec![h];
        if h & LZ4 != 0 {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&body);
        out
    })
}

/// An LZ4 block that decompresses to exactly `n` bytes: literals then one long match.
fn lz4_claiming(header: u8, n: u32) -> Vec<u8> {
    let plain = vec![b' '; n as usize];
    let packed = lz4_flex::compress(&plain);
    let mut out = vec![header | LZ4];
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&packed);
    out
}

proptest! {
    #![proptest_config(cases(1024))]

    // Arbitrary bytes never panic, whatever type is asked for, and the decoder stays within
    // MAX_VALUE_BYTES (plus a small allowance) whatever the length prefix claims.
    #[test]
    fn value_decode_never_panics(bytes in prop_oneof![stored_value_bytes(), vec(any::<u8>(), 0..64)]) {
        let _g = serial();
        within(DECODER_BUDGET, || {
            let _ = decode::<IgnoredAny>(&bytes);
            let _ = decode::<String>(&bytes);
            let _ = decode::<Vec<u64>>(&bytes);
        });
        let _ = decode::<Value>(&bytes);
    }

    // A compressed value claiming more than MAX_VALUE_BYTES is refused before anything that
    // size is allocated: the decoder gets only 1 MiB here.
    #[test]
    fn oversized_claims_are_refused(
        header in prop_oneof![Just(JSON), Just(MSGPACK)],
        claim in (MAX_VALUE_BYTES as u32 + 1)..=u32::MAX,
        body in vec(any::<u8>(), 0..64),
    ) {
        let _g = serial();
        let mut bytes = vec![header | LZ4];
        bytes.extend_from_slice(&claim.to_le_bytes());
        bytes.extend_from_slice(&body);
        let err = within(1 << 20, || decode::<IgnoredAny>(&bytes)).unwrap_err();
        prop_assert!(err.contains("more than allowed"), "{err}");
    }
}

// The limit itself: a value decompressing to exactly MAX_VALUE_BYTES is accepted within the
// decoder's budget; one byte more is refused without the allocation (4 GiB claimed too).
#[test]
fn lz4_claims_at_the_limit() {
    let _g = serial();
    let at = lz4_claiming(JSON, MAX_VALUE_BYTES as u32);
    // Spaces only: not a JSON value, so an error, but only after decompressing all of it.
    let err = within(DECODER_BUDGET, || decode::<IgnoredAny>(&at)).unwrap_err();
    assert!(err.contains("EOF"), "{err}");
    let mut over = lz4_claiming(JSON, MAX_VALUE_BYTES as u32);
    over[1..5].copy_from_slice(&(MAX_VALUE_BYTES as u32 + 1).to_le_bytes());
    let err = within(1 << 20, || decode::<IgnoredAny>(&over)).unwrap_err();
    assert!(err.contains("more than allowed"), "{err}");
    over[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = within(1 << 20, || decode::<IgnoredAny>(&over)).unwrap_err();
    assert!(err.contains("claims 4294967295 bytes"), "{err}");
}

/// A number that survives JSON text exactly: integers of any size, and floats with a short
/// decimal form (any finite float survives MessagePack; see `msgpack_keeps_any_float`).
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(cases(512))]

    // Encode then decode gives back the same value, in both formats, with and without
    // compression; a value stays readable whatever format is configured later.
    #[test]
    fn values_round_trip(value in json_value(), compress_above in prop_oneof![Just(0usize), Just(128), Just(usize::MAX)]) {
        let _g = serial();
        for format in [ValueFormat::Json, ValueFormat::MessagePack] {
            let bytes = encode_as(format, &value, compress_above).unwrap();
            let expected = match format {
                ValueFormat::Json => JSON,
                _ => MSGPACK,
            };
            prop_assert_eq!(bytes[0] & !LZ4, expected);
            let back: Value = decode(&bytes).unwrap();
            prop_assert_eq!(&back, &value);
        }
    }

    // MessagePack keeps every finite float exactly.
    #[test]
    fn msgpack_keeps_any_float(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let _g = serial();
        let value = Value::Number(Number::from_f64(f).unwrap());
        let bytes = encode_as(ValueFormat::MessagePack, &value, usize::MAX).unwrap();
        prop_assert_eq!(decode::<Value>(&bytes).unwrap(), value);
    }

    // Any single byte change or truncation of a valid encoding gives an error or a value,
    // never a panic.
    #[test]
    fn damaged_values_never_panic(
        value in json_value(),
        format in prop_oneof![Just(ValueFormat::Json), Just(ValueFormat::MessagePack)],
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let _g = serial();
        let bytes = encode_as(format, &value, 0).unwrap();
        let mut changed = bytes.clone();
        let i = pos.index(changed.len());
        changed[i] = byte;
        let truncated = &bytes[..cut.index(bytes.len())];
        within(DECODER_BUDGET, || {
            let _ = decode::<IgnoredAny>(&changed);
            let _ = decode::<IgnoredAny>(truncated);
        });
        let _ = decode::<Value>(&changed);
        prop_assert!(decode::<Value>(truncated).is_err() || truncated.len() > 1);
    }
}
