//! The README's axum example, complete: a login, a visit counter and a logout, with sessions
//! in Redis and log output on stderr.
//!
//! Run it (Redis on 127.0.0.1:6379, or say where with `REDIS_URL`):
//!
//! ```sh
//! export SESSION_SECRET="$(openssl rand -base64 48)"
//! cargo run -p sesame-examples --bin axum-app
//! ```
//!
//! then call it with the curl lines of the README ("Using it with axum"). `LISTEN` changes the
//! address (default `127.0.0.1:3000`), `RUST_LOG` the log level (default `info`).
//!
//! The code below this comment is the README's, word for word (a test compares them).

use std::sync::Arc;
use std::time::Duration;

use axum::{
    routing::{get, post},
    Json, Router,
};
use sesame::{SessionConfig, SessionManager};
use sesame_axum::{Session, SessionError, SessionLayer};
use sesame_redis::RedisStore;
use tracing_subscriber::EnvFilter;

async fn login(session: Session, Json(user): Json<String>) -> Result<String, SessionError> {
    // ... check the credentials first ...
    session.login(&user).await?; // binds the user and rotates the token
    Ok(format!("logged in as {user}\n"))
}

async fn visits(session: Session) -> Result<String, SessionError> {
    // An exact read-modify-write: concurrent requests never lose a visit.
    let n: u64 = session.update("visits", |n: &mut u64| *n += 1).await?;
    Ok(format!("visit number {n}\n"))
}

async fn logout(session: Session) -> Result<String, SessionError> {
    session.logout().await?; // deleted in Redis, cookie cleared
    Ok("logged out\n".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Log lines on stderr; RUST_LOG=debug shows more.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = RedisStore::connect(&url).await?; // an unreachable Redis is named in the error
    let config = SessionConfig::builder()
        .idle_timeout(Duration::from_secs(30 * 60))
        .absolute_timeout(Duration::from_secs(12 * 3600))
        .max_sessions_per_user(10)
        // 32+ random bytes shared by every instance: export SESSION_SECRET="$(openssl rand -base64 48)"
        .token_secret(std::env::var("SESSION_SECRET").map_err(|_| "set SESSION_SECRET")?)
        .build()?;
    let manager = SessionManager::new(Arc::new(store), config);
    let app = Router::new()
        .route("/login", post(login))
        .route("/visits", get(visits))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(manager));

    let addr = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("listening on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
