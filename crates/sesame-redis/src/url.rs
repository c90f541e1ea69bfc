//! Store URLs: which topology, which nodes, which credentials.
//!
//! - `redis://[user:password@]host:port[/db]`, `rediss://...` — one server.
//! - `redis+sentinel://[user:password@]host:port,host:port,.../<master-name>[/db]` — the
//!   master named `<master-name>`, found and followed through the listed sentinels.
//!   `rediss+sentinel://` uses TLS for the sentinels and the data nodes.
//! - `redis+cluster://[user:password@]host:port,host:port,...` — a Redis Cluster reached
//!   through any of the listed seed nodes. `rediss+cluster://` uses TLS.
//!
//! The credentials are those of the data nodes (`AUTH` / ACL user). Sentinels are contacted
//! without credentials unless the builder is given sentinel credentials.

use sesame::StoreError;

/// A parsed store URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server (possibly with replicas the client does not talk to).
    Single(String),
    /// A master followed through sentinels.
    Sentinel {
        /// `host:port` of every sentinel.
        sentinels: Vec<String>,
        /// The name the sentinels monitor the master under.
        master_name: String,
        /// The connection settings of data nodes.
        node: NodeUrl,
    },
    /// A Redis Cluster.
    Cluster {
        /// `host:port` of the seed nodes.
        seeds: Vec<String>,
        /// The connection settings of data nodes.
        node: NodeUrl,
    },
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        match self {
            Topology::Single(_) => f.write_str("Single"),
            Topology::Sentinel { sentinels, master_name, .. } => f
                .debug_struct("Sentinel")
                .field("sentinels", sentinels)
                .field("master_name", master_name)
                .finish_non_exhaustive(),
            Topology::Cluster { seeds, .. } => {
                f.debug_struct("Cluster").field("seeds", seeds).finish_non_exhaustive()
            }
        }
    }
}

/// How to reach a data node given its address: scheme, credentials and database.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct NodeUrl {
    /// Whether to use TLS.
    pub(crate) tls: bool,
    /// `user:password` or `:password` as written in the URL (still percent-encoded), if any.
    pub(crate) userinfo: Option<String>,
    /// The database number, if one was given.
    pub(crate) db: Option<u32>,
}

impl NodeUrl {
    /// The `redis[s]://` URL of the node at `host:port`.
    pub(crate) fn at(&self, host_port: &str) -> String {
        let mut url = String::from(if self.tls { "rediss://" } else { "redis://" });
        if let Some(u) = &self.userinfo {
            url.push_str(u);
            url.push('@');
        }
        url.push_str(host_port);
        if let Some(db) = self.db {
            url.push('/');
            url.push_str(&db.to_string());
        }
        url
    }

    /// The URL of a sentinel at `host:port`: same TLS setting, the given credentials, no db.
    pub(crate) fn sentinel_at(&self, host_port: &str, userinfo: Option<&str>) -> String {
        NodeUrl { tls: self.tls, userinfo: userinfo.map(str::to_owned), db: None }.at(host_port)
    }
}

fn invalid(url: &str, why: &str) -> StoreError {
    StoreError::Backend {
        message: format!("invalid Redis URL {}: {why}", redacted(url)),
        source: None,
    }
}

/// The URL with any password replaced by `***`, for error messages.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<unparsable>".into() };
    match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{hosts}")
        }
        None => url.to_string(),
    }
}

/// Parses `host:port,host:port` into a checked list.
fn hosts(url: &str, list: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for h in list.split(',') {
        let h = h.trim();
        if h.is_empty() {
            return Err(invalid(url, "empty host in the host list"));
        }
        let (host, port) = match h.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => (host, port),
            _ => return Err(invalid(url, "every host needs an explicit :port")),
        };
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(invalid(url, "a port is not a number between 1 and 65535"));
        }
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if !bracketed && host.contains(':') {
            return Err(invalid(url, "write IPv6 addresses in brackets: [::1]:6379"));
        }
        out.push(h.to_string());
    }
    Ok(out)
}

impl Topology {
    /// Parses a store URL (see the module documentation).
    pub(crate) fn parse(url: &str) -> Result<Topology, StoreError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(url, "expected scheme://..."));
        };
        let (tls, kind) = match scheme {
            "redis" | "rediss" => return Ok(Topology::Single(url.to_string())),
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            other => {
                return Err(invalid(
                    url,
                    &format!(
                        "unknown scheme {other:?}; use redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster"
                    ),
                ))
            }
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(invalid(url, "query parameters are not supported; use the builder"));
        }
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, rest),
        };
        let (host_list, path) = match rest.split_once('/') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        };
        let seeds = hosts(url, host_list)?;
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        if kind == "cluster" {
            if parts.next().is_some() {
                return Err(invalid(url, "a cluster URL has no path (clusters have only db 0)"));
            }
            return Ok(Topology::Cluster { seeds, node: NodeUrl { tls, userinfo, db: None } });
        }
        let Some(master_name) = parts.next() else {
            return Err(invalid(url, "a sentinel URL ends with /<master-name>"));
        };
        let db = match parts.next() {
            Some(d) => Some(d.parse::<u32>().map_err(|_| invalid(url, "the db is not a number"))?),
            None => None,
        };
        if parts.next().is_some() {
            return Err(invalid(url, "expected /<master-name>[/<db>] after the hosts"));
        }
        Ok(Topology::Sentinel {
            sentinels: seeds,
            master_name: master_name.to_string(),
            node: NodeUrl { tls, userinfo, db },
        })
    }

    /// Whether the URL asks for TLS.
    pub(crate) fn tls(&self) -> bool {
        match self {
            Topology::Single(u) => u.starts_with("rediss://"),
            Topology::Sentinel { node, .. } | Topology::Cluster { node, .. } => node.tls,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_each_topology() {
        assert_eq!(
            Topology::parse("redis://127.0.0.1:7000").unwrap(),
            Topology::Single("redis://127.0.0.1:7000".into())
        );
        let Topology::Sentinel { sentinels, master_name, node } =
            Topology::parse("rediss+sentinel://app:s%40cret@127.0.0.1:1,127.0.0.1:2/main/3")
                .unwrap()
        else {
            panic!("not sentinel")
        };
        assert_eq!(sentinels, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(master_name, "main");
        assert_eq!(node.at("10.0.0.1:6380"), "rediss://app:s%40cret@10.0.0.1:6380/3");
        assert_eq!(node.sentinel_at("127.0.0.1:1", None), "rediss://127.0.0.1:1");
        let Topology::Cluster { seeds, node } =
            Topology::parse("redis+cluster://:pw@[::1]:7000,127.0.0.1:7001").unwrap()
        else {
            panic!("not cluster")
        };
        assert_eq!(seeds, ["[::1]:7000", "127.0.0.1:7001"]);
        assert_eq!(node.at("127.0.0.1:7002"), "redis://:pw@127.0.0.1:7002");
    }

    #[test]
    fn rejects_bad_urls_without_leaking_passwords() {
        for bad in [
            "http://x:1",
            "redis+sentinel://127.0.0.1:1",
            "redis+sentinel://127.0.0.1/main",
            "redis+sentinel://127.0.0.1:0/main",
            "redis+sentinel://127.0.0.1:1,,127.0.0.1:2/main",
            "redis+cluster://127.0.0.1:1/0",
            "redis+cluster://::1:7000",
            "redis+cluster://u:hunter2@127.0.0.1:x",
            "redis+cluster://127.0.0.1:1?tls=1",
            "nothing",
        ] {
            let e = Topology::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid Redis URL"), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
