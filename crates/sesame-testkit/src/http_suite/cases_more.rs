//! The cases about where the token travels, which tokens count, and the creation hook.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sesame::{CreationRateLimit, SessionConfig, Tag, TokenCodec, TokenSecret};
use sesame_http::{CookieConfig, TransportConfig, BEARER_RESPONSE_HEADER};

use super::{Framework, Harness, Setup, COOKIE};

fn with_transport(transport: TransportConfig) -> Setup {
    Setup { transport, ..Setup::default() }
}

/// A client (named by `X-Forwarded-For`, the configured client address header) that creates
/// sessions too fast gets 429 with `Retry-After` and nothing is written for it; another
/// client, and the first client's existing session, go on.
pub async fn creation_rate_limit_is_429<F: Framework>() {
    let setup = Setup {
        hooks: Some(Arc::new(CreationRateLimit::new(2, Duration::from_secs(600)))),
        client_ip_header: Some("x-forwarded-for"),
        ..Setup::default()
    };
    let h = Harness::start::<F>(setup).await;
    let from = |ip: &str| ("x-forwarded-for", format!("{ip}, 10.9.9.9"));
    let mut first = None;
    for i in 0..2 {
        let r = h.send("POST", "/set/x", &[from("192.0.2.1")], Some(i.to_string())).await;
        assert_eq!(r.status, 200, "creation {i}: {:?}", r.body);
        first = first.or(r.token());
    }
    let keys = h.keys();
    let r = h.send("POST", "/set/x", &[from("192.0.2.1")], Some("9".into())).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert!(r.body["error"].as_str().unwrap().contains("too many"), "{:?}", r.body);
    assert!(r.set_cookie().is_none());
    assert_eq!(h.keys(), keys, "nothing written for the refused creation");
    let r = h.send("POST", "/set/x", &[from("192.0.2.2")], Some("1".into())).await;
    assert_eq!(r.status, 200, "another client address is not limited");
    let mine = [from("192.0.2.1"), ("cookie", format!("{COOKIE}={}", first.unwrap()))];
    let r = h.send("POST", "/set/x", &mine, Some("7".into())).await;
    assert_eq!(r.status, 200, "an existing session is not a creation");
}

/// Bearer: a login hands out the token in `X-Session-Token` (no cookie), the token reaches
/// the session, a cookie does not (it is not a configured transport), and a logout answers
/// an empty `X-Session-Token`.
pub async fn bearer_transport<F: Framework>() {
    let t = TransportConfig::builder().cookie(false).bearer(true).build().unwrap();
    let h = Harness::start::<F>(with_transport(t)).await;
    let r = h.send("POST", "/login/alice", &[], None).await;
    assert_eq!(r.status, 200);
    let t = r.header(BEARER_RESPONSE_HEADER).expect("the token, in X-Session-Token");
    assert_eq!(t.len(), sesame::TOKEN_LEN);
    assert!(r.set_cookie().is_none(), "no cookie without the cookie transport");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("vary").as_deref(), Some("Authorization"));
    let auth = [("authorization", format!("bEARER {t}"))];
    let me = h.send("GET", "/get/x", &auth, None).await;
    assert_eq!(me.body, json!({"value": null, "user": "alice"}));
    assert!(me.header(BEARER_RESPONSE_HEADER).is_none(), "a read hands out nothing");
    let me = h.call("GET", "/get/x", Some(&t)).await;
    assert_eq!(me.body["user"], Value::Null, "the cookie is not a configured transport");
    for bad in [format!("Bearer  {t}"), format!("Basic {t}"), format!("Bearer {t} x")] {
        let me = h.send("GET", "/get/x", &[("authorization", bad.clone())], None).await;
        assert_eq!(me.body["user"], Value::Null, "{bad}");
    }
    let out = h.send("POST", "/logout", &auth, None).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.header(BEARER_RESPONSE_HEADER).as_deref(), Some(""), "drop the token");
    assert!(out.set_cookie().is_none());
    let me = h.send("GET", "/get/x", &auth, None).await;
    assert_eq!(me.body, json!({"value": null, "user": null}), "logged out");
}

/// A named header carries the token both ways; its name is matched in any case.
pub async fn named_header_transport<F: Framework>() {
    let t = TransportConfig::builder().cookie(false).header("X-Auth-Session").build().unwrap();
    let h = Harness::start::<F>(with_transport(t)).await;
    let r = h.send("POST", "/set/x", &[], Some("1".into())).await;
    let t0 = r.header("x-auth-session").unwrap();
    assert!(r.set_cookie().is_none());
    assert_eq!(r.header("vary").as_deref(), Some("x-auth-session"));
    let r = h.send("GET", "/get/x", &[("X-AUTH-SESSION", t0.clone())], None).await;
    assert_eq!(r.body["value"], "1");
    let r = h.send("POST", "/rotate", &[("x-auth-session", t0.clone())], None).await;
    let t1 = r.header("x-auth-session").unwrap();
    assert_ne!(t0, t1, "a rotation answers in the header");
    assert!(r.set_cookie().is_none());
}

/// A cookie and a bearer header carrying two different valid tokens give the request no
/// token at all: a read finds no session and costs no Redis command; so do two different
/// cookies. Both sessions are left untouched.
pub async fn two_different_tokens_mean_none<F: Framework>() {
    let both = TransportConfig::builder().bearer(true).build().unwrap();
    let h = Harness::start::<F>(with_transport(both)).await;
    let r = h.send("POST", "/login/ann", &[], None).await;
    let t1 = r.token().unwrap();
    assert_eq!(r.header(BEARER_RESPONSE_HEADER).as_deref(), Some(t1.as_str()), "both ways");
    assert_eq!(r.header("vary").as_deref(), Some("Cookie, Authorization"));
    let t2 = h.send("POST", "/login/bo", &[], None).await.token().unwrap();
    let cookie = ("cookie", format!("{COOKIE}={t1}"));
    let me = h.send("GET", "/get/x", std::slice::from_ref(&cookie), None).await;
    assert_eq!(me.body["user"], "ann");
    h.redis.reset_stats().unwrap();
    let mixed = [cookie.clone(), ("authorization", format!("Bearer {t2}"))];
    let me = h.send("GET", "/get/x", &mixed, None).await;
    assert_eq!(me.body, json!({"value": null, "user": null}));
    let two_cookies = [cookie, ("cookie", format!("{COOKIE}={t2}"))];
    let me = h.send("GET", "/get/x", &two_cookies, None).await;
    assert_eq!(me.body, json!({"value": null, "user": null}));
    assert_eq!(h.redis.total_commands().unwrap(), 0, "{:?}", h.redis.info_commandstats());
    for (t, user) in [(t1, "ann"), (t2, "bo")] {
        assert_eq!(h.call("GET", "/get/x", Some(&t)).await.body["user"], user);
    }
}

/// A token signed with another secret costs no Redis command on a read; writing through it
/// creates a session under a new server-made token. A well-formed token the server never
/// issued is not adopted either.
pub async fn forged_token_costs_no_store_call<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let other = TokenCodec::new(vec![TokenSecret::new(vec![7u8; 32]).unwrap()]).unwrap();
    let forged = other.generate(Tag::random().unwrap()).unwrap().expose();
    h.redis.reset_stats().unwrap();
    let r = h.call("GET", "/get/x", Some(&forged)).await;
    assert_eq!(r.body, json!({"value": null, "user": null}));
    assert_eq!(h.redis.total_commands().unwrap(), 0, "{:?}", h.redis.info_commandstats());
    let unknown = TokenCodec::insecure_development().generate(Tag::random().unwrap()).unwrap();
    for t in [forged, unknown.expose()] {
        let r = h.call("POST", "/set/x", Some(&t)).await;
        assert_eq!(r.status, 200);
        let fresh = r.token().expect("a new session");
        assert_ne!(fresh, t);
        assert_eq!(h.call("GET", "/get/x", Some(&t)).await.body["value"], Value::Null);
    }
}

/// A valid token in the query string, under any name, is ignored: no Redis command for a
/// read, a new token for a write, and the token's session is untouched.
pub async fn token_in_the_url_is_ignored<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let t = h.anonymous().await;
    let query = format!("session={t}&token={t}&{COOKIE}={t}&access_token={t}");
    h.redis.reset_stats().unwrap();
    let r = h.call("GET", &format!("/get/x?{query}"), None).await;
    assert_eq!(r.body, json!({"value": null, "user": null}));
    assert_eq!(h.redis.total_commands().unwrap(), 0, "{:?}", h.redis.info_commandstats());
    let r = h.send("POST", &format!("/set/x?{query}"), &[], Some("changed".into())).await;
    assert_ne!(r.token().unwrap(), t, "a new session, never the token from the URL");
    assert_eq!(h.call("GET", "/get/x", Some(&t)).await.body["value"], "v", "untouched");
}

/// A configured cookie is used: its name and attributes, and `Max-Age` (the session's
/// remaining life) when it is persistent; a save that pushes the idle deadline (once
/// `touch_after` has passed) sends it again, an earlier one does not.
pub async fn persistent_cookie_has_max_age<F: Framework>() {
    let cookie = CookieConfig::builder().name("sid").persistent(true).build().unwrap();
    let touch_after = Duration::from_millis(300);
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .touch_after(touch_after)
        .build()
        .unwrap();
    let h = Harness::start::<F>(Setup { cookie, config, ..Setup::default() }).await;
    let r = h.send("POST", "/set/x", &[], Some("1".into())).await;
    let t = r.cookie_token("sid").unwrap();
    let sc = r.set_cookie().unwrap();
    let attrs = sc.strip_prefix(&format!("sid={t}; ")).unwrap();
    let max_age: u64 =
        attrs.strip_prefix("Max-Age=").unwrap().split(';').next().unwrap().parse().unwrap();
    assert!(max_age > 0 && max_age <= 30 * 60, "{max_age}");
    assert!(attrs.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"), "{attrs}");
    let sid = [("cookie", format!("sid={t}"))];
    assert_eq!(h.send("GET", "/get/x", &sid, None).await.body["value"], "1");
    let r = h.send("POST", "/set/x", &sid, Some("2".into())).await;
    assert_eq!(r.set_cookie(), None, "no push yet, nothing sent");
    tokio::time::sleep(touch_after + Duration::from_millis(50)).await;
    let r = h.send("POST", "/set/x", &sid, Some("3".into())).await;
    assert_eq!(r.cookie_token("sid").as_deref(), Some(t.as_str()), "sent again, same token");
}
