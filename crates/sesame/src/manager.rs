//! [`SessionManager`]: a store plus a configuration, shared by every request of an app
//! instance. It opens per-request [`Session`]s and offers the administrative operations.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::SessionConfig;
use crate::error::Error;
use crate::session::{check_principal, Session};
use crate::store::{SessionInfo, Store};
use crate::token::{SessionKey, SessionToken};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Counters of one manager, for metrics.
#[derive(Debug, Default)]
struct Counters {
    invalid_tokens: AtomicU64,
    unknown_tokens: AtomicU64,
    created: AtomicU64,
    destroyed: AtomicU64,
    reused_tokens: AtomicU64,
    sessions_ended: AtomicU64,
}

/// A snapshot of a manager's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Tokens rejected by format or check value (no store call was made).
    pub invalid_tokens: u64,
    /// Well-formed tokens whose session does not exist (expired, revoked or never issued).
    pub unknown_tokens: u64,
    /// Sessions created (including by rotation).
    pub created: u64,
    /// Sessions destroyed by logout.
    pub destroyed: u64,
    /// Superseded tokens presented after their grace window: each revoked its lineage
    /// (possible token theft).
    pub reused_tokens: u64,
    /// Commits whose session had ended meanwhile (their changes were refused).
    pub sessions_ended: u64,
}

/// Opens sessions on a store under one configuration. Cheap to clone.
///
/// ```
/// # async fn f() -> Result<(), sesame::Error> {
/// use std::sync::Arc;
/// let manager = sesame::SessionManager::new(
///     Arc::new(sesame::MemoryStore::new()),
///     sesame::SessionConfig::default(),
/// );
/// let session = manager.open(None); // a request without a token
/// session.insert("theme", "dark").await?;
/// let action = session.commit().await?; // creates the session, returns its token
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    store: Arc<dyn Store>,
    config: Arc<SessionConfig>,
    counters: Arc<Counters>,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager over `store` with `config`.
    pub fn new(store: Arc<dyn Store>, config: SessionConfig) -> SessionManager {
        SessionManager { store, config: Arc::new(config), counters: Arc::default() }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Opens the session of a request from the token text the client sent, if any. A token
    /// that fails the format or check-value test is treated as absent (and counted) without
    /// any store call; a new session, if one is needed, always gets a new server-made token.
    pub fn open(&self, token: Option<&str>) -> Session {
        let incoming = token.and_then(|t| match self.config.tokens().parse(t) {
            Ok(tok) => Some(tok),
            Err(e) => {
                self.counters.invalid_tokens.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(reason = %e, "rejected a session token");
                None
            }
        });
        Session::new(self.clone(), incoming)
    }

    /// The live sessions of a principal, most recently active first (at most the per-user cap).
    pub async fn list_user(&self, principal: &str) -> Result<Vec<SessionInfo>, Error> {
        check_principal(principal)?;
        let limit = self.config.policy().max_sessions_per_user as usize;
        let principal = self.config.store_principal(principal);
        Ok(self.store.list_user(&principal, now_ms(), limit).await?)
    }

    /// Ends every session of a principal (for example when the account is disabled or its
    /// password changed), including sessions being created or rotated at this moment: a login
    /// of the principal that began before this call fails with [`Error::LoginRevoked`].
    /// Returns how many live sessions were ended.
    pub async fn revoke_user(&self, principal: &str) -> Result<u64, Error> {
        check_principal(principal)?;
        let principal = self.config.store_principal(principal);
        Ok(self.store.revoke_all(&principal, None, now_ms()).await?)
    }

    /// Opens a chain of sealed successors from `token`; the result must reach `head`.
    pub(crate) fn open_chain(
        &self,
        token: &SessionToken,
        sealed: &[Vec<u8>],
        head: &SessionKey,
    ) -> Option<SessionToken> {
        let mut t = token.clone();
        for s in sealed {
            t = self.config.tokens().open_successor(&t, s)?;
        }
        (t.key() == *head).then_some(t)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            invalid_tokens: c.invalid_tokens.load(Ordering::Relaxed),
            unknown_tokens: c.unknown_tokens.load(Ordering::Relaxed),
            created: c.created.load(Ordering::Relaxed),
            destroyed: c.destroyed.load(Ordering::Relaxed),
            reused_tokens: c.reused_tokens.load(Ordering::Relaxed),
            sessions_ended: c.sessions_ended.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn note_unknown_token(&self) {
        self.counters.unknown_tokens.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_reused_token(&self, key: &SessionKey) {
        self.counters.reused_tokens.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(id = %key.id(), "a superseded session token was presented after its grace window; its session was revoked");
    }

    pub(crate) fn note_session_ended(&self) {
        self.counters.sessions_ended.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_created(&self) {
        self.counters.created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_destroyed(&self) {
        self.counters.destroyed.fetch_add(1, Ordering::Relaxed);
    }
}
