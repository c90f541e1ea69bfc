//! [`RedisStore`]: the [`Store`] implementation on one multiplexed, self-reconnecting
//! connection (to one server, the master of a Sentinel group, or a Redis Cluster), with every
//! write a single script call.
//!
//! A principal's index key (`<prefix>:{<tag>}:u:<principal>`) expires with the latest idle
//! deadline of its sessions, not with their absolute deadlines: whatever sets or pushes a
//! logged-in session's TTL (create, the touch in `load`, save, restoring a sealed session)
//! extends the index's TTL to at least as much; take and revoke recompute it from the
//! remaining members, and delete an index left empty.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManagerConfig;
use redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};
use sesame::{
    CapPolicy, Delta, Loaded, Policy, Record, SaveOutcome, SessionInfo, SessionKey, Store,
    StoreError, Tag, Taken,
};

use crate::checks::ServerReport;
use crate::conn::Conn;
use crate::record;
use crate::url::Topology;

/// Wait for replicas before acknowledging a write (see [`RedisStoreBuilder::durability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// How many replicas must confirm each write.
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: Duration,
}

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
        let conn = tokio::time::timeout(deadline, self.open(&topology)).await.map_err(|_| {
            StoreError::Unavailable {
                message: "timed out connecting to Redis".into(),
                source: None,
            }
        })??;
        let store = RedisStore {
            conn,
            prefix: self.prefix,
            scripts: std::sync::Arc::new(Scripts::new()),
            durability: self.durability,
        };
        store.load_scripts().await?;
        let report = store.server_report().await;
        report.log_warnings(store.conn.kind());
        Ok(store)
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
                let conn = redis::aio::ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(map_err)?;
                Ok(Conn::Single(conn))
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
                };
                let conn = crate::sentinel::SentinelConn::connect(spec).await.map_err(map_err)?;
                Ok(Conn::Sentinel(conn))
            }
            Topology::Cluster { seeds, node } => {
                let urls: Vec<String> = seeds.iter().map(|s| node.at(s)).collect();
                let mut b = redis::cluster::ClusterClientBuilder::new(urls)
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.response_timeout)
                    .retries(5)
                    .min_retry_wait(50)
                    .max_retry_wait(500);
                if let Some(pem) = &self.ca_pem {
                    b = b.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    });
                }
                let client = b.build().map_err(invalid)?;
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
                Ok(Conn::Cluster(conn))
            }
        }
    }
}

#[derive(Debug)]
struct Scripts {
    save: Script,
    create: Script,
    take: Script,
    finish: Script,
    list: Script,
    revoke: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            save: Script::new(include_str!("lua/save.lua")),
            create: Script::new(concat!(
                include_str!("lua/members.lua"),
                include_str!("lua/create.lua")
            )),
            take: Script::new(concat!(
                include_str!("lua/members.lua"),
                include_str!("lua/take.lua")
            )),
            finish: Script::new(include_str!("lua/finish.lua")),
            list: Script::new(concat!(
                include_str!("lua/members.lua"),
                include_str!("lua/list.lua")
            )),
            revoke: Script::new(concat!(
                include_str!("lua/members.lua"),
                include_str!("lua/revoke.lua")
            )),
        }
    }
}

/// Sessions in Redis. Clone it freely: clones share the one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
    durability: Option<Durability>,
}

/// One script call: keys and arguments, sent as `EVALSHA` (and reloaded on `NOSCRIPT`).
struct Call<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl<'a> Call<'a> {
    fn new(script: &'a Script) -> Call<'a> {
        Call { script, keys: Vec::with_capacity(3), args: Vec::with_capacity(8) }
    }

    fn key(&mut self, k: impl redis::ToRedisArgs) -> &mut Self {
        k.write_redis_args(&mut self.keys);
        self
    }

    fn arg(&mut self, a: impl redis::ToRedisArgs) -> &mut Self {
        a.write_redis_args(&mut self.args);
        self
    }

    fn cmd(&self) -> redis::Cmd {
        let mut c = redis::cmd("EVALSHA");
        c.arg(self.script.get_hash()).arg(self.keys.len());
        for k in &self.keys {
            c.arg(k.as_slice());
        }
        for a in &self.args {
            c.arg(a.as_slice());
        }
        c
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Most attempts of one save under contention (see [`RedisStore`]'s `save`).
const MAX_SAVE_ATTEMPTS: usize = 64;

/// Most attempts of a script that declares a principal's sessions, when the index keeps
/// changing between the read of its members and the script (see `lua/members.lua`). Each
/// retry means another write to the index landed, so N concurrent writers need at most N.
const MAX_INDEX_ATTEMPTS: usize = 64;

/// The reply of a script that found the index (or record) changed since the client read it.
const STALE: i64 = -2;

fn index_busy() -> StoreError {
    StoreError::Unavailable {
        message: format!(
            "the user's sessions changed {MAX_INDEX_ATTEMPTS} times while being updated; try again"
        ),
        source: None,
    }
}

fn backend(message: &str) -> StoreError {
    StoreError::Backend { message: message.to_string(), source: None }
}

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
    let unavailable = unavailable || e.to_string().contains("non local key");
    if unavailable {
        StoreError::Unavailable { message: e.to_string(), source: Some(Box::new(e)) }
    } else {
        StoreError::Backend { message: e.to_string(), source: Some(Box::new(e)) }
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn blob(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

fn unexpected(what: &str, v: &Value) -> StoreError {
    StoreError::Corrupt(format!("unexpected reply to {what}: {v:?}"))
}

fn decode(raw: &[u8]) -> Result<Record, StoreError> {
    record::decode(raw).map_err(|e| StoreError::Corrupt(format!("session record: {e}")))
}

impl RedisStore {
    /// A builder for `url`: `redis://[user:password@]host:port[/db]` (or `rediss://` for
    /// TLS) for one server, `redis+sentinel://[user:password@]host:port,host:port/<master>`
    /// for a Sentinel group, `redis+cluster://[user:password@]host:port,host:port` for a
    /// Redis Cluster (`rediss+sentinel://`, `rediss+cluster://` with TLS). Credentials are the
    /// data nodes'.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: "sesame".into(),
            ca_pem: None,
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            sentinel_userinfo: None,
            durability: None,
        }
    }

    /// Connects to `url` with the defaults.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::builder(url).connect().await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn session_base(&self, tag: Tag) -> String {
        format!("{}:{{{}}}:s:", self.prefix, tag.to_hex())
    }

    fn index_base(&self, tag: Tag) -> String {
        format!("{}:{{{}}}:u:", self.prefix, tag.to_hex())
    }

    /// The Redis key of a session.
    pub fn session_key(&self, key: &SessionKey) -> String {
        let mut k = self.session_base(key.tag());
        k.push_str(&key.id());
        k
    }

    /// The key a session's record waits under while a rotation is under way (see
    /// [`Store::take`]).
    fn sealed_key(&self, key: &SessionKey) -> String {
        format!("{}:{{{}}}:x:{}", self.prefix, key.tag().to_hex(), key.id())
    }

    /// The Redis key of a principal's index.
    pub fn index_key(&self, principal: &str) -> String {
        let mut k = self.index_base(Tag::for_principal(principal));
        k.push_str(principal);
        k
    }

    /// The index key of a session's principal, under the session's own tag, as `take.lua` and
    /// `finish.lua` derive it: always in the session key's slot. A logged-in session carries
    /// its principal's tag, so this is [`RedisStore::index_key`] of the principal.
    fn member_index_key(&self, key: &SessionKey, principal: &str) -> String {
        let mut k = self.index_base(key.tag());
        k.push_str(principal);
        k
    }

    /// Loads every script into the server's script cache, so the first calls need no
    /// `NOSCRIPT` retry. (After a server restart, calls reload scripts by themselves.)
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        let s = &self.scripts;
        let mut conn = self.conn.clone();
        for script in [&s.save, &s.create, &s.take, &s.finish, &s.list, &s.revoke] {
            script.load_async(&mut conn).await.map_err(map_err)?;
        }
        Ok(())
    }

    /// Runs a script. Writes wait for replicas when [`RedisStoreBuilder::durability`] is set:
    /// `WAIT` travels in the same pipeline, on the same connection, right behind the script,
    /// so it covers exactly this write (a reconnect in between fails both).
    async fn run(&self, call: &Call<'_>, write: bool) -> Result<Value, StoreError> {
        let cmd = call.cmd();
        let mut conn = self.conn.clone();
        let mut reloaded = false;
        loop {
            let result = match (self.durability, write) {
                (Some(d), true) => {
                    let mut p = redis::pipe();
                    p.add_command(cmd.clone())
                        .cmd("WAIT")
                        .arg(d.replicas)
                        .arg(d.timeout.as_millis().max(1) as u64);
                    match p.query_async::<(Value, i64)>(&mut conn).await {
                        Ok((v, acked)) if acked >= i64::from(d.replicas) => Ok(v),
                        Ok((_, acked)) => {
                            return Err(StoreError::Unavailable {
                                message: format!(
                                    "write not confirmed by {} replica(s) within {} ms ({acked} confirmed); it may be lost by a failover",
                                    d.replicas,
                                    d.timeout.as_millis()
                                ),
                                source: None,
                            })
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => cmd.query_async::<Value>(&mut conn).await,
            };
            match result {
                Err(e) if !reloaded && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    // A restarted or promoted server has an empty script cache. On a cluster
                    // this loads the script on every node.
                    reloaded = true;
                    call.script.load_async(&mut conn).await.map_err(map_err)?;
                }
                other => return other.map_err(map_err),
            }
        }
    }

    /// The ids in a principal's index, in index order (read before a script that declares
    /// every member's key; see `lua/members.lua`).
    async fn members(&self, index: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("ZRANGE").arg(index).arg(0).arg(-1).query_async(&mut conn).await.map_err(map_err)
    }

    /// Declares the members' session keys after the keys already given, and passes their ids
    /// after the arguments already given (call it last).
    fn declare_members(&self, inv: &mut Call<'_>, tag: Tag, ids: &[Vec<u8>]) {
        let base = self.session_base(tag);
        for id in ids {
            let mut k = base.clone().into_bytes();
            k.extend_from_slice(id);
            inv.key(k);
            inv.arg(id.as_slice());
        }
    }

    async fn take_or_delete(
        &self,
        key: &SessionKey,
        now_ms: u64,
        delete: bool,
    ) -> Result<Taken, StoreError> {
        let (s, x) = (self.session_key(key), self.sealed_key(key));
        for _ in 0..MAX_INDEX_ATTEMPTS {
            let mut conn = self.conn.clone();
            let raw: Option<Vec<u8>> =
                redis::cmd("GET").arg(&s).query_async(&mut conn).await.map_err(map_err)?;
            // An undecodable record is still sealed or deleted; its decode error comes below.
            let read = raw.as_deref().map(decode);
            let principal = match &read {
                Some(Ok(r)) => r.principal.as_deref(),
                _ => None,
            };
            let mut inv = Call::new(&self.scripts.take);
            inv.key(&s).key(&x);
            inv.arg(key.id()).arg(now_ms).arg(if delete { "1" } else { "0" });
            inv.arg(raw.as_deref().unwrap_or(b""));
            if let Some(p) = principal {
                let index = self.member_index_key(key, p);
                let ids = self.members(&index).await?;
                inv.key(index);
                self.declare_members(&mut inv, key.tag(), &ids);
            }
            let v = self.run(&inv, true).await?;
            match (&v, read) {
                (Value::Int(STALE), _) => continue,
                (Value::Nil, _) => return Ok(Taken::Missing),
                // The script hands back the record it was given (checked equal to the
                // stored one): already decoded. A sealed record is new to us.
                (Value::BulkString(got), Some(read)) if Some(got.as_slice()) == raw.as_deref() => {
                    return read.map(Taken::Taken)
                }
                (Value::BulkString(got), _) => return Ok(Taken::Taken(decode(got)?)),
                _ => return Err(unexpected("take", &v)),
            }
        }
        Err(index_busy())
    }

    /// Runs the revoke script in `mode` ('one' / 'all') against the index as just read.
    async fn revoke_mode(&self, principal: &str, mode: &str, id: &str) -> Result<i64, StoreError> {
        let index = self.index_key(principal);
        for _ in 0..MAX_INDEX_ATTEMPTS {
            let ids = self.members(&index).await?;
            let mut inv = Call::new(&self.scripts.revoke);
            inv.key(&index).arg(mode).arg(id);
            self.declare_members(&mut inv, Tag::for_principal(principal), &ids);
            let v = self.run(&inv, true).await?;
            match int(&v) {
                Some(STALE) => continue,
                Some(n) if n >= 0 => return Ok(n),
                _ => return Err(unexpected("revoke", &v)),
            }
        }
        Err(index_busy())
    }

    /// Reads the server's version, eviction policy and persistence settings (what the
    /// connection's user may read), as a report with warnings for settings that can lose or
    /// evict live sessions. On a cluster, one node answers.
    pub async fn server_report(&self) -> ServerReport {
        crate::checks::report(&mut self.conn.clone()).await
    }

    /// The address of the Redis master in use, for a Sentinel-followed store (`None` for the
    /// other topologies, or while no master is known).
    pub fn current_master(&self) -> Option<String> {
        match &self.conn {
            Conn::Sentinel(s) => s.current_master(),
            _ => None,
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn create(
        &self,
        key: &SessionKey,
        record: &Record,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<bool, StoreError> {
        let ttl = policy.idle_ms.min(record.absolute_ms.saturating_sub(now_ms));
        if ttl == 0 {
            return Err(backend("refusing to create a session that is already expired"));
        }
        let encoded = record::encode(record);
        for _ in 0..MAX_INDEX_ATTEMPTS {
            let mut inv = Call::new(&self.scripts.create);
            inv.key(self.session_key(key));
            inv.arg(encoded.as_slice())
                .arg(ttl)
                .arg(now_ms)
                .arg(record.absolute_ms)
                .arg(key.id())
                .arg(policy.max_sessions_per_user.unwrap_or(0))
                .arg(if policy.cap_policy == CapPolicy::Refuse { "1" } else { "0" });
            if let Some(p) = &record.principal {
                // Under the session's own tag, like every key of the script (a logged-in
                // session carries its principal's tag, so this is the principal's index).
                let index = self.member_index_key(key, p);
                let ids = self.members(&index).await?;
                inv.key(index);
                self.declare_members(&mut inv, key.tag(), &ids);
            }
            let v = self.run(&inv, true).await?;
            return match int(&v) {
                Some(STALE) => continue,
                Some(1) => Ok(true),
                Some(0) => Ok(false),
                Some(-1) => Err(StoreError::LimitExceeded(format!(
                    "the user already has the maximum of {} sessions",
                    policy.max_sessions_per_user.unwrap_or(0)
                ))),
                _ => Err(unexpected("create", &v)),
            };
        }
        Err(index_busy())
    }

    async fn load(
        &self,
        key: &SessionKey,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<Option<Loaded>, StoreError> {
        // One round trip of two plain commands: far cheaper for Redis than a script.
        let k = self.session_key(key);
        let mut conn = self.conn.clone();
        let (raw, pttl): (Option<Vec<u8>>, i64) =
            redis::pipe().get(&k).pttl(&k).query_async(&mut conn).await.map_err(map_err)?;
        let Some(raw) = raw else { return Ok(None) };
        let record = decode(&raw)?;
        if record.absolute_ms <= now_ms || pttl == -2 {
            return Ok(None);
        }
        let left = record.absolute_ms - now_ms;
        // The TTL is the server-side record of the last access: push it only when enough of
        // the idle window has passed (or when the key has none).
        if pttl < 0 || policy.idle_ms.saturating_sub(pttl as u64) >= policy.touch_after_ms {
            let ttl = policy.idle_ms.min(left);
            let mut touch = redis::pipe();
            touch.cmd("PEXPIRE").arg(&k).arg(ttl);
            if let Some(principal) = &record.principal {
                // The index must not expire before this session: push its TTL in the same
                // round trip (same hash tag: one cluster node takes both), only ever later
                // (`GT`; an index without a TTL counts as infinite, a missing one is left so).
                touch
                    .cmd("PEXPIRE")
                    .arg(self.member_index_key(key, principal))
                    .arg(ttl)
                    .arg("GT")
                    .ignore();
            }
            let (set,): (i64,) = touch.query_async(&mut conn).await.map_err(map_err)?;
            if set == 0 {
                return Ok(None);
            }
            return Ok(Some(Loaded { record, idle_deadline_ms: now_ms + ttl }));
        }
        Ok(Some(Loaded { record, idle_deadline_ms: now_ms + (pttl as u64).min(left) }))
    }

    async fn save(
        &self,
        key: &SessionKey,
        base: &Record,
        delta: &Delta,
        now_ms: u64,
        policy: &Policy,
    ) -> Result<SaveOutcome, StoreError> {
        let k = self.session_key(key);
        let mut expected = record::encode(base);
        let mut current = Cow::Borrowed(base);
        // Each conflict means another save landed first; under N concurrent writers a save
        // needs at most N attempts.
        for _ in 0..MAX_SAVE_ATTEMPTS {
            if let Some(v) = delta.expected_version {
                if v != current.version {
                    return Ok(SaveOutcome::Conflict(current.version));
                }
            }
            if current.absolute_ms <= now_ms {
                return Ok(SaveOutcome::Missing);
            }
            let mut next = current.as_ref().clone();
            next.apply(delta);
            next.check_limits(policy)?;
            next.version = current.version + 1;
            let ttl = policy.idle_ms.min(next.absolute_ms - now_ms);
            let mut inv = Call::new(&self.scripts.save);
            inv.key(&k);
            if let Some(principal) = &next.principal {
                // The write resets the session's TTL; the script extends the index's to match.
                inv.key(self.member_index_key(key, principal));
            }
            inv.arg(expected.as_slice()).arg(record::encode(&next)).arg(ttl);
            let v = self.run(&inv, true).await?;
            let Value::Array(items) = &v else { return Err(unexpected("save", &v)) };
            match (items.first().and_then(int), items.get(1).and_then(blob)) {
                (Some(0), _) => return Ok(SaveOutcome::Missing),
                (Some(1), _) => return Ok(SaveOutcome::Saved(next.version)),
                (Some(2), Some(raw)) => {
                    current = Cow::Owned(decode(raw)?);
                    expected = raw.to_vec();
                }
                _ => return Err(unexpected("save", &v)),
            }
        }
        Err(StoreError::Backend {
            message: format!(
                "save still conflicting after {MAX_SAVE_ATTEMPTS} attempts: too many concurrent writers on one session"
            ),
            source: None,
        })
    }

    async fn destroy(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(matches!(self.take_or_delete(key, sesame::now_ms(), true).await?, Taken::Taken(_)))
    }

    async fn take(&self, key: &SessionKey, now_ms: u64) -> Result<Taken, StoreError> {
        self.take_or_delete(key, now_ms, false).await
    }

    async fn finish_take(
        &self,
        key: &SessionKey,
        restore: bool,
        _now_ms: u64,
    ) -> Result<bool, StoreError> {
        let (x, s) = (self.sealed_key(key), self.session_key(key));
        for _ in 0..MAX_INDEX_ATTEMPTS {
            let mut inv = Call::new(&self.scripts.finish);
            inv.key(&x).key(&s);
            inv.arg(if restore { "1" } else { "0" }).arg(key.id());
            if restore {
                let mut conn = self.conn.clone();
                let raw: Option<Vec<u8>> =
                    redis::cmd("GET").arg(&x).query_async(&mut conn).await.map_err(map_err)?;
                let Some(raw) = raw else { return Ok(false) };
                let r = decode(&raw)?;
                if let Some(p) = &r.principal {
                    inv.key(self.member_index_key(key, p));
                }
                inv.arg(raw.as_slice()).arg(r.absolute_ms);
            }
            let v = self.run(&inv, true).await?;
            match int(&v) {
                Some(STALE) => continue,
                Some(n) => return Ok(n == 1),
                None => return Err(unexpected("finish_take", &v)),
            }
        }
        Err(index_busy())
    }

    async fn list_user(
        &self,
        principal: &str,
        now_ms: u64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let index = self.index_key(principal);
        let mut reply = None;
        for _ in 0..MAX_INDEX_ATTEMPTS {
            let ids = self.members(&index).await?;
            let mut inv = Call::new(&self.scripts.list);
            inv.key(&index).arg(now_ms);
            self.declare_members(&mut inv, Tag::for_principal(principal), &ids);
            match self.run(&inv, false).await? {
                Value::Int(STALE) => continue,
                v => {
                    reply = Some(v);
                    break;
                }
            }
        }
        let v = reply.ok_or_else(index_busy)?;
        let Value::Array(items) = &v else {
            return Err(unexpected("list", &v));
        };
        let mut out = Vec::with_capacity(items.len() / 3);
        for chunk in items.chunks(3) {
            let [id, raw, ttl] = chunk else {
                return Err(unexpected("list", &v));
            };
            let id = blob(id).ok_or_else(|| unexpected("list", &v))?;
            let raw = blob(raw).ok_or_else(|| unexpected("list", &v))?;
            let ttl = int(ttl).ok_or_else(|| unexpected("list", &v))?;
            let r = decode(raw)?;
            if r.absolute_ms <= now_ms {
                continue;
            }
            let idle = if ttl >= 0 { now_ms.saturating_add(ttl as u64) } else { r.absolute_ms };
            out.push(SessionInfo {
                id: String::from_utf8_lossy(id).into_owned(),
                created_ms: r.created_ms,
                expires_ms: idle.min(r.absolute_ms),
                auth_ms: r.auth_ms,
            });
        }
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    async fn revoke(&self, principal: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.revoke_mode(principal, "one", id).await? > 0)
    }

    async fn revoke_all(&self, principal: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        Ok(self.revoke_mode(principal, "all", keep.unwrap_or("")).await? as u64)
    }
}
