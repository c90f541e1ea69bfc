//! The session layer over real HTTP (reqwest against an axum server on a loopback port),
//! backed by a real, freshly spawned redis-server (and, where said, by the in-memory store too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sesame::{MemoryStore, SessionConfig, SessionManager, Store, Tag};
use sesame_axum::{CookieConfig, Session, SessionError, SessionLayer};
use sesame_redis::RedisStore;
use sesame_testkit::{RedisOptions, RedisServer};

const COOKIE: &str = "__Host-sesame";

async fn set(session: Session, Path((k, v)): Path<(String, String)>) -> Result<(), SessionError> {
    session.insert(&k, &v).await?;
    Ok(())
}

async fn dump(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!({
        "x": session.get::<String>("x").await?,
        "y": session.get::<String>("y").await?,
        "user": session.principal().await?,
    })))
}

async fn login(session: Session, Path(user): Path<String>) -> Result<(), SessionError> {
    session.login(&user).await?;
    Ok(())
}

async fn logout(session: Session) -> Result<(), SessionError> {
    session.logout().await?;
    Ok(())
}

/// Holds a handler between its session work and its answer until the test releases it.
#[derive(Default)]
struct Hold {
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Hold {
    async fn here(&self) {
        self.reached.notify_one();
        self.release.notified().await;
    }
}

/// Sets an attribute, then waits at the hold before answering 200 "saved" (the commit comes
/// after that, in the layer).
async fn slow_set(
    session: Session,
    Extension(hold): Extension<Arc<Hold>>,
    Path((k, v)): Path<(String, String)>,
) -> Result<Json<Value>, SessionError> {
    session.insert(&k, &v).await?;
    hold.here().await;
    Ok(Json(json!({ "saved": true })))
}

/// Logs in (reading the user's revocation epoch), then waits at the hold before answering.
async fn slow_login(
    session: Session,
    Extension(hold): Extension<Arc<Hold>>,
    Path(user): Path<String>,
) -> Result<Json<Value>, SessionError> {
    session.login(&user).await?;
    hold.here().await;
    Ok(Json(json!({ "user": user })))
}

fn router(manager: SessionManager) -> Router {
    router_with_hold(manager, Arc::default())
}

fn router_with_hold(manager: SessionManager, hold: Arc<Hold>) -> Router {
    Router::new()
        .route("/set/{k}/{v}", post(set))
        .route("/slow/set/{k}/{v}", post(slow_set))
        .route("/slow/login/{user}", post(slow_login))
        .route("/get", get(dump))
        .route("/login/{user}", post(login))
        .route("/logout", post(logout))
        .route("/plain", get(|| async { "no session here" }))
        .layer(Extension(hold))
        .layer(SessionLayer::new(manager).with_cookie(CookieConfig::default()))
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn app(server: &RedisServer, config: SessionConfig) -> SocketAddr {
    let store = RedisStore::connect(&server.url()).await.unwrap();
    serve(router(SessionManager::new(Arc::new(store), config))).await
}

struct Resp {
    status: StatusCode,
    token: Option<String>,
    set_cookie: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(c: &Client, method: &str, url: String, token: Option<&str>) -> Resp {
    let mut rb = c.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        rb = rb.header("cookie", format!("{COOKIE}={t}"));
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let set_cookie = headers.get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    let token = set_cookie.as_ref().and_then(|s| {
        let v = s.strip_prefix(&format!("{COOKIE}="))?.split(';').next()?;
        (!v.is_empty()).then(|| v.to_string())
    });
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp { status, token, set_cookie, headers, body }
}

fn short_config() -> SessionConfig {
    SessionConfig::builder().insecure_development_secret().build().unwrap()
}

// Two instances sharing one Redis: a login on A is known on B, the token changes at login
// (the old one is dead), and a logout on B ends the session on A too.
#[tokio::test]
async fn login_on_one_instance_logout_on_another() {
    let redis = RedisServer::start();
    let a = app(&redis, short_config()).await;
    let b = app(&redis, short_config()).await;
    let c = Client::new();
    let r = call(&c, "POST", format!("http://{a}/set/x/anon"), None).await;
    let t0 = r.token.expect("an anonymous session was created");
    let r = call(&c, "POST", format!("http://{b}/login/alice"), Some(&t0)).await;
    assert_eq!(r.status, 200);
    let t1 = r.token.expect("login sets a new token");
    assert_ne!(t0, t1);
    let sc = r.set_cookie.unwrap();
    assert!(sc.contains("Secure") && sc.contains("HttpOnly") && sc.contains("SameSite=Lax"));
    assert!(sc.contains("Path=/") && !sc.contains("Domain") && !sc.contains("Max-Age"));
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["vary"], "Cookie");
    let me = call(&c, "GET", format!("http://{a}/get"), Some(&t1)).await;
    assert_eq!(
        me.body,
        json!({"x": "anon", "y": null, "user": "alice"}),
        "data kept, user known on A"
    );
    let old = call(&c, "GET", format!("http://{a}/get"), Some(&t0)).await;
    assert_eq!(old.body["user"], Value::Null, "the pre-login token is dead");
    assert_eq!(old.body["x"], Value::Null);
    let out = call(&c, "POST", format!("http://{b}/logout"), Some(&t1)).await;
    assert_eq!(out.status, 200);
    let sc = out.set_cookie.expect("logout clears the cookie");
    assert!(sc.starts_with(&format!("{COOKIE}=;")) && sc.contains("Max-Age=0"));
    for host in [a, b] {
        let r = call(&c, "GET", format!("http://{host}/get"), Some(&t1)).await;
        assert_eq!(r.body["user"], Value::Null, "logged out everywhere");
    }
}

// Hundreds of rounds of two concurrent requests changing different attributes of one
// session: both changes persist every time (no lost update).
#[tokio::test]
async fn concurrent_requests_changing_different_attributes_all_persist() {
    let redis = RedisServer::start();
    let a = app(&redis, short_config()).await;
    let b = app(&redis, short_config()).await;
    let c = Client::new();
    let t = call(&c, "POST", format!("http://{a}/set/x/0"), None).await.token.unwrap();
    for i in 1..=300 {
        let (r1, r2) = tokio::join!(
            call(&c, "POST", format!("http://{a}/set/x/{i}"), Some(&t)),
            call(&c, "POST", format!("http://{b}/set/y/{i}"), Some(&t)),
        );
        assert_eq!((r1.status, r2.status), (StatusCode::OK, StatusCode::OK));
        assert!(r1.token.is_none() && r2.token.is_none(), "no new session");
        let r = call(&c, "GET", format!("http://{a}/get"), Some(&t)).await;
        assert_eq!(r.body["x"], i.to_string(), "round {i}");
        assert_eq!(r.body["y"], i.to_string(), "round {i}");
    }
}

// Tampered, truncated, oversized and garbage cookies get no session, set no cookie, and cause
// no Redis command at all; so does a request whose handler never touches the session.
#[tokio::test]
async fn bad_cookies_cause_no_redis_command() {
    let redis = RedisServer::start();
    let a = app(&redis, short_config()).await;
    let c = Client::new();
    let good = call(&c, "POST", format!("http://{a}/set/x/1"), None).await.token.unwrap();
    let mut tampered = good.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let bad = [
        tampered,
        good[..63].to_string(),
        good[..20].to_string(),
        format!("{good}A"),
        "A".repeat(4000),
        "%00%ff<script>".to_string(),
        good.replace(|ch: char| ch.is_ascii_digit(), "+"),
        String::new(),
    ];
    redis.reset_stats().unwrap();
    for t in &bad {
        let r = call(&c, "GET", format!("http://{a}/get"), Some(t)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["x"], Value::Null, "no session for {t:.20}");
        assert!(r.set_cookie.is_none(), "a read sets no cookie");
    }
    let r = call(&c, "GET", format!("http://{a}/plain"), Some(&good)).await;
    assert_eq!(r.status, 200);
    assert_eq!(redis.total_commands().unwrap(), 0, "{:?}", redis.info_commandstats().unwrap());
    // A valid token does reach Redis: one GET (the record carries its idle deadline), and
    // nothing written for a pure read (the deadline is not due for a push yet).
    let r = call(&c, "GET", format!("http://{a}/get"), Some(&good)).await;
    assert_eq!(r.body["x"], "1");
    let mut stats = redis.info_commandstats().unwrap();
    stats.retain(|name, _| name != "info" && !name.starts_with("config"));
    let expected = [("get".to_string(), 1)].into_iter().collect();
    assert_eq!(stats, expected);
}

// A well-formed token the server never issued is not adopted: writing through it creates a
// session under a new server-made token.
#[tokio::test]
async fn unknown_token_is_never_adopted() {
    let redis = RedisServer::start();
    let a = app(&redis, short_config()).await;
    let c = Client::new();
    let forged = sesame::TokenCodec::insecure_development()
        .generate(Tag::random().unwrap())
        .unwrap()
        .expose();
    let r = call(&c, "POST", format!("http://{a}/set/x/1"), Some(&forged)).await;
    let issued = r.token.expect("a new session");
    assert_ne!(issued, forged);
    let r = call(&c, "GET", format!("http://{a}/get"), Some(&forged)).await;
    assert_eq!(r.body["x"], Value::Null);
}

// Redis stopped: requests that need the session get 503 with a clear message (never an
// anonymous session); Redis back: the same app serves the same session again by itself.
#[tokio::test]
async fn redis_down_gives_503_then_recovers() {
    let mut redis =
        RedisServer::start_with(RedisOptions { appendonly: true, ..Default::default() }).unwrap();
    let a = app(&redis, short_config()).await;
    let c = Client::new();
    let t = call(&c, "POST", format!("http://{a}/login/bob"), None).await.token.unwrap();
    redis.stop();
    for path in ["get", "login/bob"] {
        let method = if path == "get" { "GET" } else { "POST" };
        let r = call(&c, method, format!("http://{a}/{path}"), Some(&t)).await;
        assert_eq!(r.status, 503, "{path}: {:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("unavailable"));
        assert!(r.set_cookie.is_none(), "no cookie change while the store is down");
    }
    let r = call(&c, "GET", format!("http://{a}/plain"), Some(&t)).await;
    assert_eq!(r.status, 200, "requests that do not use the session still work");
    redis.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = call(&c, "GET", format!("http://{a}/get"), Some(&t)).await;
        if r.status == 200 {
            assert_eq!(r.body["user"], "bob", "the same session after recovery");
            break;
        }
        assert_eq!(r.status, 503);
        assert!(Instant::now() < deadline, "no recovery: {}", redis.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Redis restarted (with AOF) while two app instances are idle: the very first request on each
// instance succeeds — a read on one, a write on the other — with the same session, nothing
// lost (the broken connection is noticed and the request sent once more).
#[tokio::test]
async fn first_request_after_a_redis_restart_succeeds_on_every_instance() {
    let mut redis =
        RedisServer::start_with(RedisOptions { appendonly: true, ..Default::default() }).unwrap();
    let apps = [app(&redis, short_config()).await, app(&redis, short_config()).await];
    let c = Client::new();
    let t = call(&c, "POST", format!("http://{}/login/bob", apps[0]), None).await.token.unwrap();
    let r = call(&c, "POST", format!("http://{}/set/x/1", apps[1]), Some(&t)).await;
    assert_eq!(r.status, 200);
    for round in 0..3 {
        redis.stop();
        redis.start_again().unwrap();
        let r = call(&c, "GET", format!("http://{}/get", apps[round % 2]), Some(&t)).await;
        assert_eq!(r.status, 200, "round {round}: first read after the restart: {:?}", r.body);
        assert_eq!(r.body["user"], "bob");
        let value = format!("{}", round + 2);
        let url = format!("http://{}/set/x/{value}", apps[(round + 1) % 2]);
        let r = call(&c, "POST", url, Some(&t)).await;
        assert_eq!(r.status, 200, "round {round}: first write after the restart: {:?}", r.body);
        let r = call(&c, "GET", format!("http://{}/get", apps[round % 2]), Some(&t)).await;
        assert_eq!(r.body["x"], value.as_str(), "round {round}: nothing lost");
    }
}

// Over HTTP: activity keeps a session past its idle timeout, idleness ends it, and the
// absolute timeout ends it however active it is.
#[tokio::test]
async fn idle_and_absolute_timeouts() {
    let redis = RedisServer::start();
    let config = SessionConfig::builder()
        .insecure_development_secret()
        .idle_timeout(Duration::from_secs(1))
        .absolute_timeout(Duration::from_millis(2500))
        .touch_after(Duration::from_millis(200))
        .grace_period(Duration::from_millis(300))
        .build()
        .unwrap();
    let a = app(&redis, config).await;
    let c = Client::new();
    let t = call(&c, "POST", format!("http://{a}/set/x/1"), None).await.token.unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1800) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = call(&c, "GET", format!("http://{a}/get"), Some(&t)).await;
        assert_eq!(
            r.body["x"],
            "1",
            "alive at {:?}: activity extends the idle window",
            start.elapsed()
        );
    }
    // Still active, but the absolute deadline (2.5 s) passes.
    while start.elapsed() < Duration::from_millis(2700) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        call(&c, "GET", format!("http://{a}/get"), Some(&t)).await;
    }
    let r = call(&c, "GET", format!("http://{a}/get"), Some(&t)).await;
    assert_eq!(r.body["x"], Value::Null, "absolute timeout");
    // Idle timeout: a fresh session left alone for longer than 1 s.
    let t2 = call(&c, "POST", format!("http://{a}/set/x/2"), None).await.token.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = call(&c, "GET", format!("http://{a}/get"), Some(&t2)).await;
    assert_eq!(r.body["x"], Value::Null, "idle timeout");
}

// Hostile bytes stored under a session's key give a 500 with a generic message (no panic, no
// token, no session handed out), and nothing is overwritten.
#[tokio::test]
async fn corrupt_session_in_redis_is_a_500() {
    let redis = RedisServer::start();
    let a = app(&redis, short_config()).await;
    let c = Client::new();
    let t = call(&c, "POST", format!("http://{a}/set/x/1"), None).await.token.unwrap();
    let key = sesame::TokenCodec::insecure_development().parse(&t).unwrap().key();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let redis_key = store.session_key(&key);
    redis.cli(&["SET", &redis_key, "\u{1}garbage\u{ff}", "PX", "60000"]).unwrap();
    for (method, path) in [("GET", "get"), ("POST", "set/y/2")] {
        let r = call(&c, method, format!("http://{a}/{path}"), Some(&t)).await;
        assert_eq!(r.status, 500, "{path}");
        assert_eq!(r.body["error"], "session error");
        assert!(r.set_cookie.is_none());
    }
    assert_eq!(redis.cli(&["GET", &redis_key]).unwrap(), "\u{1}garbage\u{ff}");
}

/// Two instances on one store, the first one's handlers held at `hold`, and a manager of the
/// same store for operator actions.
async fn held_pair(
    store: [Arc<dyn Store>; 3],
    hold: Arc<Hold>,
) -> (SocketAddr, SocketAddr, SessionManager) {
    let [a, b, admin] = store;
    let a = serve(router_with_hold(SessionManager::new(a, short_config()), hold)).await;
    let b = serve(router(SessionManager::new(b, short_config()))).await;
    (a, b, SessionManager::new(admin, short_config()))
}

fn memory_stores() -> [Arc<dyn Store>; 3] {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    [store.clone(), store.clone(), store]
}

async fn redis_stores(server: &RedisServer) -> [Arc<dyn Store>; 3] {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(Arc::new(RedisStore::connect(&server.url()).await.unwrap()) as Arc<dyn Store>);
    }
    v.try_into().ok().unwrap()
}

/// A save held in its handler while another request on the other instance logs the session
/// out; then the save's commit runs.
async fn check_save_after_logout(stores: [Arc<dyn Store>; 3]) {
    let hold = Arc::new(Hold::default());
    let (a, b, _) = held_pair(stores, hold.clone()).await;
    let c = Client::new();
    for round in 0..20 {
        let t = call(&c, "POST", format!("http://{a}/set/x/{round}"), None).await.token.unwrap();
        let slow = {
            let (c, t) = (c.clone(), t.clone());
            tokio::spawn(async move {
                call(&c, "POST", format!("http://{a}/slow/set/y/late"), Some(&t)).await
            })
        };
        hold.reached.notified().await;
        let out = call(&c, "POST", format!("http://{b}/logout"), Some(&t)).await;
        assert_eq!(out.status, 200, "round {round}");
        hold.release.notify_one();
        let r = slow.await.unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "round {round}: {:?}", r.body);
        assert_eq!(r.body, json!({ "error": sesame::Error::SessionEnded.to_string() }));
        assert!(r.set_cookie.is_none(), "round {round}: no cookie change");
        assert_eq!(r.headers["cache-control"], "no-store");
        let after = call(&c, "GET", format!("http://{b}/get"), Some(&t)).await;
        assert_eq!(after.body, json!({"x": null, "y": null, "user": null}), "round {round}");
    }
}

// A save whose session another request logged out meanwhile answers 401 with a JSON error
// instead of the handler's 200, and writes nothing, round after round; in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_after_logout_elsewhere_is_a_401_memory() {
    check_save_after_logout(memory_stores()).await;
}

// The same on Redis, with two instances each with its own client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_after_logout_elsewhere_is_a_401_redis() {
    let redis = RedisServer::start();
    check_save_after_logout(redis_stores(&redis).await).await;
}

/// Logins held in their handler (after reading the user's epoch) while an operator revokes
/// the user's sessions; then the login's commit runs.
async fn check_login_overtaken_by_revocation(stores: [Arc<dyn Store>; 3]) {
    let hold = Arc::new(Hold::default());
    let (a, b, admin) = held_pair(stores, hold.clone()).await;
    let c = Client::new();
    for round in 0..20 {
        let user = format!("u{round}");
        let before =
            call(&c, "POST", format!("http://{b}/login/{user}"), None).await.token.unwrap();
        // Alternately a fresh login, and a re-login of the user's session (a rotation).
        let presented = (round % 2 == 1).then(|| before.clone());
        let slow = {
            let c = c.clone();
            let url = format!("http://{a}/slow/login/{user}");
            tokio::spawn(async move { call(&c, "POST", url, presented.as_deref()).await })
        };
        hold.reached.notified().await;
        assert_eq!(admin.revoke_user(&user).await.unwrap(), 1, "round {round}");
        hold.release.notify_one();
        let r = slow.await.unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "round {round}: {:?}", r.body);
        assert_eq!(r.body, json!({ "error": sesame::Error::LoginRevoked.to_string() }));
        assert!(r.token.is_none(), "round {round}: no session handed out");
        assert!(admin.list_user(&user).await.unwrap().is_empty(), "round {round}");
        let again = call(&c, "POST", format!("http://{b}/login/{user}"), None).await;
        assert_eq!(again.status, 200, "round {round}: a login after the revocation works");
    }
}

// A login overtaken by "log out everywhere" (revoke_user between its start and its commit)
// answers 401 with a JSON error and leaves no session; in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_overtaken_by_revocation_is_a_401_memory() {
    check_login_overtaken_by_revocation(memory_stores()).await;
}

// The same on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_overtaken_by_revocation_is_a_401_redis() {
    let redis = RedisServer::start();
    check_login_overtaken_by_revocation(redis_stores(&redis).await).await;
}

/// The layer's future, boxed once per request around an axum router, stays within glibc's
/// per-thread cache of freed blocks (up to 1032 bytes; docs/BENCHMARKS.md, "Futures and the
/// allocator"): the session's commit inside it is boxed on its own.
#[tokio::test]
async fn the_layers_future_fits_the_allocators_thread_cache() {
    use tower_layer::Layer;
    use tower_service::Service;
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), short_config());
    let mut service = SessionLayer::new(manager).layer(Router::new().route("/get", get(dump)));
    let future = service.call(axum::http::Request::new(axum::body::Body::empty()));
    let size = std::mem::size_of_val(&*future);
    assert!(size <= 1032, "the layer's future takes {size} bytes");
    future.await.unwrap();
}
