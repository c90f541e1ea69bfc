//! The HTTP servers under test: the ceiling (the same routes without sessions) and the
//! session app (the same routes on a sesame [`SessionLayer`] over some store).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sesame::{SessionConfig, SessionManager, Store};
use sesame_axum::{CookieConfig, Session, SessionError, SessionLayer};
use sesame_bench::{content, BenchError, BenchResult};

/// Name of the session cookie: plain HTTP, so no `__Host-` prefix and no `Secure`.
pub(crate) const COOKIE_NAME: &str = "sid";

/// The user every ceiling response names (the same length as a real principal).
const CEILING_USER: &str = "user-000123";

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    /// The principal, `user-NNNNNN`.
    pub(crate) user: String,
}

/// The user number of a principal `user-NNNNNN`, which selects its profile.
pub(crate) fn user_number(principal: &str) -> Option<u32> {
    principal.strip_prefix("user-")?.parse().ok()
}

/// The router without sessions: fixed JSON of the same shape as the session app's, cookies
/// ignored. Its throughput is the ceiling the session servers are compared with.
pub(crate) fn ceiling_router() -> Router {
    Router::new()
        .route("/login", post(|| async { Json(ceiling_user()) }))
        .route("/me", get(|| async { Json(ceiling_me()) }))
        .route("/me_ro", get(|| async { Json(ceiling_user()) }))
}

/// The ceilings' answer to `POST /login` and `GET /me_ro`, built per request as a session
/// server builds its own.
pub(crate) fn ceiling_user() -> Value {
    json!({ "user_id": CEILING_USER })
}

/// The ceilings' answer to `GET /me`.
pub(crate) fn ceiling_me() -> Value {
    json!({ "user_id": CEILING_USER, "hits": 1 })
}

/// What the handler-only server decodes on every request: one user's attributes as the
/// session servers store them (JSON text), kept in the process.
struct Stored {
    user_id: Vec<u8>,
    profile: Vec<u8>,
    hits: Vec<u8>,
}

/// The router without sessions that still does the session app's handler work: every request
/// decodes `user_id` and the profile (and `/me` also `hits`, and encodes `hits + 1`, as the
/// session app's `insert` does) from JSON kept in memory, and answers the same bodies as the
/// session app. What a session server costs beyond it is the session layer's own cost: its
/// cookie, token check, store and commit.
pub(crate) fn handler_only_router() -> BenchResult<Router> {
    let encode = |v: &Value| {
        serde_json::to_vec(v).map_err(|e| BenchError::new(format!("encoding content: {e}")))
    };
    let stored = Arc::new(Stored {
        user_id: encode(&json!(CEILING_USER))?,
        profile: encode(&content::profile(123))?,
        hits: encode(&json!(0u64))?,
    });
    Ok(Router::new()
        .route("/login", post(|| async { Json(ceiling_user()) }))
        .route("/me", get(handler_only_me))
        .route("/me_ro", get(handler_only_me_ro))
        .with_state(stored))
}

/// `handler-only`'s `GET /me`: what [`read_and_count`] decodes and encodes, without a session.
async fn handler_only_me(State(s): State<Arc<Stored>>) -> Result<Json<Value>, StatusCode> {
    let user = decode_user(&s)?;
    let hits: u64 = serde_json::from_slice(&s.hits).map_err(internal)?;
    std::hint::black_box(serde_json::to_vec(&(hits + 1)).map_err(internal)?);
    Ok(Json(json!({ "user_id": user, "hits": hits + 1 })))
}

/// `handler-only`'s `GET /me_ro`: what [`read_only`] decodes, without a session.
async fn handler_only_me_ro(State(s): State<Arc<Stored>>) -> Result<Json<Value>, StatusCode> {
    Ok(Json(json!({ "user_id": decode_user(&s)? })))
}

/// `user_id` and the profile (kept from the optimizer), decoded as the session app's
/// [`read_user`] decodes them; answers `user_id`.
fn decode_user(s: &Stored) -> Result<String, StatusCode> {
    let user: String = serde_json::from_slice(&s.user_id).map_err(internal)?;
    let profile: Value = serde_json::from_slice(&s.profile).map_err(internal)?;
    std::hint::black_box(profile);
    Ok(user)
}

/// A decoding error of the handler-only server (its content is fixed: never expected).
fn internal(_: serde_json::Error) -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

/// A session manager on `store` with the default session configuration.
pub(crate) fn manager(store: Arc<dyn Store>) -> SessionManager {
    SessionManager::new(
        store,
        SessionConfig::builder().insecure_development_secret().build().unwrap(),
    )
}

/// The session cookie: default settings but for its name and `Secure` (plain HTTP here).
pub(crate) fn cookie() -> BenchResult<CookieConfig> {
    CookieConfig::builder()
        .name(COOKIE_NAME)
        .secure(false)
        .build()
        .map_err(|e| BenchError::new(format!("cookie config: {e}")))
}

/// The session app on `store` with the default session configuration.
pub(crate) fn session_router(store: Arc<dyn Store>) -> BenchResult<(Router, SessionManager)> {
    let manager = manager(store);
    let router = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/me_ro", get(me_ro))
        .layer(SessionLayer::new(manager.clone()).with_cookie(cookie()?));
    Ok((router, manager))
}

/// Binds `127.0.0.1:0` and serves `router` on the current runtime; returns the address.
pub(crate) async fn serve(router: Router) -> BenchResult<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| BenchError::new(format!("cannot bind a loopback port: {e}")))?;
    let addr = listener.local_addr().map_err(|e| BenchError::new(format!("local address: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("error: server on {addr} stopped: {e}");
        }
    });
    Ok(addr)
}

/// Runs `connect` inside a current-thread runtime on a thread of its own (named `thread`), which
/// then goes on running the tasks it started (a Redis client's connection task) for the rest
/// of the process, as an actix system's thread runs an actix-web server's store.
pub(crate) fn on_own_thread<T, E, F>(thread: &str, connect: F) -> BenchResult<T>
where
    T: Send + 'static,
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel::<BenchResult<T>>();
    let name = thread.to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(BenchError::new(format!("{name} runtime: {e}"))));
                    return;
                }
            };
            rt.block_on(async move {
                let out = connect.await.map_err(|e| BenchError::new(format!("{name}: {e}")));
                let _ = tx.send(out);
                std::future::pending::<()>().await
            });
        })
        .map_err(|e| BenchError::new(format!("{thread} thread: {e}")))?;
    rx.recv().map_err(|_| BenchError::new(format!("the {thread} thread ended early")))?
}

/// Serves `router` on a loopback port from `workers` threads, each with a current-thread tokio
/// runtime accepting on the same listener: the runtime model of an actix-web server, on axum.
pub(crate) fn serve_per_thread(
    name: &str,
    router: Router,
    workers: usize,
) -> BenchResult<SocketAddr> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| BenchError::new(format!("cannot bind a loopback port: {e}")))?;
    let addr = listener.local_addr().map_err(|e| BenchError::new(format!("local address: {e}")))?;
    for worker in 0..workers {
        let listener = listener
            .try_clone()
            .map_err(|e| BenchError::new(format!("cannot share the listener: {e}")))?;
        let router = router.clone();
        // Each worker's thread says whether its runtime took the listener before the next starts.
        on_own_thread(&format!("{name}-{worker}"), async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    eprintln!("error: server on {addr} stopped: {e}");
                }
            });
            Ok::<(), std::io::Error>(())
        })?;
    }
    Ok(addr)
}

/// `POST /login {"user": "user-000123"}`: logs the user in (rotating the token) and stores
/// `user_id`, `profile` and `hits` = 0.
async fn login(session: Session, Json(body): Json<Login>) -> Response {
    let Some(n) = user_number(&body.user) else {
        return (StatusCode::BAD_REQUEST, "the user must be user-NNNNNN").into_response();
    };
    match log_in(&session, &body.user, n).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => SessionError(e).into_response(),
    }
}

/// `GET /me`: see [`read_and_count`].
async fn me(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(read_and_count(&session).await?))
}

/// `GET /me_ro`: see [`read_only`].
async fn me_ro(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(read_only(&session).await?))
}

/// What `POST /login` does on any framework: logs `user` (user number `n`) in, rotating the
/// token, and stores `user_id`, `profile` and `hits` = 0; answers the body.
pub(crate) async fn log_in(
    session: &sesame::Session,
    user: &str,
    n: u32,
) -> Result<Value, sesame::Error> {
    session.login(user).await?;
    session.insert("user_id", &user).await?;
    session.insert("profile", &content::profile(n)).await?;
    session.insert("hits", &0u64).await?;
    Ok(json!({ "user_id": user }))
}

/// Reads the logged-in user's `user_id` and `profile`; a missing attribute is a 401.
async fn read_user(session: &sesame::Session) -> Result<(String, Value), sesame::Error> {
    let user: String = session.get("user_id").await?.ok_or(sesame::Error::NotLoggedIn)?;
    let profile: Value = session.get("profile").await?.ok_or(sesame::Error::NotLoggedIn)?;
    Ok((user, profile))
}

/// What `GET /me` does on any framework: reads `user_id`, `profile` and `hits`, stores
/// `hits + 1`; answers the body.
pub(crate) async fn read_and_count(session: &sesame::Session) -> Result<Value, sesame::Error> {
    let (user, _profile) = read_user(session).await?;
    let hits: u64 = session.get("hits").await?.ok_or(sesame::Error::NotLoggedIn)?;
    session.insert("hits", &(hits + 1)).await?;
    Ok(json!({ "user_id": user, "hits": hits + 1 }))
}

/// What `GET /me_ro` does on any framework: reads `user_id` and `profile` and changes nothing,
/// so nothing is written; answers the body.
pub(crate) async fn read_only(session: &sesame::Session) -> Result<Value, sesame::Error> {
    let (user, _profile) = read_user(session).await?;
    Ok(json!({ "user_id": user }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Principals map to their user number; anything else is refused.
    #[test]
    fn user_numbers() {
        assert_eq!(user_number("user-000123"), Some(123));
        assert_eq!(user_number("user-x"), None);
        assert_eq!(user_number("admin"), None);
    }
}
