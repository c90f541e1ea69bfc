//! The session middleware over real HTTP (reqwest against an actix-web server on a loopback
//! port), backed by a real, freshly spawned redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sesame::{SessionConfig, SessionManager, Tag};
use sesame_actix::{
    CookieConfig, Session, SessionError, SessionMiddleware, TransportConfig, BEARER_RESPONSE_HEADER,
};
use sesame_redis::RedisStore;
use sesame_testkit::{RedisOptions, RedisServer};

const COOKIE: &str = "__Host-sesame";

async fn set(
    session: Session,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, SessionError> {
    let (k, v) = path.into_inner();
    session.insert(&k, &v).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn dump(session: Session) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(json!({
        "x": session.get::<String>("x").await?,
        "user": session.principal().await?,
    })))
}

async fn login(session: Session, user: web::Path<String>) -> Result<HttpResponse, SessionError> {
    session.login(&user).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn logout(session: Session) -> Result<HttpResponse, SessionError> {
    session.logout().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Holds a handler between its session work and its answer until the test releases it.
#[derive(Default)]
struct Hold {
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

/// Sets an attribute, then waits at the hold before answering 200 (the commit comes after
/// that, in the middleware).
async fn slow_set(
    session: Session,
    hold: web::Data<Arc<Hold>>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, SessionError> {
    let (k, v) = path.into_inner();
    session.insert(&k, &v).await?;
    hold.reached.notify_one();
    hold.release.notified().await;
    Ok(HttpResponse::Ok().json(json!({ "saved": true })))
}

async fn recent(session: Session) -> Result<HttpResponse, SessionError> {
    session.require_recent_auth(Duration::from_secs(60)).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Serves the test routes behind the middleware on a loopback port, in a thread of its own
/// (actix-web runs on its own single-threaded runtime).
fn serve(middleware: SessionMiddleware, hold: Arc<Hold>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .wrap(middleware.clone())
                    .route("/set/{k}/{v}", web::post().to(set))
                    .app_data(web::Data::new(hold.clone()))
                    .route("/slow/set/{k}/{v}", web::post().to(slow_set))
                    .route("/recent", web::get().to(recent))
                    .route("/get", web::get().to(dump))
                    .route("/login/{user}", web::post().to(login))
                    .route("/logout", web::post().to(logout))
                    .route("/plain", web::get().to(|| async { "no session here" }))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap()
        })
    });
    addr
}

fn config() -> SessionConfig {
    SessionConfig::builder().insecure_development_secret().build().unwrap()
}

async fn app_full(
    redis: &RedisServer,
    config: SessionConfig,
    transport: TransportConfig,
    hold: Arc<Hold>,
) -> SocketAddr {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(Arc::new(store), config);
    serve(SessionMiddleware::new(manager).transport(transport), hold)
}

async fn app_with(redis: &RedisServer, transport: TransportConfig) -> SocketAddr {
    app_full(redis, config(), transport, Arc::default()).await
}

async fn app(redis: &RedisServer) -> SocketAddr {
    app_with(redis, TransportConfig::default()).await
}

struct Resp {
    status: StatusCode,
    token: Option<String>,
    set_cookie: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
}

async fn send(c: &Client, method: &str, url: String, headers: &[(&str, String)]) -> Resp {
    let mut rb = c.request(method.parse().unwrap(), url);
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let all: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert!(all.len() <= 1, "at most one Set-Cookie: {all:?}");
    let set_cookie = headers.get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    let token = set_cookie.as_ref().and_then(|s| {
        let v = s.strip_prefix(&format!("{COOKIE}="))?.split(';').next()?;
        (!v.is_empty()).then(|| v.to_string())
    });
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp { status, token, set_cookie, headers, body }
}

async fn call(c: &Client, method: &str, url: String, token: Option<&str>) -> Resp {
    let cookie: Vec<(&str, String)> =
        token.map(|t| ("cookie", format!("{COOKIE}={t}"))).into_iter().collect();
    send(c, method, url, &cookie).await
}

// Two instances sharing one Redis: a login on A is known on B, the token changes at login
// (the old one is dead), the cookie carries exactly the secure attributes, and a logout on B
// clears the cookie and ends the session on A too.
#[tokio::test]
async fn login_on_one_instance_logout_on_another() {
    let redis = RedisServer::start();
    let a = app(&redis).await;
    let b = app(&redis).await;
    let c = Client::new();
    let r = call(&c, "POST", format!("http://{a}/set/x/anon"), None).await;
    let t0 = r.token.expect("an anonymous session was created");
    let r = call(&c, "POST", format!("http://{b}/login/alice"), Some(&t0)).await;
    assert_eq!(r.status, 200);
    let t1 = r.token.clone().expect("login sets a new token");
    assert_ne!(t0, t1);
    assert_eq!(
        r.set_cookie.as_deref(),
        Some(format!("{COOKIE}={t1}; Path=/; Secure; HttpOnly; SameSite=Lax").as_str()),
        "exact cookie attributes"
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("vary").as_deref(), Some("Cookie"));
    let me = call(&c, "GET", format!("http://{a}/get"), Some(&t1)).await;
    assert_eq!(me.body, json!({"x": "anon", "user": "alice"}), "data kept, user known on A");
    assert!(me.set_cookie.is_none(), "a read sets no cookie");
    let old = call(&c, "GET", format!("http://{a}/get"), Some(&t0)).await;
    assert_eq!(old.body, json!({"x": null, "user": null}), "the pre-login token is dead");
    let out = call(&c, "POST", format!("http://{b}/logout"), Some(&t1)).await;
    assert_eq!(out.status, 200);
    let sc = out.set_cookie.clone().expect("logout clears the cookie");
    assert_eq!(
        sc,
        format!(
            "{COOKIE}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; \
             HttpOnly; SameSite=Lax"
        )
    );
    assert_eq!(out.header("cache-control").as_deref(), Some("no-store"));
    for host in [a, b] {
        let r = call(&c, "GET", format!("http://{host}/get"), Some(&t1)).await;
        assert_eq!(r.body["user"], Value::Null, "logged out everywhere");
    }
}

// A request whose handler never touches its session, and requests with malformed tokens,
// cause no Redis command at all; a pure read of a valid session writes nothing.
#[tokio::test]
async fn lazy_load_and_unchanged_sessions_cost_no_write() {
    let redis = RedisServer::start();
    let a = app(&redis).await;
    let c = Client::new();
    let good = call(&c, "POST", format!("http://{a}/set/x/1"), None).await.token.unwrap();
    redis.reset_stats().unwrap();
    let r = call(&c, "GET", format!("http://{a}/plain"), Some(&good)).await;
    assert_eq!(r.status, 200);
    for bad in ["", "junk", &good[..20]] {
        let r = call(&c, "GET", format!("http://{a}/get"), Some(bad)).await;
        assert_eq!(r.body["x"], Value::Null);
        assert!(r.set_cookie.is_none());
    }
    assert_eq!(redis.total_commands().unwrap(), 0, "{:?}", redis.info_commandstats().unwrap());
    let r = call(&c, "GET", format!("http://{a}/get"), Some(&good)).await;
    assert_eq!(r.body["x"], "1");
    assert!(r.set_cookie.is_none() && r.header("cache-control").is_none());
    let mut stats = redis.info_commandstats().unwrap();
    stats.retain(|name, _| name != "info" && !name.starts_with("config"));
    let expected = [("get".to_string(), 1), ("pttl".to_string(), 1)].into_iter().collect();
    assert_eq!(stats, expected, "one read, no write");
}

// A well-formed token the server never issued is not adopted: writing through it creates a
// session under a new server-made token.
#[tokio::test]
async fn unknown_token_is_never_adopted() {
    let redis = RedisServer::start();
    let a = app(&redis).await;
    let c = Client::new();
    let forged = sesame::TokenCodec::insecure_development()
        .generate(Tag::random().unwrap())
        .unwrap()
        .expose();
    let r = call(&c, "POST", format!("http://{a}/set/x/1"), Some(&forged)).await;
    assert_eq!(r.status, 200);
    let fresh = r.token.expect("a new session");
    assert_ne!(fresh, forged);
    let r = call(&c, "GET", format!("http://{a}/get"), Some(&forged)).await;
    assert_eq!(r.body["x"], Value::Null);
}

// Redis stopped: requests that need the session get 503 with `Retry-After: 1` and a JSON
// body without the token; requests that do not use it still work; Redis back: the same
// session is served again.
#[tokio::test]
async fn redis_down_gives_503_then_recovers() {
    let mut redis =
        RedisServer::start_with(RedisOptions { appendonly: true, ..Default::default() }).unwrap();
    let a = app(&redis).await;
    let c = Client::new();
    let t = call(&c, "POST", format!("http://{a}/login/bob"), None).await.token.unwrap();
    redis.stop();
    for path in ["get", "login/bob"] {
        let method = if path == "get" { "GET" } else { "POST" };
        let r = call(&c, method, format!("http://{a}/{path}"), Some(&t)).await;
        assert_eq!(r.status, 503, "{path}: {:?}", r.body);
        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        let text = r.body["error"].as_str().unwrap();
        assert!(text.contains("unavailable") && !text.contains(&t), "{text}");
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

// A save held in its handler while another instance logs the session out answers 401 with
// a JSON error instead of the handler's 200, changes no cookie, and writes nothing; a
// handler that needs a login answers 401 without one.
#[tokio::test]
async fn save_after_logout_elsewhere_is_401() {
    let redis = RedisServer::start();
    let hold = Arc::new(Hold::default());
    let a = app_full(&redis, config(), TransportConfig::default(), hold.clone()).await;
    let b = app(&redis).await;
    let c = Client::new();
    let r = call(&c, "GET", format!("http://{a}/recent"), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, json!({ "error": sesame::Error::NotLoggedIn.to_string() }));
    for round in 0..5 {
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
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
        let after = call(&c, "GET", format!("http://{b}/get"), Some(&t)).await;
        assert_eq!(after.body, json!({"x": null, "user": null}), "round {round}");
    }
}

// A session over its size limit is a 413 whose body quotes nothing of the value.
#[tokio::test]
async fn over_the_size_limit_is_413() {
    let redis = RedisServer::start();
    let small = SessionConfig::builder()
        .insecure_development_secret()
        .max_session_bytes(512)
        .build()
        .unwrap();
    let a = app_full(&redis, small, TransportConfig::default(), Arc::default()).await;
    let c = Client::new();
    // Letters from a simple generator, so that compression does not bring them under the
    // limit; the marker must not come back in the error.
    let mut n: u64 = 1;
    let noise: String = (0..1500)
        .map(|_| {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            char::from(b'a' + u8::try_from((n >> 33) % 26).unwrap())
        })
        .collect();
    let big = format!("s3cr3t{noise}");
    let r = call(&c, "POST", format!("http://{a}/set/x/{big}"), None).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    let text = r.body["error"].as_str().unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(r.set_cookie.is_none(), "no session was created");
}

// Bearer: a login hands out the token in X-Session-Token (no cookie), the token reaches the
// session, and a logout answers an empty X-Session-Token.
#[tokio::test]
async fn bearer_login_whoami_logout() {
    let redis = RedisServer::start();
    let bearer_only = TransportConfig::builder().cookie(false).bearer(true).build().unwrap();
    let a = app_with(&redis, bearer_only).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/login/alice"), &[]).await;
    assert_eq!(r.status, 200);
    let t = r.header(BEARER_RESPONSE_HEADER).expect("the token, in X-Session-Token");
    assert_eq!(t.len(), sesame::TOKEN_LEN);
    assert!(r.set_cookie.is_none(), "no cookie without the cookie transport");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("vary").as_deref(), Some("Authorization"));
    let auth = |t: &str| [("authorization", format!("Bearer {t}"))];
    let me = send(&c, "GET", format!("http://{a}/get"), &auth(&t)).await;
    assert_eq!(me.body, json!({"x": null, "user": "alice"}));
    assert!(me.header(BEARER_RESPONSE_HEADER).is_none(), "a read hands out nothing");
    let cookie = [("cookie", format!("{COOKIE}={t}"))];
    let me = send(&c, "GET", format!("http://{a}/get"), &cookie).await;
    assert_eq!(me.body["user"], Value::Null, "the cookie is not a configured transport");
    let out = send(&c, "POST", format!("http://{a}/logout"), &auth(&t)).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.header(BEARER_RESPONSE_HEADER).as_deref(), Some(""), "drop the token");
    assert!(out.set_cookie.is_none());
    let me = send(&c, "GET", format!("http://{a}/get"), &auth(&t)).await;
    assert_eq!(me.body, json!({"x": null, "user": null}), "logged out");
}

// A named header carries the token both ways.
#[tokio::test]
async fn named_header_transport() {
    let redis = RedisServer::start();
    let t = TransportConfig::builder().cookie(false).header("X-Auth-Session").build().unwrap();
    let a = app_with(&redis, t).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/set/x/1"), &[]).await;
    let t0 = r.header("x-auth-session").unwrap();
    assert!(r.set_cookie.is_none());
    assert_eq!(r.header("vary").as_deref(), Some("x-auth-session"));
    let r = send(&c, "GET", format!("http://{a}/get"), &[("x-auth-session", t0)]).await;
    assert_eq!(r.body["x"], "1");
}

// A valid token in the query string, under any name, is ignored: no Redis command for a
// read, a new token for a write, and the token's session is untouched.
#[tokio::test]
async fn token_in_the_query_string_is_ignored() {
    let redis = RedisServer::start();
    let a = app(&redis).await;
    let c = Client::new();
    let t = call(&c, "POST", format!("http://{a}/set/x/kept"), None).await.token.unwrap();
    let query = format!("session={t}&token={t}&{COOKIE}={t}&access_token={t}");
    redis.reset_stats().unwrap();
    let r = call(&c, "GET", format!("http://{a}/get?{query}"), None).await;
    assert_eq!(r.body, json!({"x": null, "user": null}));
    assert_eq!(redis.total_commands().unwrap(), 0, "{:?}", redis.info_commandstats());
    let r = call(&c, "POST", format!("http://{a}/set/x/changed?{query}"), None).await;
    assert_ne!(r.token.unwrap(), t, "a new session, never the token from the URL");
    let r = call(&c, "GET", format!("http://{a}/get"), Some(&t)).await;
    assert_eq!(r.body["x"], "kept", "the session is untouched");
}

// A configured cookie is used: its name and attributes, and `Max-Age` (the session's
// remaining life) when it is persistent.
#[tokio::test]
async fn configured_persistent_cookie() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(Arc::new(store), config());
    let cookie = CookieConfig::builder().name("sid").persistent(true).build().unwrap();
    let a = serve(SessionMiddleware::new(manager).cookie(cookie), Arc::default());
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/set/x/1"), &[]).await;
    let sc = r.set_cookie.unwrap();
    let (pair, attrs) = sc.split_once("; ").unwrap();
    let t = pair.strip_prefix("sid=").unwrap();
    assert_eq!(t.len(), sesame::TOKEN_LEN);
    let max_age: u64 = attrs
        .strip_prefix("Max-Age=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 0);
    assert!(attrs.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"), "{attrs}");
    let r = send(&c, "GET", format!("http://{a}/get"), &[("cookie", format!("sid={t}"))]).await;
    assert_eq!(r.body["x"], "1");
}

// A cookie and a bearer header carrying two different valid tokens give the request no
// token at all: a read finds no session and costs no Redis command.
#[tokio::test]
async fn two_different_tokens_mean_none() {
    let redis = RedisServer::start();
    let both = TransportConfig::builder().bearer(true).build().unwrap();
    let a = app_with(&redis, both).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/login/ann"), &[]).await;
    let t1 = r.token.clone().unwrap();
    assert_eq!(r.header(BEARER_RESPONSE_HEADER).as_deref(), Some(t1.as_str()), "both ways");
    assert_eq!(r.header("vary").as_deref(), Some("Cookie, Authorization"));
    let t2 = send(&c, "POST", format!("http://{a}/login/bo"), &[]).await.token.unwrap();
    let cookie = ("cookie", format!("{COOKIE}={t1}"));
    let me = send(&c, "GET", format!("http://{a}/get"), std::slice::from_ref(&cookie)).await;
    assert_eq!(me.body["user"], "ann");
    redis.reset_stats().unwrap();
    let mixed = [cookie, ("authorization", format!("Bearer {t2}"))];
    let me = send(&c, "GET", format!("http://{a}/get"), &mixed).await;
    assert_eq!(me.body, json!({"x": null, "user": null}));
    assert_eq!(redis.total_commands().unwrap(), 0);
}
