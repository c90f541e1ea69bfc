//! What the layer logs when a session cannot be loaded, captured from a real server whose
//! Redis was stopped: a warning with the session's public id and the error kind, and never
//! the token, in the log or in the response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sesame_testkit::logs::Captured;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use sesame::{SessionConfig, SessionManager, TokenCodec};
use sesame_axum::{CookieConfig, Session, SessionError, SessionLayer};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

async fn count(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.update("n", |n: &mut u64| *n += 1).await?;
    Ok(n.to_string())
}

// A load that fails because Redis is down is logged at warn with the session id and the error
// kind ("unavailable"); the token appears neither in the log nor in the 503 body.
#[tokio::test]
async fn failed_load_is_logged_with_its_kind_and_never_the_token() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::WARN);

    let mut redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(
        Arc::new(store),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
    let router = Router::new()
        .route("/count", post(count))
        .route("/plain", get(|| async { "ok" }))
        .layer(SessionLayer::new(manager).with_cookie(CookieConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let client = reqwest::Client::new();
    let r = client.post(format!("http://{addr}/count")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    let id = TokenCodec::insecure_development().parse(&token).unwrap().key().id();

    redis.stop();
    let r = client
        .post(format!("http://{addr}/count"))
        .header("cookie", format!("__Host-sesame={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(!body.contains(&token), "the 503 body holds no token: {body}");

    let log = captured.text();
    let line = log
        .lines()
        .find(|l| l.contains("session load failed"))
        .unwrap_or_else(|| panic!("no warning for the failed load in: {log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&id), "the warning names the session id: {line}");
    assert!(line.contains("kind=\"unavailable\"") || line.contains("kind=unavailable"), "{line}");
    assert!(!log.contains(&token), "the token never reaches the log: {log}");
    assert!(!log.contains(&token[4..40]), "nor a part of it");
}

// A request presenting two different well-formed session tokens (a planted cookie beside the
// real one) has no session, and the layer says so at debug level without either token.
#[tokio::test]
async fn conflicting_tokens_are_logged_at_debug_without_them() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::TRACE);

    let manager = SessionManager::new(
        Arc::new(sesame::MemoryStore::new()),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
    let router = Router::new()
        .route("/count", post(count))
        .layer(SessionLayer::new(manager).with_cookie(CookieConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let r = client.post(format!("http://{addr}/count")).send().await.unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        tokens.push(cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string());
    }
    let r = client
        .post(format!("http://{addr}/count"))
        .header("cookie", format!("__Host-sesame={}; __Host-sesame={}", tokens[0], tokens[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "1", "a new session, neither of the two");

    let log = captured.text();
    let line = log
        .lines()
        .find(|l| l.contains("different well-formed session tokens"))
        .unwrap_or_else(|| panic!("nothing logged about the conflict in: {log}"));
    assert!(line.contains("DEBUG") && line.contains("count=2"), "{line}");
    for t in &tokens {
        assert!(!log.contains(t.as_str()) && !log.contains(&t[4..40]), "a token in the log");
    }
}

// A manager started on the public development secret says so, once, at warn; one started on a
// configured secret does not.
#[tokio::test]
async fn development_secret_is_announced() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::WARN);
    let store = Arc::new(sesame::MemoryStore::new());
    let config = SessionConfig::builder().token_secret(vec![5u8; 32]).build().unwrap();
    let _quiet = SessionManager::new(store.clone(), config);
    assert!(captured.text().is_empty());
    let dev = SessionConfig::builder().insecure_development_secret().build().unwrap();
    let _loud = SessionManager::new(store, dev);
    let log = captured.text();
    assert_eq!(log.matches("development secret").count(), 1, "{log}");
    assert!(log.contains("WARN"), "{log}");
}
