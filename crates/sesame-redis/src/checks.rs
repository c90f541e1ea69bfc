//! Start-up checks: what the server's configuration means for sessions.

use redis::Value;

use crate::conn::Conn;

/// What the store could read of the server's configuration, with the warnings it implies.
/// Fields are `None` when the server did not let the connection's user read them (an ACL user
/// without `CONFIG`, a managed service that renames it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerReport {
    /// `redis_version` from `INFO server` (the lowest, when several nodes answered).
    pub version: Option<String>,
    /// `maxmemory-policy`.
    pub maxmemory_policy: Option<String>,
    /// Whether the append-only file is on (`aof_enabled` from `INFO persistence`).
    pub aof_enabled: Option<bool>,
    /// The `save` setting (RDB snapshots); empty when snapshots are off.
    pub rdb_save: Option<String>,
    /// Replicas connected to the master (`connected_slaves`; the most, when several nodes
    /// answered).
    pub replicas: Option<u64>,
    /// `min-replicas-to-write` (the least, when several nodes answered).
    pub min_replicas_to_write: Option<u64>,
    /// Whether every server that answered (every master, on a cluster) is Valkey 8.1 or later, whose `SET … IFEQ` (a native
    /// compare-and-set) the store uses for a save that is not due a touch, instead of a script.
    pub native_compare_and_set: bool,
    /// Settings that can lose or evict live sessions, in plain words.
    pub warnings: Vec<String>,
}

impl ServerReport {
    /// Logs each warning at `warn` level, once per store URL and process (an app that opens
    /// several clients of one store is told once).
    pub(crate) fn log_warnings(&self, topology: &str, store: &str) {
        static SEEN: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
        for w in &self.warnings {
            let first = match SEEN.lock() {
                Ok(mut seen) => {
                    let entry = (store.to_string(), w.clone());
                    let new = !seen.contains(&entry);
                    if new && seen.len() < 1024 {
                        seen.push(entry);
                    }
                    new
                }
                Err(_) => true,
            };
            if first {
                tracing::warn!(topology, store, "Redis configuration: {w}");
            }
        }
    }
}

/// Every string in a reply, depth first (a cluster may answer with one reply per node).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => out.push(s.clone()),
        Value::VerbatimString { text, .. } => out.push(text.clone()),
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        _ => {}
    }
}

/// The values of `field:value` lines of INFO texts.
fn info_fields<'a>(texts: &'a [String], field: &str) -> Vec<&'a str> {
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':'))
        .collect()
}

/// The values following `name` in `CONFIG GET name` replies.
fn config_values(texts: &[String], name: &str) -> Vec<String> {
    texts.windows(2).filter(|w| w[0] == name).map(|w| w[1].clone()).collect()
}

fn version_tuple(v: &str) -> (u32, u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether every server whose `INFO server` is among `texts` (one per node on a cluster) is
/// Valkey 8.1 or later (`server_name:valkey`, `valkey_version`). Redis 8.4 has the same
/// `SET … IFEQ`, but no Redis 8.4 could be tested here, so Redis keeps the script.
fn has_set_if_equal(texts: &[String]) -> bool {
    let servers: Vec<&String> = texts.iter().filter(|t| t.contains("redis_version:")).collect();
    !servers.is_empty()
        && servers.iter().all(|t| {
            let one = std::slice::from_ref(*t);
            info_fields(one, "server_name").first() == Some(&"valkey")
                && info_fields(one, "valkey_version")
                    .first()
                    .is_some_and(|v| version_tuple(v) >= (8, 1, 0))
        })
}

async fn texts(conn: &mut Conn, cmd: &redis::Cmd) -> Option<Vec<String>> {
    match cmd.query_async::<Value>(conn).await {
        Ok(v) => {
            let mut out = Vec::new();
            strings(&v, &mut out);
            Some(out)
        }
        Err(e) => {
            tracing::debug!(error = %e, "start-up check could not read the server's settings");
            None
        }
    }
}

/// Reads what it may and explains what it means.
pub(crate) async fn report(conn: &mut Conn) -> ServerReport {
    let mut r = ServerReport::default();
    if let Some(t) = texts(conn, redis::cmd("INFO").arg("server")).await {
        r.version = info_fields(&t, "redis_version")
            .into_iter()
            .min_by_key(|v| version_tuple(v))
            .map(str::to_owned);
        r.native_compare_and_set = has_set_if_equal(&t);
    }
    if let Some(t) = texts(conn, redis::cmd("INFO").arg("persistence")).await {
        let aof = info_fields(&t, "aof_enabled");
        if !aof.is_empty() {
            r.aof_enabled = Some(aof.iter().all(|v| *v == "1"));
        }
    }
    if let Some(t) = texts(conn, redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy")).await {
        r.maxmemory_policy = config_values(&t, "maxmemory-policy").into_iter().next();
    }
    if let Some(t) = texts(conn, redis::cmd("CONFIG").arg("GET").arg("save")).await {
        r.rdb_save = config_values(&t, "save").into_iter().next();
    }
    if let Some(t) = texts(conn, redis::cmd("INFO").arg("replication")).await {
        r.replicas =
            info_fields(&t, "connected_slaves").iter().filter_map(|v| v.parse().ok()).max();
    }
    let guard = redis::cmd("CONFIG").arg("GET").arg("min-replicas-to-write").clone();
    if let Some(t) = texts(conn, &guard).await {
        r.min_replicas_to_write =
            config_values(&t, "min-replicas-to-write").iter().filter_map(|v| v.parse().ok()).min();
    }
    r.warnings = warnings(&r);
    r
}

fn warnings(r: &ServerReport) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(v) = &r.version {
        if version_tuple(v) < (7, 0, 0) {
            w.push(format!(
                "Redis {v} is older than 7.0, which sesame needs (PEXPIRE ... GT): loads of logged-in sessions will fail"
            ));
        }
    }
    match r.maxmemory_policy.as_deref() {
        Some(p) if p.starts_with("allkeys-") => w.push(format!(
            "maxmemory-policy is {p}: when memory is full Redis evicts keys, live sessions included (users are logged out at random). Use noeviction (writes then fail with an error instead), or a Redis for sessions only with enough memory"
        )),
        Some(p) if p.starts_with("volatile-") => w.push(format!(
            "maxmemory-policy is {p}: every session key has a TTL, so when memory is full Redis evicts live sessions. Use noeviction"
        )),
        _ => {}
    }
    let snapshots_off = r.rdb_save.as_deref().is_some_and(|s| s.trim().is_empty());
    if r.aof_enabled == Some(false) && snapshots_off {
        w.push(
            "persistence is off (no AOF, no RDB snapshots): a restart of this Redis logs every user out. Use appendonly yes"
                .into(),
        );
    }
    if let (Some(n), Some(0)) = (r.replicas.filter(|n| *n > 0), r.min_replicas_to_write) {
        w.push(format!(
            "this master has {n} replica(s) and min-replicas-to-write is 0: cut off from its replicas (a network partition), it keeps acknowledging logins, logouts and revocations that the failover promoting a replica erases. Set min-replicas-to-write 1 and min-replicas-max-lag 10, so that an isolated master refuses writes (answered with 503) after the lag"
        ));
    }
    if let (Some(n), Some(m)) = (r.replicas, r.min_replicas_to_write.filter(|m| *m > 0)) {
        if n < m {
            w.push(format!(
                "min-replicas-to-write is {m} but this master has {n} replica(s): it refuses every write now"
            ));
        } else if n == m {
            w.push(format!(
                "min-replicas-to-write is {m} and this master has {n} replica(s): after a failover the promoted master has one replica fewer and refuses every write until the old master rejoins as its replica (13 s after a partition healed, measured). Run at least {} replicas",
                m.saturating_add(1)
            ));
        }
    }
    w
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn explains_risky_settings() {
        let mut r = ServerReport {
            version: Some("7.0.15".into()),
            maxmemory_policy: Some("allkeys-lru".into()),
            aof_enabled: Some(false),
            rdb_save: Some(String::new()),
            replicas: Some(1),
            min_replicas_to_write: Some(0),
            native_compare_and_set: false,
            warnings: vec![],
        };
        let w = warnings(&r);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("allkeys-lru") && w[1].contains("persistence is off"));
        assert!(w[2].contains("min-replicas-to-write is 0"), "{w:?}");
        r.maxmemory_policy = Some("noeviction".into());
        r.aof_enabled = Some(true);
        r.min_replicas_to_write = Some(1);
        assert!(warnings(&r)[0].contains("one replica fewer"), "as many replicas as required");
        r.replicas = Some(2);
        assert!(warnings(&r).is_empty());
        r.min_replicas_to_write = Some(3);
        assert!(warnings(&r)[0].contains("refuses every write now"));
        r.min_replicas_to_write = Some(1);
        r.replicas = Some(0);
        r.min_replicas_to_write = Some(0);
        assert!(warnings(&r).is_empty(), "no replicas, nothing to guard");
        r.version = Some("6.2.14".into());
        assert!(warnings(&r)[0].contains("6.2.14"));
    }

    #[test]
    fn native_compare_and_set_needs_valkey_8_1_on_every_node() {
        let node = |name: &str, version: &str| {
            format!("# Server\r\nredis_version:7.2.4\r\nserver_name:{name}\r\nvalkey_version:{version}\r\n")
        };
        let redis = "# Server\r\nredis_version:8.4.0\r\n".to_string();
        assert!(has_set_if_equal(&[node("valkey", "9.1.2")]));
        assert!(has_set_if_equal(&[node("valkey", "8.1.0")]));
        assert!(!has_set_if_equal(&[node("valkey", "8.0.2")]));
        assert!(!has_set_if_equal(std::slice::from_ref(&redis)), "Redis is not relied on for IFEQ");
        assert!(!has_set_if_equal(&[]));
        // A cluster answers one text per node, with the nodes' addresses as other strings.
        let addr = "127.0.0.1:7000".to_string();
        let nodes = [addr.clone(), node("valkey", "9.1.2"), addr, node("valkey", "8.1.1")];
        assert!(has_set_if_equal(&nodes));
        assert!(!has_set_if_equal(&[node("valkey", "9.1.2"), node("valkey", "7.2.5")]));
        assert!(!has_set_if_equal(&[node("valkey", "9.1.2"), redis]));
    }

    #[test]
    fn reads_replies_of_one_or_many_nodes() {
        let one = vec!["# Server".to_string() + "\r\nredis_version:7.0.15\r\nfoo:1"];
        assert_eq!(info_fields(&one, "redis_version"), ["7.0.15"]);
        let cfg = vec!["maxmemory-policy".to_string(), "noeviction".to_string()];
        assert_eq!(config_values(&cfg, "maxmemory-policy"), ["noeviction"]);
        assert_eq!(version_tuple("7.2.4"), (7, 2, 4));
    }
}
