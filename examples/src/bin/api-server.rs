//! An API for programs rather than browsers: the session token travels in headers, never in a
//! cookie. A client logs in, reads its token from the `X-Session-Token` response header, sends
//! it back as `Authorization: Bearer <token>`, and drops it at logout (the header comes back
//! empty). `api-client` is such a client.
//!
//! Run it (Redis on 127.0.0.1:6379, or say where with `REDIS_URL`):
//!
//! ```sh
//! export SESSION_SECRET="$(openssl rand -base64 48)"
//! cargo run -p sesame-examples --bin api-server
//! # in another terminal:
//! cargo run -p sesame-examples --bin api-client
//! ```
//!
//! Routes: `POST /login` with `{"user": "alice"}`, `GET /me` (the user and a call counter; 401
//! before login), `POST /logout`. `LISTEN` changes the address (default `127.0.0.1:3000`).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;
use sesame::SessionManager;
use sesame_axum::{Session, SessionError, SessionLayer, TransportConfig};
use sesame_examples::{init_logs, listen_addr, redis_url, session_config, BoxError};
use sesame_redis::RedisStore;

#[derive(Deserialize)]
struct Credentials {
    user: String,
}

async fn login(session: Session, Json(creds): Json<Credentials>) -> Result<Response, SessionError> {
    // ... check the credentials first ...
    session.login(&creds.user).await?; // the new token goes out in X-Session-Token
    Ok(Json(json!({ "user": creds.user })).into_response())
}

async fn me(session: Session) -> Result<Response, SessionError> {
    let Some(user) = session.principal().await? else {
        return Ok(
            (StatusCode::UNAUTHORIZED, Json(json!({ "error": "log in first" }))).into_response()
        );
    };
    let calls: u64 = session.update("calls", |n: &mut u64| *n += 1).await?;
    Ok(Json(json!({ "user": user, "calls": calls })).into_response())
}

async fn logout(session: Session) -> Result<Response, SessionError> {
    session.logout().await?; // X-Session-Token comes back empty: drop the token
    Ok(Json(json!({ "logged_out": true })).into_response())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    init_logs();
    let store = RedisStore::connect(&redis_url()).await?;
    let manager = SessionManager::new(Arc::new(store), session_config()?);
    // Bearer only: a session cookie, if a client sends one, is ignored.
    let transport = TransportConfig::builder().cookie(false).bearer(true).build()?;
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(manager).with_transport(transport));
    let addr = listen_addr();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("listening on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
