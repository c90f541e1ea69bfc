//! [`SessionError`]: a session error as an actix-web response (the mapping is
//! `sesame_http`'s).

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sesame::{Error, StoreError};
use sesame_http::ErrorReply;

/// A session error that handlers can return with `?`. Its response: 503 with
/// `Retry-After: 1` when the store is unreachable (never an anonymous session instead), 401
/// when a login is needed or the session ended meanwhile, 413 when a limit was hit, 429 with
/// `Retry-After` when a creation was refused, 400 for bad input, 500 otherwise. The body is
/// JSON `{"error": "..."}` and never contains a token or session data.
///
/// ```
/// use actix_web::ResponseError;
/// let e = sesame_actix::SessionError(sesame::Error::SessionEnded);
/// assert_eq!(e.status_code(), 401);
/// ```
#[derive(Debug)]
pub struct SessionError(pub Error);

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&sesame_http::describe(&self.0))
    }
}

impl std::error::Error for SessionError {}

impl From<Error> for SessionError {
    fn from(e: Error) -> Self {
        SessionError(e)
    }
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError(Error::Store(e))
    }
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The response of an error answer, with `Cache-Control: no-store`.
pub(crate) fn respond(reply: ErrorReply) -> HttpResponse {
    let mut res = HttpResponse::build(status_code(reply.status));
    res.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if let Some(secs) = reply.retry_after {
        res.insert_header((RETRY_AFTER, HeaderValue::from(secs)));
    }
    res.json(reply.body)
}

impl ResponseError for SessionError {
    fn status_code(&self) -> StatusCode {
        status_code(sesame_http::status(&self.0))
    }

    fn error_response(&self) -> HttpResponse {
        respond(ErrorReply::new(&self.0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // The core's answer becomes the response: a refused creation is a 429 with the hook's
    // `Retry-After`; a value error is a 400 whose text names the attribute and quotes nothing
    // of the value.
    #[test]
    fn the_reply_becomes_the_response() {
        let e = SessionError(Error::CreationRefused {
            message: "slow down".into(),
            retry_after: Some(std::time::Duration::from_secs(7)),
        });
        let res = e.error_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers().get(RETRY_AFTER).unwrap(), "7");
        assert_eq!(res.headers().get(CACHE_CONTROL).unwrap(), "no-store");
        let value = Error::Value { name: "n".into(), message: "invalid type: \"s3cr3t\"".into() };
        let e = SessionError(value);
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        let text = e.to_string();
        assert!(text.contains("\"n\"") && !text.contains("s3cr3t"), "{text}");
    }
}
