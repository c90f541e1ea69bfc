//! What the examples other than `axum-app` share: log output, the session configuration read
//! from the environment, the listening address, and a visit counter served on axum.
//!
//! `axum-app` spells all of this out in one file (it is the README's example); the others call
//! these helpers so that each file shows only what is particular to it.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::{routing::get, Router};
use sesame::{SessionConfig, SessionManager, Store};
use sesame_axum::{Session, SessionError, SessionLayer};
use tracing_subscriber::EnvFilter;

/// The error type of the examples' `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Log lines on stderr, at the level `RUST_LOG` names (default `info`).
pub fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// `REDIS_URL`, or `redis://127.0.0.1:6379` when it is not set.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `LISTEN`, or `127.0.0.1:3000` when it is not set.
pub fn listen_addr() -> String {
    std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into())
}

/// The session configuration of the examples: 30 minutes idle, 12 hours at most, 10 sessions
/// per user, and the secret from `SESSION_SECRET` (32 or more random bytes shared by every
/// instance: `export SESSION_SECRET="$(openssl rand -base64 48)"`). Fails with a message
/// naming the variable when it is not set, and when the secret is too short.
pub fn session_config() -> Result<SessionConfig, BoxError> {
    let secret = std::env::var("SESSION_SECRET").map_err(|_| "set SESSION_SECRET")?;
    let config = SessionConfig::builder()
        .idle_timeout(Duration::from_secs(30 * 60))
        .absolute_timeout(Duration::from_secs(12 * 3600))
        .max_sessions_per_user(10)
        .token_secret(secret)
        .build()?;
    Ok(config)
}

async fn visits(session: Session) -> Result<String, SessionError> {
    let n: u64 = session.update("visits", |n: &mut u64| *n += 1).await?;
    Ok(format!("visit number {n}\n"))
}

/// Serves `GET /visits` (a per-session counter, answered `visit number N`) on
/// [`listen_addr`] with sessions in `store`, until the process ends.
pub async fn serve_visits(store: impl Store + 'static) -> Result<(), BoxError> {
    let manager = SessionManager::new(Arc::new(store), session_config()?);
    let app = Router::new().route("/visits", get(visits)).layer(SessionLayer::new(manager));
    let addr = listen_addr();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("listening on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// `DURABILITY_REPLICAS`: how many replicas must confirm each write (default 1). Use the number
/// of replicas per master (see `docs/OPERATIONS.md`).
pub fn durability_replicas() -> Result<u32, BoxError> {
    match std::env::var("DURABILITY_REPLICAS") {
        Err(_) => Ok(1),
        Ok(v) => v
            .parse()
            .map_err(|_| format!("DURABILITY_REPLICAS must be a whole number, not: {v}").into()),
    }
}

/// `DURABILITY_TIMEOUT_MS`: how long a write waits for its replicas to confirm it before the
/// request gets a 503 (default 500). Raise it where replicas can lag, such as a busy machine.
pub fn durability_timeout() -> Result<Duration, BoxError> {
    match std::env::var("DURABILITY_TIMEOUT_MS") {
        Err(_) => Ok(Duration::from_millis(500)),
        Ok(v) => v.parse().map(Duration::from_millis).map_err(|_| {
            format!("DURABILITY_TIMEOUT_MS must be a whole number of milliseconds, not: {v}").into()
        }),
    }
}

/// The response timeout to pair with a durability wait of `wait`: WAIT can block for its whole
/// timeout, so the reply is given half a second more, and never less than one second.
pub fn response_timeout_above(wait: Duration) -> Duration {
    (wait.saturating_add(Duration::from_millis(500))).max(Duration::from_secs(1))
}

/// `REDIS_URL`, which the Sentinel and Cluster examples need: fails with a message showing the
/// URL form (`example`) when it is not set.
pub fn required_redis_url(example: &str) -> Result<String, BoxError> {
    std::env::var("REDIS_URL").map_err(|_| format!("set REDIS_URL, for example {example}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_timeout_stays_above_the_durability_wait() {
        assert_eq!(response_timeout_above(Duration::from_millis(500)), Duration::from_secs(1));
        assert_eq!(response_timeout_above(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(response_timeout_above(Duration::from_secs(5)), Duration::from_millis(5500));
        assert_eq!(response_timeout_above(Duration::MAX), Duration::MAX);
    }
}
