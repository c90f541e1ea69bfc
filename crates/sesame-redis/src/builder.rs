//! [`RedisStoreBuilder`]: options, and connecting per topology.

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::{RedisError, RedisResult};
use sesame::StoreError;

use crate::conn::Conn;
use crate::error::{backend, map_err};
use crate::keys::Keys;
use crate::near::{Listen, Masters, Near, NearCacheConfig};
use crate::script::{Durability, Scripts};
use crate::store::RedisStore;
use crate::url::Topology;

/// Builder of a [`RedisStore`].
///
/// ```no_run
/// # async fn f() -> Result<(), sesame::StoreError> {
/// use std::time::Duration;
/// let store = sesame_redis::RedisStore::builder("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/sessions")
///     .prefix("myapp")
///     .response_timeout(Duration::from_millis(500))
///     .durability(1, Duration::from_millis(200))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    ca_pem: Option<Vec<u8>>,
    response_timeout: Duration,
    connect_timeout: Duration,
    sentinel_userinfo: Option<String>,
    durability: Option<Durability>,
    announcements: bool,
    near_cache: Option<NearCacheConfig>,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &crate::url::redacted(&self.url))
            .field("prefix", &self.prefix)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    pub(crate) fn new(url: String) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url,
            prefix: "sesame".into(),
            ca_pem: None,
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            sentinel_userinfo: None,
            durability: None,
            announcements: true,
            near_cache: None,
        }
    }

    /// Key prefix (default `sesame`). Keys are `<prefix>:{<tag>}:s:<id>` and
    /// `<prefix>:{<tag>}:u:<principal>`; keep the prefix for sessions only.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Trust this CA certificate (PEM) for TLS (`rediss...` URLs) in addition to the system
    /// roots. Applies to every node and sentinel.
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// How long to wait for a reply before failing the request as unavailable. Default 2 s.
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }

    /// How long to wait for a connection. Default 2 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Credentials for the sentinels themselves (`requirepass` / ACL user on the sentinels),
    /// when they differ from the data nodes'. By default sentinels are contacted without.
    pub fn sentinel_credentials(mut self, user: Option<&str>, password: &str) -> Self {
        let enc = |s: &str| {
            let mut out = String::new();
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        };
        self.sentinel_userinfo =
            Some(format!("{}:{}", user.map(enc).unwrap_or_default(), enc(password)));
        self
    }

    /// Acknowledge a write (create, save, rotation, logout, revocation) only after
    /// `WAIT replicas timeout` confirms that many replicas have it. When they do not within
    /// the timeout, the write fails with [`StoreError::Unavailable`] (the request gets a 503)
    /// instead of succeeding silently: the change may then exist on the master only and be
    /// lost by a failover. Off by default. `replicas` must be at least 1.
    pub fn durability(mut self, replicas: u32, timeout: Duration) -> Self {
        self.durability = Some(Durability { replicas, timeout });
        self
    }

    /// Keep recently read sessions in this process (the near cache), so that reading a
    /// session read moments ago needs no round trip. Redis keeps it correct: every master
    /// tells the store of each key under the prefix that anyone changes (`CLIENT TRACKING`
    /// in broadcast mode over RESP3, one listener connection per master), and while any
    /// master is not tracked the cache is empty and bypassed. This store's own writes are
    /// seen at once; another process's within the invalidation latency
    /// (`docs/BENCHMARKS.md`). Needs Redis 6 or later. Off by default.
    ///
    /// Every write under the prefix, by any process, sends one message to every process with
    /// a near cache; see `docs/OPERATIONS.md` for when that matters.
    pub fn near_cache(mut self, config: NearCacheConfig) -> Self {
        self.near_cache = Some(config);
        self
    }

    /// Do not listen to the sentinels' `+switch-master` announcements, so that only the
    /// periodic check follows a failover. For tests of that check; not part of the API.
    #[doc(hidden)]
    pub fn without_switch_announcements(mut self) -> Self {
        self.announcements = false;
        self
    }

    /// Connects. Fails when the URL is invalid, the prefix is unusable, or Redis cannot be
    /// reached now; once connected, the store reconnects (and follows failovers) by itself.
    /// Logs a warning when the server's configuration can lose or evict live sessions (see
    /// [`RedisStore::server_report`]).
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(backend("the key prefix must be non-empty and contain no braces"));
        }
        if let Some(d) = self.durability {
            if d.replicas == 0 || d.timeout.is_zero() {
                return Err(backend(
                    "durability needs at least 1 replica and a timeout above zero",
                ));
            }
        }
        let topology = Topology::parse(&self.url)?;
        if self.ca_pem.is_some() && !topology.tls() {
            return Err(backend(
                "a CA certificate was given but the URL does not use TLS: use rediss://, rediss+sentinel:// or rediss+cluster://",
            ));
        }
        if topology.tls() {
            // Pick ring as rustls's provider unless the application installed one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let deadline = self.connect_timeout * 3 + Duration::from_secs(1);
        let shown = crate::url::redacted(&self.url);
        let conn = tokio::time::timeout(deadline, self.open(&topology))
            .await
            .map_err(|_| StoreError::Unavailable {
                message: format!("timed out connecting to Redis at {shown}"),
                source: None,
            })?
            .map_err(|e| match e {
                StoreError::Unavailable { message, source } => StoreError::Unavailable {
                    message: format!("cannot reach Redis at {shown}: {message}"),
                    source,
                },
                other => other,
            })?;
        let near = self.near_cache.map(|c| std::sync::Arc::new(Near::new(c)));
        if let Some(near) = &near {
            let masters = match &topology {
                Topology::Single(url) => Masters::Single(url.clone()),
                Topology::Sentinel { node, .. } => Masters::Sentinel(conn.clone(), node.clone()),
                Topology::Cluster { node, .. } => Masters::Cluster(conn.clone(), node.clone()),
            };
            let listen = Listen {
                masters,
                prefix: self.prefix.clone(),
                ca_pem: self.ca_pem.clone(),
                connect_timeout: self.connect_timeout,
                response_timeout: self.response_timeout,
            };
            tokio::spawn(crate::near::supervise(std::sync::Arc::downgrade(near), listen));
            // Give the listeners the connect timeout to come up, so that the cache is in use
            // when `connect` returns; if they do not, it is bypassed until they do.
            let until = tokio::time::Instant::now() + self.connect_timeout;
            while !near.stats().live && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let store = RedisStore {
            conn,
            keys: Keys::new(self.prefix),
            scripts: std::sync::Arc::new(Scripts::new()),
            durability: self.durability,
            near,
            native_cas: std::sync::Arc::default(),
        };
        store.load_scripts().await?;
        let report = store.server_report().await;
        store.native_cas.store(report.native_compare_and_set, std::sync::atomic::Ordering::Relaxed);
        report.log_warnings(store.conn.kind(), &shown);
        Ok(store)
    }

    /// A cluster client for the seed `urls`, waiting at most `response_timeout` for a reply.
    fn cluster_client(
        &self,
        urls: &[String],
        response_timeout: Duration,
    ) -> RedisResult<redis::cluster::ClusterClient> {
        let mut b = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
            .connection_timeout(self.connect_timeout)
            .response_timeout(response_timeout)
            .retries(5)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if let Some(pem) = &self.ca_pem {
            b = b.certs(redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) });
        }
        b.build()
    }

    async fn open(&self, topology: &Topology) -> Result<Conn, StoreError> {
        let invalid = |e: RedisError| StoreError::Backend {
            message: format!("invalid Redis URL: {e}"),
            source: Some(Box::new(e)),
        };
        match topology {
            Topology::Single(url) => {
                let client = crate::conn::client(url, self.ca_pem.as_deref()).map_err(invalid)?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(self.response_timeout))
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let writers = self.durability.map(|d| {
                    let response = self.response_timeout.saturating_add(d.timeout);
                    crate::pool::Pool::new(client.clone(), self.connect_timeout, response)
                });
                let conn = redis::aio::ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(map_err)?;
                Ok(Conn::Single(conn, writers))
            }
            Topology::Sentinel { sentinels, master_name, node } => {
                let spec = crate::sentinel::SentinelSpec {
                    sentinels: sentinels.clone(),
                    master_name: master_name.clone(),
                    node: node.clone(),
                    sentinel_userinfo: self.sentinel_userinfo.clone(),
                    ca_pem: self.ca_pem.clone(),
                    connect_timeout: self.connect_timeout,
                    response_timeout: self.response_timeout,
                    durability_wait: self.durability.map(|d| d.timeout),
                    announcements: self.announcements,
                };
                let conn = crate::sentinel::SentinelConn::connect(spec).await.map_err(map_err)?;
                Ok(Conn::Sentinel(conn))
            }
            Topology::Cluster { seeds, node } => {
                let urls: Vec<String> = seeds.iter().map(|s| node.at(s)).collect();
                let client = self.cluster_client(&urls, self.response_timeout).map_err(invalid)?;
                // As for Sentinel: a lookup (here, of the slots) and the command.
                let bound =
                    self.connect_timeout.saturating_add(self.response_timeout.saturating_mul(2));
                let writers = match self.durability {
                    Some(d) => {
                        let response = self.response_timeout.saturating_add(d.timeout);
                        let client = self.cluster_client(&urls, response).map_err(invalid)?;
                        let bound = bound.saturating_add(d.timeout);
                        Some(crate::pool::Pool::cluster(client, self.connect_timeout, bound))
                    }
                    None => None,
                };
                let conn = client.get_async_connection().await.map_err(|e| {
                    // The cluster client reports every failed initial connection as I/O;
                    // refused credentials are a configuration error, not an outage.
                    if e.to_string().to_ascii_lowercase().contains("authentication failed") {
                        StoreError::Backend {
                            message: format!("Redis refused the credentials: {e}"),
                            source: Some(Box::new(e)),
                        }
                    } else {
                        map_err(e)
                    }
                })?;
                Ok(Conn::Cluster(conn, writers, bound))
            }
        }
    }
}
