//! Dedicated connections for writes that wait for replicas.
//!
//! `WAIT` blocks the connection it is sent on until the replicas answer (or its timeout), and
//! it covers the writes made on that same connection. On the shared multiplexed connection,
//! every other request's commands would queue behind it. So with durability on, each write
//! and its `WAIT` take a connection of their own from this small pool, while reads (and
//! everything else) stay on the shared connection.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, RedisResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most writes waiting for replicas at once per store (more wait for a turn).
pub(crate) const MAX_WAITING_WRITES: usize = 16;

/// Connections to one node for one write at a time each.
pub(crate) struct Pool {
    client: redis::Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    idle: Mutex<Vec<MultiplexedConnection>>,
    turns: Arc<Semaphore>,
}

type OnError = Box<dyn Fn(&RedisError) + Send + Sync>;

/// One connection of the pool, held by one write. It goes back to the pool only when the
/// write is [`Lease::finish`]ed: a write dropped half way (its request cancelled) may leave a
/// `WAIT` running on it, so its connection is closed instead.
pub(crate) struct Lease {
    conn: MultiplexedConnection,
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
        Arc::new(Pool {
            client,
            config,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            turns: Arc::new(Semaphore::new(MAX_WAITING_WRITES)),
        })
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
            None => tokio::time::timeout(
                self.connect_timeout,
                self.client.get_multiplexed_async_connection_with_config(&self.config),
            )
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
    pub(crate) fn conn(&mut self) -> &mut MultiplexedConnection {
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
