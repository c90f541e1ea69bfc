//! Redis-specific behaviour of the store, on real spawned redis-server processes: hostile
//! bytes, what Redis holds (digests only: never a token), authentication, TLS, and scripts
//! reloaded after NOSCRIPT. What Redis holds for the per-user index and the pointers rotations
//! leave, and the exact commands of each operation, are checked in `index.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use sesame::{Delta, Lookup, RotateOutcome, SaveOutcome, SessionToken, Store, StoreError, Tag};
use sesame_redis::RedisStore;
use sesame_testkit::conformance::{
    base_of, elevate, key, login, policy, principal, record, renew, set, token,
};
use sesame_testkit::fixtures::{contains, create, is_pointer, live, now, pointer_bytes};
use sesame_testkit::{RedisOptions, RedisServer};

use common::{all_keys, conn, raw, store, zrange};

/// The 51 bytes of a token (decoded from its base64url text).
fn token_bytes(t: &SessionToken) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {c}"),
        })
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in t.expose().bytes() {
        acc = (acc << 6) | value(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    assert_eq!(out.len(), 51);
    out
}

// Hostile bytes under a session key (broken records, broken pointers) give a clear
// "malformed" error on load and save, never a panic, and a save does not overwrite them; a
// well-formed pointer that leads back to itself ends as missing instead of looping.
#[tokio::test]
async fn hostile_bytes_in_redis_are_an_error() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let p = policy();
    let hostile: [&[u8]; 10] = [
        b"",
        b"not msgpack at all",
        &[0x96, 0x01],
        &[0x96, 1, 2, 3, 0xc0, 0xc0, 0xdf, 0xff, 0xff, 0xff, 0xff],
        &[0x96, 0xa1, b'x', 2, 3, 0xc0, 0xc0, 0x80],
        &[0x96, 1, 2, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0x80],
        b"P",
        b"PR\x00\x00",
        b"PZ\x00\x00\x00\x00\x00\x00\x00\x00abcdef01AAAAAAAAAAAAAAAAAAAAAA",
        b"PR\x7f\xff\xff\xff\xff\xff\xff\xffzzzzzzzzAAAAAAAAAAAAAAAAAAAAAA",
    ];
    for bytes in hostile {
        let k = key(Tag::random().unwrap());
        let redis_key = s.session_key(&k);
        let _: () = redis::cmd("SET")
            .arg(&redis_key)
            .arg(bytes)
            .arg("PX")
            .arg(60_000)
            .query(&mut conn(&server))
            .unwrap();
        match s.load(&k, now(), &p).await {
            Err(StoreError::Corrupt(_)) => {}
            // A record whose absolute deadline lies in the past is simply absent.
            Ok(Lookup::Missing) => {}
            other => panic!("load of {bytes:?}: {other:?}"),
        }
        // The caller's idea of the record differs from the stored bytes, so the store reads
        // what is there, and must refuse it.
        let r = s.save(&k, &base_of(&record(None, &[])), &set(&[("a", b"1")]), now(), &p).await;
        assert!(r.is_err() || matches!(r, Ok(SaveOutcome::Missing)), "save over {bytes:?}: {r:?}");
        assert_eq!(
            raw(&server, &redis_key).as_deref(),
            Some(bytes),
            "hostile value left as it was"
        );
    }
    // A renewal pointer, within its grace window for a long time yet, naming its own key.
    let k = key(Tag::random().unwrap());
    let redis_key = s.session_key(&k);
    let cycle = pointer_bytes(b'R', u64::MAX / 2, &k);
    let _: () = redis::cmd("SET")
        .arg(&redis_key)
        .arg(&cycle)
        .arg("PX")
        .arg(60_000)
        .query(&mut conn(&server))
        .unwrap();
    let started = Instant::now();
    assert_eq!(s.load(&k, now(), &p).await.unwrap(), Lookup::Missing);
    let r =
        s.save(&k, &base_of(&record(None, &[])), &set(&[("a", b"1")]), now(), &p).await.unwrap();
    assert_eq!(r, SaveOutcome::Missing);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(raw(&server, &redis_key), Some(cycle));
}

// Redis holds digests only: after a dump of every key (records, the pointers renewals leave,
// indexes), no token (nor its random part, as text or as bytes) is found anywhere; the
// successor kept with a superseded key is sealed, not the token.
#[tokio::test]
async fn redis_never_holds_a_token() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = policy();
    let mut tokens = Vec::new();
    for i in 0..20 {
        let who = principal();
        let tag = if i % 2 == 0 { who.user().tag() } else { Tag::random().unwrap() };
        let t = token(tag);
        let r = record((i % 2 == 0).then_some(&who), &[("a", b"\x01\"v\"")]);
        create(&s, &t.key(), &r, &pol).await;
        let next = token(tag);
        let d = set(&[("b", b"\x01\"w\"")]);
        let out = s.rotate(&renew(&t, &next, &r, &d, 1_000), now(), &pol).await.unwrap();
        assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
        tokens.push(t);
        tokens.push(next);
    }
    let keys = all_keys(&server);
    let mut dump: Vec<u8> = keys.join("\n").into_bytes();
    let mut pointers = 0;
    for k in &keys {
        let kind: String = redis::cmd("TYPE").arg(k).query(&mut conn(&server)).unwrap();
        match kind.as_str() {
            "string" => {
                let v = raw(&server, k).unwrap();
                pointers += usize::from(is_pointer(&v));
                dump.extend_from_slice(&v);
            }
            "zset" => {
                for (member, score) in zrange(&server, k) {
                    dump.extend_from_slice(format!("{member} {score}").as_bytes());
                }
            }
            other => panic!("unexpected key type {other} for {k}"),
        }
    }
    assert_eq!(keys.len(), 50, "20 sessions + 20 pointers + 10 user indexes: {keys:?}");
    assert_eq!(pointers, 20, "one pointer per renewal");
    for t in &tokens {
        let text = t.expose();
        assert!(!contains(&dump, text.as_bytes()), "token found in Redis");
        assert!(!contains(&dump, &text.as_bytes()[8..48]), "token's random part found in Redis");
        assert!(!contains(&dump, &token_bytes(t)[4..36]), "token's random bytes found in Redis");
    }
}

// A user and password in the URL are used (ACL user and requirepass); a wrong password is a
// clear start-up error.
#[tokio::test]
async fn password_and_acl_user() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("pw-default".into()),
        acl_user: Some(("app".into(), "pw-app".into())),
        ..Default::default()
    })
    .unwrap();
    let s = RedisStore::connect(&server.url()).await.unwrap();
    let k = key(Tag::random().unwrap());
    create(&s, &k, &record(None, &[]), &policy()).await;
    let url = format!("redis://:pw-default@127.0.0.1:{}", server.port());
    let s2 = RedisStore::connect(&url).await.unwrap();
    assert!(s2.load(&k, now(), &policy()).await.unwrap().is_live());
    let bad = format!("redis://app:wrong@127.0.0.1:{}", server.port());
    let e = RedisStore::connect(&bad).await.unwrap_err();
    assert!(!e.to_string().contains("wrong"), "no password in the message: {e}");
}

// rediss:// with the server's CA works end to end.
#[tokio::test]
async fn tls() {
    let server = RedisServer::start_with(RedisOptions { tls: true, ..Default::default() }).unwrap();
    assert!(server.url().starts_with("rediss://"));
    let s = RedisStore::builder(server.url())
        .ca_cert_pem(server.ca_cert_pem().unwrap().into_bytes())
        .connect()
        .await
        .unwrap();
    let k = key(Tag::random().unwrap());
    create(&s, &k, &record(None, &[("a", b"1")]), &policy()).await;
    let l = live(s.load(&k, now(), &policy()).await.unwrap());
    assert_eq!(l.record.attrs["a"], b"1");
}

// After the server forgets its scripts (SCRIPT FLUSH, as after a restart), every operation
// reloads its script by itself and succeeds: each script is loaded again exactly once after
// each flush, when it is first needed.
#[tokio::test]
async fn scripts_reload_after_noscript() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let pol = policy();
    let who = principal();
    let t = token(who.user().tag());
    server.reset_stats().unwrap();
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    create(&s, &t.key(), &record(Some(&who), &[]), &pol).await; // create.lua
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    let l = live(s.load(&t.key(), now(), &pol).await.unwrap()); // no script
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    let saved = s.save(&t.key(), &l, &set(&[("a", b"1")]), now(), &pol).await.unwrap(); // save.lua
    let SaveOutcome::Saved(r) = saved else { panic!("{saved:?}") };
    assert_eq!(r.version, 2);
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    let t1 = token(who.user().tag());
    let d = Delta::default();
    let out = s.rotate(&renew(&t, &t1, &r, &d, 1_000), now(), &pol).await.unwrap(); // rotate.lua
    assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(s.list_user(who.user(), now(), 64).await.unwrap().len(), 1); // no script
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    assert!(s.destroy(&t.key(), now()).await.unwrap()); // end.lua
    let anon = key(Tag::random().unwrap());
    let ra = record(None, &[]);
    create(&s, &anon, &ra, &pol).await; // create.lua again (flushed since)
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    let new = key(who.user().tag());
    let out = s.rotate(&elevate(&anon, &new, &ra, &d, login(&who, 0)), now(), &pol).await.unwrap(); // swap.lua, create.lua
    assert!(matches!(out, RotateOutcome::Rotated(_)), "{out:?}");
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(s.revoke_all(who.user(), None, now()).await.unwrap(), 1); // bump_epoch.lua, end_many.lua
    let stats = server.info_commandstats().unwrap();
    assert_eq!(stats.get("script|load").copied(), Some(1 + 1 + 1 + 1 + 1 + 2 + 2), "{stats:?}");
    assert_eq!(stats.get("script|flush").copied(), Some(8), "{stats:?}");
}

/// glibc's allocator keeps freed blocks of up to 1032 bytes in a per-thread cache; larger ones
/// go back to a shared arena under its lock, which threads of a multi-threaded runtime contend
/// for. A load's and a save's futures (each boxed, once per request) stay within that cache:
/// the rarer paths inside them (following a lineage, a touch, a script reload, a durable
/// write's `WAIT`) are boxed on their own (docs/BENCHMARKS.md, "Futures and the allocator").
#[tokio::test]
async fn a_requests_store_futures_fit_the_allocators_thread_cache() {
    let server = RedisServer::start();
    let s = RedisStore::connect(&server.url()).await.unwrap();
    let (p, k, delta) = (policy(), key(Tag::random().unwrap()), Delta::default());
    let base = base_of(&record(None, &[]));
    let load = s.load(&k, now(), &p);
    let save = s.save(&k, &base, &delta, now(), &p);
    let (load, save) = (std::mem::size_of_val(&*load), std::mem::size_of_val(&*save));
    assert!(load <= 1032, "a load's future takes {load} bytes");
    assert!(save <= 1032, "a save's future takes {save} bytes");
}
