//! Classifying Redis errors: unavailable (503, retry later), configuration (retrying will not
//! help), corrupt data, or a backend refusal.

use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use sesame::StoreError;

/// Whether an error says the connection settings are wrong (credentials, permissions,
/// client configuration): retrying will not help.
pub(crate) fn is_config_error(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::Server(ServerErrorKind::NoPerm)
    ) || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
}

/// Maps a client error: anything that means "Redis is not there right now" is
/// [`StoreError::Unavailable`] (the request gets a 503 and a later one may succeed). That
/// includes a cluster's `MOVED`/`ASK` still coming back after the client's redirections and
/// retries: the slot map is changing (a failover or a resharding under way).
pub(crate) fn map_err(e: RedisError) -> StoreError {
    if is_config_error(&e) {
        // Wrong credentials or settings: retrying will not help; say so.
        return StoreError::Backend {
            message: format!("Redis refused the connection settings: {e}"),
            source: Some(Box::new(e)),
        };
    }
    let unavailable = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Io
                | ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::Moved
                        | ServerErrorKind::Ask
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::BusyLoading
                )
        );
    // A script that met a key of a Cluster slot being migrated (`ASK` inside a script) is
    // refused by Redis before the key is touched; it succeeds once the migration is over.
    // A master whose replicas lag past `min-replicas-max-lag` refuses writes with
    // `NOREPLICAS` (cut off from them, say) until they are back, or a failover replaces it.
    let text = e.to_string();
    let unavailable = unavailable
        || text.contains("non local key")
        || e.code() == Some("NOREPLICAS")
        || text.contains("NOREPLICAS");
    if unavailable {
        StoreError::Unavailable { message: text, source: Some(Box::new(e)) }
    } else {
        StoreError::Backend { message: text, source: Some(Box::new(e)) }
    }
}

/// Whether the server refused a command's syntax (`ERR syntax error`): an option it does not
/// know, such as `SET … IFEQ` before Valkey 8.1.
pub(crate) fn is_syntax_error(e: &StoreError) -> bool {
    let source = match e {
        StoreError::Backend { source, .. } | StoreError::Unavailable { source, .. } => source,
        _ => return false,
    };
    source.as_deref().and_then(|s| s.downcast_ref::<RedisError>()).is_some_and(|e| {
        e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
            && e.to_string().to_ascii_lowercase().contains("syntax error")
    })
}

/// Whether a failed command may be sent again on a fresh connection: the connection was found
/// broken (a restarted server, a dropped socket). Used once per call: for reads always, for
/// writes only where the script recognizes its own earlier write (see `docs/STORAGE.md`).
pub(crate) fn is_broken_connection(e: &RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || matches!(e.kind(), ErrorKind::Io)
}

/// A reply that does not have the shape the caller expects. Only the reply's type is named:
/// replies can hold session data, which must not reach logs.
pub(crate) fn unexpected(what: &str, v: &Value) -> StoreError {
    let shape = match v {
        Value::Nil => "nil",
        Value::Int(_) => "integer",
        Value::BulkString(_) => "bulk string",
        Value::Array(_) => "array",
        Value::SimpleString(_) => "simple string",
        Value::Okay => "OK",
        _ => "other",
    };
    StoreError::Corrupt(format!("unexpected reply to {what}: {shape}"))
}

/// A plain error with a message.
pub(crate) fn backend(message: &str) -> StoreError {
    StoreError::backend(message)
}
