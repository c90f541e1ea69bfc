//! The per-request [`Session`] handle: lazy load, typed access, change tracking, rotation,
//! login and logout, and the commit that writes only what changed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::config::SessionConfig;
use crate::crypt::{Keyring, PRINCIPAL_SLOT};
use crate::error::{Error, StoreError};
use crate::events::{ClientInfo, RequestCheck, SessionEvent, Verdict};
use crate::manager::{now_ms, SessionDetails, SessionManager};
use crate::metrics::{self, store_op, Op};
use crate::store::{Loaded, Login, Lookup, Record, SessionInfo, UpdateFn};
use crate::token::{SessionKey, SessionToken, UserRef};

mod auth;
mod commit;
use crate::value;

pub use auth::PendingLogin;

/// Attribute names starting with this are sesame's own (the client recorded at creation, a
/// pending login); an app cannot set or remove them.
pub const RESERVED_PREFIX: &str = "sesame.";
/// The client recorded when the session was created ([`ClientInfo`], JSON).
pub const CLIENT_ATTR: &str = "sesame.client";
/// A login waiting for its second step ([`PendingLogin`], JSON).
pub const PENDING_ATTR: &str = "sesame.pending";

/// Longest attribute name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest principal accepted, in bytes.
pub const MAX_PRINCIPAL_BYTES: usize = 256;

/// The session of one request. Cheap to clone; clones share state.
///
/// Nothing is read from the store until a method needs the session, and nothing is written
/// unless something changed: a handler that never touches its session costs no store call.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

/// Prints nothing of the session's data (attributes, records, tokens).
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session { .. }")
    }
}

struct Inner {
    manager: SessionManager,
    state: Mutex<State>,
}

// One per request, never in a collection: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Current {
    Unloaded,
    Absent,
    /// A live session: its key, the token that reaches it (unknown only if a superseded
    /// token's successor could not be opened), and the record as loaded.
    Present {
        key: SessionKey,
        token: Option<SessionToken>,
        loaded: Loaded,
    },
}

/// A pending change of one attribute. An exact update's state is boxed: this is the value type
/// of the pending changes' `BTreeMap`, whose first node would otherwise be a block over 1 KiB
/// (which glibc's allocator takes from a shared arena under its lock, not from its per-thread
/// cache; see docs/BENCHMARKS.md, "Futures and the allocator").
#[derive(Clone)]
enum Change {
    Set(Vec<u8>),
    Remove,
    Update(Box<PendingUpdate>),
}

/// An exact update not yet written: the stored bytes it started from, its result so far, and
/// its steps, to run again on the stored value should another write come first.
#[derive(Clone)]
struct PendingUpdate {
    seen: Option<Vec<u8>>,
    result: Option<Vec<u8>>,
    steps: Vec<UpdateFn>,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Set(_) => "Set(..)",
            Change::Remove => "Remove",
            Change::Update(_) => "Update(..)",
        })
    }
}

impl Change {
    fn value(&self) -> Option<&Vec<u8>> {
        match self {
            Change::Set(v) => Some(v),
            Change::Remove => None,
            Change::Update(u) => u.result.as_ref(),
        }
    }
}

struct State {
    incoming: Option<SessionToken>,
    /// The client of this request, as the transport described it.
    client: Option<ClientInfo>,
    /// A request hook asked for a fresh authentication: only login and logout may proceed.
    step_up: bool,
    /// A request hook ended the session (already gone from the store).
    ended_by_hook: bool,
    current: Current,
    changes: BTreeMap<String, Change>,
    rotate: bool,
    login: Option<Login>,
    /// The principal's name as given to `login` (the store knows it by `login`'s principal,
    /// a pseudonym while encryption is on).
    login_name: Option<String>,
    destroyed: bool,
    /// A token the client must be given even without a rotation of its own (the presented
    /// token was superseded within its grace window).
    send_token: bool,
}

/// What the transport must do with the client's token after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenAction {
    /// Nothing to send.
    Keep,
    /// Send this (new) token; the session expires at `expires_ms` if left idle.
    Set {
        /// The token to hand to the client.
        token: SessionToken,
        /// Earliest expiry, ms since the Unix epoch.
        expires_ms: u64,
    },
    /// Tell the client to forget its token.
    Clear,
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::Invalid(format!(
            "attribute names must be 1 to {MAX_NAME_BYTES} bytes long"
        )));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(Error::Invalid(format!(
            "attribute names starting with {RESERVED_PREFIX:?} are reserved"
        )));
    }
    Ok(())
}

/// Checks a principal name: 1 to 256 bytes, no control characters.
pub fn check_principal(p: &str) -> Result<(), Error> {
    if p.is_empty() || p.len() > MAX_PRINCIPAL_BYTES || p.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "a principal must be 1 to {MAX_PRINCIPAL_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

impl Session {
    pub(crate) fn new(
        manager: SessionManager,
        incoming: Option<SessionToken>,
        client: Option<ClientInfo>,
    ) -> Session {
        let current = if incoming.is_some() { Current::Unloaded } else { Current::Absent };
        Session {
            inner: Arc::new(Inner {
                manager,
                state: Mutex::new(State {
                    incoming,
                    client,
                    step_up: false,
                    ended_by_hook: false,
                    current,
                    changes: BTreeMap::new(),
                    rotate: false,
                    login: None,
                    login_name: None,
                    destroyed: false,
                    send_token: false,
                }),
            }),
        }
    }

    /// The state, loaded; fails while a request hook demands a fresh authentication.
    async fn loaded(&self) -> Result<tokio::sync::MutexGuard<'_, State>, Error> {
        let st = self.loaded_raw().await?;
        if st.step_up {
            return Err(Error::StepUpRequired);
        }
        Ok(st)
    }

    /// The state, loaded (the first call loads it and runs the request hook).
    async fn loaded_raw(&self) -> Result<tokio::sync::MutexGuard<'_, State>, Error> {
        let mut st = self.inner.state.lock().await;
        if st.destroyed {
            return Err(Error::Destroyed);
        }
        if let Current::Unloaded = st.current {
            let m = &self.inner.manager;
            let policy = m.config().policy();
            let now = now_ms();
            let mut current = match st.incoming.clone() {
                Some(token) => {
                    let key = token.key();
                    match store_op(
                        Op::Load,
                        Some(&key.id_display()),
                        m.store().load(&key, now, policy),
                    )
                    .await
                    {
                        Err(e) => {
                            tracing::warn!(id = %key.id(), error = %e, kind = e.kind(), "session load failed");
                            return Err(e.into());
                        }
                        Ok(Lookup::Live(loaded)) if loaded.record.absolute_ms > now => {
                            Current::Present { key, token: Some(token), loaded }
                        }
                        Ok(Lookup::Successor { head, loaded, sealed })
                            if loaded.record.absolute_ms > now =>
                        {
                            let token = m.open_chain(&token, &sealed, &head);
                            st.send_token = token.is_some();
                            Current::Present { key: head, token, loaded }
                        }
                        Ok(Lookup::Reused) => {
                            m.note_reused_token(&key);
                            Current::Absent
                        }
                        Ok(_) => {
                            m.note_unknown_token();
                            Current::Absent
                        }
                    }
                }
                None => Current::Absent,
            };
            if let Current::Present { key, loaded, .. } = &current {
                // A session written with the other encryption setting, or whose principal does
                // not open (sealed under a key no longer configured, or altered), is not used:
                // the client gets a new session when one is needed.
                let keys = m.config().encryption();
                let unusable = if loaded.record.sid.is_some() != keys.is_some() {
                    Some("it was written with the other encryption setting".to_string())
                } else {
                    principal_of(m.config(), &loaded.record).err().map(|e| e.to_string())
                };
                if let Some(reason) = unusable {
                    tracing::warn!(id = %key.id(), %reason, "session not used");
                    m.note_unknown_token();
                    st.send_token = false;
                    current = Current::Absent;
                }
            }
            st.current = current;
            if let (Current::Present { loaded, .. }, Some(renew)) =
                (&st.current, policy.renew_after_ms)
            {
                let since = loaded.record.rotated_ms.max(loaded.record.created_ms);
                if now.saturating_sub(since) >= renew {
                    st.rotate = true;
                }
            }
            self.check_request(&mut st, now).await?;
        }
        Ok(st)
    }

    /// Runs the request hook on a freshly loaded session.
    async fn check_request(&self, st: &mut State, now: u64) -> Result<(), Error> {
        let m = &self.inner.manager;
        let (Some(hooks), Current::Present { key, loaded, .. }) = (m.hooks(), &st.current) else {
            return Ok(());
        };
        let id = key.id();
        let recorded: Option<ClientInfo> =
            loaded.record.attrs.get(CLIENT_ATTR).and_then(|b| value::decode(b).ok());
        let principal = loaded.record.principal.as_ref().map(|p| p.name());
        let check = RequestCheck {
            id: &id,
            principal,
            auth_ms: loaded.record.auth_ms,
            recorded: recorded.as_ref(),
            client: st.client.as_ref(),
        };
        match hooks.on_request(&check).await {
            Verdict::Continue => Ok(()),
            Verdict::StepUp => {
                st.step_up = true;
                Ok(())
            }
            Verdict::End => {
                let key = *key;
                commit::destroy(m, &key, now).await?;
                m.emit(|| SessionEvent::EndedByHook { id });
                st.current = Current::Absent;
                st.destroyed = true;
                st.ended_by_hook = true;
                Err(Error::SessionEnded)
            }
        }
    }

    /// Reads an attribute, decoding it into `T`. `None` when absent.
    ///
    /// ```no_run
    /// # async fn f(session: sesame::Session) -> Result<(), sesame::Error> {
    /// let visits: u64 = session.get("visits").await?.unwrap_or(0);
    /// session.insert("visits", &(visits + 1)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        check_name(name)?;
        let st = self.loaded().await?;
        let value_error = |message| Error::Value { name: name.to_string(), message };
        match st.plain_value(name, self.keyring()).map_err(value_error)? {
            None => Ok(None),
            Some(b) => value::decode(&b).map(Some).map_err(value_error),
        }
    }

    fn keyring(&self) -> Option<&Keyring> {
        self.inner.manager.config().encryption().map(|k| &**k)
    }

    /// Sets an attribute. Setting the value it already has changes nothing. Concurrent
    /// requests that set different attributes all persist; two that set the same attribute:
    /// the last one written wins. For an exact read-modify-write, use [`Session::update`].
    pub async fn insert<T: Serialize + ?Sized>(&self, name: &str, v: &T) -> Result<(), Error> {
        check_name(name)?;
        let config = self.inner.manager.config();
        let bytes = value::encode_as(config.value_format(), v, config.compress_above())
            .map_err(|message| Error::Value { name: name.to_string(), message })?;
        let mut st = self.loaded().await?;
        let unchanged =
            matches!(st.stored_plain(name, self.keyring()), Ok(Some(v)) if *v == *bytes);
        if unchanged {
            st.changes.remove(name);
        } else {
            st.changes.insert(name.to_string(), Change::Set(bytes));
        }
        Ok(())
    }

    /// Removes an attribute. Returns whether it was there.
    pub async fn remove(&self, name: &str) -> Result<bool, Error> {
        check_name(name)?;
        let mut st = self.loaded().await?;
        let was = st.value(name).is_some();
        if st.stored(name).is_some() {
            st.changes.insert(name.to_string(), Change::Remove);
        } else {
            st.changes.remove(name);
        }
        Ok(was)
    }

    /// An exact read-modify-write of one attribute: `f` changes the value (the type's default
    /// when absent) and the result is returned. At commit, when another request changed the
    /// attribute since this one read it, `f` runs again on the stored value, so concurrent
    /// updates of one attribute are never lost (for example 100 concurrent "add to cart"
    /// requests leave 100 items). `f` may run more than once: keep it free of side effects.
    ///
    /// ```no_run
    /// # async fn f(session: sesame::Session) -> Result<(), sesame::Error> {
    /// let cart: Vec<String> = session
    ///     .update("cart", |cart: &mut Vec<String>| cart.push("apple".into()))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn update<T, F>(&self, name: &str, f: F) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned + Default + Send + 'static,
        F: Fn(&mut T) + Send + Sync + 'static,
    {
        check_name(name)?;
        let config = self.inner.manager.config();
        let (format, compress_above) = (config.value_format(), config.compress_above());
        let step: UpdateFn = Arc::new(move |stored: Option<&[u8]>| {
            let mut v: T = match stored {
                Some(b) => value::decode(b)?,
                None => T::default(),
            };
            f(&mut v);
            value::encode_as(format, &v, compress_above).map(Some)
        });
        self.add_step(name, step).await?.ok_or_else(|| Error::Value {
            name: name.to_string(),
            message: "the update produced no value".into(),
        })
    }

    /// Like [`Session::update`], with absence made visible: `f` gets the current value
    /// (`None` when absent) and returns the new one (`None` removes the attribute). The same
    /// guarantee holds: at commit, when another request changed the attribute since this one
    /// read it, `f` runs again on the stored value, so the last run of `f` is the one whose
    /// result is written. Returns what `f` returned in this request.
    ///
    /// ```no_run
    /// # async fn f(session: sesame::Session) -> Result<(), sesame::Error> {
    /// // Set "coupon" only where it is absent.
    /// session.modify("coupon", |c: Option<String>| c.or(Some("WELCOME".into()))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn modify<T, F>(&self, name: &str, f: F) -> Result<Option<T>, Error>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(Option<T>) -> Option<T> + Send + Sync + 'static,
    {
        check_name(name)?;
        let config = self.inner.manager.config();
        let (format, compress_above) = (config.value_format(), config.compress_above());
        let step: UpdateFn = Arc::new(move |stored: Option<&[u8]>| {
            let current: Option<T> = stored.map(value::decode).transpose()?;
            f(current).map(|v| value::encode_as(format, &v, compress_above)).transpose()
        });
        self.add_step(name, step).await
    }

    /// Adds one read-modify-write `step` to the attribute's pending change and returns the
    /// value it gives in this request (`None`: absent). After this request's own set or
    /// removal the result simply overrides what is stored (last writer wins, as the set alone
    /// would); otherwise the step joins an exact update, which the store runs again on the
    /// stored value at commit when another request changed it meanwhile.
    async fn add_step<T: DeserializeOwned>(
        &self,
        name: &str,
        step: UpdateFn,
    ) -> Result<Option<T>, Error> {
        let mut st = self.loaded().await?;
        let value_error = |message| Error::Value { name: name.to_string(), message };
        let change = match st.changes.remove(name) {
            Some(c @ (Change::Set(_) | Change::Remove)) => {
                match step(c.value().map(Vec::as_slice)).map_err(value_error)? {
                    Some(v) => Change::Set(v),
                    None => Change::Remove,
                }
            }
            Some(Change::Update(mut u)) => {
                u.result = step(u.result.as_deref()).map_err(value_error)?;
                u.steps.push(step);
                Change::Update(u)
            }
            None => {
                // `seen` is the stored bytes (sealed while encryption is on): the store compares
                // them; `step` works on the plain encoding.
                let seen = st.stored(name).cloned();
                let plain = st.stored_plain(name, self.keyring()).map_err(value_error)?;
                let result = step(plain.as_deref()).map_err(value_error)?;
                Change::Update(Box::new(PendingUpdate { seen, result, steps: vec![step] }))
            }
        };
        let out = change.value().map(|b| value::decode(b)).transpose().map_err(value_error)?;
        st.changes.insert(name.to_string(), change);
        Ok(out)
    }

    /// Every attribute of the session as this request sees it (its own changes included),
    /// decoded into `T`, in name order; sesame's own entries are left out.
    ///
    /// ```no_run
    /// # async fn f(session: sesame::Session) -> Result<(), sesame::Error> {
    /// for (name, value) in session.attributes::<serde_json::Value>().await? {
    ///     println!("{name} = {value}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn attributes<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, Error> {
        let st = self.loaded().await?;
        let mut names: Vec<&String> =
            st.record().map(|r| r.attrs.keys().collect()).unwrap_or_default();
        names.extend(st.changes.keys());
        names.sort_unstable();
        names.dedup();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if check_name(name).is_err() {
                continue;
            }
            let value_error = |message| Error::Value { name: name.to_string(), message };
            if let Some(b) = st.plain_value(name, self.keyring()).map_err(value_error)? {
                out.push((name.clone(), value::decode(&b).map_err(value_error)?));
            }
        }
        Ok(out)
    }

    /// Gives the session a new token at commit: same data, the old token superseded (it
    /// resolves to the new one during the grace window, and presenting it later revokes the
    /// session). Use it on any privilege change.
    pub async fn cycle_id(&self) -> Result<(), Error> {
        let mut st = self.loaded().await?;
        st.rotate = true;
        Ok(())
    }

    /// Binds `principal` to the session, records the authentication time and rotates the
    /// token (fixation protection). The absolute timeout restarts, since the authenticated
    /// session begins now.
    ///
    /// - An anonymous session keeps its attributes (unless
    ///   [`crate::SessionConfigBuilder::keep_data_on_login`] turned that off); its old token is
    ///   dead at once.
    /// - A session of the same principal (a re-login) keeps its attributes; the old token is
    ///   superseded as by [`Session::cycle_id`].
    /// - A session of another principal is ended, and the login starts a clean session.
    ///
    /// When the principal's sessions are revoked ([`SessionManager::revoke_user`]) between
    /// this call and the commit, the commit fails with [`Error::LoginRevoked`].
    pub async fn login(&self, principal: &str) -> Result<(), Error> {
        check_principal(principal)?;
        let stored = self.inner.manager.config().store_principal(principal);
        let epoch =
            store_op(Op::Epoch, None, self.inner.manager.store().user_epoch(stored.user())).await?;
        let mut st = self.loaded_raw().await?;
        st.login = Some(Login { principal: stored, auth_ms: now_ms(), epoch });
        st.login_name = Some(principal.to_string());
        st.rotate = true;
        st.step_up = false;
        if st.value(PENDING_ATTR).is_some() {
            st.changes.insert(PENDING_ATTR.to_string(), Change::Remove);
        }
        Ok(())
    }

    /// Ends the session: at commit, its lineage is ended in the store (every instance sees it)
    /// and the client is told to forget its token.
    pub async fn logout(&self) -> Result<(), Error> {
        self.destroy().await
    }

    /// Same as [`Session::logout`].
    pub async fn destroy(&self) -> Result<(), Error> {
        let mut st = match self.loaded_raw().await {
            Ok(st) => st,
            // Ended by the request hook: already gone, and the client will be told.
            Err(Error::SessionEnded | Error::Destroyed) => return Ok(()),
            Err(e) => return Err(e),
        };
        st.destroyed = true;
        st.changes.clear();
        Ok(())
    }

    /// The logged-in principal (including one bound earlier in this request).
    pub async fn principal(&self) -> Result<Option<String>, Error> {
        let st = self.loaded().await?;
        if let Some(name) = &st.login_name {
            return Ok(Some(name.clone()));
        }
        match st.record() {
            Some(r) => principal_of(self.inner.manager.config(), r),
            None => Ok(None),
        }
    }

    /// Authentication time, ms since the Unix epoch.
    pub async fn auth_time_ms(&self) -> Result<Option<u64>, Error> {
        let st = self.loaded().await?;
        if let Some(l) = &st.login {
            return Ok(Some(l.auth_ms));
        }
        Ok(st.record().and_then(|r| r.auth_ms))
    }

    /// Fails unless a principal authenticated within `max_age` (re-authentication gate).
    pub async fn require_recent_auth(&self, max_age: Duration) -> Result<(), Error> {
        let t = self.auth_time_ms().await?.ok_or(Error::NotLoggedIn)?;
        let age = now_ms().saturating_sub(t);
        if u128::from(age) > max_age.as_millis() {
            return Err(Error::StaleAuthentication);
        }
        Ok(())
    }

    /// Creation (or login) time of the stored session, ms since the Unix epoch.
    pub async fn created_ms(&self) -> Result<Option<u64>, Error> {
        let st = self.loaded().await?;
        Ok(st.record().map(|r| r.created_ms))
    }

    /// When the stored session expires if left idle, ms since the Unix epoch.
    pub async fn expires_ms(&self) -> Result<Option<u64>, Error> {
        let st = self.loaded().await?;
        Ok(match &st.current {
            Current::Present { loaded, .. } => Some(loaded.expires_ms()),
            _ => None,
        })
    }

    /// The public id of the stored session (safe to show and log; not a token).
    pub async fn id(&self) -> Result<Option<String>, Error> {
        let st = self.loaded().await?;
        Ok(match &st.current {
            Current::Present { key, .. } => Some(key.id()),
            _ => None,
        })
    }

    /// Whether a stored session backs this request.
    pub async fn exists(&self) -> Result<bool, Error> {
        let st = self.loaded().await?;
        Ok(matches!(st.current, Current::Present { .. }))
    }

    async fn stored_principal(&self) -> Result<(UserRef, Option<String>), Error> {
        let st = self.loaded().await?;
        match &st.current {
            Current::Present { key, loaded, .. } => match &loaded.record.principal {
                Some(p) => Ok((p.user(), Some(key.id()))),
                None => Err(Error::NotLoggedIn),
            },
            _ => Err(Error::NotLoggedIn),
        }
    }

    /// The live sessions of this session's principal, the most recently active first (at
    /// most the per-user cap).
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, Error> {
        let (p, _) = self.stored_principal().await?;
        let limit = self.inner.manager.config().policy().max_sessions_per_user as usize;
        let listing = self.inner.manager.store().list_user(p, now_ms(), limit);
        Ok(store_op(Op::List, None, listing).await?)
    }

    /// Like [`Session::list_sessions`], with the client each session was created by (one more
    /// store read, which moves no deadline): what a "your devices" page shows.
    pub async fn list_sessions_detailed(&self) -> Result<Vec<SessionDetails>, Error> {
        let (p, _) = self.stored_principal().await?;
        let m = &self.inner.manager;
        let limit = m.config().policy().max_sessions_per_user as usize;
        let list = store_op(Op::List, None, m.store().list_user(p, now_ms(), limit)).await?;
        m.details(p, list).await
    }

    /// Revokes one session of this session's principal by id. Returns whether it existed.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, Error> {
        let (p, _) = self.stored_principal().await?;
        let m = &self.inner.manager;
        let done = store_op(Op::Revoke, Some(&id), m.store().revoke(p, id, now_ms())).await?;
        if done {
            metrics::count_revocation("one");
            m.emit(|| SessionEvent::Revoked { id: id.to_string() });
        }
        Ok(done)
    }

    /// Revokes every other session of this session's principal ("log out other devices"),
    /// including logins of that principal in flight.
    pub async fn revoke_other_sessions(&self) -> Result<u64, Error> {
        let (p, me) = self.stored_principal().await?;
        let m = &self.inner.manager;
        let n =
            store_op(Op::RevokeAll, None, m.store().revoke_all(p, me.as_deref(), now_ms())).await?;
        metrics::count_revocation("all");
        if let Ok(Some(principal)) = self.principal().await {
            m.emit(|| SessionEvent::UserRevoked { principal, count: n });
        }
        Ok(n)
    }
}

/// The client recorded in a stored record (opened while encryption is on); `None` when absent
/// or unreadable.
pub(crate) fn client_of(config: &SessionConfig, r: &Record) -> Option<ClientInfo> {
    let raw = r.attrs.get(CLIENT_ATTR)?;
    match config.encryption() {
        Some(keys) => value::decode(&keys.open(&r.sid?, CLIENT_ATTR, raw).ok()?).ok(),
        None => value::decode(raw).ok(),
    }
}

/// The principal of a stored record, opened while encryption is on: it must open under the
/// session's identity and match the name the store indexes the session under.
fn principal_of(config: &SessionConfig, r: &Record) -> Result<Option<String>, Error> {
    let Some(stored) = &r.principal else { return Ok(None) };
    let Some(keys) = config.encryption().map(|k| &**k) else {
        return Ok(Some(stored.name().to_string()));
    };
    let corrupt =
        |m: &str| Error::Store(StoreError::Corrupt(format!("the session's principal: {m}")));
    let sid = r.sid.ok_or_else(|| corrupt("the session has no identity"))?;
    let sealed = r.attrs.get(PRINCIPAL_SLOT).ok_or_else(|| corrupt("missing"))?;
    let plain = keys.open(&sid, PRINCIPAL_SLOT, sealed).map_err(|e| corrupt(&e.to_string()))?;
    let name = String::from_utf8(plain).map_err(|_| corrupt("not UTF-8"))?;
    if config.naming().user(&name) != stored.user() {
        return Err(corrupt("it does not match the name the store indexes the session under"));
    }
    Ok(Some(name))
}

impl State {
    /// The plain encoding of an attribute's stored value: opened while encryption is on.
    fn stored_plain(
        &self,
        name: &str,
        keys: Option<&Keyring>,
    ) -> Result<Option<Cow<'_, [u8]>>, String> {
        let Some(raw) = self.stored(name) else { return Ok(None) };
        let Some(keys) = keys else { return Ok(Some(Cow::Borrowed(raw.as_slice()))) };
        let sid = self.record().and_then(|r| r.sid).ok_or("the session has no identity")?;
        keys.open(&sid, name, raw).map(|v| Some(Cow::Owned(v))).map_err(|e| e.to_string())
    }

    /// The plain encoding of an attribute as this request sees it (its own changes first).
    fn plain_value(
        &self,
        name: &str,
        keys: Option<&Keyring>,
    ) -> Result<Option<Cow<'_, [u8]>>, String> {
        match self.changes.get(name) {
            Some(c) => Ok(c.value().map(|v| Cow::Borrowed(v.as_slice()))),
            None => self.stored_plain(name, keys),
        }
    }

    /// The stored record, if a session backs the request.
    fn record(&self) -> Option<&Record> {
        match &self.current {
            Current::Present { loaded, .. } => Some(&loaded.record),
            _ => None,
        }
    }

    /// The stored value of an attribute.
    fn stored(&self, name: &str) -> Option<&Vec<u8>> {
        self.record().and_then(|r| r.attrs.get(name))
    }

    /// The value of an attribute as this request sees it (its own changes first).
    fn value(&self, name: &str) -> Option<&Vec<u8>> {
        match self.changes.get(name) {
            Some(c) => c.value(),
            None => self.stored(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Change;

    // A B-tree node holds up to 11 entries (the standard library's B = 6) and two small
    // indices besides its parent pointer. The pending changes' first node must stay within
    // glibc's per-thread cache of freed blocks (up to 1032 bytes).
    #[test]
    fn a_node_of_pending_changes_fits_the_allocators_thread_cache() {
        let node = 11 * (std::mem::size_of::<String>() + std::mem::size_of::<Change>()) + 16;
        assert!(node <= 1032, "a node of pending changes takes {node} bytes");
    }
}
