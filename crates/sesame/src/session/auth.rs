//! Half-authenticated states (a login waiting for its second factor, a password reset) and the
//! client recorded when the session was created.

use serde::{Deserialize, Serialize};

use super::{check_principal, Change, Session, CLIENT_ATTR, PENDING_ATTR};
use crate::error::Error;
use crate::events::ClientInfo;
use crate::manager::now_ms;
use crate::value;

/// A login that has passed its first step only (for example the password, with a second
/// factor still to come, or a password-reset link). It never counts as logged in: the
/// session's [`Session::principal`] stays what it was until [`Session::login`] completes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// Who is logging in.
    pub principal: String,
    /// The step the app is waiting for (its own name: `"mfa"`, `"password_reset"`, ...).
    pub step: String,
    /// When the first step passed, ms since the Unix epoch.
    pub since_ms: u64,
}

impl Session {
    /// Records that `principal` passed the first step of a login and that `step` is still to
    /// come. The token is rotated (as at login), so a token planted before this point cannot
    /// follow the user into the half-authenticated state. Complete it with
    /// [`Session::login`], which clears the pending state; [`Session::cancel_pending_login`]
    /// drops it.
    pub async fn begin_login(&self, principal: &str, step: &str) -> Result<(), Error> {
        check_principal(principal)?;
        if step.is_empty() || step.len() > 64 {
            return Err(Error::Invalid("a login step name must be 1 to 64 bytes".into()));
        }
        let pending =
            PendingLogin { principal: principal.into(), step: step.into(), since_ms: now_ms() };
        let config = self.inner.manager.config();
        let bytes = value::encode_as(config.value_format(), &pending, usize::MAX)
            .map_err(|message| Error::Value { name: PENDING_ATTR.into(), message })?;
        let mut st = self.loaded().await?;
        st.changes.insert(PENDING_ATTR.to_string(), Change::Set(bytes));
        st.rotate = true;
        Ok(())
    }

    /// The login waiting for its next step, if any. It is not a login: check its `step` and
    /// `since_ms` (expire it after a few minutes) before completing it.
    pub async fn pending_login(&self) -> Result<Option<PendingLogin>, Error> {
        let st = self.loaded().await?;
        Ok(st.value(PENDING_ATTR).and_then(|b| value::decode(b).ok()))
    }

    /// Drops a pending login (the second step failed or was abandoned).
    pub async fn cancel_pending_login(&self) -> Result<(), Error> {
        let mut st = self.loaded().await?;
        if st.value(PENDING_ATTR).is_some() {
            st.changes.insert(PENDING_ATTR.to_string(), Change::Remove);
        }
        Ok(())
    }

    /// The client recorded when this session was created (its address and user agent as the
    /// transport saw them), if the transport told.
    pub async fn created_by(&self) -> Result<Option<ClientInfo>, Error> {
        let st = self.loaded().await?;
        Ok(st.value(CLIENT_ATTR).and_then(|b| value::decode(b).ok()))
    }
}
