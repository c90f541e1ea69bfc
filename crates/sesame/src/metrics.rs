//! Metrics and tracing spans of the session layer.
//!
//! Metrics go through the [`metrics`](https://docs.rs/metrics) facade: nothing is recorded
//! until the app installs a recorder (a Prometheus exporter, for example), and the names are
//! the constants of this module. Labels never carry a token or a principal: the only labels
//! are `op` (a store operation), `kind` (an error kind, see [`crate::StoreError::kind`]) and
//! `scope` (`one` or `all` for revocations).
//!
//! Every store operation the core makes runs inside a `sesame.store` span at `INFO` level with
//! an `op` field and, when the operation concerns one session, its public `id` (a digest of
//! its token, never the token).

use std::fmt;
use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::error::StoreError;

/// Counter: session loads asked of the store (one per request that presents a well-formed
/// token).
pub const LOADS: &str = "sesame_loads_total";
/// Counter: changes saved to an existing session.
pub const SAVES: &str = "sesame_saves_total";
/// Counter: new sessions created (not counting rotations).
pub const CREATES: &str = "sesame_creates_total";
/// Counter: sessions that went on under a new token (login, `cycle_id`, renewal).
pub const ROTATIONS: &str = "sesame_rotations_total";
/// Counter: sessions destroyed by logout.
pub const DESTROYS: &str = "sesame_destroys_total";
/// Counter: revocations, labelled `scope`: `one` (one session by id, counted when it
/// existed) or `all` (every session of a user, or all but the caller's).
pub const REVOCATIONS: &str = "sesame_revocations_total";
/// Counter: tokens rejected by format or check value (no store call was made).
pub const INVALID_TOKENS: &str = "sesame_invalid_tokens_total";
/// Counter: well-formed tokens whose session does not exist (expired, revoked, never issued).
pub const UNKNOWN_TOKENS: &str = "sesame_unknown_tokens_total";
/// Counter: superseded tokens presented after their grace window (possible theft).
pub const REUSE_DETECTIONS: &str = "sesame_reuse_detections_total";
/// Counter: commits refused because their session had ended meanwhile.
pub const SESSIONS_ENDED: &str = "sesame_sessions_ended_total";
/// Counter: session creations refused by the creation hook (a rate limit, for example).
pub const CREATION_REFUSALS: &str = "sesame_creation_refusals_total";
/// Counter: writes refused because the store held an older version of their session than the
/// request had read (writes lost by a failover).
pub const ROLLBACKS: &str = "sesame_rollbacks_total";
/// Counter: failed store operations, labelled `kind`.
pub const STORE_ERRORS: &str = "sesame_store_errors_total";
/// Histogram: the duration of store operations in seconds, labelled `op`.
pub const STORE_OP_SECONDS: &str = "sesame_store_op_duration_seconds";

/// A store operation, as named in the `op` label and span field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Load,
    Save,
    Create,
    Rotate,
    Destroy,
    List,
    Peek,
    Epoch,
    Revoke,
    RevokeAll,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Load => "load",
            Op::Save => "save",
            Op::Create => "create",
            Op::Rotate => "rotate",
            Op::Destroy => "destroy",
            Op::List => "list",
            Op::Peek => "peek",
            Op::Epoch => "epoch",
            Op::Revoke => "revoke",
            Op::RevokeAll => "revoke_all",
        }
    }
}

/// Runs a store operation inside its span, recording its duration and, if it fails, its
/// error kind. `id` is the public id of the session concerned, if there is one; it is written
/// out only when a subscriber records the span (so a request allocates nothing for it).
pub(crate) fn store_op<T, F>(
    op: Op,
    id: Option<&dyn fmt::Display>,
    fut: F,
) -> impl Future<Output = Result<T, StoreError>>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let span = tracing::info_span!("sesame.store", op = op.name(), id = tracing::field::Empty);
    if let Some(id) = id {
        span.record("id", tracing::field::display(id));
    }
    if op == Op::Load {
        ::metrics::counter!(LOADS).increment(1);
    }
    async move {
        let start = Instant::now();
        let out = fut.instrument(span).await;
        ::metrics::histogram!(STORE_OP_SECONDS, "op" => op.name())
            .record(start.elapsed().as_secs_f64());
        if let Err(e) = &out {
            ::metrics::counter!(STORE_ERRORS, "kind" => e.kind()).increment(1);
        }
        out
    }
}

/// Adds one to a counter without labels.
pub(crate) fn count(name: &'static str) {
    ::metrics::counter!(name).increment(1);
}

/// Adds one to the revocation counter of `scope` (`one` or `all`).
pub(crate) fn count_revocation(scope: &'static str) {
    ::metrics::counter!(REVOCATIONS, "scope" => scope).increment(1);
}
