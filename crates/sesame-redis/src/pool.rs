//! Dedicated connections for writes that wait for replicas.
//!
//! `WAIT` blocks the connection it is sent on until the replicas answer (or its timeout), and
//! it covers the writes made on that same connection. On the shared multiplexed connection,
//! every other request's commands would queue behind it. So with durability on, each write
//! and its `WAIT` take a connection of their own from this small pool, while reads (and
//! everything else) stay on the shared connection. On a cluster, each pooled connection is a
//! cluster connection of its own (one socket per node), so that a `WAIT` on one node holds up
//! neither reads nor the other writes to that node.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::conn::bounded;

/// Most writes waiting for replicas at once per store (more wait for a turn).
pub(crate) const MAX_WAITING_WRITES: usize = 16;

/// Where the pool's connections lead.
enum Source {
    /// One node (a standalone server, or a Sentinel group's current master).
    Node(redis::Client, AsyncConnectionConfig),
    /// A whole cluster, each request within the duration.
    Cluster(ClusterClient, Duration),
}

/// One connection of the pool: to one node, or to a cluster.
#[derive(Clone)]
pub(crate) enum Dedicated {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection, Duration),
}

impl ConnectionLike for Dedicated {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Dedicated::Node(c) => c.req_packed_command(cmd),
            Dedicated::Cluster(c, bound) => bounded(*bound, c.req_packed_command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Dedicated::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Dedicated::Cluster(c, bound) => {
                bounded(*bound, c.req_packed_commands(pipeline, offset, count))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Dedicated::Node(c) => c.get_db(),
            Dedicated::Cluster(c, _) => c.get_db(),
        }
    }
}

/// Connections for one write at a time each.
pub(crate) struct Pool {
    source: Source,
    connect_timeout: Duration,
    idle: Mutex<Vec<Dedicated>>,
    turns: Arc<Semaphore>,
}

type OnError = Box<dyn Fn(&RedisError) + Send + Sync>;

/// One connection of the pool, held by one write. It goes back to the pool only when the
/// write is [`Lease::finish`]ed: a write dropped half way (its request cancelled) may leave a
/// `WAIT` running on it, so its connection is closed instead.
pub(crate) struct Lease {
    conn: Dedicated,
    pool: Arc<Pool>,
    reusable: bool,
    on_error: Option<OnError>,
    _turn: OwnedSemaphorePermit,
}

fn io_error(message: &str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, message.to_string()))
}

impl Pool {
    /// A pool of connections made by `client`, each waiting up to `response_timeout` for a
    /// reply (which must cover the `WAIT` timeout).
    pub(crate) fn new(
        client: redis::Client,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Arc<Pool> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        Self::with_source(Source::Node(client, config), connect_timeout)
    }

    /// A pool of cluster connections made by `client` (whose response timeout must cover the
    /// `WAIT` timeout), each request within `bound`; `connect_timeout` bounds making one.
    pub(crate) fn cluster(
        client: ClusterClient,
        connect_timeout: Duration,
        bound: Duration,
    ) -> Arc<Pool> {
        Self::with_source(Source::Cluster(client, bound), connect_timeout)
    }

    fn with_source(source: Source, connect_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            source,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            turns: Arc::new(Semaphore::new(MAX_WAITING_WRITES)),
        })
    }

    async fn connect(&self) -> RedisResult<Dedicated> {
        match &self.source {
            Source::Node(client, config) => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Dedicated::Node),
            Source::Cluster(client, bound) => {
                client.get_async_connection().await.map(|c| Dedicated::Cluster(c, *bound))
            }
        }
    }

    /// A connection for one write, waiting at most `wait` for a turn.
    pub(crate) async fn lease(self: &Arc<Pool>, wait: Duration) -> RedisResult<Lease> {
        let turn = tokio::time::timeout(wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| io_error("too many writes are waiting for replicas"))?
            .map_err(|_| io_error("the write pool is closed"))?;
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(c) => c,
            None => tokio::time::timeout(self.connect_timeout, self.connect())
                .await
                .map_err(|_| io_error("timed out connecting for a write"))??,
        };
        Ok(Lease { conn, pool: self.clone(), reusable: false, on_error: None, _turn: turn })
    }
}

impl Lease {
    /// Calls `f` with the error of a failed command on this connection.
    pub(crate) fn on_error(mut self, f: impl Fn(&RedisError) + Send + Sync + 'static) -> Lease {
        self.on_error = Some(Box::new(f));
        self
    }

    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut Dedicated {
        &mut self.conn
    }

    /// The write is over: the connection may serve another one, unless the write failed
    /// because of the connection itself (then it is closed). The owner is told of errors.
    pub(crate) fn done<T>(mut self, result: &RedisResult<T>) {
        match result {
            Ok(_) => self.reusable = true,
            Err(e) => {
                if let Some(f) = &self.on_error {
                    f(e);
                }
                self.reusable = !(e.is_timeout()
                    || e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error());
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.reusable {
            let mut idle = self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_WAITING_WRITES {
                idle.push(self.conn.clone());
            }
        }
    }
}
