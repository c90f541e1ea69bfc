//! [`SessionError`]: a session error as an actix-web response.

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sesame::{Error, StoreError};

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
        f.write_str(&self.describe())
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

impl SessionError {
    /// A description for logs and bodies that quotes no stored or submitted value.
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

impl ResponseError for SessionError {
    fn status_code(&self) -> StatusCode {
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
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                "session store unavailable; please retry shortly".to_string()
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %self.describe(), "session error");
                "session error".to_string()
            }
            _ => self.describe(),
        };
        let mut body = serde_json::json!({ "error": message });
        if matches!(self.0, Error::StepUpRequired) {
            body["step_up"] = serde_json::Value::Bool(true);
        }
        let mut res = HttpResponse::build(status);
        res.insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")));
        let retry_after = match &self.0 {
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            Error::CreationRefused { retry_after, .. } => {
                Some(retry_after.map_or(1, |d| d.as_secs().max(1)))
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.insert_header((RETRY_AFTER, HeaderValue::from(secs)));
        }
        res.json(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // A refused creation is a 429 with the hook's `Retry-After` (at least 1 second) and its
    // message; a value error is a 400 that names the attribute and quotes nothing of the
    // value.
    #[test]
    fn refused_creation_is_429_and_value_errors_quote_nothing() {
        let e = SessionError(Error::CreationRefused {
            message: "slow down".into(),
            retry_after: Some(std::time::Duration::from_secs(7)),
        });
        let res = e.error_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers().get(RETRY_AFTER).unwrap(), "7");
        let e = SessionError(Error::CreationRefused { message: "no".into(), retry_after: None });
        assert_eq!(e.error_response().headers().get(RETRY_AFTER).unwrap(), "1");
        let value = Error::Value { name: "n".into(), message: "invalid type: \"s3cr3t\"".into() };
        let e = SessionError(value);
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        let text = e.to_string();
        assert!(text.contains("\"n\"") && !text.contains("s3cr3t"), "{text}");
    }
}
