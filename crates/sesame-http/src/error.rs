//! A session error as an HTTP answer, in plain data: its status code, its JSON body and its
//! `Retry-After`. The framework adapters turn an [`ErrorReply`] into their response type.

use sesame::{Error, StoreError};

/// The fixed message of a 503: the store could not be reached.
pub const UNAVAILABLE_MESSAGE: &str = "session store unavailable; please retry shortly";

/// The fixed message of a 503 for a write whose outcome is unknown: it may have been applied.
pub const OUTCOME_UNKNOWN_MESSAGE: &str =
    "the session store did not confirm this change in time: its outcome is unknown (it may have been applied); please retry";

/// The fixed message of a 503 for a session found older than the request had read it (a
/// store failover lost acknowledged writes): nothing was written.
pub const ROLLED_BACK_MESSAGE: &str =
    "the session went back to an older state in the store (a failover); nothing was written; please retry";

/// The fixed message of a 500: the cause is logged, never sent.
pub const INTERNAL_MESSAGE: &str = "session error";

/// The HTTP status an error maps to: 503 when the store is unreachable (never an anonymous
/// session instead), when a write's outcome is unknown, or when the session was found rolled
/// back by a failover; 401 when a login is needed or the session ended meanwhile (logged out,
/// revoked or expired on another request), 413 when a limit was hit, 429 when a creation was
/// refused, 400 for bad input, 500 otherwise.
///
/// ```
/// assert_eq!(sesame_http::status(&sesame::Error::SessionEnded), 401);
/// ```
pub fn status(e: &Error) -> u16 {
    match e {
        e if e.is_retryable() => 503,
        Error::Store(StoreError::LimitExceeded(_)) => 413,
        Error::NotLoggedIn
        | Error::StaleAuthentication
        | Error::SessionEnded
        | Error::LoginRevoked
        | Error::StepUpRequired => 401,
        Error::CreationRefused { .. } => 429,
        Error::Invalid(_) | Error::Value { .. } => 400,
        // A stored value that an exact update cannot read (or an update that failed on it) is
        // a server-side problem, like any other store error.
        _ => 500,
    }
}

/// A description for logs and response bodies that quotes no stored or submitted value: the
/// messages of value and exact-update errors come from the decoder and can quote the value,
/// so they are replaced by fixed texts that name the attribute.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Value { name, .. } => {
            format!("session value {name:?} could not be read or written as the type asked for")
        }
        Error::Store(StoreError::Update { name, .. }) => {
            format!("update of session attribute {name:?} failed on the value stored meanwhile")
        }
        e => e.to_string(),
    }
}

/// What an error answers: a status, a JSON body `{"error": "..."}` (with `"step_up": true`
/// when a fresh login is asked for) that never holds a token or a value, and the seconds of
/// `Retry-After` (1 for a 503; the hook's delay, at least 1, for a refused creation). Sent
/// with `Cache-Control: no-store`.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReply {
    /// The HTTP status code.
    pub status: u16,
    /// The JSON body.
    pub body: serde_json::Value,
    /// The `Retry-After` header's value in seconds, when one is sent.
    pub retry_after: Option<u64>,
}

impl ErrorReply {
    /// The answer to `e`. A 500's cause is logged at error level (without any value) and
    /// replaced by a generic message.
    ///
    /// ```
    /// let r = sesame_http::ErrorReply::new(&sesame::Error::StepUpRequired);
    /// assert_eq!(r.status, 401);
    /// assert_eq!(r.body["step_up"], true);
    /// ```
    pub fn new(e: &Error) -> ErrorReply {
        let status = status(e);
        let message = match (status, e) {
            (503, Error::Store(s)) if s.is_outcome_unknown() => OUTCOME_UNKNOWN_MESSAGE.to_string(),
            (503, Error::Store(StoreError::RolledBack { .. })) => ROLLED_BACK_MESSAGE.to_string(),
            (503, _) => UNAVAILABLE_MESSAGE.to_string(),
            (500, _) => {
                tracing::error!(error = %describe(e), "session error");
                INTERNAL_MESSAGE.to_string()
            }
            // These messages are fixed texts, or describe limits and the attribute's name; none
            // of them holds a token or a value.
            _ => describe(e),
        };
        let mut body = serde_json::json!({ "error": message });
        if matches!(e, Error::StepUpRequired) {
            body["step_up"] = serde_json::Value::Bool(true);
        }
        if matches!(e, Error::Store(s) if s.is_outcome_unknown()) {
            body["outcome"] = serde_json::Value::from("unknown");
        }
        let retry_after = match e {
            _ if status == 503 => Some(1),
            Error::CreationRefused { retry_after, .. } => {
                Some(retry_after.map_or(1, |d| d.as_secs().max(1)))
            }
            _ => None,
        };
        ErrorReply { status, body, retry_after }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    // A session that ended meanwhile and a login overtaken by a revocation are 401s that say
    // so; a value error is a 400 naming the attribute without its value; a failed exact
    // update is a 500 with a generic message; a 503 and a refused creation carry Retry-After.
    #[test]
    fn replies() {
        for e in [Error::SessionEnded, Error::LoginRevoked] {
            let text = e.to_string();
            let r = ErrorReply::new(&e);
            assert_eq!(
                (r.status, r.body, r.retry_after),
                (401, serde_json::json!({ "error": text }), None)
            );
        }
        let value = Error::Value { name: "n".into(), message: "invalid type: \"s3cr3t\"".into() };
        let r = ErrorReply::new(&value);
        assert_eq!(r.status, 400);
        let text = r.body.to_string();
        assert!(text.contains("\\\"n\\\"") && !text.contains("s3cr3t"), "{text}");
        let update = StoreError::Update { name: "cart".into(), message: "bad bytes".into() };
        let r = ErrorReply::new(&Error::Store(update));
        assert_eq!((r.status, r.body), (500, serde_json::json!({ "error": INTERNAL_MESSAGE })));
        let down = Error::Store(StoreError::Unavailable { message: "x".into(), source: None });
        let r = ErrorReply::new(&down);
        assert_eq!((r.status, r.retry_after), (503, Some(1)));
        assert_eq!(r.body, serde_json::json!({ "error": UNAVAILABLE_MESSAGE }));
        // A write whose outcome is unknown, or a session found rolled back: 503s that say so.
        let unknown = StoreError::Unavailable {
            message: format!("{}: not confirmed", StoreError::OUTCOME_UNKNOWN),
            source: None,
        };
        let r = ErrorReply::new(&Error::Store(unknown));
        assert_eq!((r.status, r.retry_after), (503, Some(1)));
        assert_eq!(r.body["outcome"], "unknown");
        assert_eq!(r.body["error"], OUTCOME_UNKNOWN_MESSAGE);
        let rolled = StoreError::RolledBack { message: "version 3 < 5".into() };
        let r = ErrorReply::new(&Error::Store(rolled));
        assert_eq!((r.status, r.retry_after), (503, Some(1)));
        assert_eq!(r.body, serde_json::json!({ "error": ROLLED_BACK_MESSAGE }));
        let slow = |d| Error::CreationRefused { message: "slow down".into(), retry_after: d };
        let r = ErrorReply::new(&slow(Some(Duration::from_secs(7))));
        assert_eq!((r.status, r.retry_after), (429, Some(7)));
        assert_eq!(ErrorReply::new(&slow(None)).retry_after, Some(1));
        assert_eq!(ErrorReply::new(&slow(Some(Duration::from_millis(5)))).retry_after, Some(1));
    }
}
