//! A connection to the master of a Sentinel-monitored group that follows failovers.
//!
//! The current master is asked of every sentinel at once (`SENTINEL GET-MASTER-ADDR-BY-NAME`,
//! the first answer that checks out wins), and a node is used only after it answers `ROLE`
//! with `master`. A whole lookup takes at most `connect_timeout + response_timeout`, however
//! many sentinels are unreachable. The master is looked up again:
//!
//! - when a command fails because the connection broke, timed out or was refused (that request
//!   fails: it may or may not have been applied, so it is not repeated);
//! - when a node answers `READONLY` (it was demoted: nothing was written, so the command is
//!   sent once more to the new master);
//! - when any sentinel announces `+switch-master` for this group (a background task per
//!   sentinel listens);
//! - when the background check, every 500 ms (`watch::POLL_EVERY`), finds that the sentinels name another
//!   master, or that the master in use answers `ROLE` with anything but `master`.
//!
//! The background tasks end when the store is dropped. While no master is known, requests
//! fail fast as unavailable: the application answers 503 and a later request, after the
//! sentinels have promoted a replica, succeeds.

mod lookup;
mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

use crate::pool::{Lease, Pool};
use crate::url::NodeUrl;

/// Where the sentinels are and how to reach the nodes they name.
#[derive(Clone)]
pub(crate) struct SentinelSpec {
    /// `host:port` of each sentinel.
    pub(crate) sentinels: Vec<String>,
    /// The monitored group's name.
    pub(crate) master_name: String,
    /// Scheme, credentials and db of the data nodes.
    pub(crate) node: NodeUrl,
    /// `user:password` for the sentinels, if they require one.
    pub(crate) sentinel_userinfo: Option<String>,
    /// Extra trusted CA (PEM) for TLS.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// Timeouts for every connection.
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    /// With durability on, how long a write's `WAIT` may take: writes then run on dedicated
    /// connections (see `pool`).
    pub(crate) durability_wait: Option<Duration>,
    /// Whether to listen to `+switch-master` (always, outside tests of the polling).
    pub(crate) announcements: bool,
}

impl SentinelSpec {
    /// The longest a master lookup may take.
    pub(crate) fn lookup_bound(&self) -> Duration {
        self.connect_timeout.saturating_add(self.response_timeout)
    }
}

struct Current {
    generation: u64,
    addr: String,
    conn: MultiplexedConnection,
    /// Dedicated connections for writes that wait for replicas (durability on).
    writers: Option<Arc<Pool>>,
}

struct Inner {
    spec: SentinelSpec,
    current: std::sync::RwLock<Option<Arc<Current>>>,
    /// One lookup at a time; others wait for its result.
    resolving: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// When the last lookup failed: requests that were waiting for it, and requests in the
    /// short while after, fail at once instead of queueing for lookups that would fail the
    /// same way.
    failed_at: std::sync::Mutex<Option<Instant>>,
    /// A connection to each sentinel that answered, kept for the next lookups and checks
    /// (dropped when it fails).
    sentinel_conns: Arc<std::sync::Mutex<HashMap<String, MultiplexedConnection>>>,
    /// Dropped with the store: the background tasks see it and end.
    _alive: tokio::sync::watch::Sender<()>,
    alive: tokio::sync::watch::Receiver<()>,
}

/// A cloneable handle; clones share the current master connection.
#[derive(Clone)]
pub(crate) struct SentinelConn {
    inner: Arc<Inner>,
}

/// How long after a failed lookup requests fail at once.
const RETRY_LOOKUP_AFTER: Duration = Duration::from_millis(100);

fn io_error(message: String) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, message))
}

/// Whether an error means the master we talk to may be gone or is no longer the master.
pub(crate) fn master_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

fn is_readonly(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

fn reply_readonly(values: &[Value]) -> bool {
    values.iter().any(|v| matches!(v, Value::ServerError(e) if e.code() == "READONLY"))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SentinelConn {
    /// Finds the master now (failing when none can be found) and starts the background
    /// tasks: the `+switch-master` listeners and the periodic check.
    pub(crate) async fn connect(spec: SentinelSpec) -> RedisResult<SentinelConn> {
        let (tx, rx) = tokio::sync::watch::channel(());
        let inner = Arc::new(Inner {
            spec,
            current: std::sync::RwLock::new(None),
            resolving: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            failed_at: std::sync::Mutex::new(None),
            sentinel_conns: Arc::default(),
            _alive: tx,
            alive: rx,
        });
        inner.master(None).await?;
        watch::start(&inner);
        Ok(SentinelConn { inner })
    }

    /// The address of the master in use, if one is known.
    pub(crate) fn current_master(&self) -> Option<String> {
        self.inner.cached().map(|c| c.addr.clone())
    }

    /// A dedicated connection to the current master for one write and its `WAIT`, waiting
    /// at most `wait` for a turn (`None` when durability is off).
    pub(crate) async fn lease(&self, wait: Duration) -> Option<RedisResult<Lease>> {
        let current = match self.inner.master(None).await {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let pool = current.writers.clone()?;
        let inner = Arc::downgrade(&self.inner);
        let generation = current.generation;
        Some(pool.lease(wait).await.map(|lease| {
            lease.on_error(move |e| {
                if master_lost(e) {
                    if let Some(i) = inner.upgrade() {
                        i.invalidate(Some(generation));
                    }
                }
            })
        }))
    }
}

impl Inner {
    fn cached(&self) -> Option<Arc<Current>> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, value: Option<Arc<Current>>) {
        match self.current.write() {
            Ok(mut g) => *g = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }

    /// Forgets the master of `generation` (or any, for `None`), so the next request looks it
    /// up again.
    fn invalidate(&self, generation: Option<u64>) {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(c) = g.as_ref() {
            if generation.is_none_or(|gen| gen == c.generation) {
                tracing::info!(master = %c.addr, "forgetting the Redis master; asking the sentinels again");
                *g = None;
            }
        }
    }

    /// Makes `addr` (checked to be a master, reached by `conn`) the master in use.
    fn install(&self, addr: String, conn: MultiplexedConnection) -> Arc<Current> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        tracing::info!(master = %addr, "using Redis master found through the sentinels");
        let writers = self.spec.durability_wait.and_then(|wait| {
            let url = self.spec.node.at(&addr);
            let client = crate::conn::client(&url, self.spec.ca_pem.as_deref()).ok()?;
            let response = self.spec.response_timeout.saturating_add(wait);
            Some(Pool::new(client, self.spec.connect_timeout, response))
        });
        let c = Arc::new(Current { generation, addr, conn, writers });
        self.set(Some(c.clone()));
        c
    }

    /// The current master, looked up through the sentinels when none is known or when the
    /// known one is `stale`. Waits at most for one lookup (its own or the one under way).
    async fn master(&self, stale: Option<u64>) -> RedisResult<Arc<Current>> {
        if let Some(c) = self.cached() {
            if Some(c.generation) != stale {
                return Ok(c);
            }
        }
        let asked = Instant::now();
        let _one = self.resolving.lock().await;
        // Someone else may have found it while we waited.
        if let Some(c) = self.cached() {
            if Some(c.generation) != stale {
                return Ok(c);
            }
        }
        // A lookup failed while we waited, or a moment ago: another one now would fail the
        // same way, so fail at once.
        let failed = *lock(&self.failed_at);
        if failed.is_some_and(|t| t >= asked || t.elapsed() < RETRY_LOOKUP_AFTER) {
            return Err(io_error(format!(
                "no Redis master for {:?} is known right now (failover in progress?)",
                self.spec.master_name
            )));
        }
        let found = self.lookup().await;
        *lock(&self.failed_at) = found.is_err().then(Instant::now);
        match found {
            Ok((addr, conn)) => Ok(self.install(addr, conn)),
            Err(e) => {
                self.set(None);
                Err(e)
            }
        }
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut stale = None;
            loop {
                let current = self.inner.master(stale).await?;
                let mut conn = current.conn.clone();
                match conn.req_packed_command(cmd).await {
                    Ok(Value::ServerError(e)) if e.code() == "READONLY" && stale.is_none() => {
                        stale = Some(current.generation);
                    }
                    Ok(v) => return Ok(v),
                    Err(e) if is_readonly(&e) && stale.is_none() => {
                        // Demoted: nothing was written; try the new master once.
                        stale = Some(current.generation);
                    }
                    Err(e) => {
                        if master_lost(&e) {
                            self.inner.invalidate(Some(current.generation));
                        }
                        return Err(e);
                    }
                }
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut stale = None;
            loop {
                let current = self.inner.master(stale).await?;
                let mut conn = current.conn.clone();
                match conn.req_packed_commands(pipeline, offset, count).await {
                    Ok(values) if reply_readonly(&values) && stale.is_none() => {
                        stale = Some(current.generation);
                    }
                    Ok(values) => return Ok(values),
                    Err(e) if is_readonly(&e) && stale.is_none() => {
                        stale = Some(current.generation);
                    }
                    Err(e) => {
                        if master_lost(&e) {
                            self.inner.invalidate(Some(current.generation));
                        }
                        return Err(e);
                    }
                }
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.spec.node.db.map_or(0, i64::from)
    }
}
