//! [`SessionManager`]: a store plus a configuration, shared by every request of an app
//! instance. It opens per-request [`Session`]s and offers the administrative operations.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use crate::config::SessionConfig;
use crate::error::Error;
use crate::events::{ClientInfo, SessionEvent, SessionHooks, EVENT_BUFFER};
use crate::metrics::{self, store_op, Op};
use crate::session::{check_principal, Session};
use crate::store::{SessionInfo, Store};
use crate::token::{SessionKey, SessionToken, UserRef};

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
    rolled_back: AtomicU64,
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
    /// Commits refused because the store held an older version of their session than they
    /// had read (writes lost by a failover).
    pub rolled_back: u64,
}

/// A listed session with the client that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionDetails {
    /// What the user's index holds.
    pub info: SessionInfo,
    /// The client recorded when the session was created, if the transport told.
    pub client: Option<ClientInfo>,
}

/// Opens sessions on a store under one configuration. Cheap to clone.
///
/// ```
/// # async fn f() -> Result<(), sesame::Error> {
/// use std::sync::Arc;
/// let manager = sesame::SessionManager::new(
///     Arc::new(sesame::MemoryStore::new()),
///     sesame::SessionConfig::builder().insecure_development_secret().build()?,
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
    events: broadcast::Sender<SessionEvent>,
    hooks: Option<Arc<dyn SessionHooks>>,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager over `store` with `config`.
    pub fn new(store: Arc<dyn Store>, config: SessionConfig) -> SessionManager {
        if config.is_insecure_development() {
            tracing::warn!(
                "sessions run on the public development secret: anyone can forge their tokens; \
                 configure token_secret(..) outside local development"
            );
        }
        SessionManager {
            store,
            config: Arc::new(config),
            counters: Arc::default(),
            events: broadcast::channel(EVENT_BUFFER).0,
            hooks: None,
        }
    }

    /// This manager with `hooks` installed (creation refusals, per-request checks).
    pub fn with_hooks(mut self, hooks: Arc<dyn SessionHooks>) -> SessionManager {
        self.hooks = Some(hooks);
        self
    }

    /// The installed hooks, if any.
    pub fn hooks(&self) -> Option<&Arc<dyn SessionHooks>> {
        self.hooks.as_ref()
    }

    /// Subscribes to this manager's lifecycle events (see [`crate::events`]): every event
    /// sent from now on, ids only, never tokens.
    pub fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    /// Sends an event, building it only when someone listens.
    pub(crate) fn emit(&self, event: impl FnOnce() -> SessionEvent) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(event());
        }
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
        self.open_for(token, None)
    }

    /// Like [`SessionManager::open`], for a client the transport describes: its attributes are
    /// recorded in a session created by this request, and given to the hooks.
    pub fn open_for(&self, token: Option<&str>, client: Option<ClientInfo>) -> Session {
        let incoming = token.and_then(|t| match self.config.tokens().parse(t) {
            Ok(tok) => Some(tok),
            Err(e) => {
                self.counters.invalid_tokens.fetch_add(1, Ordering::Relaxed);
                metrics::count(metrics::INVALID_TOKENS);
                tracing::debug!(reason = %e, "rejected a session token");
                self.emit(|| SessionEvent::invalid(e));
                None
            }
        });
        Session::new(self.clone(), incoming, client)
    }

    /// The live sessions of a principal, most recently active first (at most the per-user cap).
    pub async fn list_user(&self, principal: &str) -> Result<Vec<SessionInfo>, Error> {
        check_principal(principal)?;
        let limit = self.config.policy().max_sessions_per_user as usize;
        let user = self.config.naming().user(principal);
        Ok(store_op(Op::List, None, self.store.list_user(user, now_ms(), limit)).await?)
    }

    /// Like [`SessionManager::list_user`], with the client each session was created by (its
    /// address and user agent, when the transport told): one more store read, which moves no
    /// deadline.
    pub async fn list_user_detailed(&self, principal: &str) -> Result<Vec<SessionDetails>, Error> {
        check_principal(principal)?;
        let limit = self.config.policy().max_sessions_per_user as usize;
        let user = self.config.naming().user(principal);
        let list = store_op(Op::List, None, self.store.list_user(user, now_ms(), limit)).await?;
        self.details(user, list).await
    }

    /// The sessions of `list` (all of `user`) with the clients that created them.
    pub(crate) async fn details(
        &self,
        user: UserRef,
        list: Vec<SessionInfo>,
    ) -> Result<Vec<SessionDetails>, Error> {
        let keys: Vec<Option<SessionKey>> =
            list.iter().map(|i| SessionKey::from_parts(user.tag(), &i.id)).collect();
        let present: Vec<SessionKey> = keys.iter().flatten().copied().collect();
        let mut records =
            store_op(Op::Peek, None, self.store.peek(&present, now_ms())).await?.into_iter();
        Ok(list
            .into_iter()
            .zip(keys)
            .map(|(info, key)| {
                let record = key.and_then(|_| records.next().flatten());
                let client =
                    record.as_ref().and_then(|r| crate::session::client_of(&self.config, r));
                SessionDetails { info, client }
            })
            .collect())
    }

    /// Ends every session of a principal (for example when the account is disabled or its
    /// password changed), including sessions being created or rotated at this moment: a login
    /// of the principal that began before this call fails with [`Error::LoginRevoked`].
    /// Returns how many live sessions were ended.
    pub async fn revoke_user(&self, principal: &str) -> Result<u64, Error> {
        check_principal(principal)?;
        let user = self.config.naming().user(principal);
        let n = store_op(Op::RevokeAll, None, self.store.revoke_all(user, None, now_ms())).await?;
        metrics::count_revocation("all");
        self.emit(|| SessionEvent::UserRevoked { principal: principal.to_string(), count: n });
        Ok(n)
    }

    /// Like [`SessionManager::revoke_user`], keeping the session with public id `keep` ("log
    /// out everywhere else" on the user's behalf). Returns how many sessions were ended.
    pub async fn revoke_user_except(&self, principal: &str, keep: &str) -> Result<u64, Error> {
        check_principal(principal)?;
        let user = self.config.naming().user(principal);
        let n = store_op(Op::RevokeAll, None, self.store.revoke_all(user, Some(keep), now_ms()))
            .await?;
        metrics::count_revocation("all");
        self.emit(|| SessionEvent::UserRevoked { principal: principal.to_string(), count: n });
        Ok(n)
    }

    /// Revokes one session of a principal by id (an administrator's action). Returns whether
    /// it existed and was theirs.
    pub async fn revoke_session(&self, principal: &str, id: &str) -> Result<bool, Error> {
        check_principal(principal)?;
        let user = self.config.naming().user(principal);
        let done = store_op(Op::Revoke, Some(&id), self.store.revoke(user, id, now_ms())).await?;
        if done {
            metrics::count_revocation("one");
            self.emit(|| SessionEvent::Revoked { id: id.to_string() });
        }
        Ok(done)
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
            rolled_back: c.rolled_back.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn note_unknown_token(&self) {
        self.counters.unknown_tokens.fetch_add(1, Ordering::Relaxed);
        metrics::count(metrics::UNKNOWN_TOKENS);
    }

    pub(crate) fn note_reused_token(&self, key: &SessionKey) {
        self.counters.reused_tokens.fetch_add(1, Ordering::Relaxed);
        metrics::count(metrics::REUSE_DETECTIONS);
        tracing::warn!(id = %key.id(), "a superseded session token was presented after its grace window; its session was revoked");
        self.emit(|| SessionEvent::ReuseDetected { id: key.id() });
    }

    pub(crate) fn note_session_ended(&self) {
        self.counters.sessions_ended.fetch_add(1, Ordering::Relaxed);
        metrics::count(metrics::SESSIONS_ENDED);
    }

    pub(crate) fn note_rolled_back(&self, key: &SessionKey) {
        self.counters.rolled_back.fetch_add(1, Ordering::Relaxed);
        metrics::count(metrics::ROLLBACKS);
        tracing::warn!(id = %key.id(), "the store went back to an older version of a session (writes lost by a failover?); this request's changes were refused");
        self.emit(|| SessionEvent::RolledBack { id: key.id() });
    }

    pub(crate) fn note_created(&self) {
        self.counters.created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_destroyed(&self) {
        self.counters.destroyed.fetch_add(1, Ordering::Relaxed);
        metrics::count(metrics::DESTROYS);
    }
}
