//! Picking the request's token from the transports of a [`TransportConfig`] (the type is
//! `sesame_axum::TransportConfig`, reused as is; its token lookup is private to that crate,
//! so the same rule is applied here to actix-web's headers).

use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use sesame::TokenCodec;
use sesame_axum::TransportConfig;

use crate::cookie::{visible_ascii, CookieConfig};

/// Longest `Authorization` or token header value looked at, in bytes.
const MAX_TOKEN_HEADER_BYTES: usize = 4096;

/// How many different values a request may present before all of them are ignored.
const MAX_CANDIDATES: usize = 8;

/// What a request presented as its token.
#[derive(Debug, Default)]
pub(crate) struct Presented<'a> {
    /// The one well-formed token presented, else the first malformed one, else none.
    pub(crate) token: Option<&'a str>,
    /// The well-formed token came in the cookie.
    pub(crate) via_cookie: bool,
    /// The well-formed token came in a header (bearer or named).
    pub(crate) via_header: bool,
}

impl Presented<'_> {
    /// Whether a well-formed token came in any transport.
    pub(crate) fn any(&self) -> bool {
        self.via_cookie || self.via_header
    }
}

/// The named header of `t`, as an actix-web header name.
pub(crate) fn named_header(t: &TransportConfig) -> Option<HeaderName> {
    t.header().and_then(|h| HeaderName::from_bytes(h.as_str().as_bytes()).ok())
}

/// The response header new tokens go to header clients in.
pub(crate) fn response_header(t: &TransportConfig) -> Option<HeaderName> {
    t.response_header().and_then(|h| HeaderName::from_bytes(h.as_str().as_bytes()).ok())
}

/// The request headers a response depends on, for `Vary`.
pub(crate) fn vary(t: &TransportConfig) -> String {
    let mut names: Vec<&str> = Vec::new();
    if t.cookie() {
        names.push("Cookie");
    }
    if t.bearer() {
        names.push("Authorization");
    }
    if let Some(h) = t.header() {
        names.push(h.as_str());
    }
    names.join(", ")
}

/// Picks the request's token from every configured transport, never from the URL. Two or more
/// different well-formed tokens mean no token at all.
pub(crate) fn presented<'a>(
    t: &TransportConfig,
    cookie: &CookieConfig,
    codec: &TokenCodec,
    headers: &'a HeaderMap,
) -> Presented<'a> {
    let mut seen: Vec<(&'a str, bool, bool)> = Vec::new();
    let mut too_many = false;
    let mut add = |v: &'a str, from_cookie: bool| {
        if let Some(e) = seen.iter_mut().find(|e| e.0 == v) {
            e.1 |= from_cookie;
            e.2 |= !from_cookie;
        } else if seen.len() < MAX_CANDIDATES {
            seen.push((v, from_cookie, !from_cookie));
        } else {
            too_many = true;
        }
    };
    if t.cookie() {
        for v in cookie.occurrences(headers) {
            add(v, true);
        }
    }
    if t.bearer() {
        for h in headers.get_all(AUTHORIZATION) {
            if let Some(v) = bearer_token(h.as_bytes()) {
                add(v, false);
            }
        }
    }
    if let Some(name) = named_header(t) {
        for h in headers.get_all(name) {
            let b = h.as_bytes();
            if !b.is_empty() && b.len() <= MAX_TOKEN_HEADER_BYTES {
                if let Some(v) = visible_ascii(b) {
                    add(v, false);
                }
            }
        }
    }
    if too_many {
        tracing::debug!(
            limit = MAX_CANDIDATES,
            "the request presented too many different session tokens; it has none"
        );
        return Presented::default();
    }
    let mut good = seen.iter().filter(|e| codec.parse(e.0).is_ok());
    match (good.next(), good.next()) {
        (Some(&(token, via_cookie, via_header)), None) => {
            Presented { token: Some(token), via_cookie, via_header }
        }
        (None, _) => Presented { token: seen.first().map(|e| e.0), ..Presented::default() },
        (Some(_), Some(_)) => {
            tracing::debug!(
                "the request presented different well-formed session tokens; it has none"
            );
            Presented::default()
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value: the scheme in any case, exactly one
/// space, then visible ASCII only.
fn bearer_token(v: &[u8]) -> Option<&str> {
    if v.len() > MAX_TOKEN_HEADER_BYTES {
        return None;
    }
    let (scheme, rest) = v.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.strip_prefix(b" ")?;
    if token.is_empty() {
        return None;
    }
    visible_ascii(token)
}
