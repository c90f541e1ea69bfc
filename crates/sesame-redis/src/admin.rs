//! Administration: what an operator's tool needs besides the [`sesame::Store`] operations.
//!
//! [`Admin`] (made by [`Admin::connect`]) knows the deployment's current
//! masters (the server, the Sentinel group's master, or every master of a Cluster) with a
//! connection to each, and offers:
//!
//! - `SCAN` of one master, and the search of a session id over every master;
//! - raw reads of session keys decoded into metadata ([`Inspection`]): times, principal,
//!   attribute names and sizes, or a pointer's kind and successor. Never an attribute value,
//!   never the sealed successor token a pointer holds;
//! - per-key facts for statistics (what a key holds, its TTL, `MEMORY USAGE`);
//! - `INFO`, `CONFIG GET` / `CONFIG SET` and `CLUSTER INFO` of each master;
//! - keyspace notifications of session keys from every master.
//!
//! The masters are found once, at connect; a failover during a long scan is not followed.

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use sesame::{StoreError, Tag, UserRef};

use crate::error::{backend, map_err};
use crate::record::{decode_stored, PointerKind, Stored};
use crate::store::RedisStore;
use crate::url::{redacted, Topology};

/// The attribute under which encryption at rest seals the principal's name.
const SEALED_PRINCIPAL: &str = sesame::crypt::PRINCIPAL_SLOT;

/// A connection to the deployment for administration: the store itself (for the
/// [`sesame::Store`] operations, through the topology's routing) and one connection to each
/// current master.
pub struct Admin {
    store: RedisStore,
    masters: Vec<Master>,
    db: i64,
    topology: &'static str,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("topology", &self.topology)
            .field("masters", &self.masters())
            .finish_non_exhaustive()
    }
}

struct Master {
    addr: String,
    client: redis::Client,
    conn: MultiplexedConnection,
}

/// A session key's name, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyName {
    /// `<prefix>:{<tag>}:s:<id>`: a session record or a pointer.
    Session {
        /// The hash tag.
        tag: Tag,
        /// The session id.
        id: String,
    },
    /// `<prefix>:{<tag>}:u:<user>`: a principal's index.
    Index {
        /// The principal's keyed reference, as `{<tag>}:<id>`.
        user: String,
    },
    /// `<prefix>:{<tag>}:e:<user>`: a principal's revocation epoch.
    Epoch {
        /// The principal's keyed reference, as `{<tag>}:<id>`.
        user: String,
    },
    /// Any other key under the prefix.
    Other,
}

/// What a session key held when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The key.
    pub key: String,
    /// Its remaining time to live in ms (`None`: the key has no TTL).
    pub ttl_ms: Option<u64>,
    /// The stored value's length in bytes.
    pub stored_bytes: usize,
    /// What it holds.
    pub content: Content,
}

/// The content of a session key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Content {
    /// A session record.
    Session(SessionFacts),
    /// The pointer a rotation left for a superseded token.
    Pointer(PointerFacts),
    /// Bytes that do not decode (the reason; never the bytes).
    Unreadable(String),
}

/// A session record's metadata: no attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionFacts {
    /// Grows with every write.
    pub version: u64,
    /// Creation (or login) time, ms since the Unix epoch.
    pub created_ms: u64,
    /// The absolute deadline, ms since the Unix epoch.
    pub absolute_ms: u64,
    /// The logged-in principal's keyed reference, if any.
    pub principal: Option<UserRef>,
    /// The principal's name as stored in clear (`None` while encryption at rest seals it, or
    /// for an anonymous session).
    pub principal_name: Option<String>,
    /// Authentication time, ms since the Unix epoch.
    pub auth_ms: Option<u64>,
    /// When the token was last rotated (0: never), ms since the Unix epoch.
    pub rotated_ms: u64,
    /// Whether the record was written with encryption at rest on.
    pub encrypted: bool,
    /// The application's attributes: name and stored size in bytes, by name.
    pub attributes: Vec<(String, usize)>,
}

/// A superseded token's pointer: its kind and successor, never the sealed successor token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PointerFacts {
    /// What happened to the token.
    pub kind: PointerKindName,
    /// Renewed: the end of the grace window; moving: when the claim lapses (ms since the
    /// epoch); otherwise as written.
    pub until_ms: u64,
    /// The successor's hash tag.
    pub successor_tag: Tag,
    /// The successor's session id.
    pub successor_id: String,
}

/// The kinds of pointers (see `docs/STORAGE.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PointerKindName {
    /// Left by a same-privilege rotation (`R`).
    Renewed,
    /// Left by a login from an anonymous session (`E`).
    Elevated,
    /// A login into another slot is writing the successor (`M`).
    Moving,
    /// Closed by a logout (`X`).
    Ended,
}

impl PointerKindName {
    /// A lowercase name: `renewed`, `elevated`, `moving` or `ended`.
    pub fn as_str(self) -> &'static str {
        match self {
            PointerKindName::Renewed => "renewed",
            PointerKindName::Elevated => "elevated",
            PointerKindName::Moving => "moving",
            PointerKindName::Ended => "ended",
        }
    }
}

/// What a session key holds, judged by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKind {
    /// A session record.
    Record,
    /// A pointer.
    Pointer,
}

/// Facts about one session key, for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFacts {
    /// What it holds (`None`: it no longer exists).
    pub kind: Option<StoredKind>,
    /// Remaining TTL in ms (`None`: no TTL, or the key is gone).
    pub ttl_ms: Option<u64>,
    /// `MEMORY USAGE` in bytes (`None`: not available).
    pub bytes: Option<u64>,
}

/// Facts about one index key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexFacts {
    /// Live members (score after now).
    pub live: Option<u64>,
    /// `MEMORY USAGE` in bytes.
    pub bytes: Option<u64>,
}

/// A keyspace notification about a session key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The master that published it (`host:port`).
    pub master: String,
    /// The session key.
    pub key: String,
    /// The event: `new`, `set`, `del`, `expired`, `expire`, `evicted`, ...
    pub event: String,
}

/// The keyspace-notification flags [`Admin::subscribe_sessions`] needs: keyspace channels
/// (`K`), generic commands (`g`: `del`), string commands (`$`: `set`), expired keys (`x`) and
/// new keys (`n`).
pub const NOTIFY_FLAGS: &str = "Kg$xn";

/// Whether the `notify-keyspace-events` value `current` has everything in [`NOTIFY_FLAGS`]
/// (`A` stands for `g$lshzxetd`).
pub fn notify_flags_sufficient(current: &str) -> bool {
    missing_notify_flags(current).is_empty()
}

/// The flags of [`NOTIFY_FLAGS`] that `current` lacks.
pub fn missing_notify_flags(current: &str) -> String {
    let all = current.contains('A');
    NOTIFY_FLAGS
        .chars()
        .filter(|f| !(current.contains(*f) || (all && "g$x".contains(*f))))
        .collect()
}

/// `current` with the flags of [`NOTIFY_FLAGS`] it lacks added.
pub fn with_notify_flags(current: &str) -> String {
    let mut out = current.to_string();
    out.push_str(&missing_notify_flags(current));
    out
}

/// How [`Admin::connect`] connects: the store's options that matter to an operator's tool.
#[derive(Clone)]
pub struct AdminOptions {
    /// The key prefix (default `sesame`).
    pub prefix: String,
    /// An extra CA certificate (PEM) for TLS URLs.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// How long to wait for a connection (default 2 s).
    pub connect_timeout: Duration,
    /// How long to wait for a reply (default 10 s: a `SCAN` or a pipeline of many keys).
    pub response_timeout: Duration,
    /// Credentials of the sentinels themselves, `(user, password)`, when they need their own.
    pub sentinel_credentials: Option<(Option<String>, String)>,
}

impl Default for AdminOptions {
    fn default() -> AdminOptions {
        AdminOptions {
            prefix: "sesame".into(),
            ca_cert_pem: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(10),
            sentinel_credentials: None,
        }
    }
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// Connects the store to `url` (any store URL, see [`RedisStore::builder`]), then finds
    /// the current masters (the server itself; the Sentinel group's master; every master of a
    /// Cluster, from `CLUSTER NODES`) and opens a connection to each.
    pub async fn connect(url: &str, options: AdminOptions) -> Result<Admin, StoreError> {
        let topology = Topology::parse(url)?;
        let ca = options.ca_cert_pem.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout));
        let connect_deadline = options.connect_timeout.saturating_add(Duration::from_millis(500));
        let mut builder = RedisStore::builder(url)
            .prefix(options.prefix.clone())
            .connect_timeout(options.connect_timeout)
            .response_timeout(options.response_timeout);
        if let Some(pem) = &options.ca_cert_pem {
            builder = builder.ca_cert_pem(pem.clone());
        }
        if let Some((user, password)) = &options.sentinel_credentials {
            builder = builder.sentinel_credentials(user.as_deref(), password);
        }
        let store = builder.connect().await?;
        let (kind, db, urls) = match &topology {
            Topology::Single(url) => {
                let client = crate::conn::client(url, ca.as_deref()).map_err(map_err)?;
                let info = client.get_connection_info();
                let addr = match info.addr() {
                    redis::ConnectionAddr::Tcp(h, p)
                    | redis::ConnectionAddr::TcpTls { host: h, port: p, .. } => format!("{h}:{p}"),
                    other => other.to_string(),
                };
                ("standalone", info.redis_settings().db(), vec![(addr, url.clone())])
            }
            Topology::Sentinel { node, .. } => {
                let addr = store.current_master().ok_or_else(|| StoreError::Unavailable {
                    message: "the sentinels know no master right now".into(),
                    source: None,
                })?;
                let url = node.at(&addr);
                ("sentinel", i64::from(node.db.unwrap_or(0)), vec![(addr, url)])
            }
            Topology::Cluster { node, .. } => {
                let text = text_reply(
                    &mut store.conn.clone(),
                    redis::cmd("CLUSTER").arg("NODES"),
                    "CLUSTER NODES",
                )
                .await?;
                let urls =
                    cluster_masters(&text).into_iter().map(|a| (a.clone(), node.at(&a))).collect();
                ("cluster", 0, urls)
            }
        };
        let mut masters = Vec::new();
        for (addr, url) in urls {
            let client = crate::conn::client(&url, ca.as_deref()).map_err(map_err)?;
            let conn = tokio::time::timeout(
                connect_deadline,
                client.get_multiplexed_async_connection_with_config(&config),
            )
            .await
            .map_err(|_| StoreError::Unavailable {
                message: format!("timed out connecting to {}", redacted(&url)),
                source: None,
            })?
            .map_err(map_err)?;
            if kind == "cluster" && !is_master(&mut conn.clone()).await {
                // One node's view of the cluster can lag behind (a replica still listed as a
                // master): only nodes that say they are masters are used.
                continue;
            }
            masters.push(Master { addr, client, conn });
        }
        if masters.is_empty() {
            return Err(backend("no master found"));
        }
        Ok(Admin { store, masters, db, topology: kind })
    }
}

/// The addresses of the masters in a `CLUSTER NODES` text that serve slots (not failed, with
/// an address).
fn cluster_masters(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A master that serves no slot holds no keys: slots follow the eighth field.
        let (Some(addr), Some(flags), true) = (fields.get(1), fields.get(2), fields.len() > 8)
        else {
            continue;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        if !flags.contains(&"master")
            || flags.iter().any(|f| matches!(*f, "fail" | "fail?" | "handshake" | "noaddr"))
        {
            continue;
        }
        // `ip:port@cport[,hostname]`
        let host_port = addr.split(['@', ',']).next().unwrap_or_default();
        let Some((host, port)) = host_port.rsplit_once(':') else { continue };
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            continue;
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        out.push(format!("{host}:{port}"));
    }
    out.sort();
    out.dedup();
    out
}

/// Whether the node answers `ROLE` with `master`.
async fn is_master(conn: &mut MultiplexedConnection) -> bool {
    match redis::cmd("ROLE").query_async::<Value>(conn).await {
        Ok(Value::Array(items)) => items.first().and_then(reply_text).as_deref() == Some("master"),
        _ => false,
    }
}

/// The text of a string reply.
fn reply_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

async fn text_reply<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    cmd: &redis::Cmd,
    what: &str,
) -> Result<String, StoreError> {
    let v: Value = cmd.query_async(conn).await.map_err(map_err)?;
    reply_text(&v).ok_or_else(|| crate::error::unexpected(what, &v))
}

/// A glob pattern matching `text` literally (Redis `MATCH` / `PSUBSCRIBE` syntax).
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `id` has the form of a session id (22 base64url characters).
pub fn is_session_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn ttl(v: &Value) -> Option<u64> {
    int(v).and_then(|n| u64::try_from(n).ok())
}

impl Admin {
    /// The store, for the [`sesame::Store`] operations (list, revoke, revoke all).
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// `standalone`, `sentinel` or `cluster`.
    pub fn topology(&self) -> &'static str {
        self.topology
    }

    /// The masters' addresses (`host:port`), in a fixed order: the indexes the other methods
    /// take.
    pub fn masters(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.addr.clone()).collect()
    }

    /// The database number sessions are in (0 on a Cluster).
    pub fn db(&self) -> i64 {
        self.db
    }

    fn master(&self, index: usize) -> Result<&Master, StoreError> {
        self.masters.get(index).ok_or_else(|| backend("no such master"))
    }

    fn conn(&self, index: usize) -> Result<MultiplexedConnection, StoreError> {
        Ok(self.master(index)?.conn.clone())
    }

    /// The Redis key of session `id` under `tag`.
    pub fn session_key(&self, tag: Tag, id: &str) -> String {
        self.store.keys.session_id(tag, id)
    }

    /// A `SCAN MATCH` pattern for every key under the prefix.
    pub fn all_keys_pattern(&self) -> String {
        format!("{}:{{*}}:*", glob_escape(self.store.prefix()))
    }

    /// A `SCAN MATCH` pattern for session `id` under any tag.
    pub fn session_id_pattern(&self, id: &str) -> String {
        format!("{}:{{*}}:s:{}", glob_escape(self.store.prefix()), glob_escape(id))
    }

    /// Reads a key name back (`None`: not under the prefix).
    pub fn parse_key(&self, key: &str) -> Option<KeyName> {
        let rest = key.strip_prefix(self.store.prefix())?.strip_prefix(":{")?;
        let (tag_hex, rest) = rest.split_once("}:")?;
        let Some(tag) = Tag::from_hex(tag_hex) else { return Some(KeyName::Other) };
        let user = |id: &str| format!("{{{tag_hex}}}:{id}");
        Some(match rest.split_once(':') {
            Some(("s", id)) if is_session_id(id) => KeyName::Session { tag, id: id.to_string() },
            Some(("u", id)) => KeyName::Index { user: user(id) },
            Some(("e", id)) => KeyName::Epoch { user: user(id) },
            _ => KeyName::Other,
        })
    }

    /// One `SCAN cursor MATCH pattern COUNT count` of master `index`: the next cursor (0 when
    /// the scan is complete) and the keys (names that are not UTF-8 are skipped).
    pub async fn scan(
        &self,
        index: usize,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let mut conn = self.conn(index)?;
        let v: Value = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        let bad = || crate::error::unexpected("SCAN", &v);
        let Value::Array(parts) = &v else { return Err(bad()) };
        let (Some(next), Some(Value::Array(keys))) = (parts.first(), parts.get(1)) else {
            return Err(bad());
        };
        let next = int(next).and_then(|n| u64::try_from(n).ok()).ok_or_else(bad)?;
        let keys = keys
            .iter()
            .filter_map(|k| match k {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
                _ => None,
            })
            .collect();
        Ok((next, keys))
    }

    /// The keys of session `id` (under any tag) on every master, by `SCAN MATCH`.
    pub async fn find_session(&self, id: &str, count: u32) -> Result<Vec<String>, StoreError> {
        if !is_session_id(id) {
            return Err(backend("a session id is 22 base64url characters"));
        }
        let pattern = self.session_id_pattern(id);
        let mut found = Vec::new();
        for index in 0..self.masters.len() {
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan(index, cursor, &pattern, count).await?;
                found.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// Reads a session key (`GET` and `PTTL`, routed to the key's node) and decodes it into
    /// metadata. `None`: the key does not exist.
    pub async fn inspect(&self, key: &str) -> Result<Option<Inspection>, StoreError> {
        let mut p = redis::pipe();
        p.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (raw, pttl): (Option<Vec<u8>>, i64) = crate::script::read(&self.store.conn, &p).await?;
        let Some(raw) = raw else { return Ok(None) };
        let content = match decode_stored(&raw) {
            Ok(Stored::Record(r, _)) => {
                let attributes = r
                    .attrs
                    .iter()
                    .filter(|(name, _)| name.as_str() != SEALED_PRINCIPAL)
                    .map(|(name, v)| (name.clone(), v.len()))
                    .collect();
                let principal_name = r
                    .principal
                    .as_ref()
                    .map(|p| p.name().to_string())
                    .filter(|n| !n.is_empty() && !r.attrs.contains_key(SEALED_PRINCIPAL));
                Content::Session(SessionFacts {
                    version: r.version,
                    created_ms: r.created_ms,
                    absolute_ms: r.absolute_ms,
                    principal: r.principal.as_ref().map(|p| p.user()),
                    principal_name,
                    auth_ms: r.auth_ms,
                    rotated_ms: r.rotated_ms,
                    encrypted: r.sid.is_some(),
                    attributes,
                })
            }
            Ok(Stored::Pointer(p)) => Content::Pointer(PointerFacts {
                kind: match p.kind {
                    PointerKind::Renew => PointerKindName::Renewed,
                    PointerKind::Elevate => PointerKindName::Elevated,
                    PointerKind::Moving => PointerKindName::Moving,
                    PointerKind::Ended => PointerKindName::Ended,
                },
                until_ms: p.until_ms,
                successor_tag: p.successor.tag(),
                successor_id: p.successor.id(),
            }),
            Err(e) => Content::Unreadable(e),
        };
        Ok(Some(Inspection {
            key: key.to_string(),
            ttl_ms: u64::try_from(pttl).ok(),
            stored_bytes: raw.len(),
            content,
        }))
    }

    /// For each session key of master `index`: what it holds (its first byte), its TTL and
    /// its `MEMORY USAGE`, in one pipeline.
    pub async fn session_facts(
        &self,
        index: usize,
        keys: &[String],
    ) -> Result<Vec<KeyFacts>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        p.ignore_errors();
        for k in keys {
            p.cmd("GETRANGE").arg(k).arg(0).arg(0);
            p.cmd("PTTL").arg(k);
            p.cmd("MEMORY").arg("USAGE").arg(k);
        }
        let replies: Vec<Value> = p.query_async(&mut self.conn(index)?).await.map_err(map_err)?;
        Ok(replies
            .chunks(3)
            .map(|c| {
                let kind = match c.first() {
                    Some(Value::BulkString(b)) => match b.first() {
                        Some(&crate::record::POINTER_MARK) => Some(StoredKind::Pointer),
                        Some(_) => Some(StoredKind::Record),
                        None => None,
                    },
                    _ => None,
                };
                KeyFacts { kind, ttl_ms: c.get(1).and_then(ttl), bytes: c.get(2).and_then(ttl) }
            })
            .collect())
    }

    /// For each index key of master `index`: its live members (`ZCOUNT` of scores after
    /// `now_ms`) and its `MEMORY USAGE`, in one pipeline.
    pub async fn index_facts(
        &self,
        index: usize,
        keys: &[String],
        now_ms: u64,
    ) -> Result<Vec<IndexFacts>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        p.ignore_errors();
        for k in keys {
            p.cmd("ZCOUNT").arg(k).arg(format!("({now_ms}")).arg("+inf");
            p.cmd("MEMORY").arg("USAGE").arg(k);
        }
        let replies: Vec<Value> = p.query_async(&mut self.conn(index)?).await.map_err(map_err)?;
        Ok(replies
            .chunks(2)
            .map(|c| IndexFacts { live: c.first().and_then(ttl), bytes: c.get(1).and_then(ttl) })
            .collect())
    }

    /// `INFO <section>` of master `index`.
    pub async fn info(&self, index: usize, section: &str) -> Result<String, StoreError> {
        text_reply(&mut self.conn(index)?, redis::cmd("INFO").arg(section), "INFO").await
    }

    /// `CLUSTER INFO` of master `index`.
    pub async fn cluster_info(&self, index: usize) -> Result<String, StoreError> {
        text_reply(&mut self.conn(index)?, redis::cmd("CLUSTER").arg("INFO"), "CLUSTER INFO").await
    }

    /// `CONFIG GET <name>` of master `index` (`None`: no such setting).
    pub async fn config_get(&self, index: usize, name: &str) -> Result<Option<String>, StoreError> {
        let v: Value = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut self.conn(index)?)
            .await
            .map_err(map_err)?;
        let pairs: Vec<String> = match &v {
            Value::Array(items) => items.iter().filter_map(reply_text).collect(),
            Value::Map(pairs) => {
                pairs.iter().flat_map(|(k, v)| [reply_text(k), reply_text(v)]).flatten().collect()
            }
            other => return Err(crate::error::unexpected("CONFIG GET", other)),
        };
        Ok(pairs
            .chunks(2)
            .find(|w| w.first().map(String::as_str) == Some(name))
            .and_then(|w| w.get(1).cloned()))
    }

    /// `CONFIG SET <name> <value>` on master `index`.
    pub async fn config_set(
        &self,
        index: usize,
        name: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let _: Value = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut self.conn(index)?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Subscribes to the keyspace notifications of session keys on every master (needs
    /// [`NOTIFY_FLAGS`] in each master's `notify-keyspace-events`). Returns once every
    /// subscription is confirmed; notifications arrive on the receiver until it is dropped. A
    /// lost subscription sends one error and ends that master's stream (notifications are
    /// fire-and-forget: what happens meanwhile is missed).
    pub async fn subscribe_sessions(
        &self,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Notification, StoreError>>, StoreError> {
        let channel_prefix = format!("__keyspace@{}__:", self.db);
        let pattern = format!(
            "{}{}:{{*}}:s:*",
            glob_escape(&channel_prefix),
            glob_escape(self.store.prefix())
        );
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        for m in &self.masters {
            let mut pubsub = m.client.get_async_pubsub().await.map_err(map_err)?;
            pubsub.psubscribe(&pattern).await.map_err(map_err)?;
            let tx = tx.clone();
            let master = m.addr.clone();
            let channel_prefix = channel_prefix.clone();
            tokio::spawn(async move {
                let mut stream = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        msg = stream.next() => {
                            let Some(msg) = msg else {
                                let _ = tx.send(Err(StoreError::Unavailable {
                                    message: format!("lost the subscription to {master}"),
                                    source: None,
                                })).await;
                                return;
                            };
                            let Some(key) = msg.get_channel_name().strip_prefix(&channel_prefix) else {
                                continue;
                            };
                            let event = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                            let n = Notification { master: master.clone(), key: key.to_string(), event };
                            if tx.send(Ok(n)).await.is_err() {
                                return;
                            }
                        }
                        () = tx.closed() => return,
                    }
                }
            });
        }
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cluster_masters() {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,host.example master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 slave a1 0 0 1 connected
d4 127.0.0.1:7004@17004 master,fail - 0 0 3 disconnected
e5 ::1:7005@17005 master - 0 0 4 connected 10923-16383
f6 :0@0 master,noaddr - 0 0 5 disconnected
g7 127.0.0.1:7006@17006 master - 0 0 6 connected
";
        assert_eq!(cluster_masters(text), ["127.0.0.1:7001", "127.0.0.1:7002", "[::1]:7005"]);
    }

    #[test]
    fn notification_flags() {
        assert!(notify_flags_sufficient("Kg$xn"));
        assert!(notify_flags_sufficient("AKn"));
        assert!(notify_flags_sufficient("KEA$n"));
        assert_eq!(missing_notify_flags(""), "Kg$xn");
        assert_eq!(missing_notify_flags("KA"), "n");
        assert_eq!(with_notify_flags("Ex"), "ExKg$n");
    }

    #[test]
    fn escapes_patterns() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert!(is_session_id("AAAAAAAAAAAAAAAAAAAA-_"));
        assert!(!is_session_id("AAAAAAAAAAAAAAAAAAAA*_"));
        assert!(!is_session_id("short"));
    }
}
