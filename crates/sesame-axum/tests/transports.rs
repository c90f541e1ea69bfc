//! The token transports over real HTTP on a real redis-server: `Authorization: Bearer`, a
//! named header, both beside the cookie, and the rule that a token is never read from the
//! URL nor from a transport that is not configured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::Client;
use serde_json::{json, Value};
use sesame::{SessionConfig, SessionManager};
use sesame_axum::{SessionLayer, TransportConfig, BEARER_RESPONSE_HEADER};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

use common::{routes, send, serve, session_cookie, Resp, COOKIE};

async fn app(redis: &RedisServer, transport: TransportConfig) -> SocketAddr {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(
        Arc::new(store),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
    serve(routes().layer(SessionLayer::new(manager).with_transport(transport))).await
}

fn bearer_only() -> TransportConfig {
    TransportConfig::builder().cookie(false).bearer(true).build().unwrap()
}

fn bearer(token: &str) -> (&'static str, Vec<u8>) {
    ("authorization", format!("Bearer {token}").into_bytes())
}

fn header(name: &'static str, token: &str) -> (&'static str, Vec<u8>) {
    (name, token.as_bytes().to_vec())
}

/// The token a response hands out in `name` (`Some("")` for "forget it").
fn handed(r: &Resp, name: &str) -> Option<String> {
    let all: Vec<_> = r.headers.get_all(name).iter().collect();
    assert!(all.len() <= 1, "one {name} header: {all:?}");
    r.header(name)
}

// Bearer: a login hands out the token in X-Session-Token (no cookie), the token then reaches
// the session, and a logout answers an empty X-Session-Token and ends the session.
#[tokio::test]
async fn bearer_login_whoami_logout() {
    let redis = RedisServer::start();
    let a = app(&redis, bearer_only()).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/login/alice"), &[]).await;
    assert_eq!(r.status, 200);
    let t = handed(&r, BEARER_RESPONSE_HEADER).expect("the token, in X-Session-Token");
    assert_eq!(t.len(), sesame::TOKEN_LEN);
    assert!(r.set_cookies().is_empty(), "no cookie without the cookie transport");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("vary").as_deref(), Some("Authorization"));
    let me = send(&c, "GET", format!("http://{a}/get"), &[bearer(&t)]).await;
    assert_eq!(me.body, json!({"x": null, "user": "alice"}));
    assert!(handed(&me, BEARER_RESPONSE_HEADER).is_none(), "a read hands out nothing");
    let lower = ("authorization", format!("bearer {t}").into_bytes());
    let me = send(&c, "GET", format!("http://{a}/get"), &[lower]).await;
    assert_eq!(me.body["user"], "alice", "the scheme in any case");
    let out = send(&c, "POST", format!("http://{a}/logout"), &[bearer(&t)]).await;
    assert_eq!(out.status, 200);
    assert_eq!(handed(&out, BEARER_RESPONSE_HEADER).as_deref(), Some(""), "drop the token");
    assert!(out.set_cookies().is_empty());
    let me = send(&c, "GET", format!("http://{a}/get"), &[bearer(&t)]).await;
    assert_eq!(me.body, json!({"x": null, "user": null}), "logged out");
}

// A named header: the token comes in it and new tokens go back in it; a login rotates the
// token (the old one is dead); a logout answers it empty. Bearer and cookie tokens are not
// read when only the named header is configured.
#[tokio::test]
async fn named_header_transport() {
    let redis = RedisServer::start();
    let only_header = TransportConfig::builder().cookie(false).header("X-Auth-Session").build();
    let a = app(&redis, only_header.unwrap()).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/set/x/1"), &[]).await;
    let t0 = handed(&r, "x-auth-session").unwrap();
    assert!(handed(&r, BEARER_RESPONSE_HEADER).is_none() && r.set_cookies().is_empty());
    assert_eq!(r.header("vary").as_deref(), Some("x-auth-session"));
    let r = send(&c, "GET", format!("http://{a}/get"), &[header("x-auth-session", &t0)]).await;
    assert_eq!(r.body["x"], "1");
    let r =
        send(&c, "POST", format!("http://{a}/login/bob"), &[header("x-auth-session", &t0)]).await;
    let t1 = handed(&r, "x-auth-session").unwrap();
    assert_ne!(t0, t1);
    let r = send(&c, "GET", format!("http://{a}/get"), &[header("x-auth-session", &t1)]).await;
    assert_eq!(r.body, json!({"x": "1", "user": "bob"}), "data kept at login");
    let r = send(&c, "GET", format!("http://{a}/get"), &[header("x-auth-session", &t0)]).await;
    assert_eq!(r.body["user"], Value::Null, "the pre-login token is dead");
    redis.reset_stats().unwrap();
    for other in [bearer(&t1), session_cookie(&t1)] {
        let r = send(&c, "GET", format!("http://{a}/get"), &[other]).await;
        assert_eq!(r.body["user"], Value::Null, "not a configured transport");
    }
    assert_eq!(redis.total_commands().unwrap(), 0);
    let out =
        send(&c, "POST", format!("http://{a}/logout"), &[header("x-auth-session", &t1)]).await;
    assert_eq!(handed(&out, "x-auth-session").as_deref(), Some(""));
    let r = send(&c, "GET", format!("http://{a}/get"), &[header("x-auth-session", &t1)]).await;
    assert_eq!(r.body["user"], Value::Null);
}

// A valid token in the query string, under any name, is ignored: the request has no session
// (no Redis command for a read; a write starts a new session with a new token) and the
// session the token belongs to is untouched. With the cookie and with the bearer transport.
#[tokio::test]
async fn token_in_the_query_string_is_ignored() {
    let redis = RedisServer::start();
    for transport in [TransportConfig::default(), bearer_only()] {
        let a = app(&redis, transport).await;
        let c = Client::new();
        let r = send(&c, "POST", format!("http://{a}/set/x/kept"), &[]).await;
        let t = r.cookie_token(COOKIE).or_else(|| handed(&r, BEARER_RESPONSE_HEADER)).unwrap();
        let query = format!(
            "session={t}&token={t}&{COOKIE}={t}&access_token={t}&{BEARER_RESPONSE_HEADER}={t}"
        );
        redis.reset_stats().unwrap();
        let r = send(&c, "GET", format!("http://{a}/get?{query}"), &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, json!({"x": null, "user": null}));
        assert_eq!(redis.total_commands().unwrap(), 0, "{:?}", redis.info_commandstats());
        let r = send(&c, "POST", format!("http://{a}/set/x/changed?{query}"), &[]).await;
        let fresh = r.cookie_token(COOKIE).or_else(|| handed(&r, BEARER_RESPONSE_HEADER));
        assert_ne!(fresh.unwrap(), t, "a new session, never the token from the URL");
        let presented = match r.cookie_token(COOKIE) {
            Some(_) => session_cookie(&t),
            None => bearer(&t),
        };
        let r = send(&c, "GET", format!("http://{a}/get"), &[presented]).await;
        assert_eq!(r.body["x"], "kept", "the session is untouched");
    }
}

// With only a header transport, a valid session cookie is not read: no session, no Redis
// command, a write starts a new session handed out in the header (no cookie), and the
// cookie's session is untouched.
#[tokio::test]
async fn cookie_is_ignored_when_only_a_header_transport_is_configured() {
    let redis = RedisServer::start();
    let cookie_app = app(&redis, TransportConfig::default()).await;
    let bearer_app = app(&redis, bearer_only()).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{cookie_app}/set/x/kept"), &[]).await;
    let t = r.cookie_token(COOKIE).unwrap();
    redis.reset_stats().unwrap();
    let r = send(&c, "GET", format!("http://{bearer_app}/get"), &[session_cookie(&t)]).await;
    assert_eq!(r.body, json!({"x": null, "user": null}));
    assert_eq!(redis.total_commands().unwrap(), 0);
    let r = send(&c, "POST", format!("http://{bearer_app}/set/x/new"), &[session_cookie(&t)]).await;
    let fresh = handed(&r, BEARER_RESPONSE_HEADER).unwrap();
    assert_ne!(fresh, t);
    assert!(r.set_cookies().is_empty());
    let r = send(&c, "GET", format!("http://{cookie_app}/get"), &[session_cookie(&t)]).await;
    assert_eq!(r.body["x"], "kept");
    // The same token as a bearer token does reach the session on the bearer app.
    let r = send(&c, "GET", format!("http://{bearer_app}/get"), &[bearer(&t)]).await;
    assert_eq!(r.body["x"], "kept");
}

// Malformed Authorization headers (another scheme, extra spaces, more than a token, no space,
// oversized, a broken token) give no session and cause no Redis command.
#[tokio::test]
async fn malformed_authorization_gives_no_session_and_no_redis_command() {
    let redis = RedisServer::start();
    let a = app(&redis, bearer_only()).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/login/alice"), &[]).await;
    let t = handed(&r, BEARER_RESPONSE_HEADER).unwrap();
    let bad = [
        format!("Basic {t}"),
        format!("Token {t}"),
        format!("Bearer  {t}"),
        format!("Bearer {t} {t}"),
        format!("Bearer {t} x"),
        format!("Bearer{t}"),
        format!("Bearer\t{t}"),
        format!("Bearer {t}{}", "A".repeat(5000)),
        format!("Bearer {}", &t[..63]),
        format!("Bearer {t}A"),
        "Bearer".to_string(),
    ];
    redis.reset_stats().unwrap();
    for value in &bad {
        let r =
            send(&c, "GET", format!("http://{a}/get"), &[("authorization", value.clone().into())])
                .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["user"], Value::Null, "{value:.80}");
    }
    assert_eq!(redis.total_commands().unwrap(), 0, "{:?}", redis.info_commandstats());
    let r = send(&c, "GET", format!("http://{a}/get"), &[bearer(&t)]).await;
    assert_eq!(r.body["user"], "alice");
}

// Cookie and bearer together: a request without a token gets the new token both ways; after
// that, a new token goes back the way the request's token came; a cookie and a bearer token
// that disagree give no session; a logout clears both.
#[tokio::test]
async fn cookie_and_bearer_together() {
    let redis = RedisServer::start();
    let both = TransportConfig::builder().bearer(true).build().unwrap();
    let a = app(&redis, both).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/set/x/1"), &[]).await;
    let t = r.cookie_token(COOKIE).unwrap();
    assert_eq!(handed(&r, BEARER_RESPONSE_HEADER).as_deref(), Some(t.as_str()));
    assert_eq!(r.header("vary").as_deref(), Some("Cookie, Authorization"));
    let r = send(&c, "POST", format!("http://{a}/login/alice"), &[session_cookie(&t)]).await;
    let by_cookie = r.cookie_token(COOKIE).unwrap();
    assert!(handed(&r, BEARER_RESPONSE_HEADER).is_none(), "answered in kind: cookie only");
    let r = send(&c, "POST", format!("http://{a}/login/bob"), &[]).await;
    let bob = handed(&r, BEARER_RESPONSE_HEADER).unwrap();
    let r = send(&c, "POST", format!("http://{a}/login/bob"), &[bearer(&bob)]).await;
    let by_bearer = handed(&r, BEARER_RESPONSE_HEADER).unwrap();
    assert!(r.set_cookies().is_empty(), "answered in kind: header only");
    let r = send(&c, "GET", format!("http://{a}/get"), &[bearer(&by_bearer)]).await;
    assert_eq!(r.body["user"], "bob");
    let r = send(&c, "POST", format!("http://{a}/login/carol"), &[]).await;
    let carol = r.cookie_token(COOKIE).unwrap();
    let r = send(
        &c,
        "POST",
        format!("http://{a}/login/carol"),
        &[session_cookie(&carol), bearer(&carol)],
    )
    .await;
    let renewed = r.cookie_token(COOKIE).expect("came both ways, goes back both ways");
    assert_eq!(handed(&r, BEARER_RESPONSE_HEADER).as_deref(), Some(renewed.as_str()));
    let r = send(&c, "GET", format!("http://{a}/get"), &[session_cookie(&by_cookie)]).await;
    assert_eq!(r.body["user"], "alice");
    let same = [session_cookie(&by_cookie), bearer(&by_cookie)];
    let r = send(&c, "GET", format!("http://{a}/get"), &same).await;
    assert_eq!(r.body["user"], "alice", "the same token both ways");
    redis.reset_stats().unwrap();
    let disagree = [session_cookie(&by_cookie), bearer(&by_bearer)];
    let r = send(&c, "GET", format!("http://{a}/get"), &disagree).await;
    assert_eq!(r.body, json!({"x": null, "user": null}), "two different tokens: none");
    assert_eq!(redis.total_commands().unwrap(), 0);
    let out = send(&c, "POST", format!("http://{a}/logout"), &[bearer(&by_bearer)]).await;
    assert_eq!(handed(&out, BEARER_RESPONSE_HEADER).as_deref(), Some(""));
    let cleared = out.set_cookie(COOKIE).expect("the cookie is cleared too");
    assert!(cleared.starts_with(&format!("{COOKIE}=;")) && cleared.contains("Max-Age=0"));
    let r = send(&c, "GET", format!("http://{a}/get"), &[bearer(&by_bearer)]).await;
    assert_eq!(r.body["user"], Value::Null);
}

// Bearer with a named header as well: new tokens come back in the named header, and a
// bearer token reaches its session.
#[tokio::test]
async fn bearer_with_a_named_header_answers_in_the_named_header() {
    let redis = RedisServer::start();
    let t = TransportConfig::builder().cookie(false).bearer(true).header("x-auth-session");
    let a = app(&redis, t.build().unwrap()).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/login/dave"), &[]).await;
    let t = handed(&r, "x-auth-session").unwrap();
    assert!(handed(&r, BEARER_RESPONSE_HEADER).is_none() && r.set_cookies().is_empty());
    assert_eq!(r.header("vary").as_deref(), Some("Authorization, x-auth-session"));
    let r = send(&c, "GET", format!("http://{a}/get"), &[bearer(&t)]).await;
    assert_eq!(r.body["user"], "dave");
    let r = send(&c, "POST", format!("http://{a}/login/dave"), &[bearer(&t)]).await;
    let renewed = handed(&r, "x-auth-session").unwrap();
    assert_ne!(renewed, t);
    let r = send(&c, "GET", format!("http://{a}/get"), &[header("x-auth-session", &renewed)]).await;
    assert_eq!(r.body["user"], "dave");
}
