//! Hooks, client binding and half-authenticated states over real HTTP on a real redis-server
//! (checklist items 31, 38 and 39).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::Path;
use axum::routing::{get, post};
use axum::Json;
use reqwest::Client;
use serde_json::{json, Value};
use sesame::{
    CreationRateLimit, RequestCheck, SessionConfig, SessionHooks, SessionManager, Verdict,
};
use sesame_axum::{Session, SessionError, SessionLayer};
use sesame_redis::RedisStore;
use sesame_testkit::RedisServer;

use common::{routes, send, session_cookie, COOKIE};

async fn manager(redis: &RedisServer) -> SessionManager {
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let config = SessionConfig::builder().token_secret(vec![3u8; 32]).build().unwrap();
    SessionManager::new(Arc::new(store), config)
}

async fn first_step(session: Session, Path(user): Path<String>) -> Result<(), SessionError> {
    session.begin_login(&user, "mfa").await?;
    Ok(())
}

async fn second_step(session: Session) -> Result<(), SessionError> {
    let pending = session.pending_login().await?.ok_or(sesame::Error::NotLoggedIn)?;
    session.login(&pending.principal).await?;
    Ok(())
}

async fn whoami(session: Session) -> Result<Json<Value>, SessionError> {
    let pending = session.pending_login().await?;
    Ok(Json(json!({
        "user": session.principal().await?,
        "pending": pending.map(|p| p.principal),
        "created_by": session.created_by().await?,
    })))
}

async fn secret_page(session: Session) -> Result<&'static str, SessionError> {
    session.require_recent_auth(Duration::from_secs(600)).await?;
    Ok("secret")
}

/// The common routes plus `/mfa/start/{user}`, `/mfa/finish`, `/whoami`, `/secret`, served
/// with the peer address known to the layer.
async fn serve(layer: SessionLayer) -> SocketAddr {
    let router = routes()
        .route("/mfa/start/{user}", post(first_step))
        .route("/mfa/finish", post(second_step))
        .route("/whoami", get(whoami))
        .route("/secret", get(secret_page))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap()
    });
    addr
}

/// How many keys the Redis holds.
fn keys(redis: &RedisServer) -> u64 {
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    redis::cmd("DBSIZE").query(&mut conn).unwrap()
}

fn ua(agent: &str) -> (&'static str, Vec<u8>) {
    ("user-agent", agent.as_bytes().to_vec())
}

// Checklist 38: a client that creates sessions too fast gets 429 with Retry-After, and nothing
// is written to Redis for it; requests of its existing session go on.
#[tokio::test]
async fn item_38_session_creation_is_rate_limited_per_client() {
    let redis = RedisServer::start();
    let m = manager(&redis).await;
    let limit = Arc::new(CreationRateLimit::new(3, Duration::from_secs(60)));
    let a = serve(SessionLayer::new(m.with_hooks(limit))).await;
    let c = Client::new();
    let mut first = None;
    for i in 0..3 {
        let r = send(&c, "POST", format!("http://{a}/set/x/{i}"), &[]).await;
        assert_eq!(r.status, 200, "creation {i}");
        first = first.or(r.cookie_token(COOKIE));
    }
    let keys_before = keys(&redis);
    let r = send(&c, "POST", format!("http://{a}/set/x/9"), &[]).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.cookie_token(COOKIE), None);
    assert_eq!(keys(&redis), keys_before, "nothing written for the refused creation");
    let r =
        send(&c, "POST", format!("http://{a}/set/x/7"), &[session_cookie(&first.unwrap())]).await;
    assert_eq!(r.status, 200, "an existing session is not a creation");
}

/// Asks for a fresh login when the user agent ends with " risky"; ends a session used from
/// another user agent.
#[derive(Debug)]
struct Binding;

#[async_trait]
impl SessionHooks for Binding {
    async fn on_request(&self, check: &RequestCheck<'_>) -> Verdict {
        let recorded = check.recorded.and_then(|c| c.user_agent.as_deref());
        let now = check.client.and_then(|c| c.user_agent.as_deref());
        match (recorded, now) {
            (_, Some(b)) if b.ends_with(" risky") => Verdict::StepUp,
            (Some(a), Some(b)) if a != b => Verdict::End,
            _ => Verdict::Continue,
        }
    }
}

// Checklist 39: the client's address and user agent are recorded when the session is created;
// the request hook compares them with each request's and can demand a step-up (401 with
// `step_up`, the session kept) or end the session (401, cookie cleared, gone in Redis).
#[tokio::test]
async fn item_39_client_binding_and_request_hook() {
    let redis = RedisServer::start();
    let m = manager(&redis).await.with_hooks(Arc::new(Binding));
    let a = serve(SessionLayer::new(m.clone())).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/login/zoe"), &[ua("firefox")]).await;
    let t = r.cookie_token(COOKIE).unwrap();
    let r =
        send(&c, "GET", format!("http://{a}/whoami"), &[session_cookie(&t), ua("firefox")]).await;
    assert_eq!(r.body["user"], "zoe");
    assert_eq!(r.body["created_by"]["ip"], "127.0.0.1");
    assert_eq!(r.body["created_by"]["user_agent"], "firefox");
    // Step-up: refused, but the session stays; a fresh login clears it.
    let risky = ua("firefox risky");
    let r = send(&c, "GET", format!("http://{a}/whoami"), &[session_cookie(&t), risky]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["step_up"], true);
    assert_eq!(r.set_cookie(COOKIE), None, "the session is kept");
    let r =
        send(&c, "GET", format!("http://{a}/whoami"), &[session_cookie(&t), ua("firefox")]).await;
    assert_eq!(r.body["user"], "zoe");
    // Another user agent: the session ends everywhere.
    let r = send(&c, "GET", format!("http://{a}/whoami"), &[session_cookie(&t), ua("curl")]).await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert!(r.set_cookie(COOKIE).unwrap().contains("Max-Age=0"));
    assert!(m.list_user("zoe").await.unwrap().is_empty(), "ended in Redis");
    let r =
        send(&c, "GET", format!("http://{a}/whoami"), &[session_cookie(&t), ua("firefox")]).await;
    assert_eq!(r.body["user"], Value::Null);
}

// Checklist 31: a login waiting for its second factor is not logged in (no principal, a page
// that needs a recent authentication answers 401, the user has no session in the index) until
// the second step completes it; each step rotates the token.
#[tokio::test]
async fn item_31_half_authenticated_states_never_count_as_logged_in() {
    let redis = RedisServer::start();
    let m = manager(&redis).await;
    let a = serve(SessionLayer::new(m.clone())).await;
    let c = Client::new();
    let r = send(&c, "POST", format!("http://{a}/mfa/start/yan"), &[]).await;
    assert_eq!(r.status, 200);
    let half = r.cookie_token(COOKIE).unwrap();
    let r = send(&c, "GET", format!("http://{a}/whoami"), &[session_cookie(&half)]).await;
    assert_eq!((r.body["user"].clone(), r.body["pending"].clone()), (Value::Null, json!("yan")));
    let r = send(&c, "GET", format!("http://{a}/secret"), &[session_cookie(&half)]).await;
    assert_eq!(r.status, 401);
    assert!(m.list_user("yan").await.unwrap().is_empty());
    let r = send(&c, "POST", format!("http://{a}/mfa/finish"), &[session_cookie(&half)]).await;
    assert_eq!(r.status, 200);
    let full = r.cookie_token(COOKIE).unwrap();
    assert_ne!(full, half);
    let r = send(&c, "GET", format!("http://{a}/whoami"), &[session_cookie(&full)]).await;
    assert_eq!((r.body["user"].clone(), r.body["pending"].clone()), (json!("yan"), Value::Null));
    let r = send(&c, "GET", format!("http://{a}/secret"), &[session_cookie(&full)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(m.list_user("yan").await.unwrap().len(), 1);
}
