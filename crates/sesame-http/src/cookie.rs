//! The session cookie: secure defaults, validated when built; its `Set-Cookie` values; and
//! the lookup of its value over every `Cookie` header a request sent.

use crate::headers::{visible_ascii, HeaderLookup};

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
/// let cookie = sesame_http::CookieConfig::builder()
///     .name("__Host-app")
///     .same_site(sesame_http::SameSite::Strict)
///     .build()
///     .unwrap();
/// assert_eq!(cookie.name(), "__Host-app");
/// assert!(sesame_http::CookieConfig::builder().name("bad name").build().is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CookieConfigBuilder {
    c: CookieConfig,
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c)
}

/// Whether `name` starts with `prefix`, ignoring ASCII case (as browsers match `__Host-` and
/// `__Secure-`).
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.as_bytes().get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
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
    /// `__Secure-` and `SameSite=None` only with `Secure`. The prefixes are recognized in any
    /// letter case (`__host-` too), as browsers do.
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
        // Browsers recognize the prefixes whatever their case, so the checks do too.
        if has_prefix(&c.name, "__Host-") && (!c.secure || c.path != "/" || c.domain.is_some()) {
            return bad("a __Host- cookie needs Secure, Path=/ and no Domain");
        }
        if has_prefix(&c.name, "__Secure-") && !c.secure {
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

    /// Whether the cookie is sent with `Max-Age`.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// The `Set-Cookie` value that hands `token` to the client. `max_age_s` is sent only for
    /// persistent cookies. The value carries a token: send it marked sensitive.
    ///
    /// ```
    /// let c = sesame_http::CookieConfig::default();
    /// assert_eq!(c.set("tok", 60), "__Host-sesame=tok; Path=/; Secure; HttpOnly; SameSite=Lax");
    /// ```
    pub fn set(&self, token: &str, max_age_s: u64) -> String {
        let mut s = format!("{}={}", self.name, token);
        if self.persistent {
            s.push_str(&format!("; Max-Age={max_age_s}"));
        }
        self.attributes(&mut s);
        s
    }

    /// The `Set-Cookie` value that makes the client forget the cookie (`Max-Age=0`).
    pub fn clear(&self) -> String {
        let mut s = format!("{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT", self.name);
        self.attributes(&mut s);
        s
    }

    /// Every value of this cookie in the request's `Cookie` headers, in order. The headers are
    /// read byte by byte, so a byte outside ASCII in another cookie hides nothing. Occurrences
    /// that cannot be a token are skipped (not returned), without hiding later ones: a name and
    /// value longer than [`MAX_COOKIE_BYTES`], or a value with anything but visible ASCII. One
    /// pair of double quotes around a value is removed.
    pub fn occurrences<'h, H: HeaderLookup<'h> + ?Sized>(&self, headers: &H) -> Vec<&'h str> {
        let name = self.name.as_bytes();
        let mut out = Vec::new();
        for h in headers.all("cookie") {
            for pair in h.split(|&b| b == b';') {
                let Some((k, v)) = split_pair(pair.trim_ascii()) else {
                    continue;
                };
                if k != name {
                    continue;
                }
                let v = unquote(v.trim_ascii());
                if k.len().saturating_add(v.len()) > MAX_COOKIE_BYTES {
                    continue;
                }
                if let Some(v) = visible_ascii(v) {
                    out.push(v);
                }
            }
        }
        out
    }
}

/// `name=value` split at the first `=`.
fn split_pair(pair: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = pair.iter().position(|&b| b == b'=')?;
    let (k, rest) = pair.split_at(eq);
    Some((k, rest.get(1..)?))
}

/// Removes one pair of surrounding double quotes.
fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // The default cookie carries every secure attribute and no Max-Age.
    #[test]
    fn secure_defaults() {
        let c = CookieConfig::default();
        assert_eq!(c.set("tok", 60), "__Host-sesame=tok; Path=/; Secure; HttpOnly; SameSite=Lax");
        assert_eq!(
            c.clear(),
            "__Host-sesame=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; \
             HttpOnly; SameSite=Lax"
        );
        let p = CookieConfig::builder().name("s").persistent(true).build().unwrap();
        assert!(p.set("t", 60).contains("Max-Age=60"));
    }

    // Attribute injection and impossible prefixes are start-up errors.
    #[test]
    fn rejects_bad_settings() {
        let b = CookieConfig::builder;
        for name in ["", "a b", "a;b", "a=b", "a\u{7}", "\u{e9}"] {
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

    // Browsers read the prefixes case-insensitively, and so does the check.
    #[test]
    fn prefixes_are_checked_case_insensitively() {
        let b = CookieConfig::builder;
        for name in ["__host-x", "__HOST-x", "__Host-x", "__hOsT-x"] {
            assert!(b().name(name).domain("example.com").build().is_err(), "{name} + Domain");
            assert!(b().name(name).secure(false).build().is_err(), "{name} without Secure");
            assert!(b().name(name).path("/app").build().is_err(), "{name} with a path");
            assert!(b().name(name).build().is_ok(), "{name}");
        }
        for name in ["__secure-x", "__SECURE-x", "__Secure-x"] {
            assert!(b().name(name).secure(false).build().is_err(), "{name} without Secure");
            assert!(b().name(name).domain("example.com").build().is_ok(), "{name}");
        }
    }

    // Every occurrence is found, in order, across headers; oversized values and values with
    // bytes outside visible ASCII are skipped without hiding later ones; bytes outside ASCII
    // elsewhere in the header hide nothing.
    #[test]
    fn finds_every_occurrence() {
        let c = CookieConfig::default();
        let one: &[(&str, &[u8])] = &[("Cookie", b"a=1; __Host-sesame=abc; b=2")];
        assert_eq!(c.occurrences(one), ["abc"]);
        let big = format!("__Host-sesame={}", "x".repeat(5000));
        let h: &[(&str, &[u8])] = &[("cookie", big.as_bytes())];
        assert!(c.occurrences(h).is_empty());
        let value = format!("{big}; x=caf\u{e9}; __Host-sesame=\"one\"; __Host-sesame=t\u{e9}");
        let h: &[(&str, &[u8])] = &[
            ("cookie", value.as_bytes()),
            ("x-other", b"__Host-sesame=not-a-cookie-header"),
            ("cookie", b"\xff=\xff;__Host-sesame=two"),
            ("cookie", b"__host-sesame=case; other=x"),
        ];
        assert_eq!(c.occurrences(h), ["one", "two"]);
    }
}
