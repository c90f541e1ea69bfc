//! The [`Session`] extractor.

use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

/// The request's session, for handlers: `async fn h(session: Session)`. Dereferences to
/// [`sesame::Session`]. Needs [`crate::SessionLayer`] on the route.
#[derive(Debug, Clone)]
pub struct Session(pub sesame::Session);

impl Deref for Session {
    type Target = sesame::Session;

    fn deref(&self) -> &sesame::Session {
        &self.0
    }
}

/// Rejection of the [`Session`] extractor: the layer is missing.
#[derive(Debug, Clone, Copy)]
pub struct MissingSessionLayer;

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no session on this request: is sesame_axum::SessionLayer installed on this route?",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<sesame::Session>().cloned().map(Session).ok_or(MissingSessionLayer)
    }
}
