//! How the layer reads the session cookie from real requests (several cookies of its name, an
//! oversized one, non-ASCII bytes in other cookies) and how it keeps a persistent cookie's
//! `Max-Age` in step with the session; over real HTTP, on a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;
use serde_json::{json, Value};
use sesame::{SessionConfig, SessionManager};
use sesame_axum::{CookieConfig, SessionLayer};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

use common::{cookie, routes, send, serve, session_cookie, COOKIE};

async fn app(redis: &RedisServer, config: SessionConfig, cookie: CookieConfig) -> SocketAddr {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(Arc::new(store), config);
    serve(routes().layer(SessionLayer::new(manager).with_cookie(cookie))).await
}

async fn default_app(redis: &RedisServer) -> SocketAddr {
    app(
        redis,
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
        CookieConfig::default(),
    )
    .await
}

/// Logs `user` in on a fresh session holding `x = user`; returns its token.
async fn logged_in(c: &Client, a: SocketAddr, user: &str) -> String {
    let t = send(c, "POST", format!("http://{a}/set/x/{user}"), &[]).await.cookie_token(COOKIE);
    let t = t.unwrap();
    let r = send(c, "POST", format!("http://{a}/login/{user}"), &[session_cookie(&t)]).await;
    assert_eq!(r.status, 200);
    r.cookie_token(COOKIE).unwrap()
}

// A cookie planted next to the real one (say, by a sibling subdomain with a Domain attribute)
// must not silently win: two well-formed session cookies with different values, in either
// order, in one header or two, give no session at all and cost no Redis command; both sessions
// are left as they were, and a write through such a request starts a new session.
#[tokio::test]
async fn two_different_session_cookies_give_no_session() {
    let redis = RedisServer::start();
    let a = default_app(&redis).await;
    let c = Client::new();
    let victim = logged_in(&c, a, "alice").await;
    let planted = logged_in(&c, a, "mallory").await;
    let get = format!("http://{a}/get");
    let both = [
        vec![cookie(format!("{COOKIE}={planted}; {COOKIE}={victim}"))],
        vec![cookie(format!("{COOKIE}={victim}; {COOKIE}={planted}"))],
        vec![session_cookie(&planted), session_cookie(&victim)],
        vec![cookie(format!("a=1; {COOKIE}={victim}; b=2; {COOKIE}=\"{planted}\""))],
    ];
    redis.reset_stats().unwrap();
    for headers in &both {
        let r = send(&c, "GET", get.clone(), headers).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, json!({"x": null, "user": null}), "{headers:?}");
        assert!(r.set_cookies().is_empty());
    }
    assert_eq!(redis.total_commands().unwrap(), 0, "{:?}", redis.info_commandstats().unwrap());
    let w = send(&c, "POST", format!("http://{a}/set/x/new"), &both[0]).await;
    let fresh = w.cookie_token(COOKIE).expect("a write starts a new session");
    assert!(fresh != victim && fresh != planted);
    for (t, user) in [(&victim, "alice"), (&planted, "mallory"), (&fresh, "")] {
        let r = send(&c, "GET", get.clone(), &[session_cookie(t)]).await;
        if user.is_empty() {
            assert_eq!(r.body, json!({"x": "new", "user": null}));
        } else {
            assert_eq!(r.body, json!({"x": user, "user": user}), "untouched");
        }
    }
}

// The same token twice is one token; malformed occurrences beside a good one are ignored.
#[tokio::test]
async fn repeated_or_malformed_occurrences_beside_the_token_are_harmless() {
    let redis = RedisServer::start();
    let a = default_app(&redis).await;
    let c = Client::new();
    let t = logged_in(&c, a, "alice").await;
    for value in [
        format!("{COOKIE}={t}; {COOKIE}={t}"),
        format!("{COOKIE}=garbage; {COOKIE}={t}"),
        format!("{COOKIE}={t}; {COOKIE}={}", &t[..40]),
        format!("{COOKIE}=; {COOKIE}={t}"),
    ] {
        let r = send(&c, "GET", format!("http://{a}/get"), &[cookie(value.clone())]).await;
        assert_eq!(r.body["user"], "alice", "{value:.80}");
    }
}

// An occurrence longer than a cookie may be is skipped; it does not hide a later valid one.
#[tokio::test]
async fn oversized_occurrence_does_not_hide_a_later_one() {
    let redis = RedisServer::start();
    let a = default_app(&redis).await;
    let c = Client::new();
    let t = logged_in(&c, a, "alice").await;
    let big = "A".repeat(5000);
    let value = format!("{COOKIE}={big}; {COOKIE}={t}");
    let r = send(&c, "GET", format!("http://{a}/get"), &[cookie(value)]).await;
    assert_eq!(r.body["user"], "alice");
    let r = send(&c, "GET", format!("http://{a}/get"), &[cookie(format!("{COOKIE}={big}"))]).await;
    assert_eq!(r.body["user"], Value::Null);
}

// Bytes outside ASCII in other cookies of the header do not hide the session cookie; in the
// session cookie's own value they make it no token.
#[tokio::test]
async fn non_ascii_bytes_elsewhere_in_the_header_are_harmless() {
    let redis = RedisServer::start();
    let a = default_app(&redis).await;
    let c = Client::new();
    let t = logged_in(&c, a, "alice").await;
    let mut value = b"pref=caf\xc3\xa9; ".to_vec();
    value.extend_from_slice(format!("{COOKIE}={t}").as_bytes());
    value.extend_from_slice(b"; other=\xff\xfe");
    let r = send(&c, "GET", format!("http://{a}/get"), &[cookie(value)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user"], "alice");
    let mut own = format!("{COOKIE}={t}").into_bytes();
    own.push(0xe9);
    let r = send(&c, "GET", format!("http://{a}/get"), &[cookie(own)]).await;
    assert_eq!(r.body["user"], Value::Null);
}

fn persistent() -> CookieConfig {
    CookieConfig::builder().persistent(true).build().unwrap()
}

// A persistent cookie is sent again, with the same token and a fresh Max-Age (the session's
// remaining life), when a save pushed the session's idle deadline forward (touch_after has
// passed since the last push); a read that did not push it sends no cookie.
#[tokio::test]
async fn persistent_cookie_is_refreshed_when_a_save_pushes_the_deadline() {
    let redis = RedisServer::start();
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .idle_timeout(Duration::from_secs(600))
        .absolute_timeout(Duration::from_secs(3600))
        .touch_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let a = app(&redis, config, persistent()).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/set/x/1"), &[]).await;
    let t = r.cookie_token(COOKIE).unwrap();
    let first = r.max_age(COOKIE).unwrap();
    assert!((1..=600).contains(&first), "{first}");
    // The clock moves on (deadlines are in milliseconds; a push in the very millisecond a
    // request starts counts as that request's).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = send(&c, "GET", format!("http://{a}/get"), &[session_cookie(&t)]).await;
    assert_eq!(r.body["x"], "1");
    assert!(r.set_cookies().is_empty(), "nothing pushed, nothing sent: {:?}", r.set_cookies());
    // Deciding whether to send it again costs no store call of its own.
    redis.reset_stats().unwrap();
    let r = send(&c, "GET", format!("http://{a}/plain"), &[session_cookie(&t)]).await;
    assert!(r.set_cookies().is_empty());
    assert_eq!(redis.total_commands().unwrap(), 0, "{:?}", redis.info_commandstats().unwrap());
    // A save before touch_after keeps the deadline, and sends nothing either.
    let r = send(&c, "POST", format!("http://{a}/set/x/2"), &[session_cookie(&t)]).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies().is_empty(), "nothing pushed, nothing sent: {:?}", r.set_cookies());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = send(&c, "POST", format!("http://{a}/set/x/3"), &[session_cookie(&t)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.cookie_token(COOKIE).as_deref(), Some(t.as_str()), "the same token again");
    let max_age = r.max_age(COOKIE).expect("a fresh Max-Age");
    assert!((1..=600).contains(&max_age), "{max_age}");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("vary").as_deref(), Some("Cookie"));
}

// A read that pushes the idle deadline (touch_after has passed since the last push) sends the
// persistent cookie again with a fresh Max-Age.
#[tokio::test]
async fn persistent_cookie_is_refreshed_when_a_read_touches_the_session() {
    let redis = RedisServer::start();
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .idle_timeout(Duration::from_secs(30))
        .absolute_timeout(Duration::from_secs(3600))
        .touch_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let a = app(&redis, config, persistent()).await;
    let c = Client::new();
    let t = send(&c, "POST", format!("http://{a}/set/x/1"), &[]).await.cookie_token(COOKIE);
    let t = t.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = send(&c, "GET", format!("http://{a}/get"), &[session_cookie(&t)]).await;
    assert_eq!(r.body["x"], "1");
    assert_eq!(r.cookie_token(COOKIE).as_deref(), Some(t.as_str()), "{:?}", r.set_cookies());
    let max_age = r.max_age(COOKIE).unwrap();
    assert!((1..=30).contains(&max_age), "{max_age}");
}

// When the absolute deadline is nearer than the idle timeout, a save pushes the session's
// life only up to it: the cookie is sent again with a Max-Age that ends there, not an idle
// timeout away.
#[tokio::test]
async fn persistent_cookie_max_age_is_capped_by_the_absolute_deadline() {
    let redis = RedisServer::start();
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .idle_timeout(Duration::from_secs(30))
        .absolute_timeout(Duration::from_secs(32))
        .touch_after(Duration::from_secs(2))
        .build()
        .unwrap();
    let a = app(&redis, config, persistent()).await;
    let c = Client::new();
    let t = send(&c, "POST", format!("http://{a}/set/x/1"), &[]).await.cookie_token(COOKIE);
    let t = t.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = send(&c, "GET", format!("http://{a}/get"), &[session_cookie(&t)]).await;
    assert_eq!(r.body["x"], "1");
    assert!(r.set_cookies().is_empty(), "nothing pushed, nothing sent: {:?}", r.set_cookies());
    // The idle deadline (30 s after the creation) is 2 s before the absolute one. Once 3.2 s
    // have passed, the absolute deadline is less than 29 s away, and a touch is due.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = send(&c, "POST", format!("http://{a}/set/x/2"), &[session_cookie(&t)]).await;
    assert_eq!(r.cookie_token(COOKIE).as_deref(), Some(t.as_str()), "{:?}", r.set_cookies());
    let max_age = r.max_age(COOKIE).unwrap();
    assert!((1..=28).contains(&max_age), "capped by the absolute deadline: {max_age}");
    // From now on every use of the session sends it again, ending at the same deadline.
    let r = send(&c, "GET", format!("http://{a}/get"), &[session_cookie(&t)]).await;
    assert_eq!(r.body["x"], "2");
    assert_eq!(r.cookie_token(COOKIE).as_deref(), Some(t.as_str()), "{:?}", r.set_cookies());
    assert!((1..=28).contains(&r.max_age(COOKIE).unwrap()));
}

// A browser-session cookie (the default) has no Max-Age to refresh: saves send nothing.
#[tokio::test]
async fn session_cookie_is_not_sent_again_on_saves() {
    let redis = RedisServer::start();
    let a = default_app(&redis).await;
    let c = Client::new();
    let t = send(&c, "POST", format!("http://{a}/set/x/1"), &[]).await.cookie_token(COOKIE);
    let r = send(&c, "POST", format!("http://{a}/set/x/2"), &[session_cookie(&t.unwrap())]).await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies().is_empty());
}
