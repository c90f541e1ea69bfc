//! [`SessionError`]: a session error as an HTTP response (the mapping is `sesame_http`'s).

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::{CACHE_CONTROL, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use sesame::{Error, StoreError};
use sesame_http::ErrorReply;

/// A session error that handlers can return with `?`. It becomes a response whose status says
/// what happened: 503 when the store is unreachable (never an anonymous session instead),
/// 401 when a login is needed or the session ended meanwhile (logged out, revoked or expired
/// on another request: the request's changes were not written), 413 when a limit was hit,
/// 429 when a creation was refused, 400 for bad input, 500 otherwise. The body is JSON
/// `{"error": "..."}` and never contains a token or session data: a value that cannot be read
/// or written as the type asked for ([`Error::Value`]) is a 400 whose message names the
/// attribute and quotes nothing of the value, and what is logged about it quotes nothing
/// either. A 503 and a 429 carry `Retry-After`.
///
/// ```
/// use axum::response::IntoResponse;
/// let res = sesame_axum::SessionError(sesame::Error::SessionEnded).into_response();
/// assert_eq!(res.status(), 401);
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SessionError(#[from] pub Error);

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError(Error::Store(e))
    }
}

impl SessionError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        status_code(sesame_http::status(&self.0))
    }
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The response of an error answer, with `Cache-Control: no-store`.
pub(crate) fn respond(reply: ErrorReply) -> Response {
    let mut res = (status_code(reply.status), Json(reply.body)).into_response();
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(secs) = reply.retry_after {
        h.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        respond(ErrorReply::new(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    // The core's answer becomes the response: its status, its JSON body, `Retry-After` and
    // `Cache-Control: no-store`.
    #[tokio::test]
    async fn the_reply_becomes_the_response() {
        let refused = Error::CreationRefused {
            message: "slow down".into(),
            retry_after: Some(std::time::Duration::from_secs(7)),
        };
        let res = SessionError(refused).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[RETRY_AFTER], "7");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(body(res).await, serde_json::json!({ "error": "slow down" }));
        let res = SessionError(Error::SessionEnded).into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().get(RETRY_AFTER).is_none());
    }
}
