//! Property tests of reading the session token from `Cookie` headers.
//!
//! - The lookup itself (reached through `sesame_axum::fuzzing`): arbitrary header bytes never
//!   panic and never yield more than a cookie may hold; a token among any other cookies is
//!   found, the first occurrence winning.
//! - Through the layer on a real server (axum on a loopback port, the in-memory store):
//!   arbitrary `Cookie` bytes sent on a raw connection always get an answer, without a
//!   session, and the server keeps serving.
//!
//! Case counts stay moderate so the suite stays fast; `PROPTEST_CASES` raises them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use sesame::{MemoryStore, SessionConfig, SessionManager, Tag, TokenCodec};
use sesame_axum::cookie::MAX_COOKIE_BYTES;
use sesame_axum::fuzzing::cookie_occurrences;
use sesame_axum::{CookieConfig, Session, SessionError, SessionLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `n` cases, or `PROPTEST_CASES` when set.
fn cases(n: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    Config { cases, failure_persistence: None, ..Config::default() }
}

fn configs() -> [CookieConfig; 2] {
    [CookieConfig::default(), CookieConfig::builder().name("sid").secure(false).build().unwrap()]
}

fn headers(lines: &[Vec<u8>]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append(COOKIE, v);
        }
    }
    h
}

/// Cookie-shaped text: names (sometimes the session cookie's), `=`, values (sometimes
/// quoted, sometimes huge), separated by `;` with or without spaces.
fn cookie_text() -> impl Strategy<Value = Vec<u8>> {
    let name =
        prop_oneof![Just("__Host-sesame".to_string()), Just("sid".to_string()), "[!-~]{0,12}",];
    let value = prop_oneof![
        "[ -~]{0,80}",
        "\"[A-Za-z0-9_-]{0,70}\"",
        (4000usize..4200).prop_map(|n| "x".repeat(n)),
    ];
    let sep = prop_oneof![Just(";"), Just("; "), Just(" ;  "), Just("")];
    vec((name, prop_oneof![Just("="), Just(""), Just("==")], value, sep), 0..8).prop_map(|pairs| {
        pairs.into_iter().flat_map(|(n, eq, v, s)| format!("{n}{eq}{v}{s}").into_bytes()).collect()
    })
}

proptest! {
    #![proptest_config(cases(2048))]

    // Arbitrary header bytes, over any number of `Cookie` headers, never panic; whatever is
    // found fits in a cookie.
    #[test]
    fn lookup_never_panics(
        lines in vec(prop_oneof![vec(any::<u8>(), 0..600), cookie_text()], 0..4)
    ) {
        let h = headers(&lines);
        for config in configs() {
            for v in cookie_occurrences(&config, &h) {
                prop_assert!(config.name().len() + v.len() <= MAX_COOKIE_BYTES);
                prop_assert!(!v.contains(';'));
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(512))]

    // A token among any other cookies (before and after it) is found exactly, first, and a
    // second session cookie after it comes after it.
    #[test]
    fn token_is_found_among_other_cookies(
        before in vec(("[a-z0-9_.-]{1,12}", "[!#-+.-:<-\\[\\]-~]{0,30}"), 0..6),
        after in vec(("[a-z0-9_.-]{1,12}", "[!#-+.-:<-\\[\\]-~]{0,30}"), 0..6),
        quoted in any::<bool>(),
        spaces in any::<bool>(),
    ) {
        let token = TokenCodec::insecure_development().generate(Tag::random().unwrap()).unwrap().expose();
        let config = CookieConfig::default();
        let sep = if spaces { "; " } else { ";" };
        let mut pairs: Vec<String> = before.iter().map(|(n, v)| format!("{n}={v}")).collect();
        pairs.push(if quoted {
            format!("__Host-sesame=\"{token}\"")
        } else {
            format!("__Host-sesame={token}")
        });
        pairs.push("__Host-sesame=second".to_string());
        pairs.extend(after.iter().map(|(n, v)| format!("{n}={v}")));
        let h = headers(&[pairs.join(sep).into_bytes()]);
        prop_assert_eq!(cookie_occurrences(&config, &h), vec![token.as_str(), "second"]);
    }
}

async fn whoami(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!({ "user": session.principal().await? })))
}

async fn login(session: Session) -> Result<Json<Value>, SessionError> {
    session.login("alice").await?;
    Ok(Json(json!({ "user": "alice" })))
}

async fn serve() -> SocketAddr {
    let manager = SessionManager::new(
        Arc::new(MemoryStore::new()),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/login", get(login))
        .layer(SessionLayer::new(manager).with_cookie(CookieConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Sends one request with `cookie` as the raw bytes of its `Cookie` header (omitted when
/// `None`) and returns the whole response.
async fn raw_get(addr: SocketAddr, path: &str, cookie: Option<&[u8]>) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    if let Some(c) = cookie {
        req.extend_from_slice(b"Cookie: ");
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The bytes HTTP allows in a field value (tab, visible ASCII, space, obs-text).
fn field_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
    prop_oneof![vec(byte, 0..2000), cookie_text()]
}

// Arbitrary `Cookie` bytes sent to a real server through the layer: every request gets a 200
// without a session (never a dropped connection), a real login still works afterwards, and
// its token is still read back with arbitrary cookies around it.
#[test]
fn layer_answers_any_cookie_bytes() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let addr = rt.block_on(serve());
    let mut runner = TestRunner::new(cases(128));
    runner
        .run(&field_bytes(), |cookie| {
            let res = rt.block_on(raw_get(addr, "/whoami", Some(&cookie)));
            prop_assert!(res.starts_with("HTTP/1.1 200 "), "{res}");
            prop_assert!(res.ends_with("{\"user\":null}"), "{res}");
            Ok(())
        })
        .unwrap();

    let res = rt.block_on(raw_get(addr, "/login", None));
    assert!(res.starts_with("HTTP/1.1 200 "), "{res}");
    let token = res
        .split("__Host-sesame=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_string();
    let mut runner = TestRunner::new(cases(32));
    runner
        .run(&(cookie_text(), cookie_text()), |(before, after)| {
            let mut cookie = before;
            cookie.extend_from_slice(format!("; __Host-sesame={token}; ").as_bytes());
            cookie.extend_from_slice(&after);
            let res = rt.block_on(raw_get(addr, "/whoami", Some(&cookie)));
            // Another session cookie before the real one wins (first occurrence), so the
            // request may be anonymous; it is answered either way.
            prop_assert!(res.starts_with("HTTP/1.1 200 "), "{res}");
            let before_has_session_cookie = String::from_utf8_lossy(&cookie)
                .split(';')
                .take_while(|p| !p.contains(&token))
                .any(|p| p.trim_start().starts_with("__Host-sesame="));
            if !before_has_session_cookie {
                prop_assert!(res.ends_with("{\"user\":\"alice\"}"), "{res}");
            }
            Ok(())
        })
        .unwrap();
}
