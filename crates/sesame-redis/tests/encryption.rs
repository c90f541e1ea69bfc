//! Encryption at rest on a real standalone Redis: the end-to-end checks every store passes
//! (`sesame_testkit::encryption`), then what Redis holds — a full `SCAN` with `DUMP` and the
//! value of every key finds no marker, no principal name and no token — and a sealed value
//! copied by hand, with raw commands, into another session's record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ops::Range;
use std::sync::Arc;

use sesame::{Error, SessionManager, SessionToken};
use sesame_testkit::conformance::DynStore;
use sesame_testkit::encryption::{self as enc, manager, marked_session, principal, token, MARKER};
use sesame_testkit::fixtures::contains;
use sesame_testkit::RedisServer;

use common::{conn, raw, store};

async fn redis_store(server: &RedisServer) -> DynStore {
    Arc::new(store(server).await)
}

#[tokio::test]
async fn store_holds_only_sealed_values() {
    let server = RedisServer::start();
    enc::store_holds_only_sealed_values(redis_store(&server).await).await;
}

#[tokio::test]
async fn copied_values_do_not_open() {
    let server = RedisServer::start();
    enc::copied_values_do_not_open(redis_store(&server).await).await;
}

#[tokio::test]
async fn rotations_and_updates_keep_working() {
    let server = RedisServer::start();
    enc::rotations_and_updates_keep_working(redis_store(&server).await).await;
}

#[tokio::test]
async fn key_rotation() {
    let server = RedisServer::start();
    enc::key_rotation(redis_store(&server).await).await;
}

#[tokio::test]
async fn switching_encryption_starts_new_sessions() {
    let server = RedisServer::start();
    enc::switching_encryption_starts_new_sessions(redis_store(&server).await).await;
}

#[tokio::test]
async fn sealed_principal_is_not_an_attribute() {
    let server = RedisServer::start();
    enc::sealed_principal_is_not_an_attribute(redis_store(&server).await).await;
}

/// Every key of the server by `SCAN`, and for each its name, its `DUMP` and its content read
/// by type (`GET` of a string, every member and score of a sorted set), all in one buffer.
fn scan_and_dump(server: &RedisServer) -> (Vec<String>, Vec<u8>) {
    let mut c = conn(server);
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(100).query(&mut c).unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    let mut dump = Vec::new();
    for k in &keys {
        dump.extend_from_slice(k.as_bytes());
        let serialized: Vec<u8> = redis::cmd("DUMP").arg(k).query(&mut c).unwrap();
        dump.extend_from_slice(&serialized);
        let kind: String = redis::cmd("TYPE").arg(k).query(&mut c).unwrap();
        match kind.as_str() {
            "string" => {
                let v: Vec<u8> = redis::cmd("GET").arg(k).query(&mut c).unwrap();
                dump.extend_from_slice(&v);
            }
            "zset" => {
                let members: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
                    .arg(k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut c)
                    .unwrap();
                for (member, score) in members {
                    dump.extend_from_slice(&member);
                    dump.extend_from_slice(score.as_bytes());
                }
            }
            other => panic!("unexpected key type {other} for {k}"),
        }
    }
    (keys, dump)
}

/// Sessions made by `m`: a logged-in one with markers (made anonymous, logged in, then rotated
/// by `cycle_id` and updated), and an anonymous one with a marker; the tokens handed out.
async fn traffic(m: &SessionManager, who: &str) -> Vec<SessionToken> {
    let t1 = marked_session(m, who).await;
    let s = m.open(Some(&t1.expose()));
    s.cycle_id().await.unwrap();
    s.update("cart", |c: &mut Vec<String>| c.push(format!("{MARKER}-pear"))).await.unwrap();
    let t2 = token(s.commit().await.unwrap());
    let s = m.open(None);
    s.insert("anonymous", &format!("{MARKER}-anonymous")).await.unwrap();
    let t3 = token(s.commit().await.unwrap());
    let s = m.open(Some(&t2.expose()));
    assert_eq!(s.principal().await.unwrap().as_deref(), Some(who));
    assert_eq!(s.get::<Vec<String>>("cart").await.unwrap().unwrap().len(), 2);
    vec![t1, t2, t3]
}

// With encryption on, a full SCAN of a Redis holding logged-in and anonymous sessions, the
// pointers their rotations left and the user's index, with DUMP and the content of every key,
// finds no marker of any attribute value, no part of the principal's name and no token. The
// same traffic with encryption off finds the markers and the name (so the search sees them).
#[tokio::test]
async fn redis_holds_no_marker_principal_or_token() {
    let server = RedisServer::start();
    let store = redis_store(&server).await;
    let who = principal();
    let m = manager(&store, &[7]);
    let tokens = traffic(&m, &who).await;
    // Another user, logged out everywhere: an epoch key.
    let revoked = principal();
    marked_session(&m, &revoked).await;
    assert_eq!(m.revoke_user(&revoked).await.unwrap(), 1);
    let (keys, dump) = scan_and_dump(&server);
    let count = |kind: &str| keys.iter().filter(|k| k.contains(kind)).count();
    // Two live sessions (the logged-in one, after its cycle_id, and the anonymous one), three
    // pointers (left by the two logins and by cycle_id), one index, one epoch.
    assert_eq!((count(":s:"), count(":u:"), count(":e:")), (5, 1, 1), "{keys:?}");
    assert!(!contains(&dump, revoked.as_bytes()), "a principal is in Redis");
    assert!(!contains(&dump, MARKER.as_bytes()), "a marker is in Redis");
    assert!(!contains(&dump, b"MARKER"), "a marker is in Redis");
    assert!(!contains(&dump, who.as_bytes()), "the principal is in Redis");
    assert!(!contains(&dump, b"lovelace"), "part of the principal is in Redis");
    for t in &tokens {
        let text = t.expose();
        assert!(!contains(&dump, text.as_bytes()), "a token is in Redis");
        assert!(!contains(&dump, &text.as_bytes()[8..48]), "a token's random part is in Redis");
    }
    // The control: without encryption, the same search finds them.
    let server = RedisServer::start();
    let store = redis_store(&server).await;
    traffic(&manager(&store, &[]), &who).await;
    let (_, dump) = scan_and_dump(&server);
    assert!(contains(&dump, MARKER.as_bytes()) && contains(&dump, who.as_bytes()));
}

/// Where the value of attribute `name` lies in a raw record: just after the name (a MessagePack
/// `str`), framed as a `str` itself.
fn value_range(record: &[u8], name: &str) -> Range<usize> {
    let mut framed_name = vec![0xa0 | u8::try_from(name.len()).unwrap()];
    framed_name.extend_from_slice(name.as_bytes());
    let at = record
        .windows(framed_name.len())
        .position(|w| w == framed_name)
        .unwrap_or_else(|| panic!("attribute {name} not found"))
        + framed_name.len();
    let (len, start) = match record[at] {
        m @ 0xa0..=0xbf => (usize::from(m & 0x1f), at + 1),
        0xd9 => (usize::from(record[at + 1]), at + 2),
        0xda => (usize::from(u16::from_be_bytes([record[at + 1], record[at + 2]])), at + 3),
        m => panic!("unexpected marker 0x{m:02x}"),
    };
    start..start + len
}

/// Replaces the bytes at `range` of the value under `key` (same length), keeping its TTL.
fn splice(server: &RedisServer, key: &str, range: Range<usize>, bytes: &[u8]) {
    let mut v = raw(server, key).unwrap();
    assert_eq!(range.len(), bytes.len(), "same length, so the framing stays valid");
    v.splice(range, bytes.iter().copied());
    let _: () = redis::cmd("SET").arg(key).arg(v).arg("KEEPTTL").query(&mut conn(server)).unwrap();
}

fn assert_fails_authentication<T: std::fmt::Debug>(r: Result<T, Error>, name: &str) {
    match r {
        Err(Error::Value { name: n, message }) => {
            assert_eq!(n, name);
            assert!(message.contains("failed authentication"), "{message}");
            assert!(!message.contains(MARKER), "{message}");
        }
        other => panic!("expected a value error, got {other:?}"),
    }
}

// A sealed value copied by hand (GET, splice, SET ... KEEPTTL) from one session's record into
// the same attribute of another session's record, or into another attribute of its own record,
// fails to open with a clear error: not the foreign value, no panic. The other values of the
// record still open.
#[tokio::test]
async fn value_copied_by_hand_does_not_open() {
    let server = RedisServer::start();
    let redis = store(&server).await;
    let store: DynStore = Arc::new(redis.clone());
    let m = manager(&store, &[1]);
    let mut tokens = Vec::new();
    for who in ["AAAA", "BBBB"] {
        let s = m.open(None);
        s.insert("secret", &format!("{MARKER}-secret-{who}")).await.unwrap();
        s.insert("public", &format!("{MARKER}-public-{who}")).await.unwrap();
        tokens.push(token(s.commit().await.unwrap()));
    }
    let (a, b) = (&tokens[0], &tokens[1]);
    let (key_a, key_b) = (redis.session_key(&a.key()), redis.session_key(&b.key()));
    let record_a = raw(&server, &key_a).unwrap();
    let secret_a = record_a[value_range(&record_a, "secret")].to_vec();
    // Into the same attribute of B.
    let record_b = raw(&server, &key_b).unwrap();
    splice(&server, &key_b, value_range(&record_b, "secret"), &secret_a);
    let s = m.open(Some(&b.expose()));
    assert_fails_authentication(s.get::<String>("secret").await, "secret");
    assert_eq!(s.get::<String>("public").await.unwrap().unwrap(), format!("{MARKER}-public-BBBB"));
    // Into another attribute of A.
    splice(&server, &key_a, value_range(&record_a, "public"), &secret_a);
    let s = m.open(Some(&a.expose()));
    assert_fails_authentication(s.get::<String>("public").await, "public");
    assert_eq!(s.get::<String>("secret").await.unwrap().unwrap(), format!("{MARKER}-secret-AAAA"));
    // A byte of the ciphertext flipped in place.
    let record_a = raw(&server, &key_a).unwrap();
    let mut flipped = secret_a.clone();
    flipped[40] ^= 1;
    splice(&server, &key_a, value_range(&record_a, "secret"), &flipped);
    let s = m.open(Some(&a.expose()));
    assert_fails_authentication(s.get::<String>("secret").await, "secret");
}

// With encryption off the record has no session identity and no sealed principal entry:
// eight fields, the eighth its idle deadline; with it on, a ninth field holds the 16-byte
// identity.
#[tokio::test]
async fn records_without_encryption_are_unchanged() {
    let server = RedisServer::start();
    let redis = store(&server).await;
    let store: DynStore = Arc::new(redis.clone());
    let who = principal();
    let plain = marked_session(&manager(&store, &[]), &who).await;
    let bytes = raw(&server, &redis.session_key(&plain.key())).unwrap();
    assert_eq!(bytes[0], 0x98, "eight fields");
    assert!(contains(&bytes, who.as_bytes()), "the principal, in clear as before");
    assert!(!contains(&bytes, &[0xa0, 0x40]), "no sealed principal entry");
    let sealed = marked_session(&manager(&store, &[1]), &who).await;
    let bytes = raw(&server, &redis.session_key(&sealed.key())).unwrap();
    assert_eq!(bytes[0], 0x99, "nine fields");
    assert_eq!(bytes[bytes.len() - 17], 0xb0, "a 16-byte identity at the end");
}
