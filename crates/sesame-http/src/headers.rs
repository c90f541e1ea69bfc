//! [`HeaderLookup`]: the one thing the core needs from a framework's request headers.

/// Every value of a request header, as raw bytes, in the order the request sent them.
///
/// Each framework adapter implements it over its own header map (a thin wrapper, since the
/// map's type belongs to another crate). Names are given in lower case. `'h` is the lifetime
/// of the header values, so that a wrapper made on the spot can hand out values that outlive
/// it.
///
/// ```
/// struct Pairs(Vec<(&'static str, &'static [u8])>);
///
/// impl sesame_http::HeaderLookup<'static> for Pairs {
///     fn all(&self, name: &str) -> impl Iterator<Item = &'static [u8]> {
///         self.0.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
///     }
/// }
///
/// let h = Pairs(vec![("cookie", b"a=1; __Host-sesame=tok"), ("cookie", b"__Host-sesame=tok")]);
/// let cookie = sesame_http::CookieConfig::default();
/// assert_eq!(cookie.occurrences(&h), ["tok", "tok"]);
/// ```
pub trait HeaderLookup<'h> {
    /// Every value of the header `name` (lower case), in order; none when it is absent.
    fn all(&self, name: &str) -> impl Iterator<Item = &'h [u8]>;

    /// The first value of the header `name`, if any.
    fn first(&self, name: &str) -> Option<&'h [u8]> {
        self.all(name).next()
    }
}

/// A plain list of `(name, value)` pairs; handy in tests and for frameworks without a map.
impl<'h> HeaderLookup<'h> for [(&str, &'h [u8])] {
    fn all(&self, name: &str) -> impl Iterator<Item = &'h [u8]> {
        self.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
}

/// The bytes as text when they are all visible ASCII (no spaces, no control characters).
pub(crate) fn visible_ascii(v: &[u8]) -> Option<&str> {
    if v.iter().all(|b| b.is_ascii_graphic()) {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

/// Whether `b` may appear in an HTTP header name (an RFC 9110 token character).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
