//! Finding the master: every sentinel asked at once, each answer checked with `ROLE`, the
//! whole search bounded by `connect_timeout + response_timeout`.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult, Value};

use super::{io_error, lock, Inner};

impl Inner {
    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.spec.connect_timeout))
            .set_response_timeout(Some(self.spec.response_timeout))
    }

    async fn open(&self, url: &str) -> RedisResult<MultiplexedConnection> {
        let client = crate::conn::client(url, self.spec.ca_pem.as_deref())?;
        opening(client, self.config(), self.spec.connect_timeout, crate::url::redacted(url)).await
    }

    /// Asks one sentinel which node is the master, on the connection kept for it (opened
    /// first when there is none; dropped when the question fails).
    async fn ask(&self, sentinel: &str) -> RedisResult<String> {
        let kept = lock(&self.sentinel_conns).get(sentinel).cloned();
        let mut conn = match kept {
            Some(c) => c,
            None => {
                let url =
                    self.spec.node.sentinel_at(sentinel, self.spec.sentinel_userinfo.as_deref());
                let client = crate::conn::client(&url, self.spec.ca_pem.as_deref())?;
                let shown = crate::url::redacted(&url);
                let connect = opening(client, self.config(), self.spec.connect_timeout, shown);
                let (kept, key) = (self.sentinel_conns.clone(), sentinel.to_string());
                // A task of its own: when this question is dropped because another sentinel
                // answered first, the connection is still opened and kept for the next one.
                let task = tokio::spawn(async move {
                    let c = connect.await?;
                    lock(&kept).insert(key, c.clone());
                    RedisResult::Ok(c)
                });
                task.await
                    .map_err(|_| io_error("connecting to a sentinel was cut short".into()))??
            }
        };
        let answer: RedisResult<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.spec.master_name)
            .query_async(&mut conn)
            .await;
        let (host, port) = answer.inspect_err(|_| {
            lock(&self.sentinel_conns).remove(sentinel);
        })?;
        Ok(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
    }

    /// The first answer of any sentinel (all asked at once), within the lookup bound.
    pub(super) async fn ask_any(&self) -> Option<String> {
        let mut asks: FuturesUnordered<_> =
            self.spec.sentinels.iter().map(|s| self.ask(s)).collect();
        let first = async {
            while let Some(answer) = asks.next().await {
                if let Ok(addr) = answer {
                    return Some(addr);
                }
            }
            None
        };
        tokio::time::timeout(self.spec.lookup_bound(), first).await.ok().flatten()
    }

    /// Asks every sentinel at once and returns the first named node that checks out as a
    /// master, with a connection to it.
    pub(super) async fn lookup(&self) -> RedisResult<(String, MultiplexedConnection)> {
        let spec = &self.spec;
        let mut problems = Vec::new();
        // Refused credentials or unusable settings are reported as such, not as an outage.
        let mut config_error = false;
        let search = async {
            let mut asks: FuturesUnordered<_> =
                spec.sentinels.iter().map(|s| async move { (s, self.ask(s).await) }).collect();
            let mut tried = HashSet::new();
            while let Some((s, answer)) = asks.next().await {
                let addr = match answer {
                    Ok(addr) => addr,
                    Err(e) => {
                        config_error |= crate::error::is_config_error(&e);
                        problems.push(format!("sentinel {s}: {e}"));
                        continue;
                    }
                };
                if !tried.insert(addr.clone()) {
                    continue;
                }
                match self.confirm(&addr).await {
                    Ok(conn) => return Some((addr, conn)),
                    Err(e) => {
                        config_error |= crate::error::is_config_error(&e);
                        problems.push(format!("sentinel {s} named {addr}: {e}"));
                    }
                }
            }
            None
        };
        let bound = spec.lookup_bound();
        let outcome = tokio::time::timeout(bound, search).await;
        match outcome {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            Err(_) => problems.push(format!("no usable answer within {} ms", bound.as_millis())),
        }
        let message = format!(
            "no Redis master for {:?} could be reached through the sentinels ({})",
            spec.master_name,
            problems.join("; ")
        );
        Err(if config_error {
            RedisError::from((ErrorKind::AuthenticationFailed, "sentinel lookup", message))
        } else {
            io_error(message)
        })
    }

    /// Connects to `addr` and checks that it is a master now; loads the store's scripts into
    /// it (one pipeline), so that a durable write's `WAIT` does not first wait out its whole
    /// timeout behind a `NOSCRIPT` reply, then again after the reload.
    pub(super) async fn confirm(&self, addr: &str) -> RedisResult<MultiplexedConnection> {
        let mut conn = self.open(&self.spec.node.at(addr)).await?;
        if !is_master(&mut conn).await? {
            return Err(io_error(format!("{addr} is not a master (ROLE)")));
        }
        let mut load = redis::pipe();
        for source in crate::script::Scripts::sources() {
            load.cmd("SCRIPT").arg("LOAD").arg(source).ignore();
        }
        let () = load.query_async(&mut conn).await?;
        Ok(conn)
    }
}

/// Opens a connection within `within`; the future owns all it needs (it takes no reference),
/// so that it can run as a task of its own.
async fn opening(
    client: redis::Client,
    config: AsyncConnectionConfig,
    within: Duration,
    shown: String,
) -> RedisResult<MultiplexedConnection> {
    tokio::time::timeout(within, client.get_multiplexed_async_connection_with_config(&config))
        .await
        .map_err(|_| io_error(format!("timed out connecting to {shown}")))?
}

/// Whether the node behind `conn` answers `ROLE` with `master`.
pub(super) async fn is_master(conn: &mut MultiplexedConnection) -> RedisResult<bool> {
    let role: Vec<Value> = redis::cmd("ROLE").query_async(conn).await?;
    Ok(match role.first() {
        Some(Value::BulkString(r)) => r.as_slice() == b"master",
        Some(Value::SimpleString(r)) => r == "master",
        _ => false,
    })
}
