//! Lifecycle events and the hooks an app can install on a [`SessionManager`].
//!
//! **Events** ([`SessionEvent`]) say what happened to a session: created, rotated, destroyed
//! (logout), revoked, reuse of a superseded token, an invalid token presented. They carry the
//! session's public id (a digest of its token, see [`SessionKey::id`]), never a token. Subscribe
//! with [`SessionManager::events`]; each subscriber gets every event sent after it subscribed,
//! through a bounded buffer (a subscriber that falls more than [`EVENT_BUFFER`] events behind
//! loses the oldest and is told how many). Nothing is built or sent while nobody subscribes.
//! Expiry is Redis's own doing and no app instance sees it: `sesame watch` reports expirations
//! (and every other end of a session) from Redis keyspace notifications, on a best-effort
//! basis. A session evicted at the per-user cap is ended inside the store and emits no event
//! yet.
//!
//! **Hooks** ([`SessionHooks`]) let an app refuse the creation of a session (rate limiting per
//! client, see [`CreationRateLimit`]) and check every request that carries a session against
//! the client attributes recorded when it was created ([`Verdict`]: go on, demand a fresh
//! authentication, or end the session).
//!
//! [`SessionManager`]: crate::SessionManager
//! [`SessionManager::events`]: crate::SessionManager::events
//! [`SessionKey::id`]: crate::SessionKey::id

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::token::InvalidToken;

/// How many events a subscriber may fall behind before it loses the oldest.
pub const EVENT_BUFFER: usize = 4096;

/// Something that happened to a session. Ids are public session ids (token digests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEvent {
    /// A new session was written (first commit of a new session, or a login that started a
    /// clean one).
    Created {
        /// The new session's id.
        id: String,
        /// Its principal, when created logged in.
        principal: Option<String>,
    },
    /// A session continues under a new token (login, `cycle_id`, the renewal timer).
    Rotated {
        /// The superseded id.
        from: String,
        /// The new id.
        to: String,
        /// The principal after the rotation, if any.
        principal: Option<String>,
    },
    /// A session ended by logout.
    Destroyed {
        /// Its id.
        id: String,
    },
    /// One session revoked by id (by its user or an administrator).
    Revoked {
        /// Its id.
        id: String,
    },
    /// Every session of a principal revoked ("log out everywhere", all but one).
    UserRevoked {
        /// The principal.
        principal: String,
        /// How many live sessions were ended.
        count: u64,
    },
    /// A superseded token was presented after its grace window: its session was revoked
    /// (possible token theft).
    ReuseDetected {
        /// The id of the superseded token's key.
        id: String,
    },
    /// A write found its session in an older state than the request had read: the store lost
    /// writes (a failover). The write was refused; nothing was merged into the older state.
    RolledBack {
        /// The session's id.
        id: String,
    },
    /// A token failed its format or check value (no store call was made).
    InvalidToken {
        /// Why it was rejected (never the token).
        reason: String,
    },
    /// A request hook ended a session ([`Verdict::End`]).
    EndedByHook {
        /// Its id.
        id: String,
    },
    /// A creation refused by the creation hook (for example a rate limit).
    CreationRefused {
        /// The client's address, when known.
        ip: Option<String>,
    },
}

impl SessionEvent {
    pub(crate) fn invalid(reason: InvalidToken) -> SessionEvent {
        SessionEvent::InvalidToken { reason: reason.to_string() }
    }
}

/// What a transport knows about the client of a request, recorded when a session is created
/// (binding) and given to the hooks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client's address as the app sees it (behind a proxy, whatever the app trusts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The `User-Agent` header, at most 256 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// Client information from an address and a user agent (the user agent is cut to 256
    /// bytes, at a character boundary).
    pub fn new(ip: Option<String>, user_agent: Option<&str>) -> ClientInfo {
        let user_agent = user_agent.map(|ua| {
            let mut end = ua.len().min(256);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua.get(..end).unwrap_or_default().to_string()
        });
        ClientInfo { ip, user_agent }
    }
}

/// What a request hook decides about a request that carries a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Serve the request.
    Continue,
    /// Serve nothing that needs the session until the user authenticates again
    /// ([`crate::Error::StepUpRequired`]); the session stays.
    StepUp,
    /// End the session now ([`crate::Error::SessionEnded`]).
    End,
}

/// What a request hook sees: the session as loaded and the client of this request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestCheck<'a> {
    /// The session's id.
    pub id: &'a str,
    /// Its principal, if logged in.
    pub principal: Option<&'a str>,
    /// When the principal authenticated, ms since the Unix epoch.
    pub auth_ms: Option<u64>,
    /// The client recorded when the session was created, if any.
    pub recorded: Option<&'a ClientInfo>,
    /// The client of this request, if the transport told.
    pub client: Option<&'a ClientInfo>,
}

/// Why a creation hook refused a new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Shown to the client (no session data).
    pub message: String,
    /// When to try again, if known.
    pub retry_after: Option<Duration>,
}

/// Hooks an app installs with [`crate::SessionManager::with_hooks`]. Both default to allowing
/// everything.
#[async_trait]
pub trait SessionHooks: Send + Sync + fmt::Debug {
    /// Called before a brand-new session (not a rotation of an existing one) is written.
    /// An error refuses it: the request fails with [`crate::Error::CreationRefused`].
    async fn before_create(&self, client: Option<&ClientInfo>) -> Result<(), Refusal> {
        let _ = client;
        Ok(())
    }

    /// Called on every request whose token loaded a live session.
    async fn on_request(&self, check: &RequestCheck<'_>) -> Verdict {
        let _ = check;
        Verdict::Continue
    }
}

/// A creation hook that lets each client address create at most `limit` sessions per
/// `window` on this instance (fixed windows; requests without an address share one
/// allowance). It bounds how fast one client can fill the store; across instances the limits
/// add up, so size it per instance. Tracks at most 100,000 addresses, forgetting them when
/// their window ends.
#[derive(Debug)]
pub struct CreationRateLimit {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (std::time::Instant, u32)>>,
}

const MAX_TRACKED_CLIENTS: usize = 100_000;

impl CreationRateLimit {
    /// At most `limit` new sessions per client address per `window`.
    pub fn new(limit: u32, window: Duration) -> CreationRateLimit {
        CreationRateLimit { limit, window, seen: Mutex::new(HashMap::new()) }
    }

    fn admit(&self, ip: &str) -> Result<(), Refusal> {
        let now = std::time::Instant::now();
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_TRACKED_CLIENTS {
            seen.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        if seen.len() >= MAX_TRACKED_CLIENTS && !seen.contains_key(ip) {
            return Err(self.refusal(self.window));
        }
        let entry = seen.entry(ip.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(self.refusal(left));
        }
        entry.1 = entry.1.saturating_add(1);
        Ok(())
    }

    fn refusal(&self, retry_after: Duration) -> Refusal {
        Refusal {
            message: "too many new sessions from this client; try again later".into(),
            retry_after: Some(retry_after),
        }
    }
}

#[async_trait]
impl SessionHooks for CreationRateLimit {
    async fn before_create(&self, client: Option<&ClientInfo>) -> Result<(), Refusal> {
        self.admit(client.and_then(|c| c.ip.as_deref()).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each address gets `limit` creations per window; other addresses are independent; a
    // window's end restores the allowance.
    #[test]
    fn rate_limit_per_client() {
        let r = CreationRateLimit::new(2, Duration::from_millis(200));
        assert!(r.admit("a").is_ok() && r.admit("a").is_ok());
        let refused = r.admit("a").unwrap_err();
        assert!(refused.retry_after.unwrap() <= Duration::from_millis(200));
        assert!(r.admit("b").is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(r.admit("a").is_ok());
    }

    // A user agent is cut at 256 bytes without splitting a character.
    #[test]
    fn client_info_bounds_the_user_agent() {
        let ua = "é".repeat(200);
        let c = ClientInfo::new(None, Some(&ua));
        let kept = c.user_agent.unwrap();
        assert!(kept.len() <= 256 && ua.starts_with(&kept));
    }
}
