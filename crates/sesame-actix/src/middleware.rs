//! [`SessionMiddleware`]: opens the request's session from the token its transports carry
//! (the cookie by default), hands it to the handler, then commits what changed and hands out
//! or clears the token.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::HeaderName;
use actix_web::HttpMessage;
use sesame::SessionManager;
use sesame_http::{CookieConfig, Exchange, SessionSettings, TransportConfig};

use crate::error::respond;
use crate::headers::{write, Headers};

/// Adds sessions to every request of the app or scope it wraps (see the crate's front page
/// for an example).
#[derive(Clone, Debug)]
pub struct SessionMiddleware {
    settings: SessionSettings,
}

impl SessionMiddleware {
    /// A middleware over `manager` with the default (secure) cookie as the only transport.
    pub fn new(manager: SessionManager) -> SessionMiddleware {
        SessionMiddleware { settings: SessionSettings::new(manager) }
    }

    /// Uses this cookie configuration (built, hence validated, with [`CookieConfig::builder`]).
    pub fn cookie(mut self, cookie: CookieConfig) -> SessionMiddleware {
        self.settings.cookie = Arc::new(cookie);
        self
    }

    /// Uses these transports (built, hence validated, with [`TransportConfig::builder`]); the
    /// default is the cookie alone.
    pub fn transport(mut self, transport: TransportConfig) -> SessionMiddleware {
        self.settings.transport = Arc::new(transport);
        self
    }

    /// Takes the client's address from the first value of this request header (for example
    /// `X-Forwarded-For`) instead of the connection's peer address. Only behind a proxy that
    /// always sets it: a client can write any header. The address, with the `User-Agent`, is
    /// recorded when a session is created and given to the manager's hooks
    /// ([`sesame::SessionHooks`], for example [`sesame::CreationRateLimit`]).
    pub fn client_ip_header(mut self, name: HeaderName) -> SessionMiddleware {
        self.settings.client_ip_header = Some(name.as_str().to_string());
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
        ready(Ok(SessionService { inner: Rc::new(service), settings: self.settings.clone() }))
    }
}

/// The service made by [`SessionMiddleware`].
#[derive(Debug)]
pub struct SessionService<S> {
    inner: Rc<S>,
    settings: SessionSettings,
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
        let peer = req.peer_addr().map(|a| a.ip());
        let exchange = Exchange::open(&self.settings, &Headers(req.headers()), peer);
        req.extensions_mut().insert(exchange.session().clone());
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            match exchange.finish().await {
                Ok(out) => write(res.headers_mut(), out),
                // The handler's response is dropped: it may say "saved" while nothing was
                // written.
                Err(reply) => {
                    let (req, _) = res.into_parts();
                    return Ok(ServiceResponse::new(req, respond(reply)).map_into_right_body());
                }
            }
            Ok(res.map_into_left_body())
        })
    }
}
