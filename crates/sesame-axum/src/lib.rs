//! # sesame-axum — sessions for axum and tower
//!
//! ## Quick start
//!
//! Put a [`SessionLayer`] on the router and take a [`Session`] in the handlers; the layer
//! loads the session when a handler first asks, saves what changed after it, and sends the
//! cookie. The README's example (`examples/src/bin/axum-app.rs`) adds a login, a logout and
//! Redis.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use sesame::{MemoryStore, SessionConfig, SessionManager};
//! use sesame_axum::{Session, SessionError, SessionLayer};
//!
//! async fn visits(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.update("visits", |n: &mut u64| *n += 1).await?;
//!     Ok(format!("visit number {n}"))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = SessionConfig::builder()
//!         .token_secret(std::env::var("SESSION_SECRET").map_err(|_| "set SESSION_SECRET")?)
//!         .build()?;
//!     let manager = SessionManager::new(Arc::new(MemoryStore::new()), config);
//!     let app = Router::new().route("/", get(visits)).layer(SessionLayer::new(manager));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! A thin adapter over `sesame-http`, the framework-neutral core that `sesame-actix` shares:
//! the cookie, the transports, the choice of the request's token and the error responses
//! are defined there once ([`cookie`] and [`transport`] are its modules, re-exported), and
//! one HTTP test suite (`sesame_testkit::http_suite`) runs against both integrations.
//!
//! ## Layout
//!
//! - [`layer`]: [`SessionLayer`] — reads the token from the configured transports (rejecting
//!   malformed ones without a store call), puts a lazy [`sesame::Session`] in the request, and
//!   after the handler commits the changes and hands out or clears the token (with
//!   `Cache-Control: no-store` and `Vary` naming the transports' request headers). A failed
//!   commit replaces the handler's response with the error's (503, 401 when the session ended
//!   meanwhile, 413, 500): never a silent loss.
//! - [`extract`]: the [`Session`] extractor.
//! - [`cookie`]: [`CookieConfig`] — `__Host-` name, `Secure`, `HttpOnly`, `SameSite=Lax`,
//!   `Path=/`, no `Domain`, no `Max-Age` unless persistent; validated when built.
//! - [`transport`]: [`TransportConfig`] — the cookie, `Authorization: Bearer`, a named
//!   header, alone or together.
//! - [`error`]: [`SessionError`], a session error as a response (503 when the store is down,
//!   401 when the session ended or the login was revoked meanwhile).
//!
//! ## Transports
//!
//! By default the token travels in the session cookie only. [`TransportConfig`] (per layer,
//! [`SessionLayer::with_transport`]) turns on, instead or as well:
//!
//! - **bearer**: the request sends `Authorization: Bearer <token>`; the scheme may be in any
//!   letter case, followed by exactly one space and the token. Another scheme, more spaces,
//!   more than the token or a value over 4096 bytes is no token: the request has no session
//!   and causes no store call. New tokens come back in the response header `X-Session-Token`
//!   ([`BEARER_RESPONSE_HEADER`]), or in the named header when one is configured as well.
//! - **header**: a named request header (for example `X-Auth-Session`) carries the token as
//!   its whole value; new tokens come back in the response header of the same name.
//!
//! A transport that is not configured is not read: with only a header transport, a session
//! cookie is ignored (the request has no session, the cookie's session is untouched, and a
//! new session is handed out in the header, never in a cookie). A token is never read from
//! the URL: `?session=<token>` or any other query parameter gets no session.
//!
//! A new token (a new session, a login, a rotation) goes back the way the request's token
//! came (cookie, header or both); a request that presented no usable token gets it through
//! every configured transport. At logout the cookie is cleared (`Max-Age=0`) and the token
//! header is sent empty: the client must drop its token. Every header that carries a token
//! (`Set-Cookie` too) is marked sensitive ([`http::HeaderValue::set_sensitive`]), so HTTP/2
//! and HTTP/3 encoders keep it out of their compression tables.
//!
//! ## Which token a request has
//!
//! The layer collects every value the configured transports carry, in order: each
//! occurrence of the session cookie (the `Cookie` header is read byte by byte, so bytes
//! outside ASCII in other cookies hide nothing), each `Authorization: Bearer` value, each
//! value of the named header. Values that cannot be a token are skipped without hiding later
//! ones: an occurrence longer than 4096 bytes, or with anything but visible ASCII. Then:
//!
//! - one well-formed token (possibly repeated): that is the request's token;
//! - **two or more different well-formed tokens**: the request has **no token** at all (a
//!   read finds no session and causes no store call; a write starts a new session with a new
//!   token), and the layer logs it at debug level without any token. This is what a cookie
//!   planted beside the real one (for example by a sibling subdomain with a `Domain`
//!   attribute) or a cookie and a header that disagree produce: no presented token silently
//!   wins, and the sessions they belong to are left untouched;
//! - only malformed values: no session, no store call.
//!
//! ## Persistent cookies
//!
//! With [`CookieConfigBuilder::persistent`] the cookie carries `Max-Age`, the session's
//! remaining life. The layer sends it again, with the same token and a fresh `Max-Age`,
//! whenever the request pushed that life forward: a save, or a read that pushed the idle
//! deadline (see `touch_after`); and on every use once the absolute deadline caps the
//! session's life, so that `Max-Age` ends there. A read that pushed nothing sends no cookie,
//! and deciding costs no store call. Browser-session cookies (the default) are never sent
//! again.
//!
//! ## Errors carry no session data
//!
//! A stored value that cannot be read as the type asked for (or a value that cannot be
//! written) is a 400 whose body names the attribute and quotes nothing of the value; an exact
//! update that fails at commit on a value stored meanwhile is a 500 with a generic body. What
//! the layer logs about either quotes no value either.
#![forbid(unsafe_code)]

pub mod error;
pub mod extract;
mod headers;
pub mod layer;

pub use error::SessionError;
pub use extract::{MissingSessionLayer, Session};
pub use layer::{SessionLayer, SessionService};
/// The session cookie (from `sesame-http`, shared with the other framework integrations).
pub use sesame_http::cookie;
/// Where the session token travels (from `sesame-http`, shared with the other framework
/// integrations).
pub use sesame_http::transport;
pub use sesame_http::{
    CookieConfig, CookieConfigBuilder, SameSite, TransportConfig, TransportConfigBuilder,
    BEARER_RESPONSE_HEADER,
};

/// The README's examples, compiled as doc tests so that they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Entry point into the private cookie lookup, for property tests and fuzz targets. Not part
/// of the API: it may change or go away in any release.
#[doc(hidden)]
pub mod fuzzing {
    /// Every value of the session cookie in the request's `Cookie` headers that can be a
    /// token, in order.
    pub fn cookie_occurrences<'a>(
        cookie: &crate::CookieConfig,
        headers: &'a http::HeaderMap,
    ) -> Vec<&'a str> {
        cookie.occurrences(&crate::headers::Headers(headers))
    }
}
