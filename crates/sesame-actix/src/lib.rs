//! # sesame-actix — sessions for actix-web
//!
//! ## Quick start
//!
//! ```no_run
//! use std::sync::Arc;
//! use actix_web::{web, App, HttpServer};
//! use sesame_actix::{Session, SessionError, SessionMiddleware};
//!
//! async fn count(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", &n).await?;
//!     Ok(format!("{n} visits"))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // 32+ random bytes shared by every instance: export SESSION_SECRET="$(openssl rand -base64 48)"
//!     let secret = std::env::var("SESSION_SECRET")
//!         .map_err(|_| std::io::Error::other("set SESSION_SECRET (openssl rand -base64 48)"))?;
//!     let config = sesame::SessionConfig::builder()
//!         .token_secret(secret)
//!         .build()
//!         .map_err(std::io::Error::other)?;
//!     let manager = sesame::SessionManager::new(Arc::new(sesame::MemoryStore::new()), config);
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(SessionMiddleware::new(manager.clone()))
//!             .route("/", web::get().to(count))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! }
//! ```
//!
//! ## What it does
//!
//! The same semantics as `sesame-axum`'s session layer, on actix-web: both are thin adapters
//! over `sesame-http`, the framework-neutral core that reads the token from the request's
//! headers, writes `Set-Cookie` and the token header, and maps errors to responses; and one
//! HTTP test suite (`sesame_testkit::http_suite`) runs against both.
//!
//! - [`SessionMiddleware`] reads the token from the configured transports, puts a lazy
//!   [`sesame::Session`] in the request (a request whose handler never touches it costs no
//!   store call), and after the handler commits the changes (nothing is written when nothing
//!   changed) and hands out or clears the token, with `Cache-Control: no-store` and `Vary`
//!   naming the transports' request headers. A token the server never issued is never
//!   adopted: writing through it starts a session under a new token.
//! - A failed commit replaces the handler's response with the error's: 503 with
//!   `Retry-After: 1` when the store is down, 401 when the session ended meanwhile, 413 for
//!   a limit, 429 for a refused creation. Bodies are JSON `{"error": ...}` and never hold a
//!   token or a value ([`SessionError`]).
//! - [`CookieConfig`]: by default `__Host-sesame; Path=/; Secure; HttpOnly; SameSite=Lax`,
//!   without `Max-Age`; at logout the cookie is cleared with `Max-Age=0`.
//! - [`TransportConfig`] (the type of `sesame-http`, re-exported): the cookie,
//!   `Authorization: Bearer` (new tokens in `X-Session-Token`) and a named header, alone or
//!   together. A token is never read from the URL.
//! - [`SessionMiddleware::client_ip_header`]: the client's address from a header set by a
//!   proxy (for example `X-Forwarded-For`) instead of the peer address, for the hooks (such
//!   as [`sesame::CreationRateLimit`], whose refusal is a 429 with `Retry-After`).
#![forbid(unsafe_code)]

pub mod error;
pub mod extract;
mod headers;
pub mod middleware;

pub use error::SessionError;
pub use extract::{MissingSessionMiddleware, Session};
pub use middleware::{SessionMiddleware, SessionService};
/// The session cookie (from `sesame-http`, shared with the other framework integrations).
pub use sesame_http::cookie;
/// Where the session token travels (from `sesame-http`, shared with the other framework
/// integrations).
pub use sesame_http::transport;
pub use sesame_http::{
    CookieConfig, CookieConfigBuilder, SameSite, TransportConfig, TransportConfigBuilder,
    BEARER_RESPONSE_HEADER,
};
