//! [`SessionError`]: a session error as an HTTP response.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use sesame::{Error, StoreError};

/// A session error that handlers can return with `?`. It becomes a response whose status says
/// what happened: 503 when the store is unreachable (never an anonymous session instead),
/// 401 when a login is needed, 413 when a limit was hit, 400 for bad input, 500 otherwise.
/// The body is JSON `{"error": "..."}` and never contains a token.
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
            Error::NotLoggedIn | Error::StaleAuthentication => StatusCode::UNAUTHORIZED,
            Error::Invalid(_) | Error::Value { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
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
                tracing::error!(error = %self.0, "session error");
                "session error".to_string()
            }
            _ => self.0.to_string(),
        };
        let mut res = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        res
    }
}
