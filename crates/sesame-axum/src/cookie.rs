//! The session cookie: secure defaults, validated when built.

use http::HeaderValue;

/// `SameSite` attribute of the session cookie; always sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent on same-site requests and top-level navigations (the default).
    #[default]
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent on cross-site requests too; requires `Secure`.
    None,
}

/// Longest cookie (name + value) sent or accepted, in bytes.
pub const MAX_COOKIE_BYTES: usize = 4096;

/// Session cookie settings. Defaults: name `__Host-sesame`, `Secure`, `HttpOnly`,
/// `SameSite=Lax`, `Path=/`, no `Domain`, no `Max-Age` (a browser-session cookie).
#[derive(Debug, Clone)]
pub struct CookieConfig {
    name: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    persistent: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: "__Host-sesame".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            persistent: false,
        }
    }
}

/// Builder of [`CookieConfig`].
///
/// ```
/// let cookie = sesame_axum::CookieConfig::builder()
///     .name("__Host-app")
///     .same_site(sesame_axum::SameSite::Strict)
///     .build()
///     .unwrap();
/// assert_eq!(cookie.name(), "__Host-app");
/// assert!(sesame_axum::CookieConfig::builder().name("bad name").build().is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CookieConfigBuilder {
    c: CookieConfig,
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c)
}

fn is_attr_value(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_graphic() && c != ';')
}

impl CookieConfigBuilder {
    /// Cookie name (default `__Host-sesame`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.c.name = name.into();
        self
    }

    /// `Secure` (default true). Turning it off is only for plain-HTTP development.
    pub fn secure(mut self, on: bool) -> Self {
        self.c.secure = on;
        self
    }

    /// `HttpOnly` (default true).
    pub fn http_only(mut self, on: bool) -> Self {
        self.c.http_only = on;
        self
    }

    /// `SameSite` (default `Lax`).
    pub fn same_site(mut self, s: SameSite) -> Self {
        self.c.same_site = s;
        self
    }

    /// `Path` (default `/`).
    pub fn path(mut self, p: impl Into<String>) -> Self {
        self.c.path = p.into();
        self
    }

    /// `Domain` (default none, which keeps the cookie to the exact host).
    pub fn domain(mut self, d: impl Into<String>) -> Self {
        self.c.domain = Some(d.into());
        self
    }

    /// Send `Max-Age` so the cookie outlives the browser session (default off).
    pub fn persistent(mut self, on: bool) -> Self {
        self.c.persistent = on;
        self
    }

    /// Validates the settings: a name made of token characters, no `;`, spaces or control
    /// characters in path or domain, `__Host-` only with `Secure`, `Path=/` and no `Domain`,
    /// `__Secure-` and `SameSite=None` only with `Secure`.
    pub fn build(self) -> Result<CookieConfig, sesame::Error> {
        let c = self.c;
        let bad = |m: &str| Err(sesame::Error::Config(format!("session cookie: {m}")));
        if c.name.is_empty() || c.name.len() > 128 || !c.name.chars().all(is_token_char) {
            return bad("the name must be 1 to 128 token characters (no spaces, ';', '=' ...)");
        }
        if !c.path.starts_with('/') || !is_attr_value(&c.path) {
            return bad(
                "the path must start with '/' and hold no ';', spaces or control characters",
            );
        }
        if let Some(d) = &c.domain {
            if d.is_empty() || !is_attr_value(d) {
                return bad("the domain must hold no ';', spaces or control characters");
            }
        }
        if c.name.starts_with("__Host-") && (!c.secure || c.path != "/" || c.domain.is_some()) {
            return bad("a __Host- cookie needs Secure, Path=/ and no Domain");
        }
        if c.name.starts_with("__Secure-") && !c.secure {
            return bad("a __Secure- cookie needs Secure");
        }
        if c.same_site == SameSite::None && !c.secure {
            return bad("SameSite=None needs Secure");
        }
        Ok(c)
    }
}

impl CookieConfig {
    /// A builder starting from the secure defaults.
    pub fn builder() -> CookieConfigBuilder {
        CookieConfigBuilder::default()
    }

    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn attributes(&self, out: &mut String) {
        out.push_str("; Path=");
        out.push_str(&self.path);
        if let Some(d) = &self.domain {
            out.push_str("; Domain=");
            out.push_str(d);
        }
        if self.secure {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        out.push_str(match self.same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
            SameSite::None => "; SameSite=None",
        });
    }

    /// The `Set-Cookie` value that hands `token` to the client. `max_age_s` is sent only for
    /// persistent cookies.
    pub(crate) fn set(&self, token: &str, max_age_s: u64) -> Option<HeaderValue> {
        let mut s = format!("{}={}", self.name, token);
        if self.persistent {
            s.push_str(&format!("; Max-Age={max_age_s}"));
        }
        self.attributes(&mut s);
        HeaderValue::from_str(&s).ok()
    }

    /// The `Set-Cookie` value that makes the client forget the cookie.
    pub(crate) fn clear(&self) -> Option<HeaderValue> {
        let mut s = format!("{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT", self.name);
        self.attributes(&mut s);
        HeaderValue::from_str(&s).ok()
    }

    /// Finds this cookie's value in the request's `Cookie` headers. Values that cannot be a
    /// token (too long, not visible ASCII) are ignored; the first occurrence wins.
    pub(crate) fn find<'a>(&self, headers: &'a http::HeaderMap) -> Option<&'a str> {
        for h in headers.get_all(http::header::COOKIE) {
            let Ok(s) = h.to_str() else { continue };
            for pair in s.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k == self.name {
                    let v = v.trim_matches('"');
                    if k.len() + v.len() > MAX_COOKIE_BYTES {
                        return None;
                    }
                    return Some(v);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The default cookie carries every secure attribute and no Max-Age.
    #[test]
    fn secure_defaults() {
        let c = CookieConfig::default();
        let v = c.set("tok", 60).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-sesame=tok; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        let cl = c.clear().unwrap();
        assert!(cl.to_str().unwrap().starts_with("__Host-sesame=; Max-Age=0"));
        let p = CookieConfig::builder().name("s").persistent(true).build().unwrap();
        assert!(p.set("t", 60).unwrap().to_str().unwrap().contains("Max-Age=60"));
    }

    // Attribute injection and impossible prefixes are start-up errors.
    #[test]
    fn rejects_bad_settings() {
        let b = CookieConfig::builder;
        for name in ["", "a b", "a;b", "a=b", "a\u{7}", "é"] {
            assert!(b().name(name).build().is_err(), "{name:?}");
        }
        assert!(b().path("/; Domain=evil").build().is_err());
        assert!(b().path("nope").build().is_err());
        assert!(b().name("x").domain("a.com; x").build().is_err());
        assert!(b().domain("example.com").build().is_err(), "__Host- with Domain");
        assert!(b().secure(false).build().is_err(), "__Host- without Secure");
        assert!(b().name("__Secure-x").secure(false).build().is_err());
        assert!(b().name("x").secure(false).same_site(SameSite::None).build().is_err());
        assert!(b().name("x").secure(false).build().is_ok());
    }

    // The cookie is found among others; oversized values are ignored.
    #[test]
    fn finds_cookie() {
        let c = CookieConfig::default();
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, HeaderValue::from_static("a=1; __Host-sesame=abc; b=2"));
        assert_eq!(c.find(&h), Some("abc"));
        let mut h = http::HeaderMap::new();
        let big = format!("__Host-sesame={}", "x".repeat(5000));
        h.append(http::header::COOKIE, HeaderValue::from_str(&big).unwrap());
        assert_eq!(c.find(&h), None);
    }
}
