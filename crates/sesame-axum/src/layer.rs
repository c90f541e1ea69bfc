//! The tower [`SessionLayer`]: opens the request's session from the token its transports
//! carry (the cookie by default), hands it to the handler, then commits what changed and
//! hands out or clears the token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderName, Request, Response};
use sesame::SessionManager;
use sesame_http::{CookieConfig, Exchange, SessionSettings, TransportConfig};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::respond;
use crate::headers::{write, Headers};

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
    settings: SessionSettings,
}

impl SessionLayer {
    /// A layer over `manager` with the default (secure) cookie as the only transport.
    pub fn new(manager: SessionManager) -> SessionLayer {
        SessionLayer { settings: SessionSettings::new(manager) }
    }

    /// Takes the client's address from the first value of this request header (for example
    /// `X-Forwarded-For`) instead of the connection's peer address. Only behind a proxy that
    /// always sets it: a client can write any header. The address, with the `User-Agent`, is
    /// recorded when a session is created and given to the manager's hooks
    /// ([`sesame::SessionHooks`]); without this setting the peer address is used when the app
    /// is served with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn with_client_ip_header(mut self, name: HeaderName) -> SessionLayer {
        self.settings.client_ip_header = Some(name.as_str().to_string());
        self
    }

    /// Uses this cookie configuration (built, hence validated, with [`CookieConfig::builder`]).
    pub fn with_cookie(mut self, cookie: CookieConfig) -> SessionLayer {
        self.settings.cookie = Arc::new(cookie);
        self
    }

    /// Uses these transports (built, hence validated, with [`TransportConfig::builder`]);
    /// the default is the cookie alone.
    pub fn with_transport(mut self, transport: TransportConfig) -> SessionLayer {
        self.settings.transport = Arc::new(transport);
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService { inner, settings: self.settings.clone() }
    }
}

/// The service made by [`SessionLayer`].
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    settings: SessionSettings,
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
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let exchange = Exchange::open(&self.settings, &Headers(req.headers()), peer);
        req.extensions_mut().insert(exchange.session().clone());
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            match exchange.finish().await {
                Ok(out) => write(res.headers_mut(), out),
                // The handler's response is dropped: it may say "saved" while nothing was
                // written (for example a 200 for a save whose session was logged out by
                // another request meanwhile, which is a 401 here).
                Err(reply) => return Ok(respond(reply)),
            }
            Ok(res)
        })
    }
}
