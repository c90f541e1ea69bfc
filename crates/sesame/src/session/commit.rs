//! The commit: what a request changed, written as one store operation — a save, a rotation,
//! a fresh create, or the end of the lineage — and what the client must be told.

use std::borrow::Cow;
use std::sync::Arc;

use super::{Change, Current, PendingUpdate, Session, State, TokenAction, CLIENT_ATTR};
use crate::crypt::{new_sid, seal_delta, PRINCIPAL_SLOT};
use crate::error::{Error, StoreError};
use crate::events::SessionEvent;
use crate::manager::{now_ms, SessionManager};
use crate::metrics::{self, store_op, Op};
use crate::store::{
    CreateOutcome, Delta, Loaded, Login, Record, RotateOutcome, Rotation, RotationKind,
    SaveOutcome, Update, UpdateFn,
};
use crate::token::{SessionKey, SessionToken, Tag};
use crate::value;

impl Session {
    /// Writes what changed and reports what to tell the client. Called once by the transport
    /// layer when the handler is done; calling it again does nothing.
    ///
    /// A save that finds its session ended meanwhile (logged out, revoked or expired on another
    /// request) fails with [`Error::SessionEnded`]: the changes were not written.
    ///
    /// Each branch's store call is boxed. An `async fn` that awaited them all inline would be as
    /// large as the largest branch (several kilobytes), and glibc's allocator serves blocks
    /// over 1 KiB from its shared arenas under a lock instead of from a per-thread cache: on a
    /// multi-threaded runtime, that lock is what costs (see docs/BENCHMARKS.md, "Futures and
    /// the allocator").
    pub async fn commit(&self) -> Result<TokenAction, Error> {
        let mut st = self.inner.state.lock().await;
        let m = self.inner.manager.clone();
        let now = now_ms();
        if st.destroyed {
            let had = st.incoming.is_some();
            match (&st.current, &st.incoming) {
                (Current::Present { key, .. }, _) => {
                    Box::pin(destroy(&m, key, now)).await?;
                    m.note_destroyed();
                    m.emit(|| SessionEvent::Destroyed { id: key.id() });
                }
                // The presented token found no live session of its own, yet its key may lead
                // to one: a login that superseded it (its pointer), or one still under way.
                // Ending the lineage follows the pointer and ends that session too.
                (_, Some(token)) if !st.ended_by_hook => {
                    let key = token.key();
                    if Box::pin(destroy(&m, &key, now)).await? {
                        m.note_destroyed();
                        m.emit(|| SessionEvent::Destroyed { id: key.id() });
                    }
                }
                _ => {}
            }
            st.current = Current::Absent;
            st.incoming = None;
            return Ok(if had { TokenAction::Clear } else { TokenAction::Keep });
        }
        let mut delta = st.take_delta();
        let rotate = std::mem::take(&mut st.rotate);
        let login = st.login.take();
        let login_name = st.login_name.take();
        if let (Some(_), Some(_), Some(name)) = (m.config().encryption(), &login, login_name) {
            // With encryption on, the principal's name travels sealed, as an entry no attribute
            // can be (the store indexes the session under its pseudonym).
            delta.set.push((PRINCIPAL_SLOT.to_string(), name.into_bytes()));
        }
        let current = std::mem::replace(&mut st.current, Current::Absent);
        match current {
            Current::Present { key, token, loaded } => {
                let before = loaded.record.principal.as_ref().map(|p| p.user());
                match &login {
                    Some(l) if before != Some(l.principal.user()) => {
                        if before.is_some() || !m.config().keep_data_on_login() {
                            // A different principal (or a login told not to keep anonymous
                            // data) starts clean: the old session ends first.
                            Box::pin(destroy(&m, &key, now)).await?;
                            m.emit(|| SessionEvent::Destroyed { id: key.id() });
                            return Box::pin(self.create_fresh(&mut st, &delta, login, now)).await;
                        }
                        let kind = RotationKind::Elevate;
                        Box::pin(self.rotate(&mut st, key, token, loaded, &delta, login, kind, now))
                            .await
                    }
                    // The presented token was superseded moments ago (within its grace window)
                    // and this request continues at the head: the head's token is itself fresh,
                    // and rotating again would hand parallel requests different tokens. Its
                    // client is sent the head's token; the changes are saved there.
                    // Nothing to write (a read-only request) needs no store call, nor its box.
                    _ if (st.send_token || !(rotate || login.is_some())) && delta.is_empty() => {
                        Ok(st.keep(key, token, loaded))
                    }
                    _ if st.send_token => {
                        Box::pin(self.save(&mut st, key, token, loaded, &delta, now)).await
                    }
                    _ if rotate || login.is_some() => {
                        let kind = RotationKind::Renew { grace_ms: m.config().policy().grace_ms };
                        Box::pin(self.rotate(&mut st, key, token, loaded, &delta, login, kind, now))
                            .await
                    }
                    _ => Box::pin(self.save(&mut st, key, token, loaded, &delta, now)).await,
                }
            }
            _ if delta.is_empty() && login.is_none() => Ok(TokenAction::Keep),
            _ => Box::pin(self.create_fresh(&mut st, &delta, login, now)).await,
        }
    }

    async fn save(
        &self,
        st: &mut State,
        key: SessionKey,
        token: Option<SessionToken>,
        loaded: Loaded,
        delta: &Delta,
        now: u64,
    ) -> Result<TokenAction, Error> {
        let m = &self.inner.manager;
        let policy = m.config().policy();
        if delta.is_empty() {
            return Ok(st.keep(key, token, loaded));
        }
        let sealed = seal_for(m, &loaded.record, delta, false)?;
        let saving = m.store().save(&key, &loaded, &sealed, now, policy);
        let saved = store_op(Op::Save, Some(&key.id_display()), saving).await;
        match saved.map_err(|e| rollback_noted(m, &key, e))? {
            SaveOutcome::Saved(record) => {
                metrics::count(metrics::SAVES);
                let loaded = loaded.saved(record, now, policy);
                let action = st.action_for(token.as_ref(), &loaded);
                st.current = Current::Present { key, token, loaded };
                Ok(action)
            }
            _ => {
                m.note_session_ended();
                Err(Error::SessionEnded)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn rotate(
        &self,
        st: &mut State,
        old: SessionKey,
        old_token: Option<SessionToken>,
        loaded: Loaded,
        delta: &Delta,
        login: Option<Login>,
        kind: RotationKind,
        now: u64,
    ) -> Result<TokenAction, Error> {
        let m = self.inner.manager.clone();
        let policy = m.config().policy();
        let (mut old, mut old_token, mut loaded, mut kind) = (old, old_token, loaded, kind);
        let tag = match &login {
            Some(l) => l.principal.user().tag(),
            None => old.tag(),
        };
        let mut collisions = 0;
        // Bounded: each round either finishes, or follows a rotation another request made.
        for _ in 0..8 {
            let new_token = m.config().tokens().generate(tag)?;
            let sealed_successor = match (kind, &old_token) {
                (RotationKind::Renew { .. }, Some(t)) => {
                    m.config().tokens().seal_successor(t, &new_token)
                }
                _ => Vec::new(),
            };
            // The successor keeps the session's identity, so values sealed for it still open;
            // values under a retired key are sealed again under the current one.
            let sealed = seal_for(&m, &loaded.record, delta, true)?;
            let rotation = Rotation {
                old,
                base: &loaded.record,
                base_idle_deadline_ms: Some(loaded.idle_deadline_ms),
                new: new_token.key(),
                sealed_successor,
                delta: &sealed,
                login: login.clone(),
                kind,
            };
            let rotating = m.store().rotate(&rotation, now, policy);
            let rotated = store_op(Op::Rotate, Some(&old.id_display()), rotating).await;
            match rotated.map_err(|e| rollback_noted(&m, &old, e))? {
                RotateOutcome::Rotated(record) => {
                    metrics::count(metrics::ROTATIONS);
                    m.emit(|| SessionEvent::Rotated {
                        from: old.id(),
                        to: new_token.key().id(),
                        principal: record.principal.as_ref().map(|p| p.name().to_string()),
                    });
                    return Ok(st.adopt(&m, new_token, Loaded::written(record, now, policy)));
                }
                RotateOutcome::AlreadyRotated { head, loaded: head_loaded, sealed } => {
                    // Another request rotated this token a moment ago: the lineage goes on at
                    // its head, and so does this request (its client gets the head's token).
                    let token = old_token.as_ref().and_then(|t| m.open_chain(t, &sealed, &head));
                    let wanted = login.as_ref().map(|l| l.principal.user());
                    let bound = head_loaded.record.principal.as_ref().map(|p| p.user());
                    match (wanted, bound) {
                        // No login, or the head already carries it: save there.
                        (None, _) => {}
                        (Some(w), Some(b)) if w == b => {}
                        // The head is still anonymous (a renewal came first): log it in.
                        (Some(_), None) => {
                            kind = RotationKind::Elevate;
                            (old, old_token, loaded) = (head, token, head_loaded);
                            continue;
                        }
                        // The head belongs to someone else: a login as another principal.
                        (Some(_), Some(_)) => {
                            destroy(&m, &head, now).await?;
                            m.emit(|| SessionEvent::Destroyed { id: head.id() });
                            return self.create_fresh(st, delta, login, now).await;
                        }
                    }
                    st.send_token = token.is_some();
                    return self.save(st, head, token, head_loaded, delta, now).await;
                }
                RotateOutcome::Missing if login.is_some() => {
                    // The session ended or was taken over by a concurrent login: this login
                    // starts a clean session (nothing of the old one is carried).
                    return self.create_fresh(st, delta, login, now).await;
                }
                RotateOutcome::Missing => {
                    m.note_session_ended();
                    return Err(Error::SessionEnded);
                }
                RotateOutcome::Revoked => return Err(Error::LoginRevoked),
                _ => {
                    collisions += 1;
                    if collisions >= 3 {
                        return Err(Error::Random(
                            "three token collisions in a row; the random source is broken".into(),
                        ));
                    }
                    tracing::warn!("session key collision on rotation; drawing a new token");
                }
            }
        }
        Err(Error::Store(sesame_busy()))
    }

    async fn create_fresh(
        &self,
        st: &mut State,
        delta: &Delta,
        login: Option<Login>,
        now: u64,
    ) -> Result<TokenAction, Error> {
        let m = self.inner.manager.clone();
        let policy = m.config().policy();
        if let Some(hooks) = m.hooks() {
            if let Err(refusal) = hooks.before_create(st.client.as_ref()).await {
                let ip = st.client.as_ref().and_then(|c| c.ip.clone());
                metrics::count(metrics::CREATION_REFUSALS);
                m.emit(|| SessionEvent::CreationRefused { ip });
                return Err(Error::CreationRefused {
                    message: refusal.message,
                    retry_after: refusal.retry_after,
                });
            }
        }
        let mut record = Record {
            created_ms: now,
            absolute_ms: now.saturating_add(policy.absolute_ms),
            ..Record::default()
        };
        if let Some(client) = &st.client {
            let bytes = value::encode_as(m.config().value_format(), client, usize::MAX)
                .map_err(|message| Error::Value { name: CLIENT_ATTR.into(), message })?;
            record.attrs.insert(CLIENT_ATTR.to_string(), bytes);
        }
        let tag = match &login {
            Some(l) => {
                record.principal = Some(l.principal.clone());
                record.auth_ms = Some(l.auth_ms);
                l.principal.user().tag()
            }
            None => Tag::random()?,
        };
        // A fresh session (including a login as another principal) gets a new identity.
        if m.config().encryption().is_some() {
            record.sid = Some(new_sid()?);
        }
        let sealed = seal_for(&m, &record, delta, false)?;
        let record = record.next(&sealed, policy)?;
        for _ in 0..3 {
            let token = m.config().tokens().generate(tag)?;
            let key = token.key();
            let creating = m.store().create(&key, &record, login.as_ref(), now, policy);
            let created = match store_op(Op::Create, Some(&key.id_display()), creating).await {
                Ok(c) => c,
                Err(e) => {
                    if e.is_outcome_unknown() && login.is_some() {
                        // The login failed, yet its session may exist (a write its replicas did
                        // not confirm in time). Nobody holds its token: end it at once, so that
                        // it does not count against the user's cap (best effort: the end may
                        // meet the same outage, and is then logged).
                        if let Err(end) = m.store().destroy(&key, now).await {
                            tracing::warn!(id = %key.id(), error = %end, "could not end the session of a failed login");
                        }
                    }
                    return Err(e.into());
                }
            };
            match created {
                CreateOutcome::Created => {
                    metrics::count(metrics::CREATES);
                    m.emit(|| SessionEvent::Created {
                        id: key.id(),
                        principal: login.as_ref().map(|l| l.principal.name().to_string()),
                    });
                    return Ok(st.adopt(&m, token, Loaded::written(record, now, policy)));
                }
                CreateOutcome::Revoked => return Err(Error::LoginRevoked),
                _ => tracing::warn!("session key collision on create; drawing a new token"),
            }
        }
        Err(Error::Random("three token collisions in a row; the random source is broken".into()))
    }
}

/// The delta as the store must see it for `target`: as it is, or with every value sealed for
/// the target's identity while encryption is on (and, for a rotation, `target`'s values under
/// a retired key sealed again).
fn seal_for<'d>(
    m: &SessionManager,
    target: &Record,
    delta: &'d Delta,
    rotation: bool,
) -> Result<Cow<'d, Delta>, Error> {
    let Some(keys) = m.config().encryption() else { return Ok(Cow::Borrowed(delta)) };
    let sid = target.sid.ok_or_else(|| {
        Error::Store(StoreError::Corrupt("the session has no identity to seal values for".into()))
    })?;
    seal_delta(keys, &sid, delta, rotation.then_some(target)).map(Cow::Owned)
}

/// Passes a store error on, noting first (counter, log, event) a store that went back to an
/// older version of the session `key`.
fn rollback_noted(m: &SessionManager, key: &SessionKey, e: StoreError) -> Error {
    if matches!(e, StoreError::RolledBack { .. }) {
        m.note_rolled_back(key);
    }
    Error::Store(e)
}

fn sesame_busy() -> crate::error::StoreError {
    crate::error::StoreError::Unavailable {
        message: "the session kept being rotated by concurrent requests; try again".into(),
        source: None,
    }
}

impl State {
    /// Makes a session this request just wrote under a new token the current one, and tells the
    /// client its token.
    fn adopt(&mut self, m: &SessionManager, token: SessionToken, loaded: Loaded) -> TokenAction {
        m.note_created();
        let expires_ms = loaded.expires_ms();
        self.current = Current::Present { key: token.key(), token: Some(token.clone()), loaded };
        self.incoming = Some(token.clone());
        TokenAction::Set { token, expires_ms }
    }

    fn take_delta(&mut self) -> Delta {
        let mut delta = Delta::default();
        for (name, change) in std::mem::take(&mut self.changes) {
            match change {
                Change::Set(v) => delta.set.push((name, v)),
                Change::Remove => delta.remove.push(name),
                Change::Update(u) => {
                    let PendingUpdate { seen, result, steps } = *u;
                    let apply: UpdateFn = Arc::new(move |stored: Option<&[u8]>| {
                        let mut v = stored.map(<[u8]>::to_vec);
                        for step in &steps {
                            v = step(v.as_deref())?;
                        }
                        Ok(v)
                    });
                    delta.update.push(Update { name, seen, result, apply });
                }
            }
        }
        delta
    }

    /// Keeps the loaded session as it is, with nothing written, and says what to tell the client.
    fn keep(
        &mut self,
        key: SessionKey,
        token: Option<SessionToken>,
        loaded: Loaded,
    ) -> TokenAction {
        let action = self.action_for(token.as_ref(), &loaded);
        self.current = Current::Present { key, token, loaded };
        action
    }

    /// What to tell the client when no new token was made by this request: the lineage's
    /// head token when the presented one was superseded, nothing otherwise.
    fn action_for(&mut self, token: Option<&SessionToken>, loaded: &Loaded) -> TokenAction {
        match (std::mem::take(&mut self.send_token), token) {
            (true, Some(t)) => {
                TokenAction::Set { token: t.clone(), expires_ms: loaded.expires_ms() }
            }
            _ => TokenAction::Keep,
        }
    }
}

/// Ends `key`'s lineage in the store, inside its span (boxed by [`Session::commit`]'s
/// branches, which must stay small).
pub(super) async fn destroy(
    m: &SessionManager,
    key: &SessionKey,
    now: u64,
) -> Result<bool, StoreError> {
    store_op(Op::Destroy, Some(&key.id_display()), m.store().destroy(key, now)).await
}
