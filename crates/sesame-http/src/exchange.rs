//! One request's session from start to finish, whatever the framework: [`Exchange::open`]
//! reads the token from the request's headers and opens a lazy session; after the handler,
//! [`Exchange::finish`] commits what changed and says, as plain data, which headers to add
//! to the response, or which error to answer instead.

use std::net::IpAddr;
use std::sync::Arc;

use sesame::{ClientInfo, SessionManager, TokenAction};

use crate::cookie::CookieConfig;
use crate::error::{describe, ErrorReply};
use crate::headers::HeaderLookup;
use crate::transport::TransportConfig;

/// The settings a framework adapter holds: the manager, the cookie, the transports, and the
/// request header that names the client's address, if any. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The session manager.
    pub manager: SessionManager,
    /// The session cookie.
    pub cookie: Arc<CookieConfig>,
    /// The token transports.
    pub transport: Arc<TransportConfig>,
    /// The request header (lower case) whose first value is the client's address, instead of
    /// the connection's peer address.
    pub client_ip_header: Option<String>,
}

impl SessionSettings {
    /// The default (secure) cookie as the only transport, and the peer address as the
    /// client's.
    pub fn new(manager: SessionManager) -> SessionSettings {
        SessionSettings {
            manager,
            cookie: Arc::new(CookieConfig::default()),
            transport: Arc::new(TransportConfig::default()),
            client_ip_header: None,
        }
    }

    /// The client of a request: its address (the first comma-separated value of the
    /// configured header, at most 64 characters, or else `peer`) and its `User-Agent`. `None`
    /// when neither is known.
    pub fn client_info<'h, H: HeaderLookup<'h> + ?Sized>(
        &self,
        headers: &H,
        peer: Option<IpAddr>,
    ) -> Option<ClientInfo> {
        let ip = match &self.client_ip_header {
            Some(name) => headers
                .first(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().chars().take(64).collect::<String>())
                .filter(|v| !v.is_empty()),
            None => peer.map(|p| p.to_string()),
        };
        let ua = headers.first("user-agent").and_then(|v| std::str::from_utf8(v).ok());
        (ip.is_some() || ua.is_some()).then(|| ClientInfo::new(ip, ua))
    }
}

/// A header to add to the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOut {
    /// Its name, in lower case.
    pub name: String,
    /// Its value.
    pub value: String,
    /// It carries a token (`Set-Cookie`, the token header): HTTP/2 and HTTP/3 encoders must
    /// keep it out of their compression tables.
    pub sensitive: bool,
    /// It replaces any value the handler set, instead of being added beside it.
    pub replace: bool,
}

impl HeaderOut {
    fn token(name: &str, value: String) -> HeaderOut {
        HeaderOut { name: name.to_string(), value, sensitive: true, replace: false }
    }
}

/// One request's session, between opening and finishing.
#[derive(Debug)]
pub struct Exchange {
    session: sesame::Session,
    settings: SessionSettings,
    reply_cookie: bool,
    reply_header: bool,
    refresh: Option<String>,
    started_ms: u64,
}

impl Exchange {
    /// Picks the request's token from the configured transports (never from the URL) and
    /// opens a lazy session with it: nothing reaches the store until the handler uses the
    /// session. `peer` is the connection's peer address, when known.
    pub fn open<'h, H: HeaderLookup<'h> + ?Sized>(
        settings: &SessionSettings,
        headers: &H,
        peer: Option<IpAddr>,
    ) -> Exchange {
        let manager = &settings.manager;
        let started_ms = sesame::now_ms();
        let p = settings.transport.presented(&settings.cookie, manager.config().tokens(), headers);
        let session = manager.open_for(p.token, settings.client_info(headers, peer));
        // A new token goes back the way the token came, or every way when none came.
        let (reply_cookie, reply_header) =
            if p.any() { (p.via_cookie, p.via_header) } else { (true, true) };
        // A persistent cookie is sent again when the session's life was pushed forward.
        let refresh = (settings.cookie.is_persistent() && p.via_cookie)
            .then(|| p.token.map(str::to_owned))
            .flatten();
        Exchange {
            session,
            settings: settings.clone(),
            reply_cookie,
            reply_header,
            refresh,
            started_ms,
        }
    }

    /// The request's session, to hand to the handler.
    pub fn session(&self) -> &sesame::Session {
        &self.session
    }

    /// Commits what the handler changed, then lists the headers to add to its response:
    /// `Set-Cookie` and the token header when a token is handed out or cleared, with
    /// `Cache-Control: no-store` and `Vary` naming the transports' request headers. A failed
    /// commit is an error answer that must replace the handler's response, which may say
    /// "saved" while nothing was written.
    pub async fn finish(self) -> Result<Vec<HeaderOut>, ErrorReply> {
        // Boxed, like the rarer paths within it, so that no future of a request outgrows the
        // allocator's per-thread cache (see `Session::commit`).
        let action = match Box::pin(self.session.commit()).await {
            Ok(a) => a,
            Err(e) => {
                let reply = ErrorReply::new(&e);
                let error = describe(&e);
                if reply.status >= 500 {
                    tracing::warn!(%error, "session commit failed");
                } else {
                    tracing::debug!(%error, "session commit refused");
                }
                return Err(reply);
            }
        };
        let (cookie, transport) = (&self.settings.cookie, &self.settings.transport);
        let mut out = Vec::new();
        match action {
            TokenAction::Keep => {
                if let Some(token) = &self.refresh {
                    if let Some(max_age) = Box::pin(self.refreshed_max_age(token)).await {
                        out.push(HeaderOut::token("set-cookie", cookie.set(token, max_age)));
                    }
                }
            }
            TokenAction::Set { token, expires_ms } => {
                let text = token.expose();
                if self.reply_cookie && transport.cookie() {
                    let max_age = expires_ms.saturating_sub(sesame::now_ms()) / 1000;
                    out.push(HeaderOut::token("set-cookie", cookie.set(&text, max_age)));
                }
                if let (true, Some(name)) = (self.reply_header, transport.response_header()) {
                    out.push(HeaderOut::token(name, text));
                }
            }
            TokenAction::Clear => {
                if transport.cookie() {
                    out.push(HeaderOut::token("set-cookie", cookie.clear()));
                }
                if let Some(name) = transport.response_header() {
                    out.push(HeaderOut::token(name, String::new()));
                }
            }
            _ => {}
        }
        if !out.is_empty() {
            out.push(HeaderOut {
                name: "cache-control".into(),
                value: "no-store".into(),
                sensitive: false,
                replace: true,
            });
            out.push(HeaderOut {
                name: "vary".into(),
                value: transport.vary(),
                sensitive: false,
                replace: false,
            });
        }
        Ok(out)
    }

    /// The `Max-Age` to send a persistent cookie again with, when this request pushed its
    /// session's life forward: a read that touched it or a save (its idle deadline is then a
    /// whole idle timeout after this request began), or any use once the absolute deadline
    /// caps the session's life. `None` when nothing moved, or when the session is not the
    /// presented token's own (a superseded token resolved to its successor).
    ///
    /// Called after the commit, when the session is either loaded or known to be absent, so
    /// the questions asked here never reach the store.
    async fn refreshed_max_age(&self, presented: &str) -> Option<u64> {
        let session = &self.session;
        let config = self.settings.manager.config();
        let expires = session.expires_ms().await.ok()??;
        let created = session.created_ms().await.ok()??;
        let id = session.id().await.ok()??;
        if config.tokens().parse(presented).ok()?.key().id() != id {
            return None;
        }
        let policy = config.policy();
        let now = sesame::now_ms();
        let pushed = expires.saturating_sub(policy.idle_ms) >= self.started_ms;
        // A store that keeps relative TTLs reports a capped deadline a round trip early or
        // late, so "at the absolute deadline" allows for this request's duration plus
        // `Max-Age`'s resolution. Sending the cookie when the deadline is merely that close is
        // harmless: its `Max-Age` is the session's remaining life either way.
        let slack = now.saturating_sub(self.started_ms).saturating_add(1000);
        let capped = expires.saturating_add(slack) >= created.saturating_add(policy.absolute_ms);
        if !pushed && !capped {
            return None;
        }
        let max_age = expires.saturating_sub(now) / 1000;
        (max_age > 0).then_some(max_age)
    }
}
