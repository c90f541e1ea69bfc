//! # sesame-http — the HTTP rules of sesame, for any web framework
//!
//! The framework integrations (`sesame-axum`, `sesame-actix`) are thin adapters over this
//! crate, which works on plain header bytes and returns plain data, so that every framework
//! gets exactly the same behaviour:
//!
//! - [`cookie`]: [`CookieConfig`] — `__Host-` name, `Secure`, `HttpOnly`, `SameSite=Lax`,
//!   `Path=/`, no `Domain`, no `Max-Age` unless persistent; validated when built (the
//!   `__Host-` and `__Secure-` prefixes in any letter case). Its `Set-Cookie` values, and the
//!   lookup of its value over every `Cookie` header a request sent.
//! - [`transport`]: [`TransportConfig`] — the cookie, `Authorization: Bearer`, a named header,
//!   alone or together; and the rule that picks the request's token from what it presents
//!   (two different well-formed tokens: none).
//! - [`error`]: a session error as a status code, a JSON body and a `Retry-After`
//!   ([`ErrorReply`]).
//! - [`exchange`]: one request from start to finish ([`Exchange`]): open the lazy session from
//!   the request's headers, then commit and list the response headers to add (or the error to
//!   answer instead).
//! - [`HeaderLookup`]: the one thing an adapter provides, every value of a request header.
//!
//! ```
//! use std::sync::Arc;
//! use sesame_http::{Exchange, SessionSettings};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config = sesame::SessionConfig::builder().insecure_development_secret().build().unwrap();
//! let manager = sesame::SessionManager::new(Arc::new(sesame::MemoryStore::new()), config);
//! let settings = SessionSettings::new(manager);
//! let request: &[(&str, &[u8])] = &[("user-agent", b"example")];
//! let exchange = Exchange::open(&settings, request, None);
//! exchange.session().insert("n", &1).await.unwrap();
//! let headers = exchange.finish().await.unwrap();
//! assert_eq!(headers[0].name, "set-cookie");
//! assert!(headers[0].value.starts_with("__Host-sesame="));
//! # });
//! ```
#![forbid(unsafe_code)]

pub mod cookie;
pub mod error;
pub mod exchange;
mod headers;
pub mod transport;

pub use cookie::{CookieConfig, CookieConfigBuilder, SameSite};
pub use error::{describe, status, ErrorReply};
pub use exchange::{Exchange, HeaderOut, SessionSettings};
pub use headers::HeaderLookup;
pub use transport::{Presented, TransportConfig, TransportConfigBuilder, BEARER_RESPONSE_HEADER};
