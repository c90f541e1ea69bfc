//! [`SessionError`]: a session error as an HTTP response.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use sesame::{Error, StoreError};

/// A session error that handlers can return with `?`. It becomes a response whose status says
/// what happened: 503 when the store is unreachable (never an anonymous session instead),
/// 401 when a login is needed or the session ended meanwhile (logged out, revoked or expired
/// on another request: the request's changes were not written), 413 when a limit was hit,
/// 400 for bad input, 500 otherwise. The body is JSON `{"error": "..."}` and never contains a
/// token or session data: a value that cannot be read or written as the type asked for
/// ([`Error::Value`]) is a 400 whose message names the attribute and quotes nothing of the
/// value, and what is logged about it quotes nothing either.
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
        match &self.0 {
            Error::Store(StoreError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(StoreError::LimitExceeded(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotLoggedIn
            | Error::StaleAuthentication
            | Error::SessionEnded
            | Error::LoginRevoked
            | Error::StepUpRequired => StatusCode::UNAUTHORIZED,
            Error::CreationRefused { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Invalid(_) | Error::Value { .. } => StatusCode::BAD_REQUEST,
            // A stored value that an exact update cannot read (or an update that failed on
            // it) is a server-side problem, like any other store error.
            Error::Store(StoreError::Update { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl SessionError {
    /// A description for logs and response bodies that quotes no stored or submitted value:
    /// the messages of value and exact-update errors come from the decoder and can quote the
    /// value, so they are replaced by fixed texts that name the attribute.
    pub(crate) fn describe(&self) -> String {
        match &self.0 {
            Error::Value { name, .. } => {
                format!("session value {name:?} could not be read or written as the type asked for")
            }
            Error::Store(StoreError::Update { name, .. }) => {
                format!("update of session attribute {name:?} failed on the value stored meanwhile")
            }
            e => e.to_string(),
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                "session store unavailable; please retry shortly".to_string()
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %self.describe(), "session error");
                "session error".to_string()
            }
            // These messages are fixed texts, or describe limits and the attribute's name; none
            // of them holds a token or a value.
            _ => self.describe(),
        };
        let mut body = serde_json::json!({ "error": message });
        if matches!(self.0, Error::StepUpRequired) {
            body["step_up"] = serde_json::Value::Bool(true);
        }
        let mut res = (status, Json(body)).into_response();
        let retry_after = match &self.0 {
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            Error::CreationRefused { retry_after, .. } => {
                Some(retry_after.map_or(1, |d| d.as_secs().max(1)))
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    // A session that ended meanwhile and a login overtaken by a revocation are 401s that say
    // so in the JSON body; a value error is a 400 naming the attribute without its value; a
    // failed exact update is a 500 with a generic message.
    #[tokio::test]
    async fn ended_and_revoked_are_401_with_their_message() {
        for e in [Error::SessionEnded, Error::LoginRevoked] {
            let text = e.to_string();
            let res = SessionError(e).into_response();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(body(res).await, serde_json::json!({ "error": text }));
        }
        let value = Error::Value { name: "n".into(), message: "invalid type: \"s3cr3t\"".into() };
        let res = SessionError(value).into_response();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let text = body(res).await.to_string();
        assert!(text.contains("\\\"n\\\"") && !text.contains("s3cr3t"), "{text}");
        let update = StoreError::Update { name: "cart".into(), message: "bad bytes".into() };
        let res = SessionError::from(update).into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body(res).await, serde_json::json!({ "error": "session error" }));
    }
}
