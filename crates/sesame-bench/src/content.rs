//! The session content every measurement stores, the same for every layout; only the
//! serialization of the attribute values ([`ValueFormat`]) differs between layouts.
//!
//! Modelled on the session of the field's published benchmark: a logged-in user with three
//! attributes — `user_id` (the user id string), `profile` (a JSON object of about 205 bytes:
//! name, email, roles, preferences, plan, member-since date, avatar URL) and `hits` (a
//! number). Every session belongs to a different user and its content varies with the user
//! number, so no two sessions hold the same bytes.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sesame::{Policy, Record, ValueFormat};

use crate::{BenchError, BenchResult};

/// Values above this many serialized bytes are LZ4-compressed when it helps (the default of
/// `SessionConfig`).
pub const COMPRESS_ABOVE: usize = 128;

const FIRST: [&str; 8] =
    ["Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Grace", "Hiroshi"];
const LAST: [&str; 8] =
    ["Martin", "Silva", "Rossi", "Ivanov", "Garcia", "Haddad", "Okafor", "Tanaka"];
const ROLES: [&[&str]; 3] = [&["user"], &["user", "editor"], &["user", "billing"]];
const THEMES: [&str; 2] = ["light", "dark"];
const LANGS: [(&str, &str); 4] = [
    ("en-GB", "Europe/London"),
    ("fr-FR", "Europe/Paris"),
    ("de-DE", "Europe/Berlin"),
    ("es-ES", "Europe/Madrid"),
];
const PLANS: [&str; 3] = ["free", "pro", "team"];

/// The principal of user `n`: `user-000123`.
pub fn principal(n: u32) -> sesame::Principal {
    named(&format!("user-{n:06}"))
}

/// The principal named `name` under the development secret's naming (what the benchmark
/// servers are configured with).
pub fn named(name: &str) -> sesame::Principal {
    sesame::Naming::from_secret(&sesame::TokenSecret::insecure_development()).principal(name)
}

/// The `profile` attribute of user `n`: about 205 bytes once serialized.
pub fn profile(n: u32) -> Value {
    let i = n as usize;
    let (first, last) = (FIRST[i % 8], LAST[(i / 8) % 8]);
    let (lang, tz) = LANGS[(i / 3) % 4];
    json!({
        "name": format!("{first} {last}"),
        "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
        "roles": ROLES[i % 3],
        "prefs": { "theme": THEMES[i % 2], "lang": lang, "tz": tz },
        "plan": PLANS[(i / 5) % 3],
        "since": format!("20{:02}-{:02}-{:02}", 15 + n % 10, 1 + n % 12, 1 + n % 28),
        "avatar": format!("/img/u/{n:06}.png"),
    })
}

/// The initial `hits` of user `n`.
pub fn initial_hits(n: u32) -> u64 {
    u64::from(n % 97)
}

/// The attributes of user `n`'s session, encoded in `format` as the session layer stores them.
pub fn attributes(n: u32, format: ValueFormat) -> BenchResult<BTreeMap<String, Vec<u8>>> {
    let mut attrs = BTreeMap::new();
    attrs.insert("user_id".to_string(), encode(&json!(principal(n).name()), format)?);
    attrs.insert("profile".to_string(), encode(&profile(n), format)?);
    attrs.insert("hits".to_string(), encode(&json!(initial_hits(n)), format)?);
    Ok(attrs)
}

/// User `n`'s session as created at `now_ms` (logged in, version 1), values in `format`.
pub fn record(n: u32, now_ms: u64, policy: &Policy, format: ValueFormat) -> BenchResult<Record> {
    Ok(Record {
        created_ms: now_ms,
        absolute_ms: now_ms + policy.absolute_ms,
        principal: Some(principal(n)),
        auth_ms: Some(now_ms),
        rotated_ms: 0,
        version: 1,
        attrs: attributes(n, format)?,
        sid: None,
    })
}

/// Encodes an attribute value in `format` the way sessions do.
pub fn encode(value: &Value, format: ValueFormat) -> BenchResult<Vec<u8>> {
    sesame::value::encode_as(format, value, COMPRESS_ABOVE).map_err(BenchError::new)
}

/// Whether an encoded value was stored LZ4-compressed (its header byte has bit `0x10`).
pub fn is_compressed(encoded: &[u8]) -> bool {
    encoded.first().is_some_and(|h| h & 0x10 != 0)
}

/// Decodes attribute `name` of a loaded record.
pub fn decode_attr(record: &Record, name: &str) -> BenchResult<Value> {
    let raw = record
        .attrs
        .get(name)
        .ok_or_else(|| BenchError::new(format!("attribute {name:?} is missing")))?;
    sesame::value::decode(raw).map_err(|e| BenchError::new(format!("attribute {name:?}: {e}")))
}

/// The `hits` counter of a loaded record.
pub fn hits(record: &Record) -> BenchResult<u64> {
    decode_attr(record, "hits")?
        .as_u64()
        .ok_or_else(|| BenchError::new("attribute \"hits\" is not a count"))
}

/// Sizes of the content of the first `sessions` users, for the report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentSizes {
    /// Mean serialized JSON length of `profile`.
    pub profile_json: f64,
    /// Mean encoded length of `profile` as JSON (header byte + JSON, or LZ4 when it helps).
    pub profile_encoded: f64,
    /// How many JSON `profile` values were stored compressed.
    pub profile_compressed: usize,
    /// Mean encoded length of `profile` as MessagePack (header byte + MessagePack, or LZ4
    /// when it helps).
    pub profile_msgpack: f64,
    /// How many MessagePack `profile` values were stored compressed.
    pub profile_msgpack_compressed: usize,
    /// Mean encoded length of all attributes of a session with JSON values, names included.
    pub attributes_total: f64,
    /// The same with MessagePack values.
    pub attributes_total_msgpack: f64,
    /// The longest encoded attribute value with JSON values (what the hash layout stores).
    pub longest_value: usize,
}

/// Measures the content of users `0..sessions`.
pub fn sizes(sessions: u32) -> BenchResult<ContentSizes> {
    let (mut json, mut longest) = (0, 0);
    // Per format: encoded profile bytes, compressed profiles, bytes of names and values.
    let mut per_format = [(0, 0, 0); 2];
    for n in 0..sessions {
        json += serde_json::to_vec(&profile(n)).map_err(|e| BenchError::new(e.to_string()))?.len();
        for (i, format) in [ValueFormat::Json, ValueFormat::MessagePack].into_iter().enumerate() {
            let attrs = attributes(n, format)?;
            let p = attrs.get("profile").map_or(&[][..], Vec::as_slice);
            let (encoded, compressed, total) = &mut per_format[i];
            *encoded += p.len();
            *compressed += usize::from(is_compressed(p));
            *total += attrs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            if format == ValueFormat::Json {
                longest = longest.max(attrs.values().map(Vec::len).max().unwrap_or(0));
            }
        }
    }
    let n = f64::from(sessions.max(1));
    let [(j_encoded, j_compressed, j_total), (m_encoded, m_compressed, m_total)] = per_format;
    Ok(ContentSizes {
        profile_json: json as f64 / n,
        profile_encoded: j_encoded as f64 / n,
        profile_compressed: j_compressed,
        profile_msgpack: m_encoded as f64 / n,
        profile_msgpack_compressed: m_compressed,
        attributes_total: j_total as f64 / n,
        attributes_total_msgpack: m_total as f64 / n,
        longest_value: longest,
    })
}
