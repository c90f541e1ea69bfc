//! The crate's error type.

/// How many lines of the server log an error message carries.
pub(crate) const LOG_TAIL_LINES: usize = 40;

/// Everything that can go wrong while spawning or talking to a test server.
///
/// Each message ends with the last lines of the server log (or a note that the
/// log is empty), so that a failing test shows why Redis misbehaved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// A file-system or process operation failed.
    #[error("{context}: {source}\n{log_tail}")]
    Io {
        /// What was being attempted.
        context: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
        /// Formatted tail of the server log.
        log_tail: String,
    },

    /// The throwaway CA or server certificate could not be generated.
    #[error("cannot generate TLS certificates: {0}")]
    Certificate(String),

    /// The port stayed busy ("Address already in use") after all retries.
    #[error("redis-server could not bind 127.0.0.1:{port} (address already in use)\n{log_tail}")]
    PortInUse {
        /// The last port that was tried.
        port: u16,
        /// Formatted tail of the server log.
        log_tail: String,
    },

    /// The server exited early or did not become ready in time.
    #[error("redis-server on 127.0.0.1:{port} did not start: {reason}\n{log_tail}")]
    Start {
        /// The port the server was started on.
        port: u16,
        /// Why the start is considered failed.
        reason: String,
        /// Formatted tail of the server log.
        log_tail: String,
    },

    /// `redis-cli` failed (non-zero exit, timeout).
    #[error("redis-cli {args} failed: {reason}\nstderr: {}\n{log_tail}", stderr.trim())]
    Cli {
        /// The command arguments that were passed.
        args: String,
        /// Exit status or timeout description.
        reason: String,
        /// What `redis-cli` wrote to stderr.
        stderr: String,
        /// Formatted tail of the server log.
        log_tail: String,
    },

    /// A group of servers (sentinel group, cluster) did not reach the expected
    /// state in time.
    #[error("timed out after {waited:?} waiting for {what}; last state: {last}\n{log_tail}")]
    Timeout {
        /// The state that was waited for.
        what: String,
        /// How long was waited.
        waited: std::time::Duration,
        /// Why the last check still failed.
        last: String,
        /// Formatted log tails of the processes involved.
        log_tail: String,
    },

    /// A network partition could not be made, changed or checked (see
    /// [`Partition`](crate::Partition)).
    #[error("network partition: {0}")]
    Partition(String),

    /// The server answered something this crate could not make sense of.
    #[error("unexpected reply from redis-server: {message}\n{log_tail}")]
    Unexpected {
        /// What was expected and what came back.
        message: String,
        /// Formatted tail of the server log.
        log_tail: String,
    },
}

/// Formats the last [`LOG_TAIL_LINES`] lines of `text` under a header.
pub(crate) fn format_tail(text: &str) -> String {
    format_tail_lines(text, LOG_TAIL_LINES)
}

/// Formats the last `max_lines` lines of `text` under a header.
pub(crate) fn format_tail_lines(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "--- server log is empty ---".to_owned();
    }
    let start = lines.len().saturating_sub(max_lines);
    let mut out = format!("--- server log (last {} lines) ---", lines.len() - start);
    for line in &lines[start..] {
        out.push('\n');
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_only_the_last_lines() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let tail = format_tail(&text);
        assert!(tail.contains("line 99"));
        assert!(tail.contains("line 60"));
        assert!(!tail.contains("line 59\n"));
        assert_eq!(format_tail(""), "--- server log is empty ---");
    }
}
