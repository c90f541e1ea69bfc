//! `sesame doctor`: checks every master's configuration for what sessions need.
//!
//! Levels: an **error** is a setting that loses or evicts sessions, or refuses them, under
//! normal operation; a **warning** is one that loses sessions when something fails (a
//! restart, a failover) or that the doctor could not check; a **note** is information (it
//! changes nothing for sessions, or is only needed by another command). The exit code is 2
//! with any error, 1 with warnings only, 0 otherwise.

use serde_json::json;
use sesame_redis::admin::{missing_notify_flags, with_notify_flags, Admin};

use super::{connect, Outcome, StoreArgs};
use sesame_cli::format::{self, out};

/// `sesame doctor`
#[derive(clap::Args, Debug)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    store: StoreArgs,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Note,
    Warning,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One finding: what was found, why it matters, what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    level: Level,
    check: &'static str,
    node: String,
    message: String,
    fix: Option<String>,
}

fn finding(level: Level, check: &'static str, message: impl Into<String>) -> Finding {
    Finding { level, check, node: String::new(), message: message.into(), fix: None }
}

impl Finding {
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// Major and minor version of `redis_version`.
fn version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The value of `field:value` in an `INFO` text.
fn info_field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':'))
}

fn check_version(text: &str) -> Finding {
    // Valkey reports `redis_version:7.2.4` (the Redis it forked) and its own version apart.
    if info_field(text, "server_name").map(str::trim) == Some("valkey") {
        if let Some(v) = info_field(text, "valkey_version").map(str::trim) {
            let message = if version(v).is_some_and(|t| t >= (8, 1)) {
                format!(
                    "Valkey {v}: saves not due a touch use its own compare-and-set (SET … IFEQ)"
                )
            } else {
                format!("Valkey {v}: saves use the script (from 8.1 on they use SET … IFEQ)")
            };
            return finding(Level::Ok, "version", message);
        }
    }
    match info_field(text, "redis_version") {
        Some(v) if version(v).is_some_and(|t| t >= (7, 0)) => {
            finding(Level::Ok, "version", format!("Redis {v}"))
        }
        Some(v) => finding(
            Level::Error,
            "version",
            format!(
                "Redis {v} is older than 7.0: the touch of a logged-in session uses PEXPIRE ... GT, \
                 so its loads fail"
            ),
        )
        .fix("upgrade to Redis 7.0 or newer"),
        None => finding(Level::Warning, "version", "INFO server did not give redis_version")
            .fix("check the version by hand: sesame needs Redis 7.0 or newer"),
    }
}

const EVICTION_FIX: &str = "CONFIG SET maxmemory-policy noeviction (and maxmemory-policy \
     noeviction in the configuration file), and size maxmemory for the peak of live sessions: \
     when memory is full, writes then fail with an error and no live session is evicted. \
     volatile-* is no alternative: it spares only keys without a TTL, and every sesame key has \
     one";

fn check_memory(policy: Option<&str>, maxmemory: Option<u64>) -> Finding {
    let Some(policy) = policy else {
        return finding(
            Level::Warning,
            "maxmemory-policy",
            "could not read maxmemory-policy (CONFIG GET refused)",
        )
        .fix(
            "check it by hand, or run the doctor as a user allowed CONFIG GET: it must be \
             noeviction",
        );
    };
    if policy == "noeviction" {
        let message = match maxmemory {
            Some(0) => "noeviction, no maxmemory: Redis never evicts a session; size the machine \
                        for the peak of live sessions"
                .to_string(),
            Some(n) => format!(
                "noeviction, maxmemory {} bytes: no session is ever evicted; when memory is full, \
                 writes fail with an error",
                format::count(n)
            ),
            None => "noeviction: no session is ever evicted".to_string(),
        };
        return finding(Level::Ok, "maxmemory-policy", message);
    }
    let why = if policy.starts_with("volatile-") {
        format!(
            "maxmemory-policy is {policy}: it evicts keys that have a TTL, and every session key \
             has one, so live sessions are evicted when memory is full (users logged out at \
             random)"
        )
    } else {
        format!(
            "maxmemory-policy is {policy}: when memory is full Redis evicts keys, live sessions \
             included (users logged out at random)"
        )
    };
    match maxmemory {
        Some(0) => finding(
            Level::Warning,
            "maxmemory-policy",
            format!(
                "{why}; nothing is evicted while maxmemory is 0 (no limit), but setting a limit \
                 starts evicting sessions"
            ),
        )
        .fix(EVICTION_FIX),
        _ => finding(Level::Error, "maxmemory-policy", why).fix(EVICTION_FIX),
    }
}

fn check_persistence(aof: Option<bool>, save: Option<&str>, fsync: Option<&str>) -> Finding {
    let snapshots = save.map(|s| !s.trim().is_empty());
    match (aof, snapshots) {
        (Some(true), _) => finding(
            Level::Ok,
            "persistence",
            format!("append-only file on (appendfsync {})", fsync.unwrap_or("unknown")),
        ),
        (Some(false), Some(true)) => finding(
            Level::Note,
            "persistence",
            format!(
                "RDB snapshots only (save {:?}): a restart loses the sessions written since the \
                 last snapshot",
                save.unwrap_or_default()
            ),
        )
        .fix("CONFIG SET appendonly yes to keep every session across a restart"),
        (Some(false), Some(false)) => finding(
            Level::Warning,
            "persistence",
            "persistence is off (no append-only file, no RDB snapshots): a restart of this \
             server logs every user out",
        )
        .fix(
            "CONFIG SET appendonly yes (and appendonly yes, appendfsync everysec in the \
             configuration file)",
        ),
        _ => finding(Level::Warning, "persistence", "could not read the persistence settings")
            .fix("check appendonly by hand: without persistence a restart logs every user out"),
    }
}

fn check_notifications(flags: Option<&str>) -> Finding {
    match flags {
        Some(f) if missing_notify_flags(f).is_empty() => finding(
            Level::Ok,
            "keyspace notifications",
            format!("notify-keyspace-events '{f}' has what sesame watch needs"),
        ),
        Some(f) => finding(
            Level::Note,
            "keyspace notifications",
            format!(
                "notify-keyspace-events is '{f}': only sesame watch needs notifications (they \
                 cost Redis some work on every write)"
            ),
        )
        .fix(format!(
            "to watch: CONFIG SET notify-keyspace-events '{}', or sesame watch --configure",
            with_notify_flags(f)
        )),
        None => finding(
            Level::Note,
            "keyspace notifications",
            "could not read notify-keyspace-events; only sesame watch needs it",
        ),
    }
}

fn check_cluster(text: &str) -> Finding {
    let state = info_field(text, "cluster_state").unwrap_or("unknown");
    let num = |f: &str| info_field(text, f).and_then(|v| v.parse::<u64>().ok());
    let assigned = num("cluster_slots_assigned");
    let ok = num("cluster_slots_ok");
    let pfail = num("cluster_slots_pfail").unwrap_or(0);
    let fail = num("cluster_slots_fail").unwrap_or(0);
    let summary = format!(
        "cluster_state {state}, {} of 16384 slots assigned, {} ok, {pfail} possibly failing, \
         {fail} failing",
        assigned.map_or_else(|| "?".into(), |n| n.to_string()),
        ok.map_or_else(|| "?".into(), |n| n.to_string())
    );
    if state == "ok" && assigned == Some(16384) && ok == Some(16384) {
        finding(Level::Ok, "cluster state", summary)
    } else if state == "ok" && assigned == Some(16384) {
        finding(
            Level::Warning,
            "cluster state",
            format!("{summary}: some slots' masters are suspected down"),
        )
        .fix(
            "check the failing nodes (redis-cli --cluster check): the users of those slots \
             cannot be served while their master is down",
        )
    } else {
        finding(
            Level::Error,
            "cluster state",
            format!("{summary}: requests for keys in uncovered or failed slots fail"),
        )
        .fix(
            "assign every slot to a reachable master (redis-cli --cluster check, then \
             --cluster fix), or bring the failed masters back",
        )
    }
}

/// One replica as `INFO replication` lists it:
/// `slaveN:ip=...,port=...,state=...,offset=...,lag=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replica {
    addr: String,
    state: String,
    offset: u64,
    lag_s: Option<u64>,
}

fn replicas(text: &str) -> Vec<Replica> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(':')?;
            let n = name.strip_prefix("slave")?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let field = |f: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(f)?.strip_prefix('=').map(str::to_owned))
            };
            Some(Replica {
                addr: format!(
                    "{}:{}",
                    field("ip").unwrap_or_default(),
                    field("port").unwrap_or_default()
                ),
                state: field("state").unwrap_or_default(),
                offset: field("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
                lag_s: field("lag").and_then(|o| o.parse().ok()),
            })
        })
        .collect()
}

/// Replicas lagging more than this many seconds are a warning.
const MAX_LAG_S: u64 = 10;

fn check_replication(text: &str, min_replicas: Option<u64>, max_lag: Option<u64>) -> Vec<Finding> {
    let role = info_field(text, "role").unwrap_or("unknown");
    if role != "master" {
        return vec![finding(
            Level::Error,
            "replication",
            format!(
                "this node answers role:{role}: sessions are written to a master, and a \
                 replica refuses writes"
            ),
        )
        .fix("point the store URL at the master (or at the sentinels / the cluster)")];
    }
    let master_offset = info_field(text, "master_repl_offset").and_then(|v| v.parse::<u64>().ok());
    let list = replicas(text);
    let mut out = Vec::new();
    if list.is_empty() {
        out.push(finding(
            Level::Note,
            "replication",
            "no replicas: if this server is lost, so is every session that persistence did not \
             keep, and there is nothing to fail over to",
        ).fix("add a replica (with Sentinel or Cluster to promote it)"));
    }
    let mut good = 0u64;
    let max_lag = max_lag.unwrap_or(MAX_LAG_S);
    for r in &list {
        let behind = master_offset.map(|m| m.saturating_sub(r.offset));
        let detail = format!(
            "replica {} {}, lag {}, {} bytes behind",
            r.addr,
            r.state,
            r.lag_s.map_or_else(|| "unknown".into(), |l| format!("{l} s")),
            behind.map_or_else(|| "?".into(), format::count)
        );
        if r.state != "online" {
            out.push(
                finding(
                    Level::Warning,
                    "replication",
                    format!("{detail}: not in sync, so it lacks recent writes"),
                )
                .fix(
                    "see the replica's log; it must finish its synchronisation to be a \
                         safe failover target",
                ),
            );
        } else if r.lag_s.is_some_and(|l| l > MAX_LAG_S) {
            out.push(
                finding(
                    Level::Warning,
                    "replication",
                    format!("{detail}: a failover to it loses the writes of that delay"),
                )
                .fix("find what slows the replica (network, disk, load)"),
            );
        } else {
            out.push(finding(Level::Ok, "replication", detail));
        }
        if r.state == "online" && r.lag_s.is_some_and(|l| l <= max_lag) {
            good = good.saturating_add(1);
        }
    }
    match min_replicas {
        Some(0) if !list.is_empty() => out.push(
            finding(
                Level::Warning,
                "min-replicas-to-write",
                "min-replicas-to-write is 0: a master cut off from its replicas keeps accepting \
                 writes (logins, logouts, revocations acknowledged to users), and the failover \
                 that promotes a replica erases them",
            )
            .fix(
                "CONFIG SET min-replicas-to-write 1 and min-replicas-max-lag 10 (writes are \
                 then refused while no replica is in reach), or use the store's durability \
                 option",
            ),
        ),
        Some(n) if n > good && n > 0 => out.push(
            finding(
                Level::Error,
                "min-replicas-to-write",
                format!(
                    "min-replicas-to-write is {n} but only {good} replica(s) are online within \
                     min-replicas-max-lag: this master refuses every write now"
                ),
            )
            .fix("bring replicas back, or lower min-replicas-to-write"),
        ),
        Some(n) if n > 0 && (list.len() as u64) <= n => out.push(
            finding(
                Level::Warning,
                "min-replicas-to-write",
                format!(
                    "min-replicas-to-write is {n} with {} replica(s): after a failover the \
                     promoted master has one replica fewer and refuses every write until the \
                     old master rejoins as its replica (13 s after a partition healed, \
                     measured)",
                    list.len()
                ),
            )
            .fix(format!("run at least {} replicas of this master", n.saturating_add(1))),
        ),
        Some(n) if n > 0 => out.push(finding(
            Level::Ok,
            "min-replicas-to-write",
            format!("min-replicas-to-write {n}: an isolated master stops accepting writes"),
        )),
        None if !list.is_empty() => out.push(
            finding(
                Level::Warning,
                "min-replicas-to-write",
                "could not read min-replicas-to-write",
            )
            .fix(
                "check it by hand: without it an isolated master accepts writes a \
                     failover erases",
            ),
        ),
        _ => {}
    }
    out
}

/// Every finding for master `index`.
async fn check_master(admin: &Admin, index: usize, cluster: bool) -> Vec<Finding> {
    let info = |section: &'static str| admin.info(index, section);
    let config = |name: &'static str| admin.config_get(index, name);
    let mut out = Vec::new();
    match info("server").await {
        Ok(t) => out.push(check_version(&t)),
        Err(e) => out.push(finding(Level::Error, "version", format!("INFO server failed: {e}"))),
    }
    let policy = config("maxmemory-policy").await.ok().flatten();
    let maxmemory = config("maxmemory").await.ok().flatten().and_then(|v| v.parse().ok());
    out.push(check_memory(policy.as_deref(), maxmemory));
    let aof = info("persistence")
        .await
        .ok()
        .and_then(|t| info_field(&t, "aof_enabled").map(|v| v == "1"));
    let save = config("save").await.ok().flatten();
    let fsync = config("appendfsync").await.ok().flatten();
    out.push(check_persistence(aof, save.as_deref(), fsync.as_deref()));
    let flags = config("notify-keyspace-events").await.ok().flatten();
    out.push(check_notifications(flags.as_deref()));
    if cluster {
        match admin.cluster_info(index).await {
            Ok(t) => out.push(check_cluster(&t)),
            Err(e) => out.push(finding(
                Level::Error,
                "cluster state",
                format!("CLUSTER INFO failed: {e}"),
            )),
        }
    }
    match info("replication").await {
        Ok(t) => {
            let min =
                config("min-replicas-to-write").await.ok().flatten().and_then(|v| v.parse().ok());
            let lag =
                config("min-replicas-max-lag").await.ok().flatten().and_then(|v| v.parse().ok());
            out.extend(check_replication(&t, min, lag));
        }
        Err(e) => out.push(finding(
            Level::Warning,
            "replication",
            format!("INFO replication failed: {e}"),
        )),
    }
    out
}

pub(crate) async fn run(a: DoctorArgs) -> Result<Outcome, String> {
    let admin = connect(&a.store).await?;
    let masters = admin.masters();
    let cluster = admin.topology() == "cluster";
    let mut findings = Vec::new();
    for (i, addr) in masters.iter().enumerate() {
        for mut f in check_master(&admin, i, cluster).await {
            f.node.clone_from(addr);
            findings.push(f);
        }
    }
    let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
    let (errors, warnings, notes) =
        (count(Level::Error), count(Level::Warning), count(Level::Note));
    if a.store.json {
        let items: Vec<_> = findings
            .iter()
            .map(|f| {
                json!({
                    "level": f.level.as_str(),
                    "check": f.check,
                    "node": f.node,
                    "message": f.message,
                    "fix": f.fix,
                })
            })
            .collect();
        format::json(&json!({
            "topology": admin.topology(),
            "masters": masters,
            "findings": items,
            "errors": errors,
            "warnings": warnings,
            "notes": notes,
        }));
    } else {
        out(&format!(
            "sesame doctor: {} deployment, {} master{} ({})",
            admin.topology(),
            masters.len(),
            if masters.len() == 1 { "" } else { "s" },
            masters.join(", ")
        ));
        for f in &findings {
            out(&format!(
                "{:<9} {}  {}: {}",
                format!("[{}]", f.level.as_str()),
                f.node,
                f.check,
                f.message
            ));
            if let Some(fix) = &f.fix {
                if f.level > Level::Ok {
                    out(&format!("{:<9} change: {fix}", ""));
                }
            }
        }
        out(&format!("{errors} error(s), {warnings} warning(s), {notes} note(s)"));
    }
    Ok(if errors > 0 {
        Outcome::Wrong
    } else if warnings > 0 {
        Outcome::Negative
    } else {
        Outcome::Done
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every evicting policy is an error once maxmemory is set: volatile-* too, since every
    // session key has a TTL; with no maxmemory it is a warning; noeviction passes.
    #[test]
    fn eviction_policies() {
        for p in ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"] {
            let f = check_memory(Some(p), Some(1 << 26));
            assert_eq!(f.level, Level::Error, "{p}");
            assert!(f.message.contains(p) && f.fix.as_deref().unwrap().contains("noeviction"));
            assert_eq!(check_memory(Some(p), Some(0)).level, Level::Warning, "{p}");
        }
        assert!(check_memory(Some("volatile-lru"), Some(1))
            .message
            .contains("every session key has one"));
        assert_eq!(check_memory(Some("noeviction"), Some(1 << 26)).level, Level::Ok);
        assert_eq!(check_memory(None, None).level, Level::Warning);
    }

    #[test]
    fn persistence() {
        assert_eq!(check_persistence(Some(true), Some(""), Some("everysec")).level, Level::Ok);
        assert_eq!(check_persistence(Some(false), Some("3600 1"), None).level, Level::Note);
        assert_eq!(check_persistence(Some(false), Some(""), None).level, Level::Warning);
        assert_eq!(check_persistence(None, None, None).level, Level::Warning);
    }

    #[test]
    fn versions() {
        assert_eq!(check_version("redis_version:7.0.15\r\n").level, Level::Ok);
        assert_eq!(check_version("redis_version:6.2.14\r\n").level, Level::Error);
        assert_eq!(check_version("nothing").level, Level::Warning);
        let valkey = |v: &str| {
            check_version(&format!(
                "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:{v}\r\n"
            ))
        };
        assert_eq!(valkey("9.1.2").level, Level::Ok);
        assert!(valkey("9.1.2").message.contains("Valkey 9.1.2: saves not due a touch use"));
        assert!(valkey("8.0.1").message.contains("saves use the script"));
    }

    // A replicated master without min-replicas-to-write is a warning; with more required
    // than are online, an error (it refuses writes); with as many required as it has, a
    // warning (a failover leaves the new master short); a replica out of sync, a warning.
    #[test]
    fn replication() {
        let text = "role:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=7004,state=online,offset=100,lag=0\r\nmaster_repl_offset:120\r\n";
        assert_eq!(
            replicas(text),
            [Replica {
                addr: "127.0.0.1:7004".into(),
                state: "online".into(),
                offset: 100,
                lag_s: Some(0)
            }]
        );
        let f = check_replication(text, Some(0), Some(10));
        assert!(f[0].level == Level::Ok && f[0].message.contains("20 bytes behind"), "{f:?}");
        assert_eq!((f[1].check, f[1].level), ("min-replicas-to-write", Level::Warning));
        let f = check_replication(text, Some(2), Some(10));
        assert_eq!(f[1].level, Level::Error);
        // One replica, one required: writes stop after a failover, until the old master is
        // back as a replica; with two replicas, fine.
        let f = check_replication(text, Some(1), Some(10));
        assert!(f[1].level == Level::Warning && f[1].message.contains("one replica fewer"));
        let two = text.replace(
            "\r\nmaster_repl_offset",
            "\r\nslave1:ip=127.0.0.1,port=7005,state=online,offset=120,lag=0\r\nmaster_repl_offset",
        );
        assert_eq!(check_replication(&two, Some(1), Some(10))[1].level, Level::Ok);
        let lagging = text.replace("state=online", "state=wait_bgsave");
        assert_eq!(check_replication(&lagging, Some(1), Some(10))[0].level, Level::Warning);
        let alone = check_replication("role:master\r\nconnected_slaves:0\r\n", Some(0), None);
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].level, Level::Note);
        assert_eq!(check_replication("role:slave\r\n", None, None)[0].level, Level::Error);
    }

    #[test]
    fn cluster_states() {
        let ok = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\n";
        assert_eq!(check_cluster(ok).level, Level::Ok);
        let pfail = ok.replace("cluster_slots_ok:16384", "cluster_slots_ok:10000");
        assert_eq!(check_cluster(&pfail).level, Level::Warning);
        let down = ok.replace("cluster_state:ok", "cluster_state:fail");
        assert_eq!(check_cluster(&down).level, Level::Error);
        let partial = ok.replace("assigned:16384", "assigned:10000");
        assert_eq!(check_cluster(&partial).level, Level::Error);
    }

    #[test]
    fn notifications() {
        assert_eq!(check_notifications(Some("Kg$xn")).level, Level::Ok);
        let f = check_notifications(Some(""));
        assert_eq!(f.level, Level::Note);
        assert!(f.fix.unwrap().contains("Kg$xn"));
    }
}
