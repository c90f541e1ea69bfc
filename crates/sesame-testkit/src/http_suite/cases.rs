//! The cases about the session's life: lazy loading, writes, the cookie, login, rotation,
//! logout and the errors a commit can end in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::json;
use sesame::{Error, SessionConfig};

use super::{Framework, Harness, Setup, COOKIE, UNTOUCHED};
use crate::RedisOptions;

/// The `Set-Cookie` of the default cookie handing out `t`.
fn default_cookie(t: &str) -> String {
    format!("{COOKIE}={t}; Path=/; Secure; HttpOnly; SameSite=Lax")
}

/// A request whose handler never touches its session costs no Redis command and sets no
/// cookie, whatever token it carries; so do reads with malformed tokens.
pub async fn untouched_session_costs_nothing<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let good = h.anonymous().await;
    h.redis.reset_stats().unwrap();
    for token in [Some(good.as_str()), None] {
        let r = h.call("GET", "/untouched", token).await;
        assert_eq!((r.status, r.body.as_str()), (200, Some(UNTOUCHED)));
        assert!(r.set_cookie().is_none() && r.header("cache-control").is_none());
    }
    for bad in ["", "junk", &good[..20]] {
        let r = h.call("GET", "/get/x", Some(bad)).await;
        assert_eq!(r.body, json!({"value": null, "user": null}));
        assert!(r.set_cookie().is_none());
    }
    assert_eq!(h.redis.total_commands().unwrap(), 0, "{:?}", h.redis.info_commandstats());
}

/// A read of a session that changes nothing writes nothing: one read in Redis, no cookie.
pub async fn unchanged_session_is_not_written<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let t = h.anonymous().await;
    h.redis.reset_stats().unwrap();
    let r = h.call("GET", "/get/x", Some(&t)).await;
    assert_eq!(r.body["value"], "v");
    assert!(r.set_cookie().is_none() && r.header("cache-control").is_none());
    let mut stats = h.redis.info_commandstats().unwrap();
    stats.retain(|name, _| name != "info" && !name.starts_with("config"));
    let expected = [("get".to_string(), 1)].into_iter().collect();
    assert_eq!(stats, expected, "one read, no write");
}

/// A route that needs a recent login answers 401 with a JSON error and no cookie to a
/// request without one, and 200 after a login.
pub async fn strict_route_needs_a_login<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let r = h.call("GET", "/strict", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, json!({ "error": Error::NotLoggedIn.to_string() }));
    assert!(r.set_cookie().is_none());
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let t = h.call("POST", "/login/amy", None).await.token().unwrap();
    let r = h.call("GET", "/strict", Some(&t)).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "user": "amy" })));
}

/// The default cookie: `__Host-` name, `Path=/`, `Secure`, `HttpOnly`, `SameSite=Lax`, no
/// `Max-Age`, no `Domain`; sent with `Cache-Control: no-store` and `Vary: Cookie`; never sent
/// again on a read.
pub async fn secure_cookie_defaults<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let r = h.call("POST", "/set/x", None).await;
    let t = r.token().unwrap();
    assert_eq!(t.len(), sesame::TOKEN_LEN);
    assert_eq!(r.set_cookie().unwrap(), default_cookie(&t), "exact cookie attributes");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("vary").as_deref(), Some("Cookie"));
    let r = h.call("POST", "/set/x", Some(&t)).await;
    assert!(r.set_cookie().is_none(), "a save of a browser-session cookie sends no cookie");
}

/// A login hands out a new token (the pre-login one is dead at once), keeps the data, and
/// makes the user known.
pub async fn login_rotates_the_token<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let t0 = h.anonymous().await;
    let r = h.call("POST", "/login/alice", Some(&t0)).await;
    assert_eq!(r.status, 200);
    let t1 = r.token().expect("login sets a new token");
    assert_ne!(t0, t1);
    assert_eq!(r.set_cookie().unwrap(), default_cookie(&t1));
    let me = h.call("GET", "/get/x", Some(&t1)).await;
    assert_eq!(me.body, json!({"value": "v", "user": "alice"}), "data kept, user known");
    let old = h.call("GET", "/get/x", Some(&t0)).await;
    assert_eq!(old.body, json!({"value": null, "user": null}), "the pre-login token is dead");
}

/// A rotation hands out a new token for the same session and data.
pub async fn rotate_hands_out_a_new_token<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let t0 = h.call("POST", "/login/rob", None).await.token().unwrap();
    let r = h.call("POST", "/rotate", Some(&t0)).await;
    assert_eq!(r.status, 200);
    let t1 = r.token().expect("a rotation sets a new token");
    assert_ne!(t0, t1);
    let me = h.call("GET", "/get/x", Some(&t1)).await;
    assert_eq!(me.body, json!({"value": null, "user": "rob"}));
}

/// A logout clears the cookie (`Max-Age=0`, the same attributes) and deletes the session in
/// Redis: the user has no session left and Redis holds no key.
pub async fn logout_clears_the_cookie_and_deletes<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    let t = h.call("POST", "/login/lea", None).await.token().unwrap();
    assert_eq!(h.manager.list_user("lea").await.unwrap().len(), 1);
    let out = h.call("POST", "/logout", Some(&t)).await;
    assert_eq!(out.status, 200);
    assert_eq!(
        out.set_cookie().unwrap(),
        format!(
            "{COOKIE}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; \
             HttpOnly; SameSite=Lax"
        )
    );
    assert_eq!(out.header("cache-control").as_deref(), Some("no-store"));
    assert!(h.manager.list_user("lea").await.unwrap().is_empty());
    assert_eq!(h.keys(), 0, "nothing left in Redis");
    let r = h.call("GET", "/get/x", Some(&t)).await;
    assert_eq!(r.body, json!({"value": null, "user": null}));
}

/// Redis stopped: a request that uses its session gets 503 with `Retry-After: 1`, a JSON body
/// without the token and no cookie change; one that does not use it still works; Redis back,
/// the same session is served again.
pub async fn store_down_is_503_with_retry_after<F: Framework>() {
    let setup = Setup {
        redis: RedisOptions { appendonly: true, ..Default::default() },
        ..Setup::default()
    };
    let mut h = Harness::start::<F>(setup).await;
    let t = h.call("POST", "/login/bob", None).await.token().unwrap();
    h.redis.stop();
    for (method, path) in [("GET", "/get/x"), ("POST", "/login/bob"), ("POST", "/set/x")] {
        let r = h.call(method, path, Some(&t)).await;
        assert_eq!(r.status, 503, "{path}: {:?}", r.body);
        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
        let text = r.body["error"].as_str().unwrap();
        assert!(text.contains("unavailable") && !text.contains(&t), "{text}");
        assert!(r.set_cookie().is_none(), "no cookie change while the store is down");
    }
    let r = h.call("GET", "/untouched", Some(&t)).await;
    assert_eq!(r.status, 200, "requests that do not use the session still work");
    h.redis.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = h.call("GET", "/get/x", Some(&t)).await;
        if r.status == 200 {
            assert_eq!(r.body["user"], "bob", "the same session after recovery");
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "no recovery: {}", h.redis.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A save held in its handler while a second request logs the session out answers 401 with
/// a JSON error instead of the handler's 200, changes no cookie and writes nothing.
pub async fn ended_session_is_401<F: Framework>() {
    let h = Harness::start::<F>(Setup::default()).await;
    for round in 0..3 {
        let t = h.anonymous().await;
        let cookie = [("cookie", format!("{COOKIE}={t}"))];
        let (late, out) =
            tokio::join!(h.send("POST", "/hold/y", &cookie, Some("late".into())), async {
                h.hold.reached.notified().await;
                let out = h.call("POST", "/logout", Some(&t)).await;
                h.hold.release.notify_one();
                out
            });
        assert_eq!(out.status, 200, "round {round}");
        assert_eq!(late.status, 401, "round {round}: {:?}", late.body);
        assert_eq!(late.body, json!({ "error": Error::SessionEnded.to_string() }));
        assert!(late.set_cookie().is_none(), "round {round}: no cookie change");
        assert_eq!(late.header("cache-control").as_deref(), Some("no-store"));
        let after = h.call("GET", "/get/y", Some(&t)).await;
        assert_eq!(after.body, json!({"value": null, "user": null}), "round {round}");
    }
}

/// A session over its size limit is a 413 whose body quotes nothing of the value; no session
/// is created.
pub async fn too_large_is_413<F: Framework>() {
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .max_session_bytes(512)
        .build()
        .unwrap();
    let h = Harness::start::<F>(Setup { config, ..Setup::default() }).await;
    // Letters from a simple generator, so that compression does not bring them under the
    // limit; the marker must not come back in the error.
    let mut n: u64 = 1;
    let noise: String = (0..1500)
        .map(|_| {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            char::from(b'a' + u8::try_from((n >> 33) % 26).unwrap())
        })
        .collect();
    let r = h.send("POST", "/set/x", &[], Some(format!("s3cr3t{noise}"))).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    let text = r.body["error"].as_str().unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(r.set_cookie().is_none(), "no session was created");
    assert_eq!(h.keys(), 0);
}
