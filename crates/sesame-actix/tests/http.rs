//! The session middleware over real HTTP (reqwest against actix-web servers on loopback
//! ports), backed by a real, freshly spawned redis-server: what the shared suite
//! (`tests/suite.rs`) does not cover, several servers on one Redis, actix-web and axum side
//! by side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use reqwest::Client;
use serde_json::{json, Value};
use sesame::{SessionConfig, SessionManager};
use sesame_actix::{Session, SessionError, SessionMiddleware};
use sesame_redis::RedisStore;
use sesame_testkit::http_suite::routes;
use sesame_testkit::RedisServer;

const COOKIE: &str = "__Host-sesame";

async fn get_x(s: Session) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(routes::get(&s, "x").await?))
}

async fn set_x(s: Session, body: String) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(routes::set(&s, "x", body).await?))
}

async fn login(s: Session, user: web::Path<String>) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(routes::login(&s, &user).await?))
}

async fn logout(s: Session) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(routes::logout(&s).await?))
}

async fn manager(redis: &RedisServer) -> SessionManager {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    SessionManager::new(
        Arc::new(store),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    )
}

/// An actix-web server on `redis`, in a thread of its own (actix-web runs on its own
/// single-threaded runtime).
async fn actix(redis: &RedisServer) -> SocketAddr {
    let middleware = SessionMiddleware::new(manager(redis).await);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .wrap(middleware.clone())
                    .route("/get/x", web::get().to(get_x))
                    .route("/set/x", web::post().to(set_x))
                    .route("/login/{user}", web::post().to(login))
                    .route("/logout", web::post().to(logout))
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

/// An axum server on `redis`, with the same routes.
async fn axum(redis: &RedisServer) -> SocketAddr {
    use axum::extract::Path;
    use axum::routing::{get, post};
    use axum::Json;
    use sesame_axum::{Session, SessionError, SessionLayer};
    type Answer = Result<Json<Value>, SessionError>;
    async fn get_x(s: Session) -> Answer {
        Ok(Json(routes::get(&s, "x").await?))
    }
    async fn set_x(s: Session, body: String) -> Answer {
        Ok(Json(routes::set(&s, "x", body).await?))
    }
    async fn login(s: Session, Path(user): Path<String>) -> Answer {
        Ok(Json(routes::login(&s, &user).await?))
    }
    async fn logout(s: Session) -> Answer {
        Ok(Json(routes::logout(&s).await?))
    }
    let router = axum::Router::new()
        .route("/get/x", get(get_x))
        .route("/set/x", post(set_x))
        .route("/login/{user}", post(login))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(manager(redis).await));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct Resp {
    status: u16,
    set_cookie: Option<String>,
    body: Value,
}

impl Resp {
    fn token(&self) -> Option<String> {
        let v = self.set_cookie.as_ref()?.strip_prefix(&format!("{COOKIE}="))?.split(';').next()?;
        (!v.is_empty()).then(|| v.to_string())
    }
}

async fn call(c: &Client, method: &str, url: String, token: Option<&str>) -> Resp {
    let mut rb = c.request(method.parse().unwrap(), url).body("anon");
    if let Some(t) = token {
        rb = rb.header("cookie", format!("{COOKIE}={t}"));
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let set_cookie = r.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    let body = r.json().await.unwrap();
    Resp { status, set_cookie, body }
}

// Three servers sharing one Redis, two actix-web and one axum: a session made on one is known
// on the others, the token changes at login (the old one is dead everywhere), and a logout on
// one ends the session and clears the cookie, the same way on both frameworks.
#[tokio::test]
async fn servers_of_both_frameworks_share_sessions() {
    let redis = RedisServer::start();
    let (a, b, x) = (actix(&redis).await, actix(&redis).await, axum(&redis).await);
    let c = Client::new();
    let t0 = call(&c, "POST", format!("http://{x}/set/x"), None).await.token().unwrap();
    let r = call(&c, "POST", format!("http://{b}/login/alice"), Some(&t0)).await;
    assert_eq!(r.status, 200);
    let t1 = r.token().expect("login sets a new token");
    assert_ne!(t0, t1);
    for host in [a, b, x] {
        let me = call(&c, "GET", format!("http://{host}/get/x"), Some(&t1)).await;
        assert_eq!(me.body, json!({"value": "anon", "user": "alice"}), "known on {host}");
        assert!(me.set_cookie.is_none(), "a read sets no cookie");
        let old = call(&c, "GET", format!("http://{host}/get/x"), Some(&t0)).await;
        assert_eq!(old.body, json!({"value": null, "user": null}), "the old token is dead");
    }
    let out = call(&c, "POST", format!("http://{x}/logout"), Some(&t1)).await;
    let cleared = out.set_cookie.unwrap();
    assert!(cleared.starts_with(&format!("{COOKIE}=; Max-Age=0")), "{cleared}");
    let t2 = call(&c, "POST", format!("http://{a}/login/bob"), None).await.token().unwrap();
    let out = call(&c, "POST", format!("http://{b}/logout"), Some(&t2)).await;
    assert_eq!(out.set_cookie.unwrap(), cleared, "the same clearing cookie from both");
    for host in [a, b, x] {
        for t in [&t1, &t2] {
            let r = call(&c, "GET", format!("http://{host}/get/x"), Some(t)).await;
            assert_eq!(r.body["user"], Value::Null, "logged out everywhere");
        }
    }
}
