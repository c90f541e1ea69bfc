//! `sesame serve` over real HTTP, as its own process, on real Redis (standalone and Cluster):
//! every endpoint, bad input, missing and wrong credentials, the three ways to present a
//! token, sessions shared with a Rust app in both directions, and compare-and-set under real
//! concurrency from two service processes and a Rust app at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use reqwest::{Client, Method};
use serde_json::{json, Value};
use sesame::{SessionConfig, SessionManager};
use sesame_axum::{CookieConfig, Session, SessionLayer};
use sesame_redis::RedisStore;
use sesame_testkit::{Cluster, RedisServer};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const SECRET: &str = "a-test-token-secret-of-at-least-32-bytes";
const KEY: &str = "a-test-service-key";
const COOKIE: &str = "app_session";

/// A running `sesame serve`, stopped when dropped.
struct Service {
    child: tokio::process::Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Starts `sesame serve` with `args` (and the test secret and key unless `env` overrides
/// them); returns it once it printed its address, or the exit status and what it printed.
async fn try_start(args: &[&str], env: &[(&str, Option<&str>)]) -> Result<Service, String> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--cookie-name", COOKIE])
        .args(args)
        .env("SESAME_TOKEN_SECRET", SECRET)
        .env("SESAME_SERVICE_KEY", KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(addr) = line.strip_prefix("listening on ") {
                return Some(addr.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    match found {
        Some(base) => {
            // Keep draining standard error so that the service never blocks on it.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok(Service { child, base })
        }
        None => {
            let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            Err(format!("{status:?}\n{seen}"))
        }
    }
}

async fn start(store: &str) -> Service {
    try_start(&["--store", store], &[]).await.unwrap()
}

/// How a request presents its token.
#[derive(Clone, Copy)]
enum Via {
    Bearer,
    Header,
    Cookie,
}

struct Call<'a> {
    c: &'a Client,
    base: &'a str,
}

struct Reply {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Call<'_> {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<(&str, Via)>,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut rb = self.c.request(method, format!("{}{path}", self.base));
        rb = match token {
            Some((t, Via::Bearer)) => rb.bearer_auth(t),
            Some((t, Via::Header)) => rb.header("x-session-token", t),
            Some((t, Via::Cookie)) => rb.header("cookie", format!("other=1; {COOKIE}={t}")),
            None => rb,
        };
        if let Some(k) = key {
            rb = rb.header("x-sesame-service-key", k);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        Reply { status, body, headers }
    }

    async fn get(&self, path: &str, token: Option<(&str, Via)>) -> Reply {
        self.send(Method::GET, path, token, None, None).await
    }

    async fn post(
        &self,
        path: &str,
        token: Option<(&str, Via)>,
        key: Option<&str>,
        body: Value,
    ) -> Reply {
        self.send(Method::POST, path, token, key, Some(&body)).await
    }
}

fn token_of(r: &Reply) -> String {
    assert_eq!(r.body["token"]["action"], "set", "{}", r.body);
    r.body["token"]["value"].as_str().unwrap().to_string()
}

/// The whole API on one store: what `api_*` tests run on standalone Redis and on Cluster.
async fn walk(store: &str) {
    let svc = start(store).await;
    let c = Client::new();
    let api = Call { c: &c, base: &svc.base };

    // Create, anonymous, with attributes; read back by each transport.
    let r = api
        .post("/v1/sessions", None, None, json!({"attributes": {"cart": ["apple"], "n": 1}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let anon = token_of(&r);
    assert_eq!(r.body["session"]["principal"], Value::Null);
    assert!(
        r.body["session"]["expires_at_ms"].as_u64().unwrap()
            > r.body["session"]["created_at_ms"].as_u64().unwrap()
    );
    for via in [Via::Bearer, Via::Header, Via::Cookie] {
        let me = api.get("/v1/session", Some((&anon, via))).await;
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(me.body["session"]["attributes"], json!({"cart": ["apple"], "n": 1}));
        assert_eq!(me.body["token"], json!({"action": "keep"}));
    }

    // PATCH: set and remove; the same value again writes nothing and changes nothing.
    let r = api
        .send(
            Method::PATCH,
            "/v1/session",
            Some((&anon, Via::Bearer)),
            None,
            Some(&json!({"set": {"theme": "dark"}, "remove": ["n"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["session"]["attributes"], json!({"cart": ["apple"], "theme": "dark"}));
    let both = json!({"set": {"x": 1, "theme": "dark"}, "remove": ["x"]});
    let r =
        api.send(Method::PATCH, "/v1/session", Some((&anon, Via::Bearer)), None, Some(&both)).await;
    assert_eq!(
        r.body["session"]["attributes"],
        json!({"cart": ["apple"], "theme": "dark"}),
        "set, then remove"
    );

    // Compare-and-set: a hit writes, a miss does not; null means absent, and removes.
    let cas = |expected: Value, value: Value| json!({"name": "theme", "expected": expected, "value": value});
    let r = api
        .post(
            "/v1/session/compare-and-set",
            Some((&anon, Via::Bearer)),
            None,
            cas(json!("light"), json!("blue")),
        )
        .await;
    assert_eq!(
        (r.body["swapped"].clone(), r.body["current"].clone()),
        (json!(false), json!("dark"))
    );
    let r = api
        .post(
            "/v1/session/compare-and-set",
            Some((&anon, Via::Bearer)),
            None,
            cas(json!("dark"), Value::Null),
        )
        .await;
    assert_eq!((r.body["swapped"].clone(), r.body["current"].clone()), (json!(true), Value::Null));
    let r = api
        .post(
            "/v1/session/compare-and-set",
            Some((&anon, Via::Bearer)),
            None,
            cas(Value::Null, json!("new")),
        )
        .await;
    assert_eq!((r.body["swapped"].clone(), r.body["current"].clone()), (json!(true), json!("new")));

    // Login needs the key; it keeps the anonymous data, rotates, and kills the old token.
    let login = json!({"principal": "alice"});
    let r = api.post("/v1/session/login", Some((&anon, Via::Bearer)), None, login.clone()).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = api
        .post(
            "/v1/session/login",
            Some((&anon, Via::Bearer)),
            Some("wrong-key-of-some-length"),
            login.clone(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r =
        api.post("/v1/session/login", Some((&anon, Via::Bearer)), Some(KEY), login.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let alice = token_of(&r);
    assert_ne!(alice, anon);
    assert_eq!(r.body["session"]["principal"], "alice");
    assert_eq!(r.body["session"]["attributes"]["cart"], json!(["apple"]));
    assert!(r.body["session"]["authenticated_at_ms"].is_u64());
    assert_eq!(api.get("/v1/session", Some((&anon, Via::Bearer))).await.status, 401);

    // A second session of alice's, created logged in; her sessions, from either side.
    let r = api
        .post(
            "/v1/sessions",
            None,
            Some(KEY),
            json!({"principal": "alice", "attributes": {"device": "phone"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let phone = token_of(&r);
    let phone_id = r.body["session"]["id"].as_str().unwrap().to_string();
    let mine = api.get("/v1/session/user-sessions", Some((&alice, Via::Cookie))).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["sessions"].as_array().unwrap().len(), 2);
    let current = mine.body["current"].as_str().unwrap().to_string();
    let listed = api.send(Method::GET, "/v1/users/alice/sessions", None, Some(KEY), None).await;
    assert_eq!(listed.body["sessions"].as_array().unwrap().len(), 2, "{}", listed.body);
    assert_eq!(
        api.send(Method::GET, "/v1/users/alice/sessions", None, None, None).await.status,
        401
    );

    // Revoking: not the current one by this route; another one, yes.
    let own = format!("/v1/session/user-sessions/{current}");
    assert_eq!(
        api.send(Method::DELETE, &own, Some((&alice, Via::Bearer)), None, None).await.status,
        400
    );
    let other = format!("/v1/session/user-sessions/{phone_id}");
    let r = api.send(Method::DELETE, &other, Some((&alice, Via::Bearer)), None, None).await;
    assert_eq!(r.body, json!({"revoked": true}));
    assert_eq!(api.get("/v1/session", Some((&phone, Via::Header))).await.status, 401);

    // Revoke-others, and the administrator's revoke-all with and without a kept session.
    let second =
        token_of(&api.post("/v1/sessions", None, Some(KEY), json!({"principal": "alice"})).await);
    let r =
        api.post("/v1/session/revoke-others", Some((&alice, Via::Bearer)), None, json!({})).await;
    assert_eq!(r.body, json!({"revoked": 1}));
    assert_eq!(api.get("/v1/session", Some((&second, Via::Bearer))).await.status, 401);
    let third =
        token_of(&api.post("/v1/sessions", None, Some(KEY), json!({"principal": "alice"})).await);
    let r = api.post("/v1/users/alice/revoke", None, Some(KEY), json!({"except": current})).await;
    assert_eq!(r.body, json!({"revoked": 1}), "the kept session is not counted");
    assert_eq!(api.get("/v1/session", Some((&third, Via::Bearer))).await.status, 401);
    assert_eq!(api.get("/v1/session", Some((&alice, Via::Bearer))).await.status, 200);
    let bob =
        token_of(&api.post("/v1/sessions", None, Some(KEY), json!({"principal": "bob"})).await);
    let bob_id =
        api.get("/v1/session", Some((&bob, Via::Bearer))).await.body["session"]["id"].clone();
    let wrong_user = format!("/v1/users/alice/sessions/{}", bob_id.as_str().unwrap());
    let r = api.send(Method::DELETE, &wrong_user, None, Some(KEY), None).await;
    assert_eq!(r.body, json!({"revoked": false}), "bob's session is not alice's to revoke");
    let r = api.send(Method::POST, "/v1/users/bob/revoke", None, Some(KEY), None).await;
    assert_eq!(r.body, json!({"revoked": 1}), "a body-less revoke-all");
    assert_eq!(api.get("/v1/session", Some((&bob, Via::Bearer))).await.status, 401);

    // Logout ends the session; it answers the same without a token.
    let r = api.post("/v1/session/logout", Some((&alice, Via::Header)), None, json!({})).await;
    assert_eq!(r.body, json!({"token": {"action": "clear"}}));
    assert_eq!(api.get("/v1/session", Some((&alice, Via::Bearer))).await.status, 401);
    assert_eq!(api.post("/v1/session/logout", None, None, json!({})).await.status, 200);
    bad_input(&api).await;
}

/// Bad input gets a clear JSON error and changes nothing.
async fn bad_input(api: &Call<'_>) {
    let r = api.post("/v1/sessions", None, None, json!({"attributes": {"keep": 1}})).await;
    let t = token_of(&r);
    let seen = |r: Reply| {
        let s = &r.body["session"];
        (s["id"].clone(), s["attributes"].clone(), s["created_at_ms"].clone())
    };
    let before = seen(api.get("/v1/session", Some((&t, Via::Bearer))).await);
    let tr = t.as_str();
    let patch = |b: Value| async move {
        api.send(Method::PATCH, "/v1/session", Some((tr, Via::Bearer)), None, Some(&b)).await
    };
    for (body, says) in [
        (json!({"set": {"sesame.client": 1}}), "reserved"),
        (json!({"set": {"": 1}}), "1 to 256 bytes"),
        (json!({"sett": {}}), "unknown field"),
        (json!({"set": []}), "shape"),
    ] {
        let r = patch(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains(says), "{body}: {}", r.body);
    }
    let raw = api
        .c
        .patch(format!("{}/v1/session", api.base))
        .bearer_auth(&t)
        .body("{\"set\":")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert!(raw.text().await.unwrap().contains("not valid JSON"));
    // Over the 1 MiB body limit: a 413, or the connection closed while the client was still
    // sending (the service answers before reading the rest).
    let huge = json!({"set": {"big": "x".repeat(2 << 20)}}).to_string();
    // A client of its own: the service may close this connection without reading the rest,
    // and it must not go back to the pool the other requests use.
    let alone = Client::new();
    let sent =
        alone.patch(format!("{}/v1/session", api.base)).bearer_auth(tr).body(huge).send().await;
    match sent {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(
            format!("{e:?}").contains("BrokenPipe") || format!("{e:?}").contains("ConnectionReset"),
            "{e:?}"
        ),
    }
    // Letters from a xorshift generator: LZ4 cannot bring them under the 64 KiB record limit.
    let mut x: u32 = 2_463_534_242;
    let big: String = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let r = patch(json!({"set": {"big": big}})).await;
    assert_eq!(r.status, 413, "a session over the store's limit: {}", r.body);
    assert_eq!(
        seen(api.get("/v1/session", Some((&t, Via::Bearer))).await),
        before,
        "nothing changed"
    );
    // A principal with a control character; a login without a body; unknown paths and methods.
    let r = api.send(Method::GET, "/v1/users/a%0Ab/sessions", None, Some(KEY), None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api.send(Method::POST, "/v1/session/login", None, Some(KEY), None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"].as_str().unwrap().contains("takes a JSON object"));
    let r = api.post("/v1/session/login", None, Some(KEY), json!({})).await;
    assert!(r.body["error"].as_str().unwrap().contains("missing field `principal`"));
    assert_eq!(api.get("/v1/nothing", None).await.status, 404);
    let r = api.send(Method::PUT, "/v1/session", None, None, None).await;
    assert_eq!(r.status, 405);
    assert!(r.headers.contains_key("allow"));
    // An empty creation, a creation with a principal but no key.
    assert_eq!(api.post("/v1/sessions", None, None, json!({})).await.status, 400);
    assert_eq!(api.post("/v1/sessions", None, None, json!({"principal": "x"})).await.status, 401);
    // A token in the URL is never read; two different tokens count as none.
    let r = api.get(&format!("/v1/session?token={t}&access_token={t}"), None).await;
    assert_eq!(r.status, 401);
    let other =
        token_of(&api.post("/v1/sessions", None, None, json!({"attributes": {"o": 1}})).await);
    let r = api
        .c
        .get(format!("{}/v1/session", api.base))
        .bearer_auth(&t)
        .header("x-session-token", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A forged token of the right form.
    let mut forged = t.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(api.get("/v1/session", Some((&forged, Via::Bearer))).await.status, 401);
    let long = "t".repeat(8 << 10);
    assert_eq!(api.get("/v1/session", Some((&long, Via::Header))).await.status, 401);
}

#[tokio::test]
async fn api_on_standalone_redis() {
    let redis = RedisServer::start();
    walk(&redis.url()).await;
}

#[tokio::test]
async fn api_on_cluster() {
    let cluster = Cluster::start().unwrap();
    walk(&cluster.url()).await;
}

// The service's messages and exits: no secret, a short key, a bad store, no key configured
// (403), and 503 with Retry-After while Redis is down, then recovery.
#[tokio::test]
async fn start_up_errors_and_outages() {
    let err = try_start(&[], &[("SESAME_TOKEN_SECRET", None)]).await.err().unwrap();
    assert!(err.contains("needs SESAME_TOKEN_SECRET"), "{err}");
    let err = try_start(&[], &[("SESAME_SERVICE_KEY", Some("short"))]).await.err().unwrap();
    assert!(err.contains("at least 16 bytes"), "{err}");
    let err = try_start(&["--store", "mysql://u:hunter2@h/db"], &[]).await.err().unwrap();
    assert!(err.contains("unknown store URL") && !err.contains("hunter2"), "{err}");

    let mut redis = RedisServer::start();
    let svc = try_start(&["--store", &redis.url()], &[("SESAME_SERVICE_KEY", None)]).await.unwrap();
    let c = Client::new();
    let api = Call { c: &c, base: &svc.base };
    let r = api.post("/v1/session/login", None, Some(KEY), json!({"principal": "a"})).await;
    assert_eq!(r.status, 403);
    assert!(r.body["error"].as_str().unwrap().contains("no service credential configured"));
    let t = token_of(&api.post("/v1/sessions", None, None, json!({"attributes": {"a": 1}})).await);
    redis.stop();
    let r = api.get("/v1/session", Some((&t, Via::Bearer))).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    redis.start_again().unwrap();
    let mut status = 0;
    for _ in 0..100 {
        status = api.get("/v1/session", Some((&t, Via::Bearer))).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The restarted server kept nothing (the test servers persist nothing): the token is unknown.
    assert_eq!(status, 401);
}

/// A Rust app on the same Redis and secret, with the cookie the service reads.
async fn rust_app(store: &str) -> SocketAddr {
    let config = SessionConfig::builder().token_secret(SECRET.as_bytes().to_vec()).build().unwrap();
    rust_app_with(store, config).await
}

async fn rust_app_with(store: &str, config: SessionConfig) -> SocketAddr {
    let store = RedisStore::connect(store).await.unwrap();
    let manager = SessionManager::new(Arc::new(store), config);
    let cookie = CookieConfig::builder().name(COOKIE).secure(false).build().unwrap();
    let app = Router::new()
        .route(
            "/login/{user}",
            get(|s: Session, axum::extract::Path(u): axum::extract::Path<String>| async move {
                s.login(&u).await.unwrap();
                s.insert("lang", "rust").await.unwrap();
                "ok"
            }),
        )
        .route(
            "/me",
            get(|s: Session| async move {
                let who: Option<String> = s.principal().await.unwrap();
                let n: Option<u64> = s.get("n").await.unwrap();
                axum::Json(json!({ "user": who, "n": n }))
            }),
        )
        .route(
            "/bump",
            get(|s: Session| async move {
                s.update("n", |n: &mut u64| *n += 1).await.unwrap().to_string()
            }),
        )
        .route(
            "/logout",
            get(|s: Session| async move {
                s.logout().await.unwrap();
                "bye"
            }),
        )
        .layer(SessionLayer::new(manager).with_cookie(cookie));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `GET path` on the Rust app with the session cookie `token`.
async fn app_get(c: &Client, app: SocketAddr, path: &str, token: &str) -> reqwest::Response {
    let url = format!("http://{app}{path}");
    c.get(url).header("cookie", format!("{COOKIE}={token}")).send().await.unwrap()
}

fn set_cookie(r: &reqwest::Response) -> Option<String> {
    let v = r.headers().get("set-cookie")?.to_str().ok()?;
    let t = v.strip_prefix(&format!("{COOKIE}="))?.split(';').next()?;
    (!t.is_empty()).then(|| t.to_string())
}

// A session made by the service is the Rust app's session, and the other way round; a logout
// on either side ends it for both.
#[tokio::test]
async fn sessions_shared_with_a_rust_app() {
    let redis = RedisServer::start();
    let svc = start(&redis.url()).await;
    let app = rust_app(&redis.url()).await;
    let c = Client::new();
    let api = Call { c: &c, base: &svc.base };

    // Service login → the Rust app knows the user and reads the attribute.
    let t = token_of(
        &api.post(
            "/v1/sessions",
            None,
            Some(KEY),
            json!({"principal": "carol", "attributes": {"n": 41}}),
        )
        .await,
    );
    let me: Value = app_get(&c, app, "/me", &t).await.json().await.unwrap();
    assert_eq!(me, json!({"user": "carol", "n": 41}));
    let bumped = app_get(&c, app, "/bump", &t).await.text().await.unwrap();
    assert_eq!(bumped, "42");
    assert_eq!(
        api.get("/v1/session", Some((&t, Via::Cookie))).await.body["session"]["attributes"]["n"],
        42
    );
    // Logout through Rust → the service no longer knows the token.
    let r = app_get(&c, app, "/logout", &t).await;
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(api.get("/v1/session", Some((&t, Via::Cookie))).await.status, 401);

    // Rust login → the service knows the user; logout through the service ends it for Rust.
    let r = c.get(format!("http://{app}/login/dave")).send().await.unwrap();
    let t = set_cookie(&r).unwrap();
    let me = api.get("/v1/session", Some((&t, Via::Cookie))).await;
    assert_eq!(me.body["session"]["principal"], "dave");
    assert_eq!(me.body["session"]["attributes"], json!({"lang": "rust"}));
    api.post("/v1/session/logout", Some((&t, Via::Cookie)), None, json!({})).await;
    let me: Value = app_get(&c, app, "/me", &t).await.json().await.unwrap();
    assert_eq!(me["user"], Value::Null);
}

/// One compare-and-set increment through the service, retried until it swaps.
async fn cas_increment(api: &Call<'_>, token: &str) {
    loop {
        let me = api.get("/v1/session", Some((token, Via::Bearer))).await;
        assert_eq!(me.status, 200, "{}", me.body);
        let n = me.body["session"]["attributes"]["n"].clone();
        let next = n.as_u64().unwrap_or(0) + 1;
        let body = json!({"name": "n", "expected": n, "value": next});
        let r =
            api.post("/v1/session/compare-and-set", Some((token, Via::Bearer)), None, body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["swapped"] == true {
            return;
        }
    }
}

// Increments of one attribute from two service processes (compare-and-set in a retry loop)
// and from a Rust app (`Session::update`), all at once: none is lost, in several rounds.
#[tokio::test]
async fn compare_and_set_under_concurrency() {
    let redis = RedisServer::start();
    let (a, b) = (start(&redis.url()).await, start(&redis.url()).await);
    let app = rust_app(&redis.url()).await;
    let c = Client::new();
    for round in 0..3 {
        let t = token_of(
            &Call { c: &c, base: &a.base }
                .post("/v1/sessions", None, None, json!({"attributes": {"n": 0}}))
                .await,
        );
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..12 {
            let (c, t) = (c.clone(), t.clone());
            let base = if worker % 2 == 0 { a.base.clone() } else { b.base.clone() };
            tasks.spawn(async move {
                let api = Call { c: &c, base: &base };
                for _ in 0..5 {
                    cas_increment(&api, &t).await;
                }
            });
        }
        for _ in 0..4 {
            let (c, t) = (c.clone(), t.clone());
            tasks.spawn(async move {
                for _ in 0..5 {
                    assert_eq!(app_get(&c, app, "/bump", &t).await.status(), 200);
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let me = Call { c: &c, base: &b.base }.get("/v1/session", Some((&t, Via::Bearer))).await;
        assert_eq!(me.body["session"]["attributes"]["n"], 12 * 5 + 4 * 5, "round {round}");
    }
}

// The document the service answers is the one in the repository, and it names every route.
#[tokio::test]
async fn openapi_document() {
    let svc = try_start(&[], &[]).await.unwrap();
    let served: Value =
        reqwest::get(format!("{}/v1/openapi.json", svc.base)).await.unwrap().json().await.unwrap();
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json"))
            .unwrap();
    assert_eq!(served, serde_json::from_str::<Value>(&file).unwrap());
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&String> = served["paths"].as_object().unwrap().keys().collect();
    let source = include_str!("../src/serve/api.rs");
    for p in &paths {
        assert!(source.contains(&format!("\"{p}\"")), "{p} is documented but not routed");
    }
    let routed = source.matches(".route(").count();
    assert_eq!(routed, paths.len(), "every route is documented");
}

// Two service processes, each with its own store and near cache, on one Redis, and one
// client: a session read twice on B (so that B serves it from its cache), written on A, then
// read on B again. Redis sends B the invalidation before it answers A, so B almost always
// sees the write at once; on a loaded machine B's listener can be scheduled after the
// client's next request. Every round must see the write within a second (the cache alone
// would serve the old value for 5 s); how many needed a second look is printed.
#[tokio::test]
async fn near_cache_across_processes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let args = ["--store", url.as_str(), "--near-cache"];
    let (a, b) = (try_start(&args, &[]).await.unwrap(), try_start(&args, &[]).await.unwrap());
    let c = Client::new();
    let (on_a, on_b) = (Call { c: &c, base: &a.base }, Call { c: &c, base: &b.base });
    let t = token_of(&on_a.post("/v1/sessions", None, None, json!({"attributes": {"n": 0}})).await);
    let mut late = 0;
    for i in 1..=300u64 {
        for _ in 0..2 {
            let me = on_b.get("/v1/session", Some((&t, Via::Bearer))).await;
            assert_eq!(me.body["session"]["attributes"]["n"], i - 1);
        }
        let set = json!({"set": {"n": i}});
        let r = on_a
            .send(Method::PATCH, "/v1/session", Some((&t, Via::Bearer)), None, Some(&set))
            .await;
        assert_eq!(r.status, 200);
        let start = std::time::Instant::now();
        loop {
            let me = on_b.get("/v1/session", Some((&t, Via::Bearer))).await;
            if me.body["session"]["attributes"]["n"] == i {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "round {i}: B still misses A's write"
            );
            late += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    eprintln!("reads on B that came before A's invalidation: {late} in 300 rounds");
    let r = on_a.post("/v1/session/logout", Some((&t, Via::Bearer)), None, json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        on_b.get("/v1/session", Some((&t, Via::Bearer))).await.status,
        401,
        "B knows of the logout"
    );
}

// Encryption at rest and rotated token secrets from the environment: a session the service
// makes under `SESAME_TOKEN_SECRETS`, `SESAME_NAMING_SECRET` and `SESAME_ENCRYPTION_KEYS` is
// the session of a Rust app configured with the same, and Redis holds no attribute in clear.
#[tokio::test]
async fn encrypted_sessions_with_rotated_secrets() {
    use base64::Engine as _;
    let redis = RedisServer::start();
    let (old, new, naming) = (
        SECRET,
        "a-newer-token-secret-of-at-least-32-bytes",
        "a-naming-secret-of-at-least-32-bytes-long",
    );
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let secrets = format!("{new},{old}");
    let keys = format!("3:{key}");
    let env = [
        ("SESAME_TOKEN_SECRET", None),
        ("SESAME_TOKEN_SECRETS", Some(secrets.as_str())),
        ("SESAME_NAMING_SECRET", Some(naming)),
        ("SESAME_ENCRYPTION_KEYS", Some(keys.as_str())),
    ];
    let svc = try_start(&["--store", &redis.url()], &env).await.unwrap();
    let config = SessionConfig::builder()
        .token_secrets([new, old])
        .naming_secret(naming)
        .encryption_keys([(3u8, [5u8; 32])])
        .build()
        .unwrap();
    let app = rust_app_with(&redis.url(), config).await;
    let c = Client::new();
    let api = Call { c: &c, base: &svc.base };
    let marker = "plaintext-marker-4711";
    let body = json!({"principal": "fern", "attributes": {"n": 1, "note": marker}});
    let t = token_of(&api.post("/v1/sessions", None, Some(KEY), body).await);
    let me: Value = app_get(&c, app, "/me", &t).await.json().await.unwrap();
    assert_eq!(me, json!({"user": "fern", "n": 1}));
    let dump = redis.cli(&["--no-raw", "KEYS", "*"]).unwrap();
    let keys: Vec<&str> = dump.lines().filter_map(|l| l.split('"').nth(1)).collect();
    assert!(keys.iter().any(|k| k.contains(":s:")), "the session key is among {keys:?}");
    for k in keys {
        let value = redis.cli(&["GET", k]).unwrap_or_default();
        assert!(!value.contains(marker) && !value.contains("fern"), "{k} holds a value in clear");
    }
    // The Rust side writes, the service reads it back.
    app_get(&c, app, "/bump", &t).await;
    let me = api.get("/v1/session", Some((&t, Via::Bearer))).await;
    assert_eq!(me.body["session"]["attributes"], json!({"n": 2, "note": marker}));
    assert_eq!(me.body["session"]["principal"], "fern");
    // Without the keys the same token finds a session written with the other setting: unused.
    let plain = try_start(
        &["--store", &redis.url()],
        &[
            ("SESAME_TOKEN_SECRET", None),
            ("SESAME_TOKEN_SECRETS", Some(secrets.as_str())),
            ("SESAME_NAMING_SECRET", Some(naming)),
        ],
    )
    .await
    .unwrap();
    let r = Call { c: &c, base: &plain.base }.get("/v1/session", Some((&t, Via::Bearer))).await;
    assert_eq!(r.status, 401);
}
