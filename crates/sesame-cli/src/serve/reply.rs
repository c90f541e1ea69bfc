//! The service's answers: JSON bodies with `Cache-Control: no-store`, errors as
//! `{"error": ...}`, the token change a caller must apply, and the session as shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use sesame::{Error, Session, SessionDetails, TokenAction};
use sesame_http::ErrorReply;

use crate::format::iso;

/// A JSON answer with `Cache-Control: no-store`.
pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// An error answer: what a handler returns instead of its reply.
#[derive(Debug)]
pub(crate) struct Fail(Box<Response>);

impl Fail {
    /// `{"error": message}` with `status`.
    pub(crate) fn new(status: StatusCode, message: &str) -> Fail {
        Fail(Box::new(json_reply(status, &json!({ "error": message }))))
    }

    /// 401: the request presents no live session.
    pub(crate) fn no_session() -> Fail {
        Fail::new(
            StatusCode::UNAUTHORIZED,
            "no valid session token (missing, malformed, unknown, expired or ended)",
        )
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// A session error as its answer (status, body and `Retry-After` as every sesame layer gives
/// them).
impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let reply = ErrorReply::new(&e);
        let status =
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = json_reply(status, &reply.body);
        if let Some(s) = reply.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        Fail(Box::new(res))
    }
}

/// What a handler returns.
pub(crate) type Reply = Result<Response, Fail>;

/// Parses a JSON body into `T`; an empty body reads as `{}`. The error names a missing or
/// unknown field, but never quotes a submitted value.
pub(crate) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Fail> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let named = ["missing field", "unknown field", "duplicate field"]
            .iter()
            .any(|p| text.starts_with(p));
        let what = match (named, text.find(" at line ")) {
            (true, Some(cut)) => text[..cut].to_string(),
            (true, None) => text,
            _ if e.is_syntax() || e.is_eof() => "the body is not valid JSON".to_string(),
            _ => "the body does not have the shape this endpoint takes (see /v1/openapi.json)"
                .to_string(),
        };
        Fail::new(
            StatusCode::BAD_REQUEST,
            &format!("{what} (line {}, column {})", e.line(), e.column()),
        )
    })
}

/// The token change a caller must apply after a commit.
pub(crate) fn token_change(action: &TokenAction) -> Value {
    match action {
        TokenAction::Set { token, expires_ms } => {
            json!({ "action": "set", "value": token.expose(), "expires_at_ms": expires_ms })
        }
        TokenAction::Clear => json!({ "action": "clear" }),
        _ => json!({ "action": "keep" }),
    }
}

/// The session as the API shows it; `None` when no stored session backs the handle.
pub(crate) async fn view(s: &Session) -> Result<Option<Value>, Error> {
    let (Some(id), Some(created), Some(expires)) =
        (s.id().await?, s.created_ms().await?, s.expires_ms().await?)
    else {
        return Ok(None);
    };
    let attributes: Map<String, Value> = s.attributes::<Value>().await?.into_iter().collect();
    Ok(Some(json!({
        "id": id,
        "principal": s.principal().await?,
        "attributes": attributes,
        "created_at": iso(created),
        "created_at_ms": created,
        "expires_at": iso(expires),
        "expires_at_ms": expires,
        "authenticated_at_ms": s.auth_time_ms().await?,
    })))
}

/// A user's session as listed.
pub(crate) fn listed(d: &SessionDetails) -> Value {
    let client = d.client.as_ref();
    json!({
        "id": d.info.id,
        "created_at_ms": d.info.created_ms,
        "expires_at_ms": d.info.expires_ms,
        "authenticated_at_ms": d.info.auth_ms,
        "ip": client.and_then(|c| c.ip.clone()),
        "user_agent": client.and_then(|c| c.user_agent.clone()),
    })
}
