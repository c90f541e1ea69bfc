//! [`SessionMiddleware`]: opens the request's session from the token its transports carry
//! (the cookie by default), hands it to the handler, then commits what changed and hands out
//! or clears the token.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{
    HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, SET_COOKIE, USER_AGENT, VARY,
};
use actix_web::{HttpMessage, ResponseError};
use sesame::{ClientInfo, SessionManager, TokenAction};
use sesame_axum::TransportConfig;

use crate::cookie::{sensitive, CookieConfig};
use crate::error::SessionError;
use crate::transport::{presented, response_header, vary};

/// Adds sessions to every request of the app or scope it wraps (see the crate's front page
/// for an example).
#[derive(Clone, Debug)]
pub struct SessionMiddleware {
    manager: SessionManager,
    cookie: Arc<CookieConfig>,
    transport: Arc<TransportConfig>,
}

impl SessionMiddleware {
    /// A middleware over `manager` with the default (secure) cookie as the only transport.
    pub fn new(manager: SessionManager) -> SessionMiddleware {
        SessionMiddleware {
            manager,
            cookie: Arc::new(CookieConfig::default()),
            transport: Arc::new(TransportConfig::default()),
        }
    }

    /// Uses this cookie configuration (built, hence validated, with [`CookieConfig::builder`]).
    pub fn cookie(mut self, cookie: CookieConfig) -> SessionMiddleware {
        self.cookie = Arc::new(cookie);
        self
    }

    /// Uses these transports (built, hence validated, with [`TransportConfig::builder`]); the
    /// default is the cookie alone.
    pub fn transport(mut self, transport: TransportConfig) -> SessionMiddleware {
        self.transport = Arc::new(transport);
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<SessionService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService {
            inner: Rc::new(service),
            manager: self.manager.clone(),
            cookie: self.cookie.clone(),
            transport: self.transport.clone(),
        }))
    }
}

/// The service made by [`SessionMiddleware`].
#[derive(Debug)]
pub struct SessionService<S> {
    inner: Rc<S>,
    manager: SessionManager,
    cookie: Arc<CookieConfig>,
    transport: Arc<TransportConfig>,
}

/// The client of a request: its peer address and user agent.
fn client_info(req: &ServiceRequest) -> Option<ClientInfo> {
    let ip = req.peer_addr().map(|a| a.ip().to_string());
    let ua = req.headers().get(USER_AGENT).and_then(|v| v.to_str().ok());
    (ip.is_some() || ua.is_some()).then(|| ClientInfo::new(ip, ua))
}

type Reply<B> = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Reply<B>>>>;

    forward_ready!(inner);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let inner = self.inner.clone();
        let (cookie, transport) = (self.cookie.clone(), self.transport.clone());
        let manager = self.manager.clone();
        let started_ms = sesame::now_ms();
        let p = presented(&transport, &cookie, manager.config().tokens(), req.headers());
        let session = manager.open_for(p.token, client_info(&req));
        let (via_cookie, via_header) =
            if p.any() { (p.via_cookie, p.via_header) } else { (true, true) };
        let refresh =
            (cookie.is_persistent() && p.via_cookie).then(|| p.token.map(str::to_owned)).flatten();
        req.extensions_mut().insert(session.clone());
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            let action = match session.commit().await {
                Ok(a) => a,
                Err(e) => {
                    // The handler's response is dropped: it may say "saved" while nothing was
                    // written.
                    let err = SessionError::from(e);
                    if err.status_code().is_server_error() {
                        tracing::warn!(error = %err, "session commit failed");
                    } else {
                        tracing::debug!(error = %err, "session commit refused");
                    }
                    let (req, _) = res.into_parts();
                    return Ok(
                        ServiceResponse::new(req, err.error_response()).map_into_right_body()
                    );
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
                    if via_cookie && transport.cookie() {
                        let max_age = expires_ms.saturating_sub(sesame::now_ms()) / 1000;
                        sent |= append(h, SET_COOKIE, cookie.set(&text, max_age));
                    }
                    if let (true, Some(name)) = (via_header, response_header(&transport)) {
                        sent |= append(h, name, sensitive(&text));
                    }
                }
                TokenAction::Clear => {
                    if transport.cookie() {
                        sent |= append(h, SET_COOKIE, cookie.clear());
                    }
                    if let Some(name) = response_header(&transport) {
                        sent |= append(h, name, sensitive(""));
                    }
                }
                _ => {}
            }
            if sent {
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if let Ok(v) = HeaderValue::from_str(&vary(&transport)) {
                    h.append(VARY, v);
                }
            }
            Ok(res.map_into_left_body())
        })
    }
}

fn append(h: &mut HeaderMap, name: HeaderName, value: Option<HeaderValue>) -> bool {
    match value {
        Some(v) => {
            h.append(name, v);
            true
        }
        None => false,
    }
}

/// The `Max-Age` to send a persistent cookie again with, when this request pushed its
/// session's life forward (a save or a touch), or when the absolute deadline caps it. Called
/// after the commit, so it never reaches the store.
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
    let slack = now.saturating_sub(started_ms).saturating_add(1000);
    let capped = expires.saturating_add(slack) >= created.saturating_add(policy.absolute_ms);
    if !pushed && !capped {
        return None;
    }
    let max_age = expires.saturating_sub(now) / 1000;
    (max_age > 0).then_some(max_age)
}
