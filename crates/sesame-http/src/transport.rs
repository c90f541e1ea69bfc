//! Where the session token travels: the cookie (the default), `Authorization: Bearer`, or a
//! named request header; and the rule that picks the request's token from what it presents.

use sesame::TokenCodec;

use crate::cookie::CookieConfig;
use crate::headers::{is_tchar, visible_ascii, HeaderLookup};

/// The response header that carries a new token to a client of the bearer transport, when no
/// named header is configured.
pub const BEARER_RESPONSE_HEADER: &str = "x-session-token";

/// Longest `Authorization` or token header value looked at, in bytes; longer ones are
/// ignored.
pub const MAX_TOKEN_HEADER_BYTES: usize = 4096;

/// How many different values a request may present for its token before all of them are
/// ignored.
const MAX_CANDIDATES: usize = 8;

/// Request headers a named token header may not be: they mean something else to HTTP.
const RESERVED: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "host",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "vary",
    "cache-control",
];

/// The transports a session layer or middleware reads the token from and hands new tokens out
/// through. The default is the cookie alone.
///
/// - **cookie**: the [`CookieConfig`] cookie; new tokens in `Set-Cookie`.
/// - **bearer**: `Authorization: Bearer <token>` (the scheme in any case, one space, the
///   token; anything else is ignored); new tokens in the response header
///   [`BEARER_RESPONSE_HEADER`] (`X-Session-Token`), or in the named header when one is
///   configured too.
/// - **header**: a named request header whose whole value is the token; new tokens in the
///   response header of the same name.
///
/// ```
/// use sesame_http::TransportConfig;
/// let api = TransportConfig::builder().cookie(false).bearer(true).build().unwrap();
/// assert!(api.bearer() && !api.cookie());
/// assert!(TransportConfig::builder().header("cookie").build().is_err());
/// assert!(TransportConfig::builder().cookie(false).build().is_err(), "no transport at all");
/// ```
#[derive(Debug, Clone)]
pub struct TransportConfig {
    cookie: bool,
    bearer: bool,
    header: Option<String>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig { cookie: true, bearer: false, header: None }
    }
}

/// Builder of [`TransportConfig`], starting from the cookie alone.
#[derive(Debug, Clone)]
pub struct TransportConfigBuilder {
    cookie: bool,
    bearer: bool,
    header: Option<String>,
}

impl Default for TransportConfigBuilder {
    fn default() -> Self {
        TransportConfigBuilder { cookie: true, bearer: false, header: None }
    }
}

impl TransportConfigBuilder {
    /// Reads and sends the token in the cookie (default on).
    pub fn cookie(mut self, on: bool) -> Self {
        self.cookie = on;
        self
    }

    /// Reads the token from `Authorization: Bearer` (default off).
    pub fn bearer(mut self, on: bool) -> Self {
        self.bearer = on;
        self
    }

    /// Reads the token from this request header (for example `X-Session-Token`), and sends new
    /// tokens in the response header of the same name (default none).
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.header = Some(name.into());
        self
    }

    /// Validates the settings: at least one transport; a named header that is a valid header
    /// name (1 to 128 token characters, kept in lower case) and none that HTTP or the other
    /// transports use (`Cookie`, `Authorization`, `Host`, `Content-Length`, ...).
    pub fn build(self) -> Result<TransportConfig, sesame::Error> {
        let b = self;
        let bad = |m: &str| Err(sesame::Error::Config(format!("session transport: {m}")));
        let header = match &b.header {
            None => None,
            Some(name) => {
                if name.is_empty() || name.len() > 128 || !name.bytes().all(is_tchar) {
                    return bad("the token header's name is not a valid header name");
                }
                let h = name.to_ascii_lowercase();
                if RESERVED.contains(&h.as_str()) {
                    return bad("the token header cannot be a header HTTP uses for something else");
                }
                Some(h)
            }
        };
        if !b.cookie && !b.bearer && header.is_none() {
            return bad("at least one of cookie, bearer and header is needed");
        }
        Ok(TransportConfig { cookie: b.cookie, bearer: b.bearer, header })
    }
}

/// What a request presented as its token.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    /// The text to open the session with: the one well-formed token presented, else the first
    /// malformed one (so that it is counted as invalid), else none.
    pub token: Option<&'a str>,
    /// The well-formed token came in the cookie. (A lone value counts as well formed by its
    /// form alone: its check value is verified when the session is opened.)
    pub via_cookie: bool,
    /// The well-formed token came in a header (bearer or named).
    pub via_header: bool,
}

impl TransportConfig {
    /// A builder starting from the cookie alone.
    pub fn builder() -> TransportConfigBuilder {
        TransportConfigBuilder::default()
    }

    /// Whether the cookie transport is on.
    pub fn cookie(&self) -> bool {
        self.cookie
    }

    /// Whether the bearer transport is on.
    pub fn bearer(&self) -> bool {
        self.bearer
    }

    /// The named token header, in lower case, if configured.
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// The response header new tokens are sent in to header clients: the named header, else
    /// [`BEARER_RESPONSE_HEADER`] when bearer is on, else none.
    pub fn response_header(&self) -> Option<&str> {
        match (&self.header, self.bearer) {
            (Some(h), _) => Some(h),
            (None, true) => Some(BEARER_RESPONSE_HEADER),
            (None, false) => None,
        }
    }

    /// The request headers a response depends on, for `Vary`: `Cookie`, `Authorization`
    /// and the named header, as configured.
    pub fn vary(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        if self.cookie {
            names.push("Cookie");
        }
        if self.bearer {
            names.push("Authorization");
        }
        if let Some(h) = &self.header {
            names.push(h);
        }
        names.join(", ")
    }

    /// Picks the request's token from every configured transport; nothing is ever read from
    /// the URL. Occurrences that cannot be a token are skipped; when the request presents two
    /// or more different well-formed tokens (a cookie planted next to the real one, or a
    /// cookie and a header that disagree), it has no token at all, so that none of them, in
    /// particular not an attacker's, is used.
    pub fn presented<'a, H: HeaderLookup<'a> + ?Sized>(
        &self,
        cookie: &CookieConfig,
        codec: &TokenCodec,
        headers: &H,
    ) -> Presented<'a> {
        // (value, came in the cookie, came in a header), in order of appearance.
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
        if self.cookie {
            for v in cookie.occurrences(headers) {
                add(v, true);
            }
        }
        if self.bearer {
            for h in headers.all("authorization") {
                if let Some(v) = bearer_token(h) {
                    add(v, false);
                }
            }
        }
        if let Some(name) = &self.header {
            for b in headers.all(name) {
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
        // One candidate is the request's token whether or not it checks out, and opening the
        // session verifies its check value: here its form is enough to say where it came from.
        // Only a choice between several candidates costs check values here.
        if let [(token, via_cookie, via_header)] = seen.as_slice() {
            let formed = codec.is_well_formed(token);
            return Presented {
                token: Some(token),
                via_cookie: formed && *via_cookie,
                via_header: formed && *via_header,
            };
        }
        let mut good = seen.iter().filter(|e| codec.parse(e.0).is_ok());
        match (good.next(), good.next()) {
            (Some(&(token, via_cookie, via_header)), None) => {
                Presented { token: Some(token), via_cookie, via_header }
            }
            (None, _) => Presented { token: seen.first().map(|e| e.0), ..Presented::default() },
            (Some(_), Some(_)) => {
                let good = seen.iter().filter(|e| codec.parse(e.0).is_ok());
                let (mut in_cookie, mut in_header, mut count) = (false, false, 0usize);
                for e in good {
                    in_cookie |= e.1;
                    in_header |= e.2;
                    count = count.saturating_add(1);
                }
                tracing::debug!(
                    count,
                    in_cookie,
                    in_header,
                    "the request presented different well-formed session tokens; it has none"
                );
                Presented::default()
            }
        }
    }
}

impl Presented<'_> {
    /// Whether a well-formed token came in any transport.
    pub fn any(&self) -> bool {
        self.via_cookie || self.via_header
    }
}

/// The token of an `Authorization: Bearer <token>` value: the scheme in any case, exactly one
/// space, then visible ASCII only. Anything else (another scheme, more spaces, an empty or
/// oversized value) is no token.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    type Headers<'a> = Vec<(&'static str, &'a [u8])>;

    fn codec() -> TokenCodec {
        TokenCodec::insecure_development()
    }

    fn token() -> String {
        codec().generate(sesame::Tag::random().unwrap()).unwrap().expose()
    }

    // Only the strict `Bearer <token>` form is read.
    #[test]
    fn bearer_form() {
        assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"bEARER abc"), Some("abc"));
        for bad in [
            &b"Basic abc"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer  abc",
            b"Bearer abc def",
            b"Bearer\tabc",
            b"Bearerabc",
            b"Token abc",
            b"Bearer ab\xffc",
        ] {
            assert_eq!(bearer_token(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_HEADER_BYTES));
        assert_eq!(bearer_token(big.as_bytes()), None);
    }

    // Header names that mean something else are refused, and so is having no transport.
    #[test]
    fn validates() {
        let b = TransportConfig::builder;
        for name in ["cookie", "Authorization", "host", "Content-Length", "bad name", ""] {
            assert!(b().header(name).build().is_err(), "{name}");
        }
        assert!(b().cookie(false).build().is_err());
        let t = b().cookie(false).header("X-Session-Token").build().unwrap();
        assert_eq!(t.header().unwrap(), "x-session-token");
        assert_eq!(t.response_header().unwrap(), "x-session-token");
        let t = b().bearer(true).build().unwrap();
        assert!(t.cookie() && t.bearer());
        assert_eq!(t.response_header().unwrap(), BEARER_RESPONSE_HEADER);
        assert_eq!(t.vary(), "Cookie, Authorization");
        assert!(TransportConfig::default().response_header().is_none());
    }

    // Picking the token: one well-formed value wins wherever it came from; two different ones
    // cancel out; malformed ones are passed on only when nothing better is there; too many
    // values mean no token.
    #[test]
    fn picks_the_token() {
        let t = TransportConfig::builder().bearer(true).header("X-Token").build().unwrap();
        let cookie = CookieConfig::default();
        let (a, b) = (token(), token());
        let (cookies, bearer_a) =
            (format!("__Host-sesame=bad; __Host-sesame={a}"), format!("Bearer {a}"));
        let mut h: Headers =
            vec![("cookie", cookies.as_bytes()), ("authorization", bearer_a.as_bytes())];
        let p = t.presented(&cookie, &codec(), h.as_slice());
        assert_eq!(p.token, Some(a.as_str()));
        assert!(p.via_cookie && p.via_header);
        h.push(("x-token", b.as_bytes()));
        let p = t.presented(&cookie, &codec(), h.as_slice());
        assert_eq!(p.token, None, "two different well-formed tokens");
        assert!(!p.any());
        let h: Headers = vec![("x-token", b"junk")];
        let p = t.presented(&cookie, &codec(), h.as_slice());
        assert_eq!(p.token, Some("junk"), "passed on to be counted as invalid");
        assert!(!p.any());
        let junk: Vec<String> = (0..MAX_CANDIDATES).map(|i| format!("junk{i}")).collect();
        let mut h: Headers = junk.iter().map(|j| ("x-token", j.as_bytes())).collect();
        h.push(("x-token", a.as_bytes()));
        assert_eq!(t.presented(&cookie, &codec(), h.as_slice()).token, None, "too many values");
        let long = "a".repeat(MAX_TOKEN_HEADER_BYTES + 1);
        let h: Headers =
            vec![("x-token", long.as_bytes()), ("x-token", b"caf\xe9"), ("x-token", a.as_bytes())];
        let p = t.presented(&cookie, &codec(), h.as_slice());
        assert_eq!(p.token, Some(a.as_str()), "skipped values");
        let h: Headers = vec![("authorization", bearer_a.as_bytes())];
        let cookie_only = TransportConfig::default();
        assert_eq!(cookie_only.presented(&cookie, &codec(), h.as_slice()).token, None);
    }
}
