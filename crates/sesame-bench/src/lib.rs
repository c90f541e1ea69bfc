//! # sesame-bench — measurements of sesame
//!
//! Not published. Holds the code behind the measurements quoted in the documentation, so
//! every figure can be reproduced with one command.
//!
//! ## Layout
//!
//! - [`content`]: the session content every measurement stores (a logged-in user with an id,
//!   a profile of about 205 bytes of JSON and a hit counter).
//! - [`failover`]: the failover scenario — HTTP clients on the demo app over Sentinel or
//!   Cluster while the master is killed (`cargo run --release -p sesame-bench --bin failover`).
//! - [`hash`]: [`hash::HashStore`], the alternative "one Redis hash per session" layout, with
//!   its own load and save scripts (`src/lua/`).
//! - [`info`]: parsing `INFO` replies (`INFO memory`, `INFO cpu`, `INFO commandstats`).
//! - [`invalidation`]: the near cache's invalidation latency — a revocation on one instance
//!   until another rejects the token (`cargo run --release -p sesame-bench --bin invalidation`).
//! - [`layout`]: [`layout::Layout`] and [`layout::Client`], one interface over the compact
//!   layout (the real `RedisStore`, with JSON or with MessagePack attribute values) and the
//!   hash layout.
//! - [`measure`]: one measurement of one layout on a fresh private `redis-server` — memory per
//!   session, then Redis time and CPU per request for reads and read+writes.
//! - [`partition`]: the network-partition scenario — writers through the store while the
//!   master is cut off from its replicas and sentinels (or a cluster's majority) with iptables
//!   (`cargo run --release -p sesame-bench --bin partition`).
//! - [`report`]: medians over rounds and the Markdown table.
//! - [`scale`]: memory per session and single-operation latencies with 10,000 and then
//!   1,000,000 sessions in one Redis (`cargo run --release -p sesame-bench --bin scale`).
//!
//! The `layouts` binary (`cargo run --release -p sesame-bench --bin layouts`) runs it all.
#![forbid(unsafe_code)]

pub mod content;
pub mod failover;
pub mod hash;
pub mod info;
pub mod invalidation;
pub mod layout;
pub mod measure;
pub mod partition;
pub mod report;
pub mod scale;

use std::fmt;

/// Logs errors only, to standard error (the binaries print their tables on standard
/// output); `RUST_LOG` overrides the level.
pub fn log_errors_to_stderr() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Any failure of a measurement, as text: a measurement either completes or is discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(pub String);

impl BenchError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> BenchError {
        BenchError(message.into())
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<redis::RedisError> for BenchError {
    fn from(e: redis::RedisError) -> Self {
        BenchError(format!("redis: {e}"))
    }
}

impl From<sesame::StoreError> for BenchError {
    fn from(e: sesame::StoreError) -> Self {
        BenchError(format!("store: {e}"))
    }
}

impl From<sesame::Error> for BenchError {
    fn from(e: sesame::Error) -> Self {
        BenchError(format!("sesame: {e}"))
    }
}

impl From<sesame_testkit::TestkitError> for BenchError {
    fn from(e: sesame_testkit::TestkitError) -> Self {
        BenchError(format!("private server: {e}"))
    }
}

/// Result of the measurement code.
pub type BenchResult<T> = Result<T, BenchError>;
