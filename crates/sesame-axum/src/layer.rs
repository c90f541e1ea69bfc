//! The tower [`SessionLayer`]: opens the request's session from its cookie, hands it to the
//! handler, then commits what changed and sets or clears the cookie.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::IntoResponse;
use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderValue, Request, Response};
use sesame::{SessionManager, TokenAction};
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie::CookieConfig;
use crate::error::SessionError;

/// Adds sessions to every request of the service it wraps.
///
/// ```no_run
/// use std::sync::Arc;
/// use axum::{routing::get, Router};
/// use sesame_axum::{Session, SessionError, SessionLayer};
///
/// async fn count(session: Session) -> Result<String, SessionError> {
///     let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
///     session.insert("n", &n).await?;
///     Ok(format!("{n} visits"))
/// }
///
/// let config = sesame::SessionConfig::builder()
///     .token_secret(std::env::var("SESSION_SECRET").unwrap_or_default())
///     .build()
///     .expect("SESSION_SECRET: 32 or more random bytes");
/// let manager = sesame::SessionManager::new(Arc::new(sesame::MemoryStore::new()), config);
/// let app: Router = Router::new()
///     .route("/", get(count))
///     .layer(SessionLayer::new(manager));
/// ```
#[derive(Clone, Debug)]
pub struct SessionLayer {
    manager: SessionManager,
    cookie: Arc<CookieConfig>,
}

impl SessionLayer {
    /// A layer over `manager` with the default (secure) cookie.
    pub fn new(manager: SessionManager) -> SessionLayer {
        SessionLayer { manager, cookie: Arc::new(CookieConfig::default()) }
    }

    /// Uses this cookie configuration (built, hence validated, with [`CookieConfig::builder`]).
    pub fn with_cookie(mut self, cookie: CookieConfig) -> SessionLayer {
        self.cookie = Arc::new(cookie);
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService { inner, manager: self.manager.clone(), cookie: self.cookie.clone() }
    }
}

/// The service made by [`SessionLayer`].
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
    cookie: Arc<CookieConfig>,
}

impl<S, B> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cookie = self.cookie.clone();
        let session = self.manager.open(cookie.find(req.headers()));
        req.extensions_mut().insert(session.clone());
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            let action = match session.commit().await {
                Ok(a) => a,
                Err(e) => {
                    // The handler's response is dropped: it may say "saved" while nothing was
                    // written (for example a 200 for a save whose session was logged out by
                    // another request meanwhile, which is a 401 here).
                    let err = SessionError::from(e);
                    if err.status().is_server_error() {
                        tracing::warn!(error = %err.0, "session commit failed");
                    } else {
                        tracing::debug!(error = %err.0, "session commit refused");
                    }
                    let mut res = err.into_response();
                    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    return Ok(res);
                }
            };
            let value = match action {
                TokenAction::Keep => return Ok(res),
                TokenAction::Set { token, expires_ms } => {
                    let max_age = expires_ms.saturating_sub(sesame::now_ms()) / 1000;
                    cookie.set(&token.expose(), max_age)
                }
                TokenAction::Clear => cookie.clear(),
                _ => None,
            };
            if let Some(v) = value {
                let h = res.headers_mut();
                h.append(SET_COOKIE, v);
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.append(VARY, HeaderValue::from_static("Cookie"));
            }
            Ok(res)
        })
    }
}
