//! The one connection type the store uses, whatever the topology.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::pool::{Lease, Pool};
use crate::sentinel::SentinelConn;

/// A redis-rs client for `url`, trusting `ca_pem` in addition to the system roots.
pub(crate) fn client(url: &str, ca_pem: Option<&[u8]>) -> RedisResult<redis::Client> {
    match ca_pem {
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) },
        ),
        None => redis::Client::open(url),
    }
}

/// A multiplexed connection to one server, a Sentinel-followed master, or a Redis Cluster.
/// Cheap to clone; clones share the underlying connections.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server; reconnects by itself. With durability on, writes that wait for replicas
    /// use the pool's dedicated connections.
    Single(ConnectionManager, Option<Arc<Pool>>),
    /// The master of a Sentinel group; follows failovers.
    Sentinel(SentinelConn),
    /// A cluster; follows `MOVED`/`ASK` and failovers, one connection per node, each request
    /// within its bound (see [`bounded`]) however many retries the cluster client makes. With
    /// durability on, writes that wait for replicas use the pool's own cluster connections.
    Cluster(ClusterConnection, Option<Arc<Pool>>, Duration),
}

impl Conn {
    /// Which topology, for logs and errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Conn::Single(..) => "standalone",
            Conn::Sentinel(_) => "sentinel",
            Conn::Cluster(..) => "cluster",
        }
    }

    /// A dedicated connection for one write and its `WAIT`, waiting at most `wait` for a
    /// turn; `None` when durability is off.
    pub(crate) async fn lease(&self, wait: std::time::Duration) -> Option<RedisResult<Lease>> {
        match self {
            Conn::Single(_, Some(pool)) | Conn::Cluster(_, Some(pool), _) => {
                Some(pool.lease(wait).await)
            }
            Conn::Sentinel(s) => s.lease(wait).await,
            _ => None,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c, _) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
            Conn::Cluster(c, _, bound) => bounded(*bound, c.req_packed_command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c, _) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c, _, bound) => {
                bounded(*bound, c.req_packed_commands(pipeline, offset, count))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c, _) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
            Conn::Cluster(c, ..) => c.get_db(),
        }
    }
}

/// `request`, failing with a timeout once `bound` has passed. The cluster client retries a
/// request on another connection, after a refresh of the slots, or after a pause, each try
/// waiting its own response timeout; a node cut off from the network would hold a request for
/// several of them. The bound keeps every request within the store's documented time
/// (`connect_timeout + 2 x response_timeout`, plus the durability timeout for a durable write).
/// A write cut short this way may or may not have been applied (see `script::write_error`).
pub(crate) fn bounded<'a, T: Send + 'a>(
    bound: Duration,
    request: RedisFuture<'a, T>,
) -> RedisFuture<'a, T> {
    Box::pin(async move {
        match tokio::time::timeout(bound, request).await {
            Ok(replied) => replied,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer from the cluster within {} ms", bound.as_millis()),
            ))),
        }
    })
}
