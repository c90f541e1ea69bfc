//! The [`Session`] extractor.

use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

/// The request's session, for handlers: `async fn h(session: Session)`. Dereferences to
/// [`sesame::Session`]. Needs [`crate::SessionMiddleware`] on the route.
#[derive(Debug, Clone)]
pub struct Session(pub sesame::Session);

impl Deref for Session {
    type Target = sesame::Session;

    fn deref(&self) -> &sesame::Session {
        &self.0
    }
}

/// Rejection of the [`Session`] extractor: the middleware is missing (a 500).
#[derive(Debug, Clone, Copy)]
pub struct MissingSessionMiddleware;

impl std::fmt::Display for MissingSessionMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no session on this request: is sesame_actix::SessionMiddleware installed?")
    }
}

impl ResponseError for MissingSessionMiddleware {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::InternalServerError().json(serde_json::json!({ "error": self.to_string() }))
    }
}

impl FromRequest for Session {
    type Error = MissingSessionMiddleware;
    type Future = Ready<Result<Session, MissingSessionMiddleware>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<sesame::Session>()
                .cloned()
                .map(Session)
                .ok_or(MissingSessionMiddleware),
        )
    }
}
