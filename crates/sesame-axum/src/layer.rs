//! The tower [`SessionLayer`]: opens the request's session from the token its transports
//! carry (the cookie by default), hands it to the handler, then commits what changed and
//! hands out or clears the token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::IntoResponse;
use http::header::{CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderName, HeaderValue, Request, Response};
use sesame::{ClientInfo, SessionManager, TokenAction};
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie::{sensitive, CookieConfig};
use crate::error::SessionError;
use crate::transport::TransportConfig;

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
    transport: Arc<TransportConfig>,
    ip_header: Option<HeaderName>,
}

impl SessionLayer {
    /// A layer over `manager` with the default (secure) cookie as the only transport.
    pub fn new(manager: SessionManager) -> SessionLayer {
        SessionLayer {
            manager,
            cookie: Arc::new(CookieConfig::default()),
            transport: Arc::new(TransportConfig::default()),
            ip_header: None,
        }
    }

    /// Takes the client's address from the first value of this request header (for example
    /// `X-Forwarded-For`) instead of the connection's peer address. Only behind a proxy that
    /// always sets it: a client can write any header. The address, with the `User-Agent`, is
    /// recorded when a session is created and given to the manager's hooks
    /// ([`sesame::SessionHooks`]); without this setting the peer address is used when the app
    /// is served with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn with_client_ip_header(mut self, name: HeaderName) -> SessionLayer {
        self.ip_header = Some(name);
        self
    }

    /// Uses this cookie configuration (built, hence validated, with [`CookieConfig::builder`]).
    pub fn with_cookie(mut self, cookie: CookieConfig) -> SessionLayer {
        self.cookie = Arc::new(cookie);
        self
    }

    /// Uses these transports (built, hence validated, with [`TransportConfig::builder`]);
    /// the default is the cookie alone.
    pub fn with_transport(mut self, transport: TransportConfig) -> SessionLayer {
        self.transport = Arc::new(transport);
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            manager: self.manager.clone(),
            cookie: self.cookie.clone(),
            transport: self.transport.clone(),
            ip_header: self.ip_header.clone(),
        }
    }
}

/// The service made by [`SessionLayer`].
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
    cookie: Arc<CookieConfig>,
    transport: Arc<TransportConfig>,
    ip_header: Option<HeaderName>,
}

/// The client of a request: its address (the configured header's first value, or the peer
/// address) and user agent. `None` when neither is known.
fn client_info<B>(req: &Request<B>, ip_header: Option<&HeaderName>) -> Option<ClientInfo> {
    let ip = match ip_header {
        Some(name) => req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().chars().take(64).collect::<String>())
            .filter(|v| !v.is_empty()),
        None => req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
    };
    let ua = req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    (ip.is_some() || ua.is_some()).then(|| ClientInfo::new(ip, ua))
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
        let (cookie, transport) = (self.cookie.clone(), self.transport.clone());
        let manager = self.manager.clone();
        let started_ms = sesame::now_ms();
        let presented = transport.presented(&cookie, manager.config().tokens(), req.headers());
        let client = client_info(&req, self.ip_header.as_ref());
        let session = manager.open_for(presented.token, client);
        let reply = Reply { cookie: presented.via_cookie, header: presented.via_header };
        let reply = if presented.any() { reply } else { Reply { cookie: true, header: true } };
        // A persistent cookie is sent again when the session's life was pushed forward.
        let refresh = (cookie.is_persistent() && presented.via_cookie)
            .then(|| presented.token.map(str::to_owned))
            .flatten();
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
                    let error = err.describe();
                    if err.status().is_server_error() {
                        tracing::warn!(%error, "session commit failed");
                    } else {
                        tracing::debug!(%error, "session commit refused");
                    }
                    let mut res = err.into_response();
                    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    return Ok(res);
                }
            };
            let h = res.headers_mut();
            let mut sent = false;
            match action {
                TokenAction::Keep => {
                    if let Some(token) = refresh {
                        if let Some(max_age) =
                            refreshed_max_age(&session, &manager, &token, started_ms).await
                        {
                            sent |= append(h, SET_COOKIE, cookie.set(&token, max_age));
                        }
                    }
                }
                TokenAction::Set { token, expires_ms } => {
                    let text = token.expose();
                    if reply.cookie && transport.cookie() {
                        let max_age = expires_ms.saturating_sub(sesame::now_ms()) / 1000;
                        sent |= append(h, SET_COOKIE, cookie.set(&text, max_age));
                    }
                    if let (true, Some(name)) = (reply.header, transport.response_header()) {
                        sent |= append(h, name, sensitive(&text));
                    }
                }
                TokenAction::Clear => {
                    if transport.cookie() {
                        sent |= append(h, SET_COOKIE, cookie.clear());
                    }
                    if let Some(name) = transport.response_header() {
                        sent |= append(h, name, sensitive(""));
                    }
                }
                _ => {}
            }
            if sent {
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if let Ok(v) = HeaderValue::from_str(&transport.vary()) {
                    h.append(VARY, v);
                }
            }
            Ok(res)
        })
    }
}

/// The transports a new token is sent through: those the request's token came in, or every
/// configured one when it came in none.
#[derive(Debug, Clone, Copy)]
struct Reply {
    cookie: bool,
    header: bool,
}

fn append(h: &mut http::HeaderMap, name: HeaderName, value: Option<HeaderValue>) -> bool {
    match value {
        Some(v) => {
            h.append(name, v);
            true
        }
        None => false,
    }
}

/// The `Max-Age` to send a persistent cookie again with, when this request pushed its
/// session's life forward: a read that touched it or a save (its idle deadline is then a whole
/// idle timeout after this request began), or any use once the absolute deadline caps the
/// session's life. `None` when nothing moved, or when the session is not the presented
/// token's own (a superseded token resolved to its successor).
///
/// Called after the commit, when the session is either loaded or known to be absent, so the
/// questions asked here never reach the store.
async fn refreshed_max_age(
    session: &sesame::Session,
    manager: &SessionManager,
    presented: &str,
    started_ms: u64,
) -> Option<u64> {
    let expires = session.expires_ms().await.ok()??;
    let created = session.created_ms().await.ok()??;
    let id = session.id().await.ok()??;
    if manager.config().tokens().parse(presented).ok()?.key().id() != id {
        return None;
    }
    let policy = manager.config().policy();
    let now = sesame::now_ms();
    let pushed = expires.saturating_sub(policy.idle_ms) >= started_ms;
    // A store that keeps relative TTLs reports a capped deadline a round trip early or late,
    // so "at the absolute deadline" allows for this request's duration plus `Max-Age`'s
    // resolution. Sending the cookie when the deadline is merely that close is harmless: its
    // `Max-Age` is the session's remaining life either way.
    let slack = now.saturating_sub(started_ms).saturating_add(1000);
    let capped = expires.saturating_add(slack) >= created.saturating_add(policy.absolute_ms);
    if !pushed && !capped {
        return None;
    }
    let max_age = expires.saturating_sub(now) / 1000;
    (max_age > 0).then_some(max_age)
}
