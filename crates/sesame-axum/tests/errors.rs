//! Error responses and logs carry no session data: a stored value that cannot be read as the
//! type asked for gives a fixed message naming the attribute, and its content appears neither
//! in the body nor in anything logged. Real HTTP, real redis-server, captured logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use sesame_testkit::logs::Captured;
use std::sync::Arc;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Extension, Router};
use reqwest::Client;
use sesame::{SessionConfig, SessionManager};
use sesame_axum::{Session, SessionError, SessionLayer};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

use common::{send, serve, session_cookie, COOKIE};

/// What a stored value holds; it must never leave the session.
const MARKER: &str = "MARKER-q7Zt4-private-value";

/// Holds a handler between its session work and its answer until the test releases it.
#[derive(Default)]
struct Hold {
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

async fn put_text(
    session: Session,
    Path((k, v)): Path<(String, String)>,
) -> Result<(), SessionError> {
    session.insert(&k, &v).await?;
    Ok(())
}

async fn put_number(
    session: Session,
    Path((k, v)): Path<(String, u64)>,
) -> Result<(), SessionError> {
    session.insert(&k, &v).await?;
    Ok(())
}

async fn read_number(session: Session, Path(k): Path<String>) -> Result<String, SessionError> {
    Ok(format!("{:?}", session.get::<u64>(&k).await?))
}

async fn bump(session: Session, Path(k): Path<String>) -> Result<String, SessionError> {
    Ok(session.update(&k, |n: &mut u64| *n += 1).await?.to_string())
}

/// Bumps a number, then waits at the hold; the commit (which runs the update again on what is
/// stored by then) comes after.
async fn slow_bump(
    session: Session,
    Extension(hold): Extension<Arc<Hold>>,
    Path(k): Path<String>,
) -> Result<String, SessionError> {
    let n = session.update(&k, |n: &mut u64| *n += 1).await?;
    hold.reached.notify_one();
    hold.release.notified().await;
    Ok(n.to_string())
}

fn router(manager: SessionManager, hold: Arc<Hold>) -> Router {
    Router::new()
        .route("/text/{k}/{v}", post(put_text))
        .route("/number/{k}/{v}", post(put_number))
        .route("/read/{k}", get(read_number))
        .route("/bump/{k}", post(bump))
        .route("/slow-bump/{k}", post(slow_bump))
        .layer(Extension(hold))
        .layer(SessionLayer::new(manager))
}

// A stored text read as a number, or bumped as one, is a 400 whose body names the attribute
// and nothing of its value; an exact update that fails at commit, on a value another request
// stored meanwhile, is a 500 with a generic body. The value is in no log line at any level.
#[tokio::test]
async fn unreadable_values_leak_nothing_into_bodies_or_logs() {
    let captured = Captured::default();
    let _guard = captured.install(tracing::Level::TRACE);

    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let manager = SessionManager::new(
        Arc::new(store),
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    );
    let hold = Arc::new(Hold::default());
    let a = serve(router(manager, hold.clone())).await;
    let c = Client::new();

    let r = send(&c, "POST", format!("http://{a}/text/secret/{MARKER}"), &[]).await;
    let t = r.cookie_token(COOKIE).unwrap();
    for (method, path) in [("GET", "read/secret"), ("POST", "bump/secret")] {
        let r = send(&c, method, format!("http://{a}/{path}"), &[session_cookie(&t)]).await;
        assert_eq!(r.status, 400, "{path}: {:?}", r.body);
        let error = r.body["error"].as_str().unwrap();
        assert!(!error.contains(MARKER), "{path}: the body holds the value: {error}");
        assert!(error.contains("\"secret\""), "{path}: the body names the attribute: {error}");
    }

    // The exact update reads 1, then another request stores the text before it commits.
    let r = send(&c, "POST", format!("http://{a}/number/n/1"), &[session_cookie(&t)]).await;
    assert_eq!(r.status, 200);
    let slow = {
        let (c, t) = (c.clone(), t.clone());
        tokio::spawn(async move {
            send(&c, "POST", format!("http://{a}/slow-bump/n"), &[session_cookie(&t)]).await
        })
    };
    hold.reached.notified().await;
    let r = send(&c, "POST", format!("http://{a}/text/n/{MARKER}"), &[session_cookie(&t)]).await;
    assert_eq!(r.status, 200);
    hold.release.notify_one();
    let r = slow.await.unwrap();
    assert_eq!(r.status, 500, "{:?}", r.body);
    assert!(!r.body.to_string().contains(MARKER), "{:?}", r.body);

    let log = captured.text();
    assert!(log.contains("\"n\""), "the failed update was logged, naming the attribute: {log}");
    assert!(!log.contains(MARKER), "a stored value reached the log: {log}");
    assert!(!log.contains(&t), "the token reached the log");
}
