//! `sesame serve`: the session core as an HTTP service with a versioned JSON API, so that apps
//! in other languages share sessions with Rust apps (same stores, token format and secret).
//! The API is described in `docs/SERVICE.md` and, as OpenAPI 3, in `docs/openapi.json`, which
//! the service also answers at `GET /v1/openapi.json`.

mod api;
mod reply;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sesame::{SessionConfig, SessionManager};
use sesame_http::{CookieConfig, SessionSettings, TransportConfig};
use sha2::{Digest as _, Sha256};

use crate::demo::{open_store_with, redact};

/// The header that carries the service credential.
pub const SERVICE_KEY_HEADER: &str = "x-sesame-service-key";
/// Shortest service credential accepted, in bytes.
pub const MIN_SERVICE_KEY_BYTES: usize = 16;
/// The OpenAPI 3 document of the API (also `docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// Options of `sesame serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Store URL; `None` for the in-memory store.
    pub store: Option<String>,
    /// Session configuration (with the shared token secret).
    pub config: SessionConfig,
    /// The cookie name a forwarded `Cookie` header is read under.
    pub cookie_name: String,
    /// The named header a token may come in.
    pub token_header: String,
    /// The header whose first value is the client's address, recorded at creation.
    pub client_ip_header: Option<String>,
    /// The service credential; `None`: the endpoints that need it answer 403.
    pub service_key: Option<Vec<u8>>,
    /// Replicas that must confirm each write, and how long to wait for them.
    pub durability: Option<(u32, Duration)>,
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct Service {
    settings: SessionSettings,
    /// SHA-256 of the service credential: compared in constant time with the digest of what
    /// a request presents, so neither the key's bytes nor its length leak through timing.
    key_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Service { .. }")
    }
}

/// The service's router on `manager`.
pub fn router(manager: SessionManager, opts: &ServeOptions) -> Result<Router, String> {
    if let Some(k) = &opts.service_key {
        if k.len() < MIN_SERVICE_KEY_BYTES {
            return Err(format!(
                "the service key (SESAME_SERVICE_KEY) must be at least {MIN_SERVICE_KEY_BYTES} bytes"
            ));
        }
    }
    let cookie = CookieConfig::builder()
        .name(opts.cookie_name.clone())
        .build()
        .map_err(|e| format!("--cookie-name: {e}"))?;
    let transport = TransportConfig::builder()
        .cookie(true)
        .bearer(true)
        .header(opts.token_header.clone())
        .build()
        .map_err(|e| format!("--token-header: {e}"))?;
    let settings = SessionSettings {
        manager,
        cookie: Arc::new(cookie),
        transport: Arc::new(transport),
        client_ip_header: opts.client_ip_header.as_ref().map(|h| h.to_ascii_lowercase()),
    };
    let key_digest = opts.service_key.as_ref().map(|k| Sha256::digest(k).into());
    Ok(api::routes(Service { settings, key_digest }))
}

/// Opens the store and builds the router.
pub async fn build(opts: &ServeOptions) -> Result<Router, String> {
    let store = open_store_with(opts.store.as_deref(), opts.durability).await?;
    router(SessionManager::new(store, opts.config.clone()), opts)
}

/// Runs the service until Ctrl-C. Prints `listening on http://ADDR` on standard error once it
/// accepts connections.
pub async fn run(opts: ServeOptions) -> Result<(), String> {
    let router = build(&opts).await?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let store = opts.store.as_deref().map_or("the in-memory store".to_string(), redact);
    if opts.service_key.is_none() {
        tracing::warn!(
            "no SESAME_SERVICE_KEY: login and the per-user endpoints answer 403 until one is set"
        );
    }
    eprintln!("sesame serve: sessions on {store}\nlistening on http://{addr}");
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}
