//! # sesame-axum — sessions for axum and tower
//!
//! ## Layout
//!
//! - [`layer`]: [`SessionLayer`] — reads the token from the cookie (rejecting malformed ones
//!   without a store call), puts a lazy [`sesame::Session`] in the request, and after the
//!   handler commits the changes and sets or clears the cookie (with `Cache-Control:
//!   no-store` and `Vary: Cookie`). A failed commit replaces the handler's response with the
//!   error's (503, 401 when the session ended meanwhile, 413, 500): never a silent loss.
//! - [`extract`]: the [`Session`] extractor.
//! - [`cookie`]: [`CookieConfig`] — `__Host-` name, `Secure`, `HttpOnly`, `SameSite=Lax`,
//!   `Path=/`, no `Domain`, no `Max-Age` unless persistent; validated when built.
//! - [`error`]: [`SessionError`], a session error as a response (503 when the store is down,
//!   401 when the session ended or the login was revoked meanwhile).
#![forbid(unsafe_code)]

pub mod cookie;
pub mod error;
pub mod extract;
pub mod layer;

pub use cookie::{CookieConfig, CookieConfigBuilder, SameSite};
pub use error::SessionError;
pub use extract::{MissingSessionLayer, Session};
pub use layer::{SessionLayer, SessionService};

/// The README's examples, compiled as doc tests so that they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Entry point into the private cookie lookup, for property tests and fuzz targets. Not part
/// of the API: it may change or go away in any release.
#[doc(hidden)]
pub mod fuzzing {
    /// The session token candidate `cookie` finds in the request's `Cookie` headers.
    pub fn find_cookie<'a>(
        cookie: &crate::CookieConfig,
        headers: &'a http::HeaderMap,
    ) -> Option<&'a str> {
        cookie.find(headers)
    }
}
