//! The glue between actix-web header maps and the framework-neutral core.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use sesame_http::{HeaderLookup, HeaderOut};

/// A request's headers, as the core reads them.
pub(crate) struct Headers<'h>(pub(crate) &'h HeaderMap);

impl<'h> HeaderLookup<'h> for Headers<'h> {
    fn all(&self, name: &str) -> impl Iterator<Item = &'h [u8]> {
        self.0.get_all(name).map(HeaderValue::as_bytes)
    }
}

/// Adds the core's response headers; those that carry a token are marked sensitive, so
/// HTTP/2 and HTTP/3 encoders keep them out of their compression tables. A header that
/// cannot be written is logged, never sent half-made.
pub(crate) fn write(h: &mut HeaderMap, out: Vec<HeaderOut>) {
    for o in out {
        let (Ok(name), Ok(mut value)) =
            (HeaderName::from_bytes(o.name.as_bytes()), HeaderValue::from_str(&o.value))
        else {
            tracing::error!(header = %o.name, "a session header could not be written");
            continue;
        };
        value.set_sensitive(o.sensitive);
        if o.replace {
            h.insert(name, value);
        } else {
            h.append(name, value);
        }
    }
}
