//! [`RedisStore`]: the [`Store`] implementation on one multiplexed, self-reconnecting
//! connection, with every operation a single script call.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};
use sesame::{
    CapPolicy, Delta, Loaded, Policy, Record, SaveOutcome, SessionInfo, SessionKey, Store,
    StoreError, Tag, Taken,
};

use crate::record;

/// Builder of a [`RedisStore`].
///
/// ```no_run
/// # async fn f() -> Result<(), sesame::StoreError> {
/// use std::time::Duration;
/// let store = sesame_redis::RedisStore::builder("redis://127.0.0.1:6380")
///     .prefix("myapp")
///     .response_timeout(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    ca_pem: Option<Vec<u8>>,
    response_timeout: Duration,
    connect_timeout: Duration,
}

impl RedisStoreBuilder {
    /// Key prefix (default `sesame`). Keys are `<prefix>:{<tag>}:s:<id>` and
    /// `<prefix>:{<tag>}:u:<principal>`; keep the prefix for sessions only.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Trust this CA certificate (PEM) for `rediss://` in addition to the system roots.
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

    /// Connects. Fails when the URL is invalid, the prefix is unusable, or Redis cannot be
    /// reached now; once connected, the store reconnects by itself.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(backend("the key prefix must be non-empty and contain no braces"));
        }
        if self.url.starts_with("rediss://") {
            // Pick ring as rustls's provider unless the application installed one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = match self.ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem) },
            ),
            None => redis::Client::open(self.url.as_str()),
        }
        .map_err(|e| StoreError::Backend {
            message: format!("invalid Redis URL: {e}"),
            source: Some(Box::new(e)),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connect_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            self.connect_timeout + Duration::from_secs(1),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable {
            message: "timed out connecting to Redis".into(),
            source: None,
        })?
        .map_err(map_err)?;
        let store =
            RedisStore { conn, prefix: self.prefix, scripts: std::sync::Arc::new(Scripts::new()) };
        store.load_scripts().await?;
        Ok(store)
    }
}

#[derive(Debug)]
struct Scripts {
    save: Script,
    create: Script,
    take: Script,
    list: Script,
    revoke: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            save: Script::new(include_str!("lua/save.lua")),
            create: Script::new(include_str!("lua/create.lua")),
            take: Script::new(include_str!("lua/take.lua")),
            list: Script::new(include_str!("lua/list.lua")),
            revoke: Script::new(include_str!("lua/revoke.lua")),
        }
    }
}

/// Sessions in Redis. Clone it freely: clones share the one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Most attempts of one save under contention (see [`RedisStore`]'s `save`).
const MAX_SAVE_ATTEMPTS: usize = 64;

fn backend(message: &str) -> StoreError {
    StoreError::Backend { message: message.to_string(), source: None }
}

/// Maps a client error: anything that means "Redis is not there right now" is
/// [`StoreError::Unavailable`] (the request gets a 503 and a later one may succeed).
pub(crate) fn map_err(e: RedisError) -> StoreError {
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
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::BusyLoading
                )
        );
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
    /// A builder for `url` (`redis://[user:password@]host:port[/db]` or `rediss://...`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: "sesame".into(),
            ca_pem: None,
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
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

    /// The Redis key of a principal's index.
    pub fn index_key(&self, principal: &str) -> String {
        let mut k = self.index_base(Tag::for_principal(principal));
        k.push_str(principal);
        k
    }

    /// Loads every script into the server's script cache, so the first calls need no
    /// `NOSCRIPT` retry. (After a server restart, calls reload scripts by themselves.)
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        let s = &self.scripts;
        let mut conn = self.conn.clone();
        for script in [&s.save, &s.create, &s.take, &s.list, &s.revoke] {
            script.load_async(&mut conn).await.map_err(map_err)?;
        }
        Ok(())
    }

    async fn run(&self, inv: redis::ScriptInvocation<'_>) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn).await.map_err(map_err)
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
        let mut inv = self.scripts.create.key(self.session_key(key));
        if let Some(p) = &record.principal {
            inv.key(self.index_key(p));
        }
        inv.arg(record::encode(record))
            .arg(ttl)
            .arg(now_ms)
            .arg(record.absolute_ms)
            .arg(key.id())
            .arg(policy.max_sessions_per_user.unwrap_or(0))
            .arg(if policy.cap_policy == CapPolicy::Refuse { "1" } else { "0" })
            .arg(self.session_base(key.tag()));
        let v = self.run(inv).await?;
        match int(&v) {
            Some(1) => Ok(true),
            Some(0) => Ok(false),
            Some(-1) => Err(StoreError::LimitExceeded(format!(
                "the user already has the maximum of {} sessions",
                policy.max_sessions_per_user.unwrap_or(0)
            ))),
            _ => Err(unexpected("create", &v)),
        }
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
            let set: i64 = redis::cmd("PEXPIRE")
                .arg(&k)
                .arg(ttl)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
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
            let mut inv = self.scripts.save.key(&k);
            inv.arg(expected.as_slice()).arg(record::encode(&next)).arg(ttl);
            let v = self.run(inv).await?;
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
        Ok(matches!(self.take(key, sesame::now_ms()).await?, Taken::Taken(_)))
    }

    async fn take(&self, key: &SessionKey, now_ms: u64) -> Result<Taken, StoreError> {
        let mut inv = self.scripts.take.key(self.session_key(key));
        inv.arg(self.index_base(key.tag())).arg(key.id()).arg(now_ms);
        let v = self.run(inv).await?;
        match &v {
            Value::Nil => Ok(Taken::Missing),
            Value::BulkString(raw) => Ok(Taken::Taken(decode(raw)?)),
            _ => Err(unexpected("take", &v)),
        }
    }

    async fn list_user(
        &self,
        principal: &str,
        now_ms: u64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let mut inv = self.scripts.list.key(self.index_key(principal));
        inv.arg(now_ms).arg(self.session_base(Tag::for_principal(principal)));
        let v = self.run(inv).await?;
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
        let mut inv = self.scripts.revoke.key(self.index_key(principal));
        inv.arg(self.session_base(Tag::for_principal(principal))).arg("one").arg(id);
        let v = self.run(inv).await?;
        int(&v).map(|n| n > 0).ok_or_else(|| unexpected("revoke", &v))
    }

    async fn revoke_all(&self, principal: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        let mut inv = self.scripts.revoke.key(self.index_key(principal));
        inv.arg(self.session_base(Tag::for_principal(principal)))
            .arg("all")
            .arg(keep.unwrap_or(""));
        let v = self.run(inv).await?;
        int(&v).map(|n| n.max(0) as u64).ok_or_else(|| unexpected("revoke_all", &v))
    }
}
