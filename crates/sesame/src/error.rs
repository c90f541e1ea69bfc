//! Errors of the core crate and of stores.

use std::error::Error as StdError;

/// A boxed error from a store's backend, kept as the source of [`StoreError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error from a session store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or did not answer in time. Requests should fail with
    /// 503; the store client reconnects by itself.
    #[error("session store unavailable: {message}")]
    Unavailable {
        /// What happened, without any token.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store answered with something that is not a valid session record.
    #[error("session store returned malformed data: {0}")]
    Corrupt(String),
    /// A save was refused because it would exceed a configured limit; nothing was written.
    #[error("session limit exceeded: {0}")]
    LimitExceeded(String),
    /// An exact update (`Session::update`) failed when run again on the stored value: the
    /// stored value does not decode as the update's type, or the update itself failed.
    /// Its `Display` leaves the message out (it may quote the stored value).
    #[error("update of session attribute {name:?} failed on the value stored meanwhile")]
    Update {
        /// Attribute name.
        name: String,
        /// What went wrong (the decoder's or the update's words: may quote the value).
        message: String,
    },
    /// The store holds an older state of the session than the one this request read: writes
    /// it had acknowledged were lost (a failover promoted a replica that had not received
    /// them). Nothing was written: this request's changes are not merged into the older state.
    /// The session's state is unknown to the request; the client should retry (HTTP layers
    /// answer "try again", like [`StoreError::Unavailable`]).
    #[error("session state unknown: the store went back to an older version of this session ({message}); nothing was written, retry")]
    RolledBack {
        /// The versions involved (no session data).
        message: String,
    },
    /// The store refused the operation for another reason it explained.
    #[error("session store error: {message}")]
    Backend {
        /// The store's explanation.
        message: String,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// Whether the error means the store is unreachable (as opposed to a refusal or bad data).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// A short name of the error's kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::LimitExceeded(_) => "limit",
            StoreError::Update { .. } => "update",
            StoreError::RolledBack { .. } => "rolled_back",
            StoreError::Backend { .. } => "backend",
        }
    }

    /// Whether a later attempt of the same request may succeed: the store is unreachable
    /// ([`StoreError::Unavailable`], which includes writes whose outcome is unknown) or went
    /// back to an older state of the session ([`StoreError::RolledBack`]). HTTP layers answer
    /// these with 503 and `Retry-After`.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::RolledBack { .. })
    }

    /// The start of the message of a [`StoreError::Unavailable`] for a write that may or may
    /// not have been applied (no reply in time, or replicas that did not confirm it).
    pub const OUTCOME_UNKNOWN: &'static str = "outcome unknown";

    /// Whether this is a write whose outcome is unknown: it failed to confirm, yet may have
    /// been applied (see [`StoreError::OUTCOME_UNKNOWN`]).
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, StoreError::Unavailable { message, .. } if message.starts_with(Self::OUTCOME_UNKNOWN))
    }

    /// A [`StoreError::Backend`] without a source.
    pub fn backend(message: impl Into<String>) -> StoreError {
        StoreError::Backend { message: message.into(), source: None }
    }

    /// An [`StoreError::Unavailable`] with a source.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError::Unavailable { message: message.into(), source: Some(source.into()) }
    }
}

/// An error of the session layer, as seen by a handler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value could not be encoded or decoded. The message (which may quote the value) is
    /// kept for the app, and left out of this error's `Display`, so that logs and error
    /// bodies built from it carry no session data.
    #[error("session value {name:?} could not be encoded or decoded as the requested type")]
    Value {
        /// Attribute name.
        name: String,
        /// What went wrong (the serializer's words: may quote the value).
        message: String,
    },
    /// A configuration was rejected when it was built.
    #[error("invalid session configuration: {0}")]
    Config(String),
    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
    /// The operation needs a logged-in session.
    #[error("this session is not logged in")]
    NotLoggedIn,
    /// The authentication is older than the caller accepts; ask the user to log in again.
    #[error("authentication is too old for this operation; log in again")]
    StaleAuthentication,
    /// An argument was rejected (for example an empty or oversized principal).
    #[error("{0}")]
    Invalid(String),
    /// The session ended (logged out, revoked or expired on another request or instance)
    /// before this request's changes could be written; nothing was written.
    #[error("the session ended before this request's changes were saved; nothing was written")]
    SessionEnded,
    /// The user's sessions were revoked while this login was in progress; nothing was
    /// written. Log in again.
    #[error("the user's sessions were revoked while this login was in progress; log in again")]
    LoginRevoked,
    /// The session was destroyed earlier in this request.
    #[error("the session was destroyed in this request")]
    Destroyed,
    /// A request hook asks for a fresh authentication before the session is used again
    /// ([`crate::events::Verdict::StepUp`]).
    #[error("this session must authenticate again before it is used")]
    StepUpRequired,
    /// The creation hook refused a new session (for example a per-client rate limit).
    #[error("{message}")]
    CreationRefused {
        /// Why, for the client.
        message: String,
        /// When to try again, if known.
        retry_after: Option<std::time::Duration>,
    },
}

impl Error {
    /// Whether the underlying store is unreachable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_unavailable())
    }

    /// Whether a later attempt of the same request may succeed (see
    /// [`StoreError::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_retryable())
    }
}
