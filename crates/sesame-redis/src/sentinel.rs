//! A connection to the master of a Sentinel-monitored group that follows failovers.
//!
//! The current master is asked of the sentinels (`SENTINEL GET-MASTER-ADDR-BY-NAME`), and a
//! node is used only after it answers `ROLE` with `master`. The master is looked up again:
//!
//! - when a command fails because the connection broke, timed out or was refused (that request
//!   fails: it may or may not have been applied, so it is not repeated);
//! - when a node answers `READONLY` (it was demoted: nothing was written, so the command is
//!   sent once more to the new master);
//! - when any sentinel announces `+switch-master` for this group (a background task per
//!   sentinel listens; it ends when the store is dropped).
//!
//! While no master is known, requests fail fast as unavailable: the application answers 503
//! and a later request, after the sentinels have promoted a replica, succeeds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};

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
}

struct Current {
    generation: u64,
    addr: String,
    conn: MultiplexedConnection,
}

struct Inner {
    spec: SentinelSpec,
    current: std::sync::RwLock<Option<Arc<Current>>>,
    /// One lookup at a time; others wait for its result.
    resolving: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// When the last lookup failed: for a short while after, requests fail at once instead of
    /// queueing for lookups that would fail the same way.
    failed_at: std::sync::Mutex<Option<Instant>>,
    /// Dropped with the store: the listener tasks see it and end.
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
fn master_lost(e: &RedisError) -> bool {
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

impl SentinelConn {
    /// Finds the master now (failing when none can be found) and starts the `+switch-master`
    /// listeners.
    pub(crate) async fn connect(spec: SentinelSpec) -> RedisResult<SentinelConn> {
        let (tx, rx) = tokio::sync::watch::channel(());
        let inner = Arc::new(Inner {
            spec,
            current: std::sync::RwLock::new(None),
            resolving: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            failed_at: std::sync::Mutex::new(None),
            _alive: tx,
            alive: rx,
        });
        inner.master(None).await?;
        for s in &inner.spec.sentinels {
            tokio::spawn(listen(Arc::downgrade(&inner), s.clone(), inner.alive.clone()));
        }
        Ok(SentinelConn { inner })
    }

    /// The address of the master in use, if one is known.
    pub(crate) fn current_master(&self) -> Option<String> {
        self.inner.cached().map(|c| c.addr.clone())
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

    /// The current master, looked up through the sentinels when none is known or when the
    /// known one is `stale`.
    async fn master(&self, stale: Option<u64>) -> RedisResult<Arc<Current>> {
        if let Some(c) = self.cached() {
            if Some(c.generation) != stale {
                return Ok(c);
            }
        }
        let _one = self.resolving.lock().await;
        // Someone else may have found it while we waited.
        if let Some(c) = self.cached() {
            if Some(c.generation) != stale {
                return Ok(c);
            }
        }
        let recent_failure = match self.failed_at.lock() {
            Ok(g) => *g,
            Err(poisoned) => *poisoned.into_inner(),
        };
        if recent_failure.is_some_and(|t| t.elapsed() < RETRY_LOOKUP_AFTER) {
            return Err(io_error(format!(
                "no Redis master for {:?} is known right now (failover in progress?)",
                self.spec.master_name
            )));
        }
        let found = self.lookup().await;
        let failed = found.is_err().then(Instant::now);
        match self.failed_at.lock() {
            Ok(mut g) => *g = failed,
            Err(poisoned) => *poisoned.into_inner() = failed,
        }
        match found {
            Ok((addr, conn)) => {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::info!(master = %addr, "using Redis master found through the sentinels");
                let c = Arc::new(Current { generation, addr, conn });
                self.set(Some(c.clone()));
                Ok(c)
            }
            Err(e) => {
                self.set(None);
                Err(e)
            }
        }
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.spec.connect_timeout))
            .set_response_timeout(Some(self.spec.response_timeout))
    }

    async fn open(&self, url: &str) -> RedisResult<MultiplexedConnection> {
        let client = crate::conn::client(url, self.spec.ca_pem.as_deref())?;
        let config = self.config();
        tokio::time::timeout(
            self.spec.connect_timeout + Duration::from_millis(200),
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| io_error(format!("timed out connecting to {}", crate::url::redacted(url))))?
    }

    /// Asks each sentinel in turn for the master and checks the answer with `ROLE`.
    async fn lookup(&self) -> RedisResult<(String, MultiplexedConnection)> {
        let spec = &self.spec;
        let mut problems = Vec::new();
        // Refused credentials or unusable settings are reported as such, not as an outage.
        let mut config_error = None;
        let mut note = |e: &RedisError| {
            if crate::error::is_config_error(e) {
                config_error = Some(ErrorKind::AuthenticationFailed);
            }
        };
        for s in &spec.sentinels {
            let url = spec.node.sentinel_at(s, spec.sentinel_userinfo.as_deref());
            let addr = async {
                let mut conn = self.open(&url).await?;
                let (host, port): (String, u16) = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&spec.master_name)
                    .query_async(&mut conn)
                    .await?;
                RedisResult::Ok(if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                })
            }
            .await;
            let addr = match addr {
                Ok(a) => a,
                Err(e) => {
                    note(&e);
                    problems.push(format!("sentinel {s}: {e}"));
                    continue;
                }
            };
            match self.confirm(&addr).await {
                Ok(conn) => return Ok((addr, conn)),
                Err(e) => {
                    note(&e);
                    problems.push(format!("sentinel {s} named {addr}: {e}"));
                }
            }
        }
        let message = format!(
            "no Redis master for {:?} could be reached through the sentinels ({})",
            spec.master_name,
            problems.join("; ")
        );
        Err(match config_error {
            Some(kind) => RedisError::from((kind, "sentinel lookup", message)),
            None => io_error(message),
        })
    }

    /// Connects to `addr` and checks that it is a master now.
    async fn confirm(&self, addr: &str) -> RedisResult<MultiplexedConnection> {
        let mut conn = self.open(&self.spec.node.at(addr)).await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        match role.first() {
            Some(Value::BulkString(r)) if r.as_slice() == b"master" => Ok(conn),
            Some(Value::SimpleString(r)) if r == "master" => Ok(conn),
            other => Err(io_error(format!("ROLE says {other:?}, not master"))),
        }
    }
}

/// Listens to one sentinel's `+switch-master` announcements until the store is dropped.
async fn listen(inner: Weak<Inner>, sentinel: String, mut alive: tokio::sync::watch::Receiver<()>) {
    loop {
        let (url, name) = match inner.upgrade() {
            Some(i) => (
                i.spec.node.sentinel_at(&sentinel, i.spec.sentinel_userinfo.as_deref()),
                i.spec.master_name.clone(),
            ),
            None => return,
        };
        let ca = inner.upgrade().and_then(|i| i.spec.ca_pem.clone());
        let session = async {
            let client = crate::conn::client(&url, ca.as_deref())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let payload: String = msg.get_payload().unwrap_or_default();
                // "<name> <old ip> <old port> <new ip> <new port>"
                if payload.split(' ').next() == Some(name.as_str()) {
                    match inner.upgrade() {
                        Some(i) => i.invalidate(None),
                        None => return Ok(()),
                    }
                }
            }
            RedisResult::Ok(())
        };
        tokio::select! {
            _ = alive.changed() => return,
            r = session => {
                if let Err(e) = r {
                    tracing::debug!(%sentinel, error = %e, "sentinel listener disconnected");
                }
            }
        }
        tokio::select! {
            _ = alive.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
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
