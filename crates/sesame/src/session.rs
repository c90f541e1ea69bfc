//! The per-request [`Session`] handle: lazy load, typed access, change tracking, rotation,
//! login and logout, and the commit that writes only what changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::error::Error;
use crate::manager::{now_ms, SessionManager};
use crate::store::{Delta, Loaded, Record, SaveOutcome, SessionInfo, Taken};
use crate::token::{SessionKey, SessionToken, Tag};
use crate::value;

/// Longest attribute name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest principal accepted, in bytes.
pub const MAX_PRINCIPAL_BYTES: usize = 256;

/// The session of one request. Cheap to clone; clones share state.
///
/// Nothing is read from the store until a method needs the session, and nothing is written
/// unless something changed: a handler that never touches its session costs no store call.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    manager: SessionManager,
    state: Mutex<State>,
}

#[derive(Debug)]
enum Current {
    Unloaded,
    Absent,
    Present { key: SessionKey, loaded: Loaded },
}

#[derive(Debug)]
struct State {
    incoming: Option<SessionToken>,
    current: Current,
    changes: BTreeMap<String, Option<Vec<u8>>>,
    rotate: bool,
    login: Option<(String, u64)>,
    destroyed: bool,
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
    pub(crate) fn new(manager: SessionManager, incoming: Option<SessionToken>) -> Session {
        let current = if incoming.is_some() { Current::Unloaded } else { Current::Absent };
        Session {
            inner: Arc::new(Inner {
                manager,
                state: Mutex::new(State {
                    incoming,
                    current,
                    changes: BTreeMap::new(),
                    rotate: false,
                    login: None,
                    destroyed: false,
                }),
            }),
        }
    }

    async fn loaded(&self) -> Result<tokio::sync::MutexGuard<'_, State>, Error> {
        let mut st = self.inner.state.lock().await;
        if st.destroyed {
            return Err(Error::Destroyed);
        }
        if let Current::Unloaded = st.current {
            let m = &self.inner.manager;
            st.current = match &st.incoming {
                Some(token) => {
                    let key = token.key();
                    match m.store().load(&key, now_ms(), m.config().policy()).await? {
                        Some(loaded) if loaded.record.absolute_ms > now_ms() => {
                            Current::Present { key, loaded }
                        }
                        _ => {
                            m.note_unknown_token();
                            Current::Absent
                        }
                    }
                }
                None => Current::Absent,
            };
        }
        Ok(st)
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
        let st = self.loaded().await?;
        let bytes = match st.changes.get(name) {
            Some(Some(v)) => Some(v),
            Some(None) => None,
            None => match &st.current {
                Current::Present { loaded, .. } => loaded.record.attrs.get(name),
                _ => None,
            },
        };
        match bytes {
            None => Ok(None),
            Some(b) => value::decode(b)
                .map(Some)
                .map_err(|message| Error::Value { name: name.to_string(), message }),
        }
    }

    /// Sets an attribute. Setting the value it already has changes nothing.
    pub async fn insert<T: Serialize + ?Sized>(&self, name: &str, v: &T) -> Result<(), Error> {
        check_name(name)?;
        let config = self.inner.manager.config();
        let bytes = value::encode_as(config.value_format(), v, config.compress_above())
            .map_err(|message| Error::Value { name: name.to_string(), message })?;
        let mut st = self.loaded().await?;
        let stored = match &st.current {
            Current::Present { loaded, .. } => loaded.record.attrs.get(name) == Some(&bytes),
            _ => false,
        };
        if stored {
            st.changes.remove(name);
        } else {
            st.changes.insert(name.to_string(), Some(bytes));
        }
        Ok(())
    }

    /// Removes an attribute. Returns whether it was there.
    pub async fn remove(&self, name: &str) -> Result<bool, Error> {
        let mut st = self.loaded().await?;
        let in_store = match &st.current {
            Current::Present { loaded, .. } => loaded.record.attrs.contains_key(name),
            _ => false,
        };
        let was = match st.changes.get(name) {
            Some(v) => v.is_some(),
            None => in_store,
        };
        if in_store {
            st.changes.insert(name.to_string(), None);
        } else {
            st.changes.remove(name);
        }
        Ok(was)
    }

    /// Gives the session a new token at commit: same data, the old token dead. Use it on any
    /// privilege change.
    pub async fn cycle_id(&self) -> Result<(), Error> {
        let mut st = self.loaded().await?;
        st.rotate = true;
        Ok(())
    }

    /// Binds `principal` to the session, records the authentication time and rotates the
    /// token (fixation protection). Attributes are kept. The absolute timeout restarts, since
    /// the authenticated session begins now.
    pub async fn login(&self, principal: &str) -> Result<(), Error> {
        check_principal(principal)?;
        let mut st = self.loaded().await?;
        st.login = Some((principal.to_string(), now_ms()));
        st.rotate = true;
        Ok(())
    }

    /// Ends the session: deleted from the store at commit, the client told to forget it.
    pub async fn logout(&self) -> Result<(), Error> {
        self.destroy().await
    }

    /// Same as [`Session::logout`].
    pub async fn destroy(&self) -> Result<(), Error> {
        let mut st = self.loaded().await?;
        st.destroyed = true;
        st.changes.clear();
        Ok(())
    }

    /// The logged-in principal (including one bound earlier in this request).
    pub async fn principal(&self) -> Result<Option<String>, Error> {
        let st = self.loaded().await?;
        if let Some((p, _)) = &st.login {
            return Ok(Some(p.clone()));
        }
        Ok(match &st.current {
            Current::Present { loaded, .. } => loaded.record.principal.clone(),
            _ => None,
        })
    }

    /// Authentication time, ms since the Unix epoch.
    pub async fn auth_time_ms(&self) -> Result<Option<u64>, Error> {
        let st = self.loaded().await?;
        if let Some((_, t)) = &st.login {
            return Ok(Some(*t));
        }
        Ok(match &st.current {
            Current::Present { loaded, .. } => loaded.record.auth_ms,
            _ => None,
        })
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
        Ok(match &st.current {
            Current::Present { loaded, .. } => Some(loaded.record.created_ms),
            _ => None,
        })
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

    async fn stored_principal(&self) -> Result<(String, Option<String>), Error> {
        let st = self.loaded().await?;
        match &st.current {
            Current::Present { key, loaded } => match &loaded.record.principal {
                Some(p) => Ok((p.clone(), Some(key.id()))),
                None => Err(Error::NotLoggedIn),
            },
            _ => Err(Error::NotLoggedIn),
        }
    }

    /// The live sessions of this session's principal, oldest first.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, Error> {
        let (p, _) = self.stored_principal().await?;
        self.inner.manager.list_user(&p).await
    }

    /// Revokes one session of this session's principal by id. Returns whether it existed.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, Error> {
        let (p, _) = self.stored_principal().await?;
        Ok(self.inner.manager.store().revoke(&p, id).await?)
    }

    /// Revokes every other session of this session's principal ("log out other devices").
    pub async fn revoke_other_sessions(&self) -> Result<u64, Error> {
        let (p, me) = self.stored_principal().await?;
        Ok(self.inner.manager.store().revoke_all(&p, me.as_deref()).await?)
    }

    /// Writes what changed and reports what to tell the client. Called once by the transport
    /// layer when the handler is done; calling it again does nothing.
    pub async fn commit(&self) -> Result<TokenAction, Error> {
        let mut st = self.inner.state.lock().await;
        let m = &self.inner.manager;
        let policy = m.config().policy();
        let now = now_ms();
        if st.destroyed {
            let had = st.incoming.is_some();
            if let Current::Present { key, .. } = &st.current {
                m.store().destroy(key).await?;
                m.note_destroyed();
            }
            st.current = Current::Absent;
            st.incoming = None;
            return Ok(if had { TokenAction::Clear } else { TokenAction::Keep });
        }
        let mut delta = Delta::default();
        for (name, change) in std::mem::take(&mut st.changes) {
            match change {
                Some(value) => delta.set.push((name, value)),
                None => delta.remove.push(name),
            }
        }
        let rotate = std::mem::take(&mut st.rotate);
        let login = st.login.take();
        let current = std::mem::replace(&mut st.current, Current::Absent);
        let base = match current {
            Current::Present { key, loaded } if rotate || login.is_some() => {
                // Refuse an oversized result before the old session is touched.
                let mut probe = loaded.record.clone();
                probe.apply(&delta);
                if let Some((p, _)) = &login {
                    probe.principal = Some(p.clone());
                }
                probe.check_limits(policy)?;
                let taken = match m.store().take(&key, now).await {
                    Ok(t) => t,
                    Err(e) => {
                        // The take may have sealed the session before failing (a lost reply,
                        // replicas that did not confirm in time): put it back, so the failed
                        // request loses nothing. If this fails too, the sealed record waits
                        // for this token's next rotation (a take hands it over again).
                        if let Err(again) = m.store().finish_take(&key, true, now).await {
                            tracing::warn!(error = %again, "could not restore a session after a failed take");
                        }
                        return Err(e.into());
                    }
                };
                match taken {
                    Taken::Taken(record) => Some((key, record)),
                    // Revoked meanwhile: only a login may start a fresh session.
                    _ if login.is_some() => None,
                    _ => return Ok(TokenAction::Keep),
                }
            }
            Current::Present { key, loaded } => {
                if !delta.is_empty() {
                    match m.store().save(&key, &loaded.record, &delta, now, policy).await? {
                        SaveOutcome::Saved(_) => {}
                        _ => tracing::debug!(id = %key.id(), "save found no session; dropped"),
                    }
                }
                st.current = Current::Present { key, loaded };
                return Ok(TokenAction::Keep);
            }
            _ => {
                if delta.is_empty() && login.is_none() {
                    return Ok(TokenAction::Keep);
                }
                // A login with a token whose session a half-failed rotation left sealed (the
                // take went through, its reply and the restore did not) resumes it, so the
                // data survives; the store hands a sealed record only to its own key.
                match (&login, &st.incoming) {
                    (Some(_), Some(token)) => {
                        let key = token.key();
                        match m.store().take(&key, now).await? {
                            Taken::Taken(record) if record.absolute_ms > now => Some((key, record)),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
        };
        let (tag, mut record) = match &base {
            Some((old_key, record)) => (old_key.tag(), record.clone()),
            None => (
                Tag::random()?,
                Record {
                    created_ms: now,
                    absolute_ms: now + policy.absolute_ms,
                    ..Record::default()
                },
            ),
        };
        record.apply(&delta);
        record.version += 1;
        let tag = match login {
            Some((principal, at)) => {
                let tag = Tag::for_principal(&principal);
                record.principal = Some(principal);
                record.auth_ms = Some(at);
                record.created_ms = now;
                record.absolute_ms = now + policy.absolute_ms;
                tag
            }
            None => tag,
        };
        record.check_limits(policy)?;
        let created = self.create(&mut st, tag, &record, now).await;
        // The new session is written (or failed) before the old one is dropped, so its data is
        // never lost in between; the old key has been dead since the take either way.
        if let Some((old_key, _)) = &base {
            let restore = created.is_err();
            if let Err(e) = m.store().finish_take(old_key, restore, now).await {
                if restore {
                    // The store fails for both steps: the user must log in again. The old
                    // session stays sealed and expires; it is never valid next to a new one.
                    tracing::warn!(error = %e, "could not restore a session after a failed rotation");
                } else {
                    tracing::warn!(error = %e, "could not drop a sealed session after a rotation; it expires unused");
                }
            }
        }
        created
    }

    async fn create(
        &self,
        st: &mut State,
        tag: Tag,
        record: &Record,
        now: u64,
    ) -> Result<TokenAction, Error> {
        let m = &self.inner.manager;
        let policy = m.config().policy();
        for _ in 0..3 {
            let token = m.config().tokens().generate(tag)?;
            let key = token.key();
            if m.store().create(&key, record, now, policy).await? {
                m.note_created();
                let idle_deadline_ms = now + policy.idle_ms;
                let loaded = Loaded { record: record.clone(), idle_deadline_ms };
                let expires_ms = loaded.expires_ms();
                st.current = Current::Present { key, loaded };
                st.incoming = Some(token.clone());
                return Ok(TokenAction::Set { token, expires_ms });
            }
            tracing::warn!("session key collision on create; drawing a new token");
        }
        Err(Error::Random("three token collisions in a row; the random source is broken".into()))
    }
}
